/* Native Linux board: the firmware as a process, its serial line a pseudo-terminal (default) or
 * stdin/stdout. board.c implements board_io.h (the byte line and clock) on it. */
#ifndef NATIVE_BOARD_H
#define NATIVE_BOARD_H

#include "board_io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Open the transport from the command line (`--stdio`, or a new pty whose path is printed as
 * "PTY <path>" on stdout). Returns 0, or prints the problem on stderr and returns non-zero. */
int board_init(int argc, char **argv);
/* board_wait_for_rx (board_io.h) blocks until input is readable or 100 ms pass. It is called only when the
 * program is idle, so with --stdio at end of input it is where the process exits (status 0). */

#ifdef __cplusplus
}
#endif
#endif /* NATIVE_BOARD_H */
