/* Pointwise CONV_2D with 8 input channels, DSP path (MobileNet's thinnest layers: V1 0.25's first
 * pointwise, V2 0.35's 8-channel bottleneck expansions).
 *
 * With so few input channels the 2-pixel x 2-channel block of engine_conv.c spends more on its per-block
 * set-up and requantisation than on MACs. Here one pixel's 8 input bytes are split by SXTB16 once into
 * 4 registers and every output channel is one short run: a 16-byte record of its constants (folded bias
 * and the folded requantisation of engine_requant.h, precomputed per layer into scratch), 2 weight words
 * each split by SXTB16 into 2 SMLAD operands, 4 SMLADs, 6 instructions of requantisation: 22 instructions
 * per 8 MACs against about 45 in the 2-pixel block. (With 16 input channels the 2-pixel block is
 * already faster: the 8 input registers no longer fit beside the loop's own.) In place is safe: a pixel's inputs are all read before its outputs are written (see
 * eng_conv_t.in_place for the pixel order). */
#include "engine_kernels.h"
#include "engine_requant.h"

#if ENG_DSP

typedef struct {
  int32_t bias, mult, rz, r;
} pw_chan_t;

static ENG_INLINE void pw_narrow_body(const eng_conv_t *p, const int8_t *in, int8_t *out, const pw_chan_t *q,
                                      int mode) {
  enum { K = 8 };
  const size_t npix = (size_t)p->out_h * p->out_w, out_c = p->out_c;
  const int32_t lo = p->act_min, hi = p->act_max;
  const int8_t *weights = p->weights;
  for (size_t i = 0; i < npix; i++) {
    const int8_t *x = in + i * (size_t)K;
    uint32_t xs[K / 2];
    for (int g = 0; g < K / 4; g++) {
      const uint32_t v = eng_load32(x + 4 * g);
      xs[2 * g] = eng_sxtb16(v);
      xs[2 * g + 1] = eng_sxtb16_ror8(v);
    }
    int8_t *o = out + i * out_c;
    const int8_t *w = weights;
    for (size_t oc = 0; oc < out_c; oc++, w += K) {
      const pw_chan_t c = q[oc];
      int32_t acc = c.bias;
      for (int g = 0; g < K / 4; g++) {
        const uint32_t ww = eng_load32(w + 4 * g);
        acc = eng_smlad(xs[2 * g], eng_sxtb16(ww), acc);
        acc = eng_smlad(xs[2 * g + 1], eng_sxtb16_ror8(ww), acc);
      }
      o[oc] = rq_fold_out(acc, c.mult, c.rz, c.r, lo, hi, mode);
    }
  }
}

ENG_NOINLINE static void pw8_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, const pw_chan_t *q) {
  pw_narrow_body(p, in, out, q, RQ_FOLD_SAT);
}
ENG_NOINLINE static void pw8_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, const pw_chan_t *q) {
  pw_narrow_body(p, in, out, q, RQ_FOLD);
}
void eng_pw_narrow_dsp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch, int mode) {
  pw_chan_t *q = (pw_chan_t *)scratch;
  for (int oc = 0; oc < p->out_c; oc++) {
    const rq_chan_t r = rq_chan(p->mult[oc], p->shift[oc], p->out_zp);
    const pw_chan_t c = {p->bias[oc], r.mult, r.rz, r.r};
    q[oc] = c;
  }
  if (mode == RQ_FOLD_SAT) {
    pw8_sat(p, in, out, q);
  } else {
    pw8_clamp(p, in, out, q);
  }
}

#endif /* ENG_DSP */
