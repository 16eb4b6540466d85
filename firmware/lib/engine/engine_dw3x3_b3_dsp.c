/* DEPTHWISE_CONV_2D 3x3, depth multiplier 1, horizontal stride 1 or 2, DSP path: a whole layer, borders
 * included, three output pixels at a time.
 *
 * Neighbouring output pixels share input columns (stride 1: the windows of 3 adjacent pixels span 5
 * columns, not 9; stride 2: 7, not 9), so each input word is loaded and split by SXTB16 once per block of
 * 3 pixels instead of once per tap. A pass takes one SXTB16 lane of a 4-channel group (channels c+L and
 * c+L+2, L = 0 or 1) for 3 pixels: 6 accumulators, the kernel row's 3 weights (split once per row) and one
 * input word fit the registers. Per kernel row a pass is (2S+3) column loads and splits, 3 weight loads and
 * splits and 18 SMLABB/SMLATT (about 45 instructions as GCC 12 -O2 schedules it); with the folded
 * requantisation (engine_requant.h) a pass is about 200 instructions per 54 MACs at stride 1, against about
 * 140 per 36 in the one-pixel row kernel it replaces (git history: engine_dw3x3_dsp.c), and borders no longer
 * take the per-pixel path.
 *
 * Padding needs no per-pixel path: a kernel row above or below the image walks the zero-point row with
 * column pitch 0, and a block's first or last column, when it is the padding column left or right of the
 * image, is read from the zero-point row too (each kernel row has its own first, middle and last column
 * addresses; SAME padding of a 3x3 window never puts more than one padding column on a side, the dispatcher
 * checks that). A row whose width is not a multiple of 3 ends with a block overlapping the previous one (it
 * rewrites the same bytes:
 * depthwise never runs in place). */
#include "engine_kernels.h"
#include "engine_requant.h"

#if ENG_DSP

/* One SXTB16 lane of a word: L 0 -> bytes 0 and 2, L 1 -> bytes 1 and 3. */
static ENG_INLINE uint32_t b3_lane(uint32_t v, int L) { return L ? eng_sxtb16_ror8(v) : eng_sxtb16(v); }

/* Per kernel row of a block, for one channel group: the first column's address (f), the second's (x, the
 * middle columns follow with pitch st) and the last's (l); a padding column is the zero-point row. */
typedef struct {
  const int8_t *f[3], *x[3], *l[3];
  size_t st[3];
} b3_rows_t;

/* Pixel px's two accumulators += column word xj times tap word wk (lanes: the pass's two channels). */
#define B3_MAC(px, xj, wk)                           \
  do {                                               \
    a##px##b = eng_smlabb((xj), (wk), a##px##b);     \
    a##px##t = eng_smlatt((xj), (wk), a##px##t);     \
  } while (0)
/* The next column word of the kernel row, split to the pass's lane. */
#define B3_COL() (xj = b3_lane(eng_load32(x), L), x += st)
#define B3_AT(ptr) (xj = b3_lane(eng_load32(ptr), L))

/* 3 pixels x channels c+L, c+L+2: accumulate, requantise, store (o: the block's first pixel, channel c).
 * Written out tap by tap (stride 1: columns 0-4, stride 2: 0-6) so the 6 accumulators stay in registers. */
static ENG_INLINE void b3_pass(const b3_rows_t *r, const int8_t *w, const int32_t *bias, const rq_chan_t *q,
                               int8_t *o, size_t C, int32_t lo, int32_t hi, int S, int L, int mode) {
  int32_t a0b = bias[L], a0t = bias[L + 2];
  int32_t a1b = a0b, a1t = a0t, a2b = a0b, a2t = a0t;
  for (int k = 0; k < 3; k++, w += 12) {
    const int8_t *x = r->x[k];
    const size_t st = r->st[k];
    const uint32_t w0 = b3_lane(eng_load32(w), L), w1 = b3_lane(eng_load32(w + 4), L);
    const uint32_t w2 = b3_lane(eng_load32(w + 8), L);
    uint32_t xj;
    if (S == 1) {
      B3_AT(r->f[k]); B3_MAC(0, xj, w0);
      B3_COL(); B3_MAC(0, xj, w1); B3_MAC(1, xj, w0);
      B3_COL(); B3_MAC(0, xj, w2); B3_MAC(1, xj, w1); B3_MAC(2, xj, w0);
      B3_COL(); B3_MAC(1, xj, w2); B3_MAC(2, xj, w1);
      B3_AT(r->l[k]); B3_MAC(2, xj, w2);
    } else {
      B3_AT(r->f[k]); B3_MAC(0, xj, w0);
      B3_COL(); B3_MAC(0, xj, w1);
      B3_COL(); B3_MAC(0, xj, w2); B3_MAC(1, xj, w0);
      B3_COL(); B3_MAC(1, xj, w1);
      B3_COL(); B3_MAC(1, xj, w2); B3_MAC(2, xj, w0);
      B3_COL(); B3_MAC(2, xj, w1);
      B3_AT(r->l[k]); B3_MAC(2, xj, w2);
    }
  }
  const rq_chan_t q0 = q[L], q1 = q[L + 2];
  o[L] = rq_fold_out(a0b, q0.mult, q0.rz, q0.r, lo, hi, mode);
  o[L + 2] = rq_fold_out(a0t, q1.mult, q1.rz, q1.r, lo, hi, mode);
  o += C;
  o[L] = rq_fold_out(a1b, q0.mult, q0.rz, q0.r, lo, hi, mode);
  o[L + 2] = rq_fold_out(a1t, q1.mult, q1.rz, q1.r, lo, hi, mode);
  o += C;
  o[L] = rq_fold_out(a2b, q0.mult, q0.rz, q0.r, lo, hi, mode);
  o[L + 2] = rq_fold_out(a2t, q1.mult, q1.rz, q1.r, lo, hi, mode);
}
#undef B3_COL
#undef B3_AT
#undef B3_MAC

