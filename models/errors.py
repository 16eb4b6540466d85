"""User-facing errors and the CLI wrapper that turns them into one-line messages.

Every tool and host script raises :class:`UserError` for a mistake the user can fix (a missing path,
a bad option, a model that does not fit). :func:`run_cli` prints it as ``error: ...`` on one line and
exits non-zero, so no Python traceback ever reaches a user for their own mistake.
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence


class UserError(Exception):
    """A problem the user can fix. The message names the problem and the fix, on one line."""

    exit_code = 2


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; print a UserError as one line on stderr and return its exit code.

    KeyboardInterrupt exits 130 quietly (the caller has already printed its summary if it has one).
    """
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
