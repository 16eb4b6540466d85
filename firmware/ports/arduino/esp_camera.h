/* Stand-in for the esp32-camera driver (the subset firmware/src/camera.cpp uses, declared as the driver
 * documents it), fed from a file of raw frames instead of an OV2640, so the ESP32-CAM camera mode runs on
 * Linux. The file is named by the environment variable ARDUINO_CAMERA_FRAMES and holds back-to-back frames
 * of the configured size: 320x240 for FRAMESIZE_QVGA, 1 byte a pixel for PIXFORMAT_GRAYSCALE, 2 (RGB565,
 * high byte first, as the driver delivers it) for PIXFORMAT_RGB565. Like a camera it never runs out: after
 * the last frame comes the first again (frame k of the file is the board's RESULT seq k+1, k+1+N, ...); a
 * file shorter than one frame gives NULL, as the driver does when no frame came. Native port only. */
#ifndef ESP_CAMERA_STAND_IN_H
#define ESP_CAMERA_STAND_IN_H

#include <stddef.h>
#include <stdint.h>

typedef int esp_err_t;
#define ESP_OK 0
#define ESP_FAIL (-1)
#define ESP_ERR_NOT_FOUND 0x105

typedef enum { LEDC_TIMER_0 = 0 } ledc_timer_t;
typedef enum { LEDC_CHANNEL_0 = 0 } ledc_channel_t;
typedef enum { PIXFORMAT_RGB565 = 0, PIXFORMAT_GRAYSCALE = 2 } pixformat_t;
typedef enum { FRAMESIZE_QVGA = 5 } framesize_t;
typedef enum { CAMERA_FB_IN_PSRAM = 0, CAMERA_FB_IN_DRAM = 1 } camera_fb_location_t;
typedef enum { CAMERA_GRAB_WHEN_EMPTY = 0, CAMERA_GRAB_LATEST = 1 } camera_grab_mode_t;

typedef struct {
  int pin_pwdn, pin_reset, pin_xclk, pin_sccb_sda, pin_sccb_scl;
  int pin_d7, pin_d6, pin_d5, pin_d4, pin_d3, pin_d2, pin_d1, pin_d0;
  int pin_vsync, pin_href, pin_pclk;
  int xclk_freq_hz;
  ledc_timer_t ledc_timer;
  ledc_channel_t ledc_channel;
  pixformat_t pixel_format;
  framesize_t frame_size;
  int jpeg_quality;
  size_t fb_count;
  camera_fb_location_t fb_location;
  camera_grab_mode_t grab_mode;
} camera_config_t;

typedef struct {
  uint8_t *buf;
  size_t len;
  size_t width;
  size_t height;
  pixformat_t format;
} camera_fb_t;

/* Opens $ARDUINO_CAMERA_FRAMES: ESP_OK, ESP_ERR_NOT_FOUND (unset or unreadable), ESP_FAIL (an unsupported
 * frame size or pixel format). */
esp_err_t esp_camera_init(const camera_config_t *config);
/* The next frame, or NULL (no whole frame in the file, or the last one is not returned yet). */
camera_fb_t *esp_camera_fb_get(void);
void esp_camera_fb_return(camera_fb_t *fb);

#endif /* ESP_CAMERA_STAND_IN_H */
