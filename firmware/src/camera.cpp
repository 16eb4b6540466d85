/* ESP32-CAM camera mode, written against the esp32-camera driver bundled with Arduino-ESP32 3.x
 * (esp_camera_init / esp_camera_fb_get / esp_camera_fb_return) and the AI-Thinker pin map. */
#if defined(FIRMWARE_CAMERA)
#include "camera.h"

#include <string.h>

#include "camera_preprocess.h"
#include "esp_camera.h"
#include "model_info.h"

namespace {

const uint8_t model_info_id[32] = MODEL_ID_BYTES;
const int16_t pixel_lut[256] = MODEL_PIXEL_LUT;
const camera_model_input model_input = {MODEL_INPUT_HEIGHT, MODEL_INPUT_WIDTH, MODEL_INPUT_CHANNELS, MODEL_RESIZE_MODE,
                                        pixel_lut};
int frame_format = CAMERA_GRAY8;

} // namespace

int camera_begin(const uint8_t model_id[32], int channels) {
  if (memcmp(model_id, model_info_id, sizeof model_info_id) != 0) return CAMERA_ERR_OTHER_MODEL;
  camera_config_t config = {};
  config.pin_pwdn = 32; /* AI-Thinker ESP32-CAM wiring */
  config.pin_reset = -1;
  config.pin_xclk = 0;
  config.pin_sccb_sda = 26;
  config.pin_sccb_scl = 27;
  config.pin_d7 = 35;
  config.pin_d6 = 34;
  config.pin_d5 = 39;
  config.pin_d4 = 36;
  config.pin_d3 = 21;
  config.pin_d2 = 19;
  config.pin_d1 = 18;
  config.pin_d0 = 5;
  config.pin_vsync = 25;
  config.pin_href = 23;
  config.pin_pclk = 22;
  config.xclk_freq_hz = 20000000;
  config.ledc_timer = LEDC_TIMER_0;
  config.ledc_channel = LEDC_CHANNEL_0;
  config.pixel_format = channels == 1 ? PIXFORMAT_GRAYSCALE : PIXFORMAT_RGB565;
  config.frame_size = FRAMESIZE_QVGA; /* 320x240: enough for models up to 240 px, cheap to scale down */
  config.jpeg_quality = 12;
  config.fb_count = 2;
  config.fb_location = CAMERA_FB_IN_PSRAM;
  config.grab_mode = CAMERA_GRAB_LATEST; /* classify the newest frame, never a stale queue */
  frame_format = channels == 1 ? CAMERA_GRAY8 : CAMERA_RGB565_BE;
  return (int)esp_camera_init(&config);
}

int camera_grab(uint8_t *out) {
  camera_fb_t *fb = esp_camera_fb_get();
  if (fb == nullptr) return -1;
  const int status = camera_preprocess(fb->buf, (int)fb->width, (int)fb->height, frame_format, &model_input, out);
  esp_camera_fb_return(fb);
  return status;
}
#endif /* FIRMWARE_CAMERA */
