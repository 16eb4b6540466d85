/* DEPTHWISE_CONV_2D 3x3, depth multiplier 1, horizontal stride 1 or 2: eng_dwconv2d_s8_3x3, the entry
 * point tinyml/codegen/ops/depthwise.py calls for such layers (issue #10). DSP path: a whole layer (or a
 * fused chain's one-row view of it), borders included, 3 output pixels x 2 channels per pass.
 *
 * Column buffer. For each 4-channel group and output row the 3 input rows' words (4 channels of one pixel)
 * are copied once into scratch, 3 words per input column with padding columns and rows written as the
 * zero-point word, so a pass reads every tap at a constant offset from one pointer: no per-column pointer
 * arithmetic, no pitch register, no border test or edge variant. It replaced the 3-pixel kernel's per-block
 * tables of first/middle/last column addresses (engine_dw3x3_b3_dsp.c in git history), whose loads and spills
 * made a pass about 270 instructions instead of the 200 its arithmetic needed.
 *
 * Kernel rows 0 and 1 share one SMLAD (issue #10). The fill stores a column's rows 0 and 1 as PKHBT and PKHTB
 * of their two words ([row 0 | row 1] bytes of channels c, c+1, then of c+2, c+3), so one SXTB16 of either
 * gives a channel's int16 pair [x(row 0) | x(row 1)]; the weights are packed the same way once per group and
 * call (int8 in flash as before, the packed words in the scratch the split weights used), and one SMLAD per tap
 * does both rows' MACs. Row 2 stays SMLABB/SMLATT on its split word. Per window and kernel column of a pass: 4
 * multiplies instead of 6 for its 2 channels x 3 rows, no more loads or splits (the packing costs 2 PKH per
 * column in the fill, shared by both lanes and every block).
 *
 * A pass takes one SXTB16 lane of the group (channels a = c+L and b = c+L+2, L = 0 or 1) for 3 adjacent output
 * pixels: 6 accumulators in registers; three sweeps (a's rows 0-1, b's rows 0-1, row 2) over the 2S+3 columns
 * the 3 windows span, each with its 3 weights in registers, each column word loaded and split once per sweep and
 * meeting the weight of every window it lies in. 3 pixels per pass, not 4: every MobileNet row width at 96x96 (48,
 * 24, 12, 6, 3) is a multiple of 3, while 4 pixels made the 6- and 3-wide rows compute a third more pixels
 * than they store (measured on QEMU: 6x6x128 0.245 M -> 0.200 M, 3x3x256 0.159 M -> 0.129 M instructions),
 * and 8 accumulators spilled. A row whose width is not a multiple of 3 ends with a block overlapping the
 * previous one (it rewrites the same bytes; depthwise never runs in place); a row narrower than 3 pixels
 * computes a full block into a stack buffer and stores only its pixels.
 *
 * Requantisation: the folded mode of engine_requant.h (one SMMLAR and one SSAT per output); the caller
 * guarantees every shift is in [-RQ_FOLD_MAX_R, -1] (codegen chooses this kernel only then). An activation
 * range narrower than int8 is applied afterwards over the output (clamp(ssat(v)) == clamp(v)): one instance
 * per stride keeps the code at about 5 KB, and MobileNet's ReLU6 layers calibrate to the whole range. */
#include "engine_kernels.h"
#include "engine_requant.h"

#if ENG_DSP
/* GCC's first scheduling pass (before register allocation) hoists the passes' column loads and so spills
 * accumulators and pointers: turned off, V1's depthwise layers take 2.65 M instructions on QEMU instead of 2.79 M
 * (adding the priority register allocator, as engine_pw_4x2_dsp.c does: 2.75 M). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

#define NPX 3 /* output pixels per pass */

/* Unroll a loop with a constant trip count (the column and pixel loops below) so the accumulator arrays
 * become registers. */
#if defined(__GNUC__) && !defined(__clang__)
#define DW3_UNROLL _Pragma("GCC unroll 16")
#else
#define DW3_UNROLL
#endif

