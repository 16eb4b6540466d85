/* ESP32-CAM (AI-Thinker, OV2640) camera mode: the board grabs frames itself, preprocesses them into the
 * model's input tensor (camera_preprocess.h) and sends RESULT frames; the host only listens. */
#ifndef CAMERA_H
#define CAMERA_H

#include <stdint.h>

/* Start the camera for a model with `channels` (1: grayscale frames, 3: RGB565). Returns 0 or the
 * esp_err_t of esp_camera_init. */
int camera_begin(int channels);

/* Grab one frame and write the model input tensor into `out`. Returns 0, or -1 when no frame came. */
int camera_grab(uint8_t *out);

#endif /* CAMERA_H */
