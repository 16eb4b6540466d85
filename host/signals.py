"""Stop signals for a stream: Ctrl-C (SIGINT) and SIGTERM end it the same clean way.

The first signal is a stop request that the loop honours between two records, so a record is never half-handled
(answered but not logged): frames in flight are recorded lost with the reason, the summary is written, the
boards the host started are stopped. A second signal interrupts at once. Outside the loop,
:func:`models.errors.run_cli` turns SIGTERM into :class:`models.errors.Terminated`, a KeyboardInterrupt, so every
``finally`` and ExitStack still runs. The signals reach the host only: boards it starts run in their own session
(tinyml/local_boards.py), so a terminal's Ctrl-C to the whole process group does not kill them under the host.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from models.errors import Terminated

REASONS: dict[int, str] = {signal.SIGINT: "interrupted by the user (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}


class StopRequest:
    """While entered (main thread only) and once :meth:`defer` is called, SIGINT and SIGTERM set :attr:`signum`
    instead of raising; before that they raise at once, as without it.

    Entering it before a step that must stop at once (a handshake) and deferring when that step is done leaves no
    moment where neither holds: a signal either interrupts the step or becomes a request, never falls between.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferring = False
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def reason(self) -> str:
        """What stopped the run, as it goes into the log ('' while nothing did)."""
        return REASONS.get(self.signum, "") if self.signum is not None else ""

    def defer(self) -> None:
        """From now until exit, a first signal is a request the loop honours between two records."""
        self._deferring = True

    def interrupt(self) -> KeyboardInterrupt:
        """The exception that ends the process after the run: exit 130 for Ctrl-C, 143 for SIGTERM."""
        return Terminated() if self.signum == signal.SIGTERM else KeyboardInterrupt()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self._deferring or self.signum is not None:  # not deferring yet, or the second signal: stop now
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in REASONS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()
        self._deferring = False