/* One SXTB16 lane of a word: L 0 -> bytes 0 and 2, L 1 -> bytes 1 and 3. */
static ENG_INLINE uint32_t dw3_lane(uint32_t v, int L) { return L ? eng_sxtb16_ror8(v) : eng_sxtb16(v); }

/* NPX pixels x channels a = c+L and b = c+L+2 of one 4-channel group. xb: the block's first column in the
 * group's column buffer (column j at xb[3j]: the word pair-packed from kernel rows 0 and 1 for channels c, c+1,
 * the same for c+2, c+3, then kernel row 2's word), ws: the lane's 9 weight words (ws[kx]: [w_a(0,kx) |
 * w_a(1,kx)], ws[3 + kx]: the same for b, ws[6 + kx]: [w_a(2,kx) | w_b(2,kx)]), o: the block's first output
 * pixel at channel c, pixels C bytes apart. Three sweeps over the (NPX-1)S+3 columns, each holding 3 weights in
 * registers: channel a's rows 0-1 and channel b's rows 0-1 with one SMLAD (2 MACs) per tap, row 2 with
 * SMLABB/SMLATT; each column word is loaded and split once per sweep and meets the weight of every window it
 * lies in; every address is a constant offset from xb or ws. */
static ENG_INLINE void dw3_pass(const uint32_t *xb, const uint32_t *ws, int32_t ba, int32_t bb, const rq_chan_t *qa,
                                const rq_chan_t *qb, int8_t *o, size_t C, int S, int L) {
  int32_t a[NPX], b[NPX];
  DW3_UNROLL
  for (int px = 0; px < NPX; px++) {
    a[px] = ba;
    b[px] = bb;
  }
  DW3_UNROLL
  for (int ch = 0; ch < 2; ch++) { /* rows 0 and 1 of channel a, then of channel b */
    const uint32_t wk[3] = {ws[3 * ch], ws[3 * ch + 1], ws[3 * ch + 2]};
    int32_t *acc = ch ? b : a;
    DW3_UNROLL
    for (int j = 0; j < (NPX - 1) * S + 3; j++) {
      const uint32_t xj = dw3_lane(xb[3 * j + ch], L);
      DW3_UNROLL
      for (int px = 0; px < NPX; px++) {
        const int t = j - px * S; /* this column's tap in pixel px's window */
        if (t >= 0 && t < 3) acc[px] = eng_smlad(xj, wk[t], acc[px]);
      }
    }
  }
  const uint32_t wk[3] = {ws[6], ws[7], ws[8]};
  DW3_UNROLL
  for (int j = 0; j < (NPX - 1) * S + 3; j++) {
    const uint32_t xj = dw3_lane(xb[3 * j + 2], L);
    DW3_UNROLL
    for (int px = 0; px < NPX; px++) {
      const int t = j - px * S;
      if (t >= 0 && t < 3) {
        a[px] = eng_smlabb(xj, wk[t], a[px]);
        b[px] = eng_smlatt(xj, wk[t], b[px]);
      }
    }
  }
  /* the constants into registers before the first int8 store (which may alias the scratch they live in) */
  const int32_t ma = qa->mult, za = qa->rz, ra = qa->r, mb = qb->mult, zb = qb->rz, rb = qb->r;
  DW3_UNROLL
  for (int px = 0; px < NPX; px++, o += C) {
    o[L] = rq_fold_out(a[px], ma, za, ra, -128, 127, RQ_FOLD_SAT);
    o[L + 2] = rq_fold_out(b[px], mb, zb, rb, -128, 127, RQ_FOLD_SAT);
  }
}

/* Fill the group's column buffer for one output row: input columns -1 .. ncols - 2, column ix at word
 * (ix + 1) * 3: [rows 0, 1 of channels c, c+1 | rows 0, 1 of c+2, c+3 | row 2], i.e. PKHBT and PKHTB of the
 * two rows' words (one SXTB16 of either then gives a channel's [row 0 | row 1] pair) and row 2's word. A
 * padding row reads zpw (4 zero-point bytes) with step 0; a padding column is zpw in all three words. */
