"""User-facing errors and the CLI wrapper that turns them into one-line messages.

Every tool and host script raises :class:`UserError` for a mistake the user can fix (a missing path,
a bad option, a model that does not fit). :func:`run_cli` prints it as ``error: ...`` on one line and
exits non-zero, so no Python traceback ever reaches a user for their own mistake; :func:`exit_cli` is the same as a
command's entry point, with the exit codes kept for a stop signal that lands while the process shuts down.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from types import FrameType
from typing import Callable, NoReturn, Sequence


class UserError(Exception):
    """A problem the user can fix. The message names the problem and the fix, on one line."""

    exit_code = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: every ``finally`` runs (summaries written, child processes stopped); exit 143."""

    exit_code = 143


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
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


def _stopped(terminated: bool, hint: str = "") -> tuple[int, str]:
    """How a stopped run ends: exit 143 and "terminated" for SIGTERM, 130 and "interrupted" for Ctrl-C, followed
    by the stop's ``hint`` (see :func:`stop_with_hint`) when it carries one."""
    code, word = (Terminated.exit_code, "terminated") if terminated else (130, "interrupted")
    return code, f"{word}: {hint}" if hint else word


def stop_with_hint(stop: KeyboardInterrupt, hint: str) -> KeyboardInterrupt:
    """The same stop (Ctrl-C or SIGTERM), carrying what was kept and how to go on: run_cli prints it on the stop's
    one line (``interrupted: <hint>``), so a long run that can be resumed says how without a second message."""
    return Terminated(hint) if isinstance(stop, Terminated) else KeyboardInterrupt(hint)


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; print a UserError as one line on stderr and return its exit code.

    A third-party package missing from this Python (the system python3 instead of .venv) is such a mistake too.
    KeyboardInterrupt exits 130 quietly and SIGTERM 143 (the caller has already printed its summary if it has
    one); both unwind the stack, so partial files are cleaned up and child processes stopped. The signals are
    recorded as they arrive because a library may swallow the KeyboardInterrupt and fail later with another
    error (TensorFlow's converter does, Ctrl-C mid-trace ends in a TypeError): once a stop signal came, any
    error that follows is reported as the interruption it is, never as a traceback. The previous signal
    handlers are put back on return, for a caller that goes on (a test); a command's entry point is
    :func:`exit_cli`.
    """
    return _run(main, argv, until_exit=False)


def exit_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> NoReturn:
    """A command's entry point: :func:`run_cli`, then exit the process with its code.

    The stop handlers stay installed through interpreter shutdown. Put back to the defaults (run_cli's way, and
    CPython's own at the end of finalization), a SIGTERM or Ctrl-C that lands after the step ended but before the
    process is gone killed it by the signal (-15/-2 to its parent) instead of the documented 143/130. Such a late
    signal can stop nothing any more: the step has written its files, stopped its children and printed its last
    line. So the process exits at once with the step's own code, 0 when the work is done (a caller must not
    redo or distrust complete work), 130/143 when the step was itself stopped, 2 for a user error; atexit hooks
    are skipped then, and nothing here needs them (cleanup lives in the steps' ``finally`` blocks). From the
    last atexit hook on (module teardown: memory freed, no project code) the two signals are ignored, so
    CPython's reset to the defaults cannot open that window again.
    """
    sys.exit(_run(main, argv, until_exit=True))


def _exit_now(code: int) -> NoReturn:
    """End the process with ``code`` now (a late stop signal): flush what was printed, skip the rest of shutdown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach the reader anyway
            pass
    os._exit(code)


def _ignore_stop_signals() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None, until_exit: bool) -> int:
    received: list[int] = []
    outcome: list[int] = []  # the step's exit code, once it is known: a signal after that cannot change the work

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if not outcome:
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        if until_exit:
            _exit_now(outcome[0])

    on_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS} if on_main else {}
    if on_main and until_exit:  # registered before the step imports anything: runs after every library's hook
        atexit.register(_ignore_stop_signals)
    try:
        code, message = _outcome(main, argv, received, outcome)
        outcome.append(code)
        if message:
            print(message, file=sys.stderr)
        return code
    finally:
        if not until_exit:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _outcome(
    main: Callable[[Sequence[str] | None], int | None],
    argv: Sequence[str] | None,
    received: list[int],
    outcome: list[int],
) -> tuple[int, str]:
    """Run ``main``; its exit code and the one line to print ("" for none). A bug propagates as the traceback
    it is (exit 1: recorded in ``outcome`` first, so a late signal does not interrupt the traceback)."""
    try:
        return int(main(argv) or 0), ""
    except KeyboardInterrupt as exc:  # the signal that came decides: a library may re-raise a plain one (Ray Tune)
        return _stopped(received[-1] == signal.SIGTERM if received else isinstance(exc, Terminated), str(exc))
    except Exception as exc:
        if received:
            return _stopped(received[-1] == signal.SIGTERM)
        if isinstance(exc, UserError):
            return exc.exit_code, f"error: {exc}"
        message = _missing_dependency(exc) if isinstance(exc, ModuleNotFoundError) else None
        if message is None:
            outcome.append(1)
            raise
        return UserError.exit_code, f"error: {message}"
