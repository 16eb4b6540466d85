"""User-facing errors and the CLI wrapper that turns them into one-line messages.

Every tool and host script raises :class:`UserError` for a mistake the user can fix (a missing path,
a bad option, a model that does not fit). :func:`run_cli` prints it as ``error: ...`` on one line and
exits non-zero, so no Python traceback ever reaches a user for their own mistake.
"""
from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Callable, Sequence


class UserError(Exception):
    """A problem the user can fix. The message names the problem and the fix, on one line."""

    exit_code = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: every ``finally`` runs (summaries written, child processes stopped); exit 143."""

    exit_code = 143


PROJECT_PACKAGES = ("models", "tools", "host", "tinyml", "tests", "bench")
VENV_HINT = ("run it with the project's environment: .venv/bin/python (or `source .venv/bin/activate` first); "
             "`make setup` creates it")


def _missing_dependency(exc: ModuleNotFoundError) -> str | None:
    """The one-line error for a third-party package this Python lacks (the system python3 outside the venv)."""
    name = (exc.name or "").split(".")[0]
    if not name or name in PROJECT_PACKAGES:
        return None
    return f"{sys.executable} has no module {name!r}, which this project needs; {VENV_HINT}"


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; print a UserError as one line on stderr and return its exit code.

    A third-party package missing from this Python (the system python3 instead of .venv) is such a mistake too.
    KeyboardInterrupt exits 130 quietly and SIGTERM 143 (the caller has already printed its summary if it has
    one); both unwind the stack, so partial files are cleaned up and child processes stopped.
    """
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main else None
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print("terminated" if isinstance(exc, Terminated) else "interrupted", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    except ModuleNotFoundError as exc:
        message = _missing_dependency(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return UserError.exit_code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
