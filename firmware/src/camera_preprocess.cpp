/* See camera_preprocess.h. */
#include "camera_preprocess.h"

namespace {

/* One source pixel as gray or RGB. */
void read_pixel(const uint8_t *src, int src_w, int x, int y, int format, int rgb[3]) {
  if (format == CAMERA_GRAY8) {
    rgb[0] = rgb[1] = rgb[2] = src[y * src_w + x];
    return;
  }
  const uint8_t *p = src + 2 * (y * src_w + x);
  const unsigned v = (unsigned)p[0] << 8 | p[1];
  const unsigned r5 = v >> 11, g6 = (v >> 5) & 0x3f, b5 = v & 0x1f;
  rgb[0] = (int)((r5 << 3) | (r5 >> 2));
  rgb[1] = (int)((g6 << 2) | (g6 >> 4));
  rgb[2] = (int)((b5 << 3) | (b5 >> 2));
}

/* BT.601 luma in OpenCV's fixed point (14 fractional bits, rounded). */
int gray_of(const int rgb[3]) { return (rgb[0] * 4899 + rgb[1] * 9617 + rgb[2] * 1868 + (1 << 13)) >> 14; }

} // namespace

int camera_preprocess(const uint8_t *src, int src_w, int src_h, int format, const camera_model_input *model,
                      uint8_t *out) {
  if (src == nullptr || src_w <= 0 || src_h <= 0 || (format != CAMERA_GRAY8 && format != CAMERA_RGB565_BE)) return -1;
  const int H = model->height, W = model->width, C = model->channels;
  /* Region of the frame that is used (x0, y0, cw, ch) and where it lands in the output (ox, oy, ow, oh). */
  int x0 = 0, y0 = 0, cw = src_w, ch = src_h, ox = 0, oy = 0, ow = W, oh = H;
  if (model->resize == CAMERA_RESIZE_CROP) {
    if ((long)src_w * H > (long)W * src_h) { /* too wide: crop the sides */
      cw = (int)(((long)src_h * W * 2 + H) / (2L * H));
      if (cw < 1) cw = 1;
      x0 = (src_w - cw) / 2;
    } else {
      ch = (int)(((long)src_w * H * 2 + W) / (2L * W));
      if (ch < 1) ch = 1;
      y0 = (src_h - ch) / 2;
    }
  } else if (model->resize == CAMERA_RESIZE_LETTERBOX) {
    if ((long)src_w * H > (long)W * src_h) { /* width limits */
      oh = (int)(((long)src_h * W * 2 + src_w) / (2L * src_w));
      if (oh < 1) oh = 1;
      if (oh > H) oh = H;
      oy = (H - oh) / 2;
    } else {
      ow = (int)(((long)src_w * H * 2 + src_h) / (2L * src_h));
      if (ow < 1) ow = 1;
      if (ow > W) ow = W;
      ox = (W - ow) / 2;
    }
  }
  for (int y = 0; y < H; ++y) {
    for (int x = 0; x < W; ++x) {
      uint8_t *dst = out + (y * W + x) * C;
      if (y < oy || y >= oy + oh || x < ox || x >= ox + ow) { /* letterbox border: black */
        for (int c = 0; c < C; ++c) dst[c] = (uint8_t)model->lut[0];
        continue;
      }
      /* Box of source pixels covering this output pixel (at least one: nearest pixel when enlarging). */
      const int u = x - ox, v = y - oy;
      int sx0 = x0 + (int)((long)u * cw / ow), sx1 = x0 + (int)((long)(u + 1) * cw / ow);
      int sy0 = y0 + (int)((long)v * ch / oh), sy1 = y0 + (int)((long)(v + 1) * ch / oh);
      if (sx1 <= sx0) sx1 = sx0 + 1;
      if (sy1 <= sy0) sy1 = sy0 + 1;
      long sum[3] = {0, 0, 0};
      for (int sy = sy0; sy < sy1; ++sy)
        for (int sx = sx0; sx < sx1; ++sx) {
          int rgb[3];
          read_pixel(src, src_w, sx, sy, format, rgb);
          if (C == 1) {
            sum[0] += format == CAMERA_GRAY8 ? rgb[0] : gray_of(rgb);
          } else {
            sum[0] += rgb[0], sum[1] += rgb[1], sum[2] += rgb[2];
          }
        }
      const long n = (long)(sx1 - sx0) * (sy1 - sy0);
      for (int c = 0; c < C; ++c) dst[c] = (uint8_t)model->lut[(sum[c] + n / 2) / n];
    }
  }
  return 0;
}
