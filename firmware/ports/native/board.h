/* Native Linux board: the firmware as a process, its serial line a pseudo-terminal (default) or
 * stdin/stdout. Implements port.h in board.c. */
#ifndef NATIVE_BOARD_H
#define NATIVE_BOARD_H

/* Open the transport from the command line (`--stdio`, or a new pty whose path is printed as
 * "PTY <path>" on stdout). Returns 0, or prints the problem on stderr and returns non-zero. */
int board_init(int argc, char **argv);
/* Block until input is readable (or 100 ms pass), so an idle process uses no CPU. Called only when the app
 * is idle, so with --stdio at end of input this is where the process exits (status 0). */
void board_wait_for_rx(void);

#endif /* NATIVE_BOARD_H */
