/* Native Linux port: the byte line (board_io.h) over a pty master (host/stream.py opens the slave path with
 * pyserial, exactly as it opens a USB serial port) or over stdin/stdout (for pipes). The clock is
 * CLOCK_MONOTONIC; there is no instruction counter, so board_cycles() reports 0 ("not measured"). */
#define _XOPEN_SOURCE 600 /* posix_openpt, grantpt, unlockpt, ptsname */
#define _DEFAULT_SOURCE /* cfmakeraw */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "board.h"

static int in_fd = -1;
static int out_fd = -1;
static int slave_fd = -1; /* kept open so the master never reads EIO while no host is attached */
static int input_closed; /* --stdio: the pipe reached end of file */

static int open_pty(void) {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) return -1;
  const char *path = ptsname(master);
  if (path == NULL) return -1;
  slave_fd = open(path, O_RDWR | O_NOCTTY);
  if (slave_fd < 0) return -1;
  struct termios tio;
  if (tcgetattr(slave_fd, &tio) != 0) return -1;
  cfmakeraw(&tio); /* no echo, no line editing: the line carries binary frames */
  if (tcsetattr(slave_fd, TCSANOW, &tio) != 0) return -1;
  in_fd = out_fd = master;
  printf("PTY %s\n", path);
  fflush(stdout);
  return 0;
}

int board_init(int argc, char **argv) {
  int use_stdio = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--stdio") == 0) {
      use_stdio = 1;
    } else {
      fprintf(stderr, "usage: %s [--stdio]  (default: serve on a new pty, printed as 'PTY <path>')\n", argv[0]);
      return 2;
    }
  }
  if (use_stdio) {
    in_fd = STDIN_FILENO;
    out_fd = STDOUT_FILENO;
  } else if (open_pty() != 0) {
    fprintf(stderr, "error: cannot create a pseudo-terminal (%s); use --stdio instead\n", strerror(errno));
    return 1;
  }
  int flags = fcntl(in_fd, F_GETFL);
  if (flags < 0 || fcntl(in_fd, F_SETFL, flags | O_NONBLOCK) != 0) return 1;
  return 0;
}

void board_wait_for_rx(void) {
  if (input_closed) exit(0); /* the host hung up and every request it sent is answered (the app is idle) */
  struct pollfd pfd = {.fd = in_fd, .events = POLLIN, .revents = 0};
  (void)poll(&pfd, 1, 100);
}

size_t board_read(uint8_t *buf, size_t max) {
  ssize_t n = read(in_fd, buf, max);
  if (n > 0) return (size_t)n;
  if (n == 0 && in_fd == STDIN_FILENO) input_closed = 1;
  return 0;
}

void board_write(const uint8_t *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(out_fd, buf, len);
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      if (errno == EPIPE) exit(0);
      return; /* the transport is gone; like a UART with nobody listening, drop the bytes */
    } else {
      struct pollfd pfd = {.fd = out_fd, .events = POLLOUT, .revents = 0};
      (void)poll(&pfd, 1, 100);
    }
  }
}

uint32_t board_micros(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
}

uint64_t board_cycles(void) { return 0; }
