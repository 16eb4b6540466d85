/* Arduino core stand-in (Arduino.h): Serial, the clock and the setup()/loop() driver on a board port's
 * byte line (board_io.h). Like a real core, main() calls setup() once and loop() for ever; unlike one, it
 * sleeps in board_wait_for_rx() after a loop() that neither received nor sent a byte, so an idle sketch
 * does not spin a host CPU (loop() still runs at least every 100 ms, which keeps the app's idle flush). */
#include <Arduino.h>

#include "board_io.h"

#if defined(ARDUINO_HOST_NATIVE)
#include <time.h>

#include "board.h" /* board_init(argc, argv): the pty or --stdio */
#else
#include "board.h" /* board_init(void): QEMU's UART0 and SysTick */
#endif

HardwareSerial Serial;

namespace {

bool line_active = false; /* a byte moved in or out since the driver last looked */
const unsigned long STREAM_TIMEOUT_MS = 1000;

/* board_micros() wraps every 71 minutes; millis() must wrap only after 2^32 ms, as on a real core. */
uint64_t uptime_us() {
  static uint32_t last = 0;
  static uint64_t high = 0;
  const uint32_t now = board_micros();
  if (now < last) high += 1ull << 32;
  last = now;
  return high | now;
}

} // namespace

void HardwareSerial::begin(unsigned long baud) { baud_ = baud; }

void HardwareSerial::fill() {
  while (count_ < sizeof rx_) {
    const size_t tail = (head_ + count_) % sizeof rx_;
    const size_t room = (tail >= head_ ? sizeof rx_ : head_) - tail;
    const size_t got = board_read(&rx_[tail], room < sizeof rx_ - count_ ? room : sizeof rx_ - count_);
    if (got == 0) return;
    count_ += got;
    line_active = true;
  }
}

int HardwareSerial::available() {
  fill();
  return static_cast<int>(count_);
}

size_t HardwareSerial::readBytes(char *buffer, size_t length) {
  size_t done = 0;
  unsigned long last = millis();
  while (done < length) {
    fill();
    if (count_ == 0) {
      if (millis() - last >= STREAM_TIMEOUT_MS) break;
      board_wait_for_rx();
      continue;
    }
    buffer[done++] = static_cast<char>(rx_[head_]);
    head_ = (head_ + 1) % sizeof rx_;
    --count_;
    last = millis();
  }
  return done;
}

size_t HardwareSerial::write(const uint8_t *buffer, size_t size) {
  board_write(buffer, size);
  if (size > 0) line_active = true;
  return size;
}

unsigned long micros() { return board_micros(); }

unsigned long millis() { return static_cast<unsigned long>(uptime_us() / 1000u); }

void delay(unsigned long ms) {
#if defined(ARDUINO_HOST_NATIVE)
  const struct timespec pause = {static_cast<time_t>(ms / 1000u), static_cast<long>(ms % 1000u) * 1000000L};
  nanosleep(&pause, nullptr);
#else
  const uint32_t start = board_micros();
  while (board_micros() - start < ms * 1000u) {}
#endif
}

#if defined(ARDUINO_HOST_NATIVE)
int main(int argc, char **argv) {
  const int status = board_init(argc, argv);
  if (status != 0) return status;
#else
int main(void) {
  board_init();
#endif
  setup();
  for (;;) {
    line_active = false;
    loop();
    if (!line_active) board_wait_for_rx();
  }
}
