/* ESP32-CAM (AI-Thinker, OV2640) camera mode: the board grabs frames itself, preprocesses them into the
 * model's input tensor (camera_preprocess.h) and sends RESULT frames; the host only listens. */
#ifndef CAMERA_H
#define CAMERA_H

#include <stdint.h>

#define CAMERA_ERR_OTHER_MODEL (-2)

/* Start the camera for the model the runner runs: `model_id` (sha256 of its .tflite) and `channels`
 * (1: grayscale frames, 3: RGB565). The preprocessing constants come from model_info.h (tools export), so
 * a model_info.h of another model (e.g. an engine build whose export was not re-run) is refused with
 * CAMERA_ERR_OTHER_MODEL instead of feeding the model wrongly scaled frames. Returns 0, that, or the
 * esp_err_t of esp_camera_init. */
int camera_begin(const uint8_t model_id[32], int channels);

/* Grab one frame and write the model input tensor into `out`. Returns 0, or -1 when no frame came. */
int camera_grab(uint8_t *out);

#endif /* CAMERA_H */
