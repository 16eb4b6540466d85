/* The project's own stand-in for the Arduino core API: exactly the subset firmware/src (main.cpp, camera.cpp)
 * uses, so the sketch the boards run is compiled and run unchanged on this machine. Not Arduino's code: the
 * declarations follow the documented Arduino API (HardwareSerial/Stream, micros, millis, delay, setup/loop),
 * implemented in arduino_core.cpp on a board port's byte line (ports/common/board_io.h): a pty on Linux
 * (ports/native) or UART0 of QEMU's Cortex-M4 (ports/qemu_mps2). */
#ifndef ARDUINO_STAND_IN_H
#define ARDUINO_STAND_IN_H

#include <stddef.h>
#include <stdint.h>

#ifndef ARDUINO_SERIAL_RX_BUFFER
#define ARDUINO_SERIAL_RX_BUFFER 256 /* the RX ring of a typical core (Arduino-ESP32's default) */
#endif

/* Serial: the board's USB/UART line. Received bytes wait in an RX ring as in a real core; the transport
 * underneath pushes back when it is full (a pty, QEMU's UART, USB CDC), so nothing is lost. */
class HardwareSerial {
 public:
  void begin(unsigned long baud);
  /* Bytes ready to read now (never blocks). */
  int available();
  /* Up to `length` bytes: what is there, then waiting up to the stream timeout (1 s) for the rest, as
   * Stream::readBytes does. Returns the count read. */
  size_t readBytes(char *buffer, size_t length);
  size_t write(const uint8_t *buffer, size_t size);
  unsigned long baud() const { return baud_; }

 private:
  void fill();
  uint8_t rx_[ARDUINO_SERIAL_RX_BUFFER];
  size_t head_ = 0; /* next byte to read */
  size_t count_ = 0; /* bytes waiting */
  unsigned long baud_ = 0;
};

extern HardwareSerial Serial;

unsigned long micros();
unsigned long millis();
void delay(unsigned long ms);

/* The sketch. */
void setup();
void loop();

#endif /* ARDUINO_STAND_IN_H */