static void dw3_fill(uint32_t *d, const int8_t *const row[3], size_t C, size_t c, int in_w, int ncols, uint32_t zpw) {
  const uint32_t zp[1] = {zpw};
  const int8_t *x0 = row[0] ? row[0] + c : (const int8_t *)zp, *x1 = row[1] ? row[1] + c : (const int8_t *)zp;
  const int8_t *x2 = row[2] ? row[2] + c : (const int8_t *)zp;
  const size_t s0 = row[0] ? C : 0, s1 = row[1] ? C : 0, s2 = row[2] ? C : 0;
  const int hi = in_w + 1 < ncols ? in_w + 1 : ncols; /* buffer columns 1 .. hi - 1 are in the image */
  d[0] = d[1] = d[2] = zpw;
  d += 3;
  for (int i = 1; i < hi; i++, d += 3, x0 += s0, x1 += s1, x2 += s2) {
    const uint32_t r0 = eng_load32(x0), r1 = eng_load32(x1);
    d[0] = eng_pkhbt(r0, r1);
    d[1] = eng_pkhtb(r0, r1);
    d[2] = eng_load32(x2);
  }
  for (int i = hi; i < ncols; i++, d += 3) d[0] = d[1] = d[2] = zpw;
}

static ENG_INLINE void dw3_layer(const eng_dwconv_t *p, const int8_t *in, int8_t *out, uint32_t *buf, int S) {
  const size_t C = p->out_c, c4 = C & ~(size_t)3;
  const int in_h = p->in_h, in_w = p->in_w, out_h = p->out_h, out_w = p->out_w;
  const int stride_h = p->stride_h, pad_top = p->pad_top, pad_left = p->pad_left;
  const int32_t zp = p->out_zp;
  const int32_t *bias = p->bias, *mult = p->mult;
  const int8_t *shift = p->shift, *weights = p->weights;
  const int nblocks = (out_w + NPX - 1) / NPX, last = out_w >= NPX ? out_w - NPX : 0, narrow = out_w < NPX;
  /* buffer columns: input column -1 up to the last block's last tap ((last + 3) * S - pad_left + 2) */
  const int ncols = (last + NPX - 1) * S - pad_left + 4;
  const uint32_t zpw = (uint32_t)(uint8_t)p->in_zp * 0x01010101u;
  /* the group's weights packed per lane and its requantisation constants live in scratch, not on the stack:
   * as locals GCC copied them to other stack slots on every row (about 60 instructions a row) */
  uint32_t (*ws)[9] = (uint32_t (*)[9])buf;
  rq_chan_t *q = (rq_chan_t *)(buf + 18);
  buf += 18 + 3 * 4;
  int8_t obuf[NPX * 4]; /* a narrow row's NPX pixels x 4 channels */
  for (size_t c = 0; c < c4; c += 4) {
    const int8_t *w = weights + c * 9; /* the group's 9 taps, 4 bytes each */
    for (int kx = 0; kx < 3; kx++) { /* the same packing as dw3_fill's, of kernel rows 0 and 1 */
      const uint32_t v0 = eng_load32(w + 4 * kx), v1 = eng_load32(w + 4 * (3 + kx)), v2 = eng_load32(w + 4 * (6 + kx));
      const uint32_t lo = eng_pkhbt(v0, v1), hi = eng_pkhtb(v0, v1);
      ws[0][kx] = eng_sxtb16(lo);
      ws[1][kx] = eng_sxtb16_ror8(lo);
      ws[0][3 + kx] = eng_sxtb16(hi);
      ws[1][3 + kx] = eng_sxtb16_ror8(hi);
      ws[0][6 + kx] = eng_sxtb16(v2);
      ws[1][6 + kx] = eng_sxtb16_ror8(v2);
    }
    for (int j = 0; j < 4; j++) q[j] = rq_chan(mult[c + j], shift[c + j], zp);
    const int32_t b0 = bias[c], b1 = bias[c + 1], b2 = bias[c + 2], b3 = bias[c + 3];
    for (int oy = 0; oy < out_h; oy++) {
      const int8_t *row[3];
      for (int k = 0; k < 3; k++) {
        const int iy = oy * stride_h - pad_top + k;
        row[k] = iy >= 0 && iy < in_h ? in + (size_t)iy * (size_t)in_w * C : 0;
      }
      dw3_fill(buf, row, C, c, in_w, ncols, zpw);
      int8_t *o_row = out + (size_t)oy * (size_t)out_w * C + c;
      const uint32_t *xb = buf + 3 * (1 - pad_left);
      int8_t *o = narrow ? obuf : o_row;
      const size_t ost = narrow ? 4 : C;
      for (int bl = 0; bl < nblocks; bl++) {
        dw3_pass(xb, ws[0], b0, b2, &q[0], &q[2], o, ost, S, 0);
        dw3_pass(xb, ws[1], b1, b3, &q[1], &q[3], o, ost, S, 1);
        if (bl + 2 == nblocks) { /* the next block is the row's last, overlapping when out_w % NPX != 0 */
          xb = buf + 3 * (last * S - pad_left + 1);
          o = o_row + (size_t)last * C;
        } else {
          xb += 3 * NPX * S;
          o += NPX * C;
        }
      }
      if (narrow)
        for (int px = 0; px < out_w; px++) memcpy(o_row + (size_t)px * C, obuf + 4 * px, 4);
    }
  }
  /* The last C % 4 channels: weights [3][3][tail] after the groups, the reference loop. */
  const size_t tail = C - c4;
  for (int oy = 0; oy < out_h && tail; oy++) {
    for (size_t c = c4; c < C; c++) {
      const int8_t *w = weights + c4 * 9 + (c - c4);
      for (int ox = 0; ox < out_w; ox++) {
        int32_t acc = bias[c];
        for (int t = 0; t < 9; t++) {
          const int iy = oy * stride_h - pad_top + t / 3, ix = ox * S - pad_left + t % 3;
          const int inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
          acc += (inside ? in[((size_t)iy * (size_t)in_w + (size_t)ix) * C + c] : p->in_zp) * w[(size_t)t * tail];
        }
        out[((size_t)oy * (size_t)out_w + (size_t)ox) * C + c] = requant(acc, mult[c], shift[c], zp, -128, 127);
      }
    }
  }
}

