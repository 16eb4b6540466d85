/* CONV_2D 3x3 with 1 or 3 input channels (a grayscale or RGB first layer), the whole layer, borders included
 * (issue #10). Codegen (tinyml/codegen/ops/conv.py, FirstLayer) calls eng_conv3x3_c{1,3}_{sat,clamp} directly for
 * an undilated 3x3 layer with an even out_c whose shifts are all in the folded range [-22, -1] and whose
 * accumulators stay below 2^30, and lays out its constants for it (engine.h, "first-layer layout"):
 *
 *   A pixel's 3x3 window is read as K int16 pair words (K = 5 for 1 channel, 14 for 3), each the two input bytes
 *   one SMLAD multiplies; the channel's weights come as the matching pair words, doubled (2w fits int16), with 0
 *   in a lane that meets an input byte outside the window. So the accumulator is 2x, the doubled bias its start,
 *   and requantisation is SMMLAR(2x, m, rz) + sign, one shift, SSAT: no per-output shift of x.
 *
 *   1 channel, kernel rows a, b, c (one LDR each: bytes 0..3, byte 3 unused):
 *     [a0 a2] [b0 b2] [c0 c2] [a1 b1] [c1 c3]      weights [w00 w02] [w10 w12] [w20 w22] [w01 w11] [w21 0]
 *   3 channels, kernel rows t = 0..2 of 9 bytes (three LDRs each: bytes 0..11, 9..11 unused):
 *     per row [t0 t2] [t1 t3] [t4 t6] [t5 t7], then [a8 b8] [c8 c10]   weights alike, [wc8 0] last
 *
 * A pass is 2 output pixels x 2 output channels: per pair word one LDRD of both pixels' words (interleaved on the
 * stack), one LDRD of both channels' weights, 4 SMLAD. A pixel whose window (plus the unused bytes after it) lies
 * inside the input is read in place; any other is first gathered into a padded 3 x 12 byte window (in_zp outside
 * the image), so one code path covers padding, strides and the one-row views of a fused chain. A narrower
 * activation range than int8 clamps after SSAT (_clamp). Without the DSP instructions the same entry points run
 * a plain-C loop over the same layout. */
/* GCC 12's first scheduling pass hoists the requantisation records' loads to the top of the pass and spills them
 * (and the output offsets); without it the pass is about 5% shorter. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

#include "engine_kernels.h"
#include "engine_pairs.h"
#include "engine_requant.h"

enum { WIN_PITCH = 12 }; /* bytes per row of a gathered window: 4 pixels of up to 3 channels */

/* Pixel (oy, ox)'s window rows as WIN_PITCH-byte rows in win, in_zp outside the image; returns win. */
ENG_NOINLINE static const int8_t *gather_window(const eng_conv_t *p, const int8_t *in, int oy, int ox, int8_t *win) {
  const int c = p->in_c, y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
  for (int ky = 0; ky < 3; ky++)
    for (int b = 0; b < 4 * c; b++) {
      const int iy = y0 + ky, ix = x0 + b / c;
      const int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
      win[ky * WIN_PITCH + b] =
          inside ? in[((size_t)iy * p->in_w + (size_t)ix) * (size_t)c + (size_t)(b % c)] : p->in_zp;
    }
  return win;
}

#if ENG_DSP

/* The window of pixel (oy, ox): in place when it and the 4th pixel after its start lie inside the input (*pitch the
 * input row's bytes), else gathered into win (*pitch WIN_PITCH). */
static ENG_INLINE const int8_t *window(const eng_conv_t *p, const int8_t *in, int oy, int ox, int8_t *win,
                                       size_t *pitch) {
  const int y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
  if (y0 >= 0 && y0 + 3 <= p->in_h && x0 >= 0 && x0 + 4 <= p->in_w) {
    *pitch = (size_t)p->in_w * p->in_c;
    return in + (size_t)y0 * *pitch + (size_t)x0 * p->in_c;
  }
  *pitch = WIN_PITCH;
  return gather_window(p, in, oy, ox, win);
}

enum { K1 = 5, K3 = 14 };

static ENG_INLINE uint32_t pack_lo(uint32_t lo, uint32_t hi) { return (lo & 0xFFFFu) | (hi << 16); }

/* The pair words of one pixel, written to x[0], x[2], ... (stride 2: the other pixel of the pass is interleaved). */
static ENG_INLINE void words_c1(const int8_t *w, size_t pitch, uint32_t *x) {
  const uint32_t a = eng_load32(w), b = eng_load32(w + pitch), c = eng_load32(w + 2 * pitch);
  x[0] = eng_sxtb16(a);
  x[2] = eng_sxtb16(b);
  x[4] = eng_sxtb16(c);
  x[6] = pack_lo(eng_sxtb16_ror8(a), eng_sxtb16_ror8(b));
  x[8] = eng_sxtb16_ror8(c);
}

static ENG_INLINE void words_c3(const int8_t *w, size_t pitch, uint32_t *x) {
  uint32_t last[3];
  for (int t = 0; t < 3; t++, w += pitch, x += 8) {
    const uint32_t a = eng_load32(w), b = eng_load32(w + 4);
    x[0] = eng_sxtb16(a);
    x[2] = eng_sxtb16_ror8(a);
    x[4] = eng_sxtb16(b);
    x[6] = eng_sxtb16_ror8(b);
    last[t] = eng_sxtb16(eng_load32(w + 8));
  }
  x[0] = pack_lo(last[0], last[1]);
  x[2] = last[2];
}

