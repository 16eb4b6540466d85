/* esp32-camera stand-in (esp_camera.h): frames from a file, one buffer. */
#include "esp_camera.h"

#include <stdio.h>
#include <stdlib.h>

namespace {

const size_t QVGA_WIDTH = 320, QVGA_HEIGHT = 240;

FILE *frames = nullptr;
uint8_t frame_buf[QVGA_WIDTH * QVGA_HEIGHT * 2];
camera_fb_t frame = {frame_buf, 0, QVGA_WIDTH, QVGA_HEIGHT, PIXFORMAT_GRAYSCALE};
bool frame_out = false; /* handed to the caller and not returned yet */

} // namespace

esp_err_t esp_camera_init(const camera_config_t *config) {
  if (config == nullptr || config->frame_size != FRAMESIZE_QVGA) return ESP_FAIL;
  if (config->pixel_format != PIXFORMAT_GRAYSCALE && config->pixel_format != PIXFORMAT_RGB565) return ESP_FAIL;
  const char *path = getenv("ARDUINO_CAMERA_FRAMES");
  if (path == nullptr || (frames = fopen(path, "rb")) == nullptr) return ESP_ERR_NOT_FOUND;
  frame.format = config->pixel_format;
  frame.len = QVGA_WIDTH * QVGA_HEIGHT * (config->pixel_format == PIXFORMAT_GRAYSCALE ? 1u : 2u);
  return ESP_OK;
}

camera_fb_t *esp_camera_fb_get(void) {
  if (frames == nullptr || frame_out) return nullptr;
  if (fread(frame_buf, 1, frame.len, frames) != frame.len) { /* the end: the camera starts the file again */
    rewind(frames);
    if (fread(frame_buf, 1, frame.len, frames) != frame.len) return nullptr;
  }
  frame_out = true;
  return &frame;
}

void esp_camera_fb_return(camera_fb_t *fb) {
  if (fb == &frame) frame_out = false;
}