/* One instance per stride (a constant inside, so the passes keep their accumulators in registers). */
ENG_NOINLINE static void dw3_s1(const eng_dwconv_t *p, const int8_t *in, int8_t *out, uint32_t *buf) {
  dw3_layer(p, in, out, buf, 1);
}
ENG_NOINLINE static void dw3_s2(const eng_dwconv_t *p, const int8_t *in, int8_t *out, uint32_t *buf) {
  dw3_layer(p, in, out, buf, 2);
}
#endif /* ENG_DSP */

void eng_dwconv2d_s8_3x3(const eng_dwconv_t *p, const int8_t *in, int8_t *out, void *scratch) {
#if ENG_DSP
  uint32_t *buf = (uint32_t *)(((uintptr_t)scratch + 3u) & ~(uintptr_t)3u); /* the column buffer, word-aligned */
  (p->stride_w == 1 ? dw3_s1 : dw3_s2)(p, in, out, buf);
  const int32_t lo = p->act_min, hi = p->act_max;
  if (lo != -128 || hi != 127) {
    /* RQ_FOLD: the passes saturated to int8 (SSAT); clamping that to [lo, hi] gives clamp(v, lo, hi) */
    const size_t n = (size_t)p->out_h * p->out_w * p->out_c;
    for (size_t i = 0; i < n; i++) out[i] = (int8_t)eng_clamp(out[i], lo, hi);
  }
#else
  eng_dwconv2d_s8(p, in, out, scratch); /* the portable path: same bytes */
#endif
}
