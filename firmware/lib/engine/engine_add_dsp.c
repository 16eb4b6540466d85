/* ADD of two int8 tensors, DSP path: TFLite's integer arithmetic (each input's offset, a 20-bit left shift,
 * a rescale to the common scale, the sum rescaled to the output) in about 20 instructions per element
 * instead of three 64-bit multiply-and-round sequences.
 *
 * Each of the three MultiplyByQuantizedMultiplier steps is SMMLAR with the rounding constant folded in, as
 * the folded requantisation of engine_requant.h: with r = -shift >= 1,
 *   MBQM(v, m, shift) = (SMMLAR(2v, m, 2^(r-1)) + (v >> 31)) >> r,
 * exact for |v| < 2^30 (the inputs: |x - zp| * 2^20 < 2^29; their rescaled sum: < 2^30). An input whose
 * shift is 0 (the input with the larger scale, whose factor is exactly 1/2) gets rounding constant 0 and its
 * sign correction masked off: MBQM(v, m, 0) = SMMULR(2v, m). The output step also folds out_zp (rz of
 * engine_requant.h), which needs its shift in [-22, -1]. */
#include "engine_kernels.h"
#include "engine_requant.h"

#if ENG_DSP

typedef struct {
  int32_t off, mult, rnd, mask, r;
} add_in_t;

static inline add_in_t add_input(int32_t off, int32_t mult, int shift) {
  const int r = -shift;
  const add_in_t a = {off, mult, r ? (int32_t)(1u << (r - 1)) : 0, r ? -1 : 0, r};
  return a;
}

/* MBQM((x + off) << 20, m, shift) for one input element. */
static ENG_INLINE int32_t add_scaled(int32_t x, const add_in_t *a) {
  const int32_t v2 = (int32_t)((uint32_t)(x + a->off) << 21); /* 2v, v = (x + off) * 2^20 */
  return (eng_smmlar(v2, a->mult, a->rnd) + ((v2 >> 31) & a->mask)) >> a->r;
}

static ENG_INLINE void add_body(const eng_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out, int mode) {
  const add_in_t a = add_input(p->in1_offset, p->in1_mult, p->in1_shift);
  const add_in_t b = add_input(p->in2_offset, p->in2_mult, p->in2_shift);
  const rq_chan_t q = rq_chan(p->out_mult, p->out_shift, p->out_zp);
  const int32_t lo = p->act_min, hi = p->act_max;
  const uint32_t n = p->size;
  for (uint32_t i = 0; i < n; i++) {
    const int32_t sum = add_scaled(in1[i], &a) + add_scaled(in2[i], &b);
    out[i] = rq_fold_out(sum, q.mult, q.rz, q.r, lo, hi, mode);
  }
}

ENG_NOINLINE static void add_sat(const eng_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
  add_body(p, in1, in2, out, RQ_FOLD_SAT);
}

ENG_NOINLINE static void add_clamp(const eng_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
  add_body(p, in1, in2, out, RQ_FOLD);
}

int eng_add_dsp(const eng_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
  if (p->in1_shift > 0 || p->in2_shift > 0 || p->out_shift >= 0 || p->out_shift < -RQ_FOLD_MAX_R) return 0;
  if (p->act_min == -128 && p->act_max == 127) {
    add_sat(p, in1, in2, out);
  } else {
    add_clamp(p, in1, in2, out);
  }
  return 1;
}

#endif /* ENG_DSP */
