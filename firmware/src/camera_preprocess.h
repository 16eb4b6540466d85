/* On-board preprocessing for camera mode: a camera frame (grayscale or RGB565) -> the model's input tensor.
 * Follows models/preprocess.py: colour conversion (BT.601 weights, as OpenCV), centre crop / letterbox /
 * stretch to the model's HxW, box-average downscaling (OpenCV's INTER_AREA for whole-number ratios; nearest
 * pixel when enlarging), then the exported pixel lookup table (range scaling + input quantisation, computed
 * by tools/export.py with the host's own functions). Pure C++, no camera driver: the host tests build it. */
#ifndef CAMERA_PREPROCESS_H
#define CAMERA_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

enum camera_pixel_format { CAMERA_GRAY8 = 0, CAMERA_RGB565_BE = 1 /* esp32-camera byte order: high byte first */ };
enum camera_resize { CAMERA_RESIZE_CROP = 0, CAMERA_RESIZE_LETTERBOX = 1, CAMERA_RESIZE_STRETCH = 2 };

struct camera_model_input {
  int height, width, channels; /* model input, channels 1 or 3 */
  int resize; /* enum camera_resize (MODEL_RESIZE_MODE) */
  const int16_t *lut; /* 256 entries: pixel value -> tensor value (MODEL_PIXEL_LUT) */
};

/* Fill `out` (height*width*channels bytes, int8 or uint8 as the LUT says) from a src_w x src_h frame.
 * Returns 0, or -1 for a frame that is empty or in an unknown format. */
int camera_preprocess(const uint8_t *src, int src_w, int src_h, int format, const camera_model_input *model,
                      uint8_t *out);

#endif /* CAMERA_PREPROCESS_H */
