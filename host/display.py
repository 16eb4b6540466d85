"""What the user sees while streaming: an OpenCV window with the answer drawn on the frame, or (``--headless``)
one status line rewritten in place.

The window needs an OpenCV build with a GUI backend; the project depends on opencv-python-headless (servers, CI),
so opening a window there fails with a one-line message naming both ways out (``--headless``, or installing
``opencv-python``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from models.errors import UserError

WINDOW_MIN_WIDTH = 480  # small model inputs (28x28) are scaled up so the overlay stays readable


@dataclass
class Status:
    """The live figures both displays show."""

    label: str = "-"
    score: float = 0.0
    fps: float = 0.0
    device_ms: float | None = None
    sent: int = 0
    answered: int = 0
    lost: int = 0
    dropped: int = 0
    accuracy: float | None = None
    agreement: float | None = None

    def line(self) -> str:
        parts = [f"{self.answered}/{self.sent} answered"]
        if self.lost:
            parts.append(f"{self.lost} lost")
        if self.dropped:
            parts.append(f"{self.dropped} dropped")
        parts.append(f"{self.fps:5.1f} fps")
        if self.device_ms is not None:
            parts.append(f"device {self.device_ms:.2f} ms")
        parts.append(f"last: {self.label} {self.score:.2f}")
        if self.accuracy is not None:
            parts.append(f"acc {100 * self.accuracy:.1f}%")
        if self.agreement is not None:
            parts.append(f"agree {100 * self.agreement:.1f}%")
        return " | ".join(parts)


def annotate(image: np.ndarray, status: Status) -> np.ndarray:
    """A BGR copy of ``image`` (uint8 RGB/gray), scaled up to a readable width, with the status drawn on it."""
    import cv2

    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    if bgr.shape[1] < WINDOW_MIN_WIDTH:
        factor = WINDOW_MIN_WIDTH / bgr.shape[1]
        bgr = cv2.resize(bgr, (WINDOW_MIN_WIDTH, max(1, round(bgr.shape[0] * factor))), interpolation=cv2.INTER_NEAREST)
    lines = [
        f"{status.label}  {status.score:.2f}",
        f"{status.fps:.1f} fps" + (f"  device {status.device_ms:.2f} ms" if status.device_ms is not None else ""),
    ]
    if status.accuracy is not None:
        lines.append(f"acc {100 * status.accuracy:.1f}%  ({status.answered} frames)")
    if status.lost or status.dropped:
        lines.append(f"lost {status.lost}  dropped {status.dropped}")
    y = 28
    for text in lines:
        cv2.putText(bgr, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(bgr, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
        y += 28
    return bgr


class StatusLine:
    """``--headless``: one status line on stderr, rewritten in place on a terminal, a line every few seconds
    otherwise (so logs and CI output stay readable)."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._interval = 0.2 if self.tty else 5.0
        self._last = 0.0
        self._width = 0

    def show(self, image: np.ndarray | None, status: Status) -> bool:
        """Update the line (rate-limited); always returns True (a status line has no quit key)."""
        now = time.monotonic()
        if self.quiet or now - self._last < self._interval:
            return True
        self._last = now
        text = status.line()
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        return True

    def close(self) -> None:
        if self.tty and self._width and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


class LiveWindow:
    """An OpenCV window showing each answered frame with its label, score, fps and device latency.

    ``show`` returns False when the user pressed q or Esc or closed the window, which ends the stream cleanly.
    """

    def __init__(self, title: str = "stream"):
        import cv2

        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise UserError(
                "this OpenCV build has no GUI (opencv-python-headless); run with --headless, "
                "or install a GUI build: pip install opencv-python"
            ) from None

    def show(self, image: np.ndarray | None, status: Status) -> bool:
        import cv2

        if image is not None:
            cv2.imshow(self.title, annotate(image, status))
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            return False

    def close(self) -> None:
        import cv2

        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass


class VideoRecorder:
    """``--record FILE``: every answered frame with its overlay, written to a video (MJPG .avi or mp4v .mp4).

    The way to see the overlay on a headless machine (CI, SSH, opencv-python-headless) and to keep a demo.
    """

    CODECS = {".avi": "MJPG", ".mp4": "mp4v", ".mkv": "MJPG"}

    def __init__(self, path: str, fps: float = 10.0):
        from pathlib import Path

        import cv2

        self.path = Path(path)
        codec = self.CODECS.get(self.path.suffix.lower())
        if codec is None:
            raise UserError(f"--record {path}: use a .avi, .mp4 or .mkv file name")
        if not self.path.parent.exists():
            raise UserError(f"--record {path}: folder {self.path.parent} does not exist")
        self._fourcc = cv2.VideoWriter.fourcc(*codec)
        self.fps = fps
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def show(self, image: np.ndarray | None, status: Status) -> bool:
        import cv2

        if image is None:
            return True
        frame = annotate(image, status)
        if self._writer is None:
            self._size = (frame.shape[1], frame.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), self._fourcc, self.fps, self._size)
            if not self._writer.isOpened():
                raise UserError(f"OpenCV cannot write {self.path}; try a .avi file name")
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size)
        self._writer.write(frame)
        self.frames += 1
        return True

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class Displays:
    """Several displays at once (e.g. the status line and a recording); stops when any of them asks to."""

    def __init__(self, *displays):
        self.displays = displays

    def show(self, image: np.ndarray | None, status: Status) -> bool:
        results = [display.show(image, status) for display in self.displays]
        return all(results)

    def close(self) -> None:
        for display in self.displays:
            display.close()
