"""JSON-lines log of a stream: one record per line, flushed as soon as it is written.

Flushing per record means a crash, a kill or a pulled cable never costs the results already received, and
``tail -f`` shows them live. Record types (field ``type``):

- ``start``: bundle, model id, target and its DeviceInfo, source.
- ``result``: one answered frame (seq, frame name, prediction, score, device latency, raw output, label and
  reference agreement when known).
- ``lost``: a frame sent but never answered, with the reason (link lost, device reset, device error, timeout).
- ``notice``: link events (reconnected, resync, device reset).
- ``summary``: the end-of-run figures (also printed).

Every frame the host sends appears exactly once as ``result`` or ``lost``; :func:`read_log` plus
:func:`check_accounted` verify that.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, TextIO

import numpy as np

from models.errors import UserError


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class ResultsLog:
    """Append records to a JSON-lines file (or nowhere when ``path`` is None)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self._fh: TextIO | None = None
        if self.path is not None:  # checked now, created at the first record: a run that never starts leaves no file
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot write log {self.path} ({exc.strerror}); choose another --log path") from None
            if self.path.is_dir() or not os.access(self.path.parent, os.W_OK):
                raise UserError(
                    f"cannot write log {self.path} (a folder, or no write permission); choose another --log path"
                )

    def write(self, record_type: str, **fields: Any) -> None:
        if self.path is None:
            return
        if self._fh is None:
            try:
                self._fh = open(self.path, "w", encoding="utf-8")
            except OSError as exc:
                raise UserError(f"cannot write log {self.path} ({exc.strerror}); choose another --log path") from None
        record = {"type": record_type, "t": round(time.time(), 6), **fields}
        self._fh.write(json.dumps(record, default=_jsonable) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._fh, self.path = None, None

    def __enter__(self) -> "ResultsLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a log file (a torn last line from a killed process is ignored)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def check_accounted(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Check that every sent frame has exactly one result or lost record; return counts per record type.

    Raises ValueError naming the first sequence number recorded twice.
    """
    seen: dict[int, str] = {}
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec["type"]] = counts.get(rec["type"], 0) + 1
        if rec["type"] in ("result", "lost"):
            seq = int(rec["seq"])
            if seq in seen:
                raise ValueError(f"seq {seq} recorded twice ({seen[seq]} and {rec['type']})")
            seen[seq] = rec["type"]
    return counts