/* The layer, two pixels of a row at a time (an odd row width ends with its last pixel computed twice). */
static ENG_INLINE void first_layer(const eng_conv_t *p, const int8_t *in, int8_t *out, int c3, int mode) {
  const int out_h = p->out_h, out_w = p->out_w, out_c = p->out_c, K = c3 ? K3 : K1;
  uint32_t xw[2 * K3] ENG_ALIGNED(8);
  int8_t win[2][3 * WIN_PITCH] ENG_ALIGNED(4);
  for (int oy = 0; oy < out_h; oy++) {
    int8_t *o = out + (size_t)oy * out_w * out_c;
    for (int ox = 0; ox < out_w; ox += 2, o += 2 * out_c) {
      const int ox1 = ox + 1 < out_w ? ox + 1 : ox;
      for (int l = 0; l < 2; l++) {
        size_t pitch;
        const int8_t *w = window(p, in, oy, l ? ox1 : ox, win[l], &pitch);
        if (c3) {
          words_c3(w, pitch, xw + l);
        } else {
          words_c1(w, pitch, xw + l);
        }
      }
      eng_pairs_pass(p, xw, K, o, (size_t)(ox1 - ox) * (size_t)out_c, mode);
    }
  }
}

ENG_NOINLINE static void c1_layer_sat(const eng_conv_t *p, const int8_t *in, int8_t *out) {
  first_layer(p, in, out, 0, RQ_FOLD_SAT);
}
ENG_NOINLINE static void c1_layer_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out) {
  first_layer(p, in, out, 0, RQ_FOLD);
}
ENG_NOINLINE static void c3_layer_sat(const eng_conv_t *p, const int8_t *in, int8_t *out) {
  first_layer(p, in, out, 1, RQ_FOLD_SAT);
}
ENG_NOINLINE static void c3_layer_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out) {
  first_layer(p, in, out, 1, RQ_FOLD);
}

void eng_conv3x3_c1_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  (void)scratch;
  c1_layer_sat(p, in, out);
}
void eng_conv3x3_c1_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  (void)scratch;
  c1_layer_clamp(p, in, out);
}
void eng_conv3x3_c3_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  (void)scratch;
  c3_layer_sat(p, in, out);
}
void eng_conv3x3_c3_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  (void)scratch;
  c3_layer_clamp(p, in, out);
}

#else /* the portable path: the reference arithmetic over the same layout */

/* Each pair word's two taps, as byte offsets (row * WIN_PITCH + column byte) into a gathered window; -1: none. */
static const int8_t TAPS_C1[5][2] = {{0, 2}, {12, 14}, {24, 26}, {1, 13}, {25, -1}};
static const int8_t TAPS_C3[14][2] = {{0, 2},   {1, 3},   {4, 6},   {5, 7},   {12, 14}, {13, 15}, {16, 18},
                                      {17, 19}, {24, 26}, {25, 27}, {28, 30}, {29, 31}, {8, 20},  {32, -1}};

static void first_layer_portable(const eng_conv_t *p, const int8_t *in, int8_t *out) {
  const int c3 = p->in_c == 3, K = c3 ? 14 : 5, out_c = p->out_c;
  const int8_t (*taps)[2] = c3 ? TAPS_C3 : TAPS_C1;
  int8_t win[3 * WIN_PITCH];
  for (int oy = 0; oy < p->out_h; oy++)
    for (int ox = 0; ox < p->out_w; ox++) {
      gather_window(p, in, oy, ox, win);
      int8_t *o = out + ((size_t)oy * p->out_w + (size_t)ox) * (size_t)out_c;
      for (int oc = 0; oc < out_c; oc++) {
        const int q = oc >> 1, c = oc & 1;
        int32_t acc2 = p->bias[oc];
        for (int j = 0; j < K; j++) {
          const int8_t *word = p->weights + 4 * (((size_t)q * (size_t)K + (size_t)j) * 2u + (size_t)c);
          const int16_t w_lo = (int16_t)((uint16_t)(uint8_t)word[0] | (uint16_t)((uint8_t)word[1] << 8));
          const int16_t w_hi = (int16_t)((uint16_t)(uint8_t)word[2] | (uint16_t)((uint8_t)word[3] << 8));
          acc2 += w_lo * win[taps[j][0]];
          if (taps[j][1] >= 0) acc2 += w_hi * win[taps[j][1]];
        }
        const int32_t *rec = p->mult + 3 * oc;
        o[oc] = requant(acc2 / 2, rec[0], -rec[2], p->out_zp, p->act_min, p->act_max);
      }
    }
}

void eng_conv3x3_c1_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  (void)scratch;
  first_layer_portable(p, in, out);
}
void eng_conv3x3_c1_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  (void)scratch;
  first_layer_portable(p, in, out);
}
void eng_conv3x3_c3_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  (void)scratch;
  first_layer_portable(p, in, out);
}
void eng_conv3x3_c3_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  (void)scratch;
  first_layer_portable(p, in, out);
}

#endif /* ENG_DSP */
