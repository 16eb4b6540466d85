"""Keep TensorFlow's (and OpenCV's) native logging off the user's terminal; importing this module sets the quiet
log levels for both.

TensorFlow, MLIR and absl write their C++ log lines (a page per quantize) straight to file descriptors 1 and 2,
before and regardless of Python's logging and of ``TF_CPP_MIN_LOG_LEVEL``. :func:`native_output` redirects both
descriptors around such a call and hands the text back (evaluate reads TFLM's arena report from it); when the
call fails, what it printed is replayed on stderr, so a real error is never hidden.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # OpenCV's "[ WARN:0@...]" lines about codecs and cameras


class Captured:
    """What the redirected descriptors received (filled in when the ``with`` block ends)."""

    text: str = ""


@contextlib.contextmanager
def native_output(fds: tuple[int, ...] = (1, 2)) -> Iterator[Captured]:
    """Redirect ``fds`` into a temporary file for the duration of the block."""
    captured = Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    failed = False
    with tempfile.TemporaryFile() as sink:
        for fd in fds:
            os.dup2(sink.fileno(), fd)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the converter's and Keras' notices, for a user who cannot act
                yield captured
        except Exception:  # not KeyboardInterrupt: an interrupted import's log lines are noise too
            failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip(fds, saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")
            if failed and captured.text.strip():
                sys.stderr.write(captured.text)


def import_tensorflow() -> None:
    """Import TensorFlow and Keras once, without the lines their native code prints at import."""
    if "tensorflow" in sys.modules:
        return
    with native_output():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
