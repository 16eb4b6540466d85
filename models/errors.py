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
VENV_HINT = (
    "run it with the project's environment: .venv/bin/python (or `source .venv/bin/activate` first); "
    "`make setup` creates it"
)


def _missing_dependency(exc: ModuleNotFoundError) -> str | None:
    """The one-line error for a third-party package this Python lacks (the system python3 outside the venv)."""
    name = (exc.name or "").split(".")[0]
    if not name or name in PROJECT_PACKAGES:
        return None
    return f"{sys.executable} has no module {name!r}, which this project needs; {VENV_HINT}"


def _stopped(terminated: bool) -> int:
    """Say how the run ended and return its exit code: 143 for SIGTERM, 130 for Ctrl-C."""
    print("terminated" if terminated else "interrupted", file=sys.stderr)
    return Terminated.exit_code if terminated else 130


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; print a UserError as one line on stderr and return its exit code.

    A third-party package missing from this Python (the system python3 instead of .venv) is such a mistake too.
    KeyboardInterrupt exits 130 quietly and SIGTERM 143 (the caller has already printed its summary if it has
    one); both unwind the stack, so partial files are cleaned up and child processes stopped. The signals are
    recorded as they arrive because a library may swallow the KeyboardInterrupt and fail later with another
    error (TensorFlow's converter does, Ctrl-C mid-trace ends in a TypeError): once a stop signal came, any
    error that follows is reported as the interruption it is, never as a traceback.
    """
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    on_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)} if on_main else {}
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt as exc:
        return _stopped(isinstance(exc, Terminated))
    except Exception as exc:
        if received:
            return _stopped(received[-1] == signal.SIGTERM)
        if isinstance(exc, UserError):
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        message = _missing_dependency(exc) if isinstance(exc, ModuleNotFoundError) else None
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return UserError.exit_code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