static ENG_INLINE void b3_layer(const eng_dwconv_t *p, const int8_t *in, int8_t *out, const int8_t *zp_row, int S,
                                int mode) {
  const size_t C = p->out_c, c4 = C & ~(size_t)3;
  const int in_h = p->in_h, in_w = p->in_w, out_h = p->out_h, out_w = p->out_w, ncol = 2 * S + 3;
  const int stride_h = p->stride_h, pad_top = p->pad_top, pad_left = p->pad_left;
  const int32_t zp = p->out_zp, lo = p->act_min, hi = p->act_max;
  const int32_t *bias = p->bias, *mult = p->mult;
  const int8_t *shift = p->shift, *weights = p->weights;
  const int nblocks = (out_w + 2) / 3;
  for (int oy = 0; oy < out_h; oy++) {
    const int8_t *rows[3];
    for (int k = 0; k < 3; k++) {
      const int iy = oy * stride_h - pad_top + k;
      rows[k] = iy >= 0 && iy < in_h ? in + (size_t)iy * (size_t)in_w * C : 0;
    }
    int8_t *o_row = out + (size_t)oy * (size_t)out_w * C;
    for (size_t c = 0; c < c4; c += 4) {
      const int8_t *w = weights + c * 9; /* the group's 9 taps, 4 bytes each */
      rq_chan_t q[4];
      for (int j = 0; j < 4; j++) q[j] = rq_chan(mult[c + j], shift[c + j], zp);
      for (int b = 0; b < nblocks; b++) {
        const int ox = b * 3 < out_w - 3 ? b * 3 : out_w - 3;
        const int x0 = ox * S - pad_left;
        b3_rows_t r;
        for (int k = 0; k < 3; k++) {
          if (rows[k]) {
            const int8_t *x = rows[k] + (size_t)(x0 + 1) * C + c;
            r.x[k] = x;
            r.st[k] = C;
            r.f[k] = x0 < 0 ? zp_row + c : x - C;
            r.l[k] = x0 + ncol > in_w ? zp_row + c : x + (size_t)(ncol - 2) * C;
          } else {
            r.f[k] = r.x[k] = r.l[k] = zp_row + c;
            r.st[k] = 0;
          }
        }
        int8_t *o = o_row + (size_t)ox * C + c;
        b3_pass(&r, w, bias + c, q, o, C, lo, hi, S, 0, mode);
        b3_pass(&r, w, bias + c, q, o, C, lo, hi, S, 1, mode);
      }
    }
    /* The last C % 4 channels: weights [3][3][tail] after the groups, the reference loop. */
    const size_t tail = C - c4;
    for (size_t c = c4; c < C; c++) {
      const int8_t *w = weights + c4 * 9 + (c - c4);
      for (int ox = 0; ox < out_w; ox++) {
        int32_t acc = bias[c];
        for (int t = 0; t < 9; t++) {
          const int ix = ox * S - pad_left + t % 3;
          const int8_t *row = rows[t / 3];
          const int32_t v = row && ix >= 0 && ix < in_w ? row[(size_t)ix * C + c] : p->in_zp;
          acc += v * w[(size_t)t * tail];
        }
        o_row[(size_t)ox * C + c] = requant(acc, mult[c], shift[c], zp, lo, hi);
      }
    }
  }
}

/* One instance per stride and output stage: with the stride a run-time value the row code no longer
 * keeps its accumulators in registers (measured: 48x48x8 layer 0.77 -> 0.89 M instructions). */
ENG_NOINLINE static void b3_s1_sat(const eng_dwconv_t *p, const int8_t *in, int8_t *out, const int8_t *zp_row) {
  b3_layer(p, in, out, zp_row, 1, RQ_FOLD_SAT);
}
ENG_NOINLINE static void b3_s1_clamp(const eng_dwconv_t *p, const int8_t *in, int8_t *out, const int8_t *zp_row) {
  b3_layer(p, in, out, zp_row, 1, RQ_FOLD);
}
ENG_NOINLINE static void b3_s2_sat(const eng_dwconv_t *p, const int8_t *in, int8_t *out, const int8_t *zp_row) {
  b3_layer(p, in, out, zp_row, 2, RQ_FOLD_SAT);
}
ENG_NOINLINE static void b3_s2_clamp(const eng_dwconv_t *p, const int8_t *in, int8_t *out, const int8_t *zp_row) {
  b3_layer(p, in, out, zp_row, 2, RQ_FOLD);
}

void eng_dw3x3_b3_dsp(const eng_dwconv_t *p, const int8_t *in, int8_t *out, int8_t *zp_row, int mode) {
  for (int c = 0; c < p->out_c; c++) zp_row[c] = p->in_zp;
  if (p->stride_w == 1) {
    (mode == RQ_FOLD_SAT ? b3_s1_sat : b3_s1_clamp)(p, in, out, zp_row);
  } else {
    (mode == RQ_FOLD_SAT ? b3_s2_sat : b3_s2_clamp)(p, in, out, zp_row);
  }
}

#endif /* ENG_DSP */
