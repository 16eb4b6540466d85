"""What the display shows during a stream: the last answer drawn on its frame and the live figures.

The stream loop reports each answer (:meth:`LiveView.answered`) and refreshes the view once per turn
(:meth:`LiveView.refresh`); the view decides what to draw, so the loop never handles display state.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from host.display import Status
from host.summary import Summary

LISTEN_CANVAS = (240, 320)  # listen mode has no image on the host: answers are drawn on a blank canvas


class Display(Protocol):
    def show(self, image: np.ndarray | None, status: Status) -> bool: ...
    def close(self) -> None: ...


class LiveView:
    """The display (or none) plus the state it shows."""

    def __init__(self, display: Display | None):
        self.display = display
        self._status = Status()
        self._image: np.ndarray | None = None

    def answered(self, label: str, score: float, latency_us: int | None, image: np.ndarray | None) -> None:
        """The newest answer, shown at the next refresh on its frame (or the blank canvas)."""
        self._status.label, self._status.score = label, score
        if latency_us is not None:
            self._status.device_ms = latency_us / 1e3
        self._image = image if image is not None else np.zeros(LISTEN_CANVAS, np.uint8)

    def refresh(self, summary: Summary, dropped: int, elapsed: float) -> bool:
        """Draw the live figures; False when the user asked to stop (window closed, q pressed)."""
        if self.display is None:
            return True
        st = self._status
        st.fps = summary.answered / elapsed if elapsed > 0 else 0.0
        st.sent, st.answered, st.lost = summary.sent, summary.answered, sum(summary.lost.values())
        st.dropped = dropped
        st.accuracy, st.agreement = summary.accuracy, summary.agreement
        keep_going = self.display.show(self._image, st)
        self._image = None
        return keep_going

    def close(self) -> None:
        if self.display is not None:
            self.display.close()
