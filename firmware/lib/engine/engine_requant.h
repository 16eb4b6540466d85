/* Requantisation shared by the engine's kernel files (private to firmware/lib/engine): the portable
 * per-output helper and the DSP paths' cheaper modes. */
#ifndef ENGINE_REQUANT_H
#define ENGINE_REQUANT_H

#include "engine.h"
#include "engine_simd.h"

static inline int8_t requant(int32_t acc, int32_t mult, int shift, int32_t zp, int32_t lo, int32_t hi) {
  return (int8_t)eng_clamp(eng_mul_q31(acc, mult, shift) + zp, lo, hi);
}

#if ENG_DSP
/* How the DSP paths requantise a layer. RQ_SMMULR when every shift is negative (effective scales below
 * 1/2: every MobileNet layer); then eng_mul_q31 is one SMMULR and three ALU operations, exactly:
 *   (x * m + 2^30) >> 31 == SMMULR(2x, m) = (2x * m + 2^31) >> 32   (2x fits in 32 bits: |x| < 2^30),
 *   h - (h < 0)          == h + (h >> 31),
 * and h + (h >> 31) + 2^(r-1) cannot overflow (|h| < 2^30, r <= 31). RQ_SMMULR_SAT when, in addition, the
 * activation range is the whole int8 range (no activation, or a ReLU/ReLU6 whose range the output
 * quantisation covers exactly, as calibration makes it): the clamp is one SSAT. A layer with a shift >= 0
 * keeps eng_mul_q31 (a left shift scales x before the multiply, so 2x might not fit). */
enum { RQ_EXACT, RQ_SMMULR, RQ_SMMULR_SAT };

static inline int requant_mode(const int8_t *shift, int n, int32_t lo, int32_t hi) {
  for (int i = 0; i < n; i++)
    if (shift[i] >= 0) return RQ_EXACT;
  return lo == -128 && hi == 127 ? RQ_SMMULR_SAT : RQ_SMMULR;
}

/* Requantise one accumulator; mult and shift are the channel's, passed in registers so they are loaded
 * once per channel (and before any int8 store, which could alias them). mode is a constant at each
 * inlined call site. */
static ENG_INLINE int8_t dsp_out(int32_t acc, int32_t mult, int shift, int32_t zp, int32_t lo, int32_t hi, int mode) {
  int32_t v;
  if (mode == RQ_EXACT) {
    v = eng_mul_q31(acc, mult, shift);
  } else {
    const int32_t h = eng_smmulr((int32_t)((uint32_t)acc << 1), mult);
    v = (h + (h >> 31) + (int32_t)(1u << (-shift - 1))) >> -shift;
  }
  if (mode == RQ_SMMULR_SAT) return (int8_t)eng_ssat8(v + zp);
  return (int8_t)eng_clamp(v + zp, lo, hi);
}

/* The folded modes, for kernels that can keep per-channel constants at hand (engine_kernels.h says which):
 * with r = -shift and rz = 2^(r-1) + out_zp * 2^r precomputed per channel,
 *   out = (SMMLAR(2x, m, rz) + (x >> 31)) >> r,   then SSAT (RQ_FOLD_SAT) or the clamp (RQ_FOLD),
 * exactly RQ_SMMULR's integers: SMMLAR adds rz to SMMULR(2x, m) = h; (x >> 31) stands for -(h < 0), since
 * h has x's sign except when h == 0, where (rz - 1) >> r and rz >> r both give out_zp (r >= 1); adding
 * out_zp * 2^r before the floor shift adds out_zp after it. No overflow while |h| < 2^30 and
 * |rz| < 2^30 (r <= 22). The folded modes need every shift in [-22, -1]; otherwise RQ_EXACT. */
enum { RQ_FOLD = 3, RQ_FOLD_SAT = 4 };
#define RQ_FOLD_MAX_R 22

typedef struct {
  int32_t mult, rz, r;
} rq_chan_t;

static inline rq_chan_t rq_chan(int32_t mult, int shift, int32_t zp) {
  const int r = -shift;
  const rq_chan_t q = {mult, (int32_t)(1u << (r - 1)) + zp * (int32_t)(1u << r), r};
  return q;
}

/* One accumulator through a folded mode (RQ_FOLD or RQ_FOLD_SAT, a constant at each inlined call site). */
static ENG_INLINE int8_t rq_fold_out(int32_t acc, int32_t mult, int32_t rz, int r, int32_t lo, int32_t hi, int mode) {
  const int32_t v = (eng_smmlar((int32_t)((uint32_t)acc << 1), mult, rz) + (acc >> 31)) >> r;
  if (mode == RQ_FOLD_SAT) return (int8_t)eng_ssat8(v);
  return (int8_t)eng_clamp(v, lo, hi);
}

#endif /* ENG_DSP */
#endif /* ENGINE_REQUANT_H */
