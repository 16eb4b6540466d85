"""The end-of-run figures of a stream: ``to_json`` goes into the log's summary record, ``text`` to the terminal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.scoring import RunningScore, confusion_text


def _stats(values: list[float] | list[int], scale: float) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "p50": None, "p95": None}
    arr = np.asarray(values, np.float64) * scale
    return {
        "mean": round(float(arr.mean()), 4),
        "p50": round(float(np.percentile(arr, 50)), 4),
        "p95": round(float(np.percentile(arr, 95)), 4),
    }


@dataclass
class Summary:
    """Counts and figures of one run; ``score`` is set for a labelled source or a reference comparison."""

    labels: list[str]
    target: str
    engine: str
    source: str
    read: int = 0
    sent: int = 0
    answered: int = 0
    dropped: int = 0
    lost: dict[str, int] = field(default_factory=dict)  # lost send attempts by reason (as in the log)
    resent: int = 0  # of those, how many were sent again
    reconnects: int = 0
    notices: int = 0
    unexpected: int = 0
    seconds: float = 0.0
    device_us: list[int] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)
    score: RunningScore | None = None
    interrupted: bool = False
    error: str | None = None
    reference: str = ""  # the oracle answers were compared with (models.reference.reference_for), if any

    @property
    def unanswered(self) -> int:
        """Frames that never got an answer (lost and not sent again)."""
        return sum(self.lost.values()) - self.resent

    @property
    def fps(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.score.accuracy if self.score is not None else None

    @property
    def agreement(self) -> float | None:
        return self.score.agreement if self.score is not None else None

    @property
    def exact_agreement(self) -> float | None:
        return self.score.exact_agreement if self.score is not None else None

    def to_json(self) -> dict[str, Any]:
        score = self.score
        return {
            "target": self.target,
            "engine": self.engine,
            "source": self.source,
            "frames_read": self.read,
            "sent": self.sent,
            "answered": self.answered,
            "dropped_at_source": self.dropped,
            "lost": dict(self.lost),
            "resent": self.resent,
            "unanswered_frames": self.unanswered,
            "reconnects": self.reconnects,
            "notices": self.notices,
            "unexpected_answers": self.unexpected,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "device_ms": _stats(self.device_us, 1e-3),
            "round_trip_ms": _stats(self.round_trip_ms, 1.0),
            "labelled": score.labelled if score else 0,
            "accuracy": self.accuracy,
            "confusion": score.confusion.tolist() if score and score.labelled else None,
            "compared_with_reference": score.compared if score else 0,
            "reference": self.reference or None,
            "agreement_top1": self.agreement,
            "agreement_exact": self.exact_agreement,
            "interrupted": self.interrupted,
            "error": self.error,
        }

    def text(self) -> str:
        lost = sum(self.lost.values())
        resent = f" ({self.resent} sent again)" if self.resent else ""
        if self.sent or not self.answered:
            head = (
                f"{self.sent} frames sent to {self.target} ({self.engine}) from {self.source}: "
                f"{self.answered} answered, {lost} lost{resent}, {self.dropped} dropped at the source"
            )
        else:  # listen mode: the board sent answers for frames it captured itself
            head = f"{self.answered} results from {self.source} on {self.target} ({self.engine})"
        lines = [head + (f", {self.reconnects} reconnect(s)" if self.reconnects else "")]
        if self.lost:
            lines.append("  lost: " + "; ".join(f"{n} x {reason}" for reason, n in sorted(self.lost.items())))
        lines.append(f"  {self.fps:.1f} fps over {self.seconds:.1f} s")
        if self.device_us:
            round_trip = (
                f"; host round trip p50 {np.percentile(self.round_trip_ms, 50):.2f} ms" if self.round_trip_ms else ""
            )
            lines.append(
                f"  device latency: mean {np.mean(self.device_us) / 1e3:.2f} ms, "
                f"p95 {np.percentile(self.device_us, 95) / 1e3:.2f} ms{round_trip}"
            )
        score = self.score
        if score is not None and score.labelled:
            lines.append(f"  accuracy: {100 * score.correct / score.labelled:.2f}% ({score.correct}/{score.labelled})")
        if score is not None and score.compared:
            lines.append(
                f"  agreement with the CPU reference ({self.reference}): "
                f"top-1 {100 * score.agree_top1 / score.compared:.2f}%, "
                f"identical output bytes {100 * score.agree_exact / score.compared:.2f}% "
                f"({score.compared} frames)"
            )
        if score is not None and score.labelled:
            lines.append(confusion_text(score.confusion, self.labels))
        if self.interrupted:
            lines.append("  (interrupted)")
        if self.error:
            lines.append(f"  stopped by: {self.error}")
        return "\n".join(lines)
