/* eng_chain_run: a chain of convolution-type layers computed row by row (engine_chain.h). */
#include "engine_chain.h"

#include <string.h>

#include "engine_kernels.h"
#include "engine_wide.h"

/* The row geometry of a stage's layer, whichever parameter struct it has. */
typedef struct {
  int in_h, in_row, out_h, out_row, k_h, stride, pad, dil;
} rows_t;

typedef struct {
  int next; /* next output row to compute */
  int base; /* output row held in the buffer's first slot */
  int keep; /* lowest row the consumer still needs */
} state_t;

typedef struct {
  const eng_chain_t *c;
  const int8_t *in;
  int8_t *out, *bufs;
  void *scratch;
  state_t st[ENG_CHAIN_MAX_STAGES];
  rows_t g[ENG_CHAIN_MAX_STAGES];
} run_t;

static int is_dw(int kind) { return kind == ENG_STAGE_DW || kind == ENG_STAGE_DW_WIDE || kind == ENG_STAGE_DW3X3; }

static rows_t geometry(const eng_stage_t *s) {
  rows_t g;
  if (is_dw(s->kind)) {
    const eng_dwconv_t *p = (const eng_dwconv_t *)s->layer;
    g = (rows_t){p->in_h, p->in_w * p->in_c, p->out_h, p->out_w * p->out_c, p->k_h, p->stride_h, p->pad_top, p->dil_h};
  } else {
    const eng_conv_t *p = (const eng_conv_t *)s->layer;
    g = (rows_t){p->in_h, p->in_w * p->in_c, p->out_h, p->out_w * p->out_c, p->k_h, p->stride_h, p->pad_top, p->dil_h};
  }
  return g;
}

/* One output row: the layer's kernel on a view whose input is rows [lo, lo + n) (n >= 1) and whose window
 * starts `top` rows above lo (padding rows, read as in_zp by the kernel). */
static void stage_row(const eng_stage_t *s, const int8_t *src, int n, int top, int8_t *dst, void *scratch) {
  if (is_dw(s->kind)) {
    eng_dwconv_t v = *(const eng_dwconv_t *)s->layer;
    v.in_h = (uint16_t)n;
    v.out_h = 1;
    v.pad_top = (uint8_t)top;
    if (s->kind == ENG_STAGE_DW) {
      eng_dwconv2d_s8(&v, src, dst, scratch);
    } else if (s->kind == ENG_STAGE_DW3X3) {
      eng_dwconv2d_s8_3x3(&v, src, dst, scratch);
    } else {
      eng_dwconv2d_s8_wide(&v, src, dst);
    }
    return;
  }
  eng_conv_t v = *(const eng_conv_t *)s->layer;
  v.in_h = (uint16_t)n;
  v.out_h = 1;
  v.pad_top = (uint8_t)top;
  v.in_place = 0;
  s->conv(&v, src, dst, scratch);
}

/* Compute the next output row of stage i, first computing the input rows its window needs. */
static void produce(run_t *r, int i) {
  const eng_stage_t *s = &r->c->stages[i];
  const rows_t *g = &r->g[i];
  state_t *st = &r->st[i];
  const int j = st->next;
  const int y0 = j * g->stride - g->pad;
  const int lo = y0 < 0 ? 0 : y0;
  int hi = y0 + (g->k_h - 1) * g->dil;
  if (hi > g->in_h - 1) hi = g->in_h - 1;
  const int8_t *src;
  if (i == 0) {
    src = r->in + (size_t)lo * (size_t)g->in_row;
  } else {
    state_t *prev = &r->st[i - 1];
    if (prev->next < lo) { /* rows no window reads (a stride beyond the window): never computed */
      prev->next = lo;
      prev->base = lo;
    }
    prev->keep = lo;
    while (prev->next <= hi) produce(r, i - 1);
    src = r->bufs + r->c->stages[i - 1].buf_offset + (size_t)(lo - prev->base) * (size_t)g->in_row;
  }
  int8_t *dst;
  if (i == r->c->n - 1) {
    dst = r->out + (size_t)j * (size_t)g->out_row;
  } else {
    int8_t *buf = r->bufs + s->buf_offset;
    if (j - st->base == s->rows) { /* full: move the rows still needed to the front */
      const int keep = st->keep, drop = keep - st->base, held = j - keep;
      const size_t row = (size_t)g->out_row;
      if (held > 0 && drop >= held) { /* the usual case (capacity >= 2 * kept rows): no overlap */
        memcpy(buf, buf + (size_t)drop * row, (size_t)held * row);
      } else if (held > 0) {
        memmove(buf, buf + (size_t)drop * row, (size_t)held * row);
      }
      st->base = keep;
    }
    dst = buf + (size_t)(j - st->base) * (size_t)g->out_row;
  }
  stage_row(s, src, hi - lo + 1, lo - y0, dst, r->scratch);
  st->next = j + 1;
}

void eng_chain_run(const eng_chain_t *c, const int8_t *in, int8_t *out, int8_t *bufs, void *scratch) {
  run_t r;
  r.c = c;
  r.in = in;
  r.out = out;
  r.bufs = bufs;
  r.scratch = scratch;
  for (int i = 0; i < c->n; i++) {
    r.g[i] = geometry(&c->stages[i]);
    r.st[i] = (state_t){0, 0, 0};
  }
  const int last = c->n - 1;
  for (int j = 0; j < r.g[last].out_h; j++) produce(&r, last);
}
