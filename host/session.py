"""The stream loop: source -> prepare_frame -> target (credit-based) -> result -> log, display, statistics.

Flow control: the loop keeps exactly ``credits`` frames in flight (never more), so the link transfers frame n+1
while the device computes frame n. An exhaustive source (dataset, folder, video file) waits for a credit and sends
every frame; a live source is read on its own thread (sources.LatestFrame) and the loop takes the newest frame when
a credit frees, so frames the link cannot carry are dropped at the source and counted, never queued.

Accounting: every frame sent gets exactly one ``result`` or ``lost`` record in the log, including frames still in
flight when the run ends (Ctrl-C, a port that never came back): those are recorded as lost with the reason before
the summary is written. In labelled mode each frame is also run through the CPU reference (LiteRT BUILTIN_REF,
bit-identical to TFLM's reference kernels) while the device works, and the summary reports accuracy, the confusion
matrix and frame-by-frame agreement with the reference.
"""
from __future__ import annotations

import collections
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from host.display import Status
from host.results_log import ResultsLog
from host.sources import Frame, LatestFrame, Source
from tinyml.targets.base import DeviceInfo, Lost, Notice, Result, Target, check_compatible
from models.bundle import Bundle
from models.errors import UserError
from models.preprocess import PreprocessSpec, preprocess, quantize_input
from models.reference import ReferenceModel


class Display(Protocol):
    def show(self, image: np.ndarray | None, status: Status) -> bool: ...
    def close(self) -> None: ...


@dataclass
class _Pending:
    frame: Frame
    sent_at: float
    reference: np.ndarray | None
    attempt: int = 1


@dataclass
class Summary:
    """End-of-run figures; ``to_json`` goes into the log, ``text`` to the terminal."""

    labels: list[str]
    target: str
    engine: str
    source: str
    read: int = 0
    sent: int = 0
    answered: int = 0
    dropped: int = 0
    lost: dict[str, int] = field(default_factory=dict)   # lost send attempts by reason (as in the log)
    resent: int = 0                                        # of those, how many were sent again
    reconnects: int = 0
    notices: int = 0
    unexpected: int = 0
    seconds: float = 0.0
    device_us: list[int] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)
    labelled: int = 0
    correct: int = 0
    confusion: np.ndarray | None = None
    compared: int = 0
    agree_top1: int = 0
    agree_exact: int = 0
    interrupted: bool = False
    error: str | None = None

    @property
    def unanswered(self) -> int:
        """Frames that never got an answer (lost and not sent again)."""
        return sum(self.lost.values()) - self.resent

    @property
    def fps(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def agreement(self) -> float | None:
        return self.agree_top1 / self.compared if self.compared else None

    @property
    def exact_agreement(self) -> float | None:
        return self.agree_exact / self.compared if self.compared else None

    def to_json(self) -> dict[str, Any]:
        def stats(values: list[float], scale: float) -> dict[str, float | None]:
            if not values:
                return {"mean": None, "p50": None, "p95": None}
            arr = np.asarray(values, np.float64) * scale
            return {"mean": round(float(arr.mean()), 4), "p50": round(float(np.percentile(arr, 50)), 4),
                    "p95": round(float(np.percentile(arr, 95)), 4)}

        return {
            "target": self.target, "engine": self.engine, "source": self.source,
            "frames_read": self.read, "sent": self.sent, "answered": self.answered, "dropped_at_source": self.dropped,
            "lost": dict(self.lost), "resent": self.resent, "unanswered_frames": self.unanswered,
            "reconnects": self.reconnects, "notices": self.notices, "unexpected_answers": self.unexpected,
            "seconds": round(self.seconds, 3), "fps": round(self.fps, 2),
            "device_ms": stats(self.device_us, 1e-3), "round_trip_ms": stats(self.round_trip_ms, 1.0),
            "labelled": self.labelled, "accuracy": self.accuracy,
            "confusion": self.confusion.tolist() if self.confusion is not None else None,
            "compared_with_reference": self.compared, "agreement_top1": self.agreement,
            "agreement_exact": self.exact_agreement,
            "interrupted": self.interrupted, "error": self.error,
        }

    def text(self) -> str:
        lost = sum(self.lost.values())
        resent = f" ({self.resent} sent again)" if self.resent else ""
        lines = [f"{self.sent} frames sent to {self.target} ({self.engine}) from {self.source}: "
                 f"{self.answered} answered, {lost} lost{resent}, {self.dropped} dropped at the source"
                 if self.sent or not self.answered else
                 f"{self.answered} results from {self.source} on {self.target} ({self.engine})"
                 + (f", {self.reconnects} reconnect(s)" if self.reconnects else "")]
        if self.lost:
            lines.append("  lost: " + "; ".join(f"{n} x {reason}" for reason, n in sorted(self.lost.items())))
        lines.append(f"  {self.fps:.1f} fps over {self.seconds:.1f} s")
        if self.device_us:
            round_trip = (f"; host round trip p50 {np.percentile(self.round_trip_ms, 50):.2f} ms"
                          if self.round_trip_ms else "")
            lines.append(f"  device latency: mean {np.mean(self.device_us) / 1e3:.2f} ms, "
                         f"p95 {np.percentile(self.device_us, 95) / 1e3:.2f} ms{round_trip}")
        if self.labelled:
            lines.append(f"  accuracy: {100 * self.correct / self.labelled:.2f}% ({self.correct}/{self.labelled})")
        if self.compared:
            lines.append(f"  agreement with the CPU reference: top-1 {100 * self.agreement:.2f}%, "
                         f"identical output bytes {100 * self.exact_agreement:.2f}% ({self.compared} frames)")
        if self.confusion is not None and self.labelled:
            lines.append(confusion_text(self.confusion, self.labels))
        if self.interrupted:
            lines.append("  (interrupted)")
        if self.error:
            lines.append(f"  stopped by: {self.error}")
        return "\n".join(lines)


def confusion_text(matrix: np.ndarray, labels: list[str]) -> str:
    """Confusion matrix as text: rows are true labels, columns predictions (numbered to stay narrow)."""
    width = max(4, len(str(int(matrix.max()))) + 1)
    head = "  confusion (rows: true, columns: predicted)\n" + " " * 22 + "".join(f"{i:>{width}}" for i in range(len(labels)))
    rows = [f"  {i:>2} {labels[i][:16]:<16} " + "".join(f"{int(v):>{width}}" for v in matrix[i])
            for i in range(len(labels))]
    return "\n".join([head, *rows])


class StreamSession:
    """Runs one stream from ``source`` to ``target``; see the module docstring for the guarantees."""

    def __init__(self, bundle: Bundle, source: Source | None, target: Target, log: ResultsLog | None = None,
                 display: Display | None = None, compare_cpu: bool | None = None, answer_timeout: float = 30.0,
                 retries: int = 2):
        self.bundle = bundle
        # A frame of an exhaustive source lost to a link fault is sent again (as a new seq) up to ``retries``
        # times, so on-device accuracy covers every frame; live frames are never re-sent (they are stale).
        self.retries = 0 if source is None or source.live else retries
        self._retry: collections.deque[tuple[Frame, int]] = collections.deque()
        self.source = source
        self.target = target
        self.log = log or ResultsLog(None)
        self.display = display
        self.answer_timeout = answer_timeout
        # The reference runs in labelled mode (or on request) unless the target *is* the reference.
        # source None = listen mode: the board captures frames itself (camera-mode firmware); the host sends
        # nothing and records every RESULT the board sends, until --limit answers or Ctrl-C.
        self.listen = source is None
        self.listen_limit: int | None = None
        wanted = (source is not None and source.labelled) if compare_cpu is None else compare_cpu
        self.compare_cpu = bool(wanted) and target.name != "cpu" and not self.listen
        self._spec = PreprocessSpec.from_bundle(bundle)
        self._in_quant = bundle.input_quant
        self._out_quant = bundle.output_quant
        self._labels = bundle.labels
        self._reference: ReferenceModel | None = None
        self.summary = Summary(self._labels, target.name, "", "the board's camera" if source is None
                               else source.description)
        self._pending: dict[int, _Pending] = {}
        self._status = Status()
        self._last_image: np.ndarray | None = None
        self.started = False  # the target answered the handshake and matches the bundle
        self._stop_requested = False  # set by the first Ctrl-C

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The device input tensor (models.preprocess.prepare_frame, with the bundle's spec parsed once)."""
        return quantize_input(preprocess(image, self._spec), self._in_quant)

    # ---- the loop -----------------------------------------------------------------------------------
    def run(self) -> Summary:
        summary = self.summary
        try:
            info = self.target.open()
            check_compatible(self.bundle, info, where=f"{self.target.name} target")
        except BaseException:
            self.target.close()
            raise
        self.started = True
        summary.engine = info.engine
        if self.compare_cpu:
            self._reference = ReferenceModel(self.bundle.artifact_path("tflite"))
        if self.source is not None and self.source.labelled:
            summary.confusion = np.zeros((len(self._labels), len(self._labels)), np.int64)
        self.log.write("start", bundle=str(self.bundle.path), model_id=self.bundle.model_id, target=self.target.name,
                       device=_info_json(info), source=summary.source, compare_cpu=self.compare_cpu)
        if self.listen:
            return self._run_listen()
        reader = LatestFrame(self.source) if self.source.live else None
        frames = iter(self.source) if reader is None else None
        seq = 0
        start = time.monotonic()
        last_progress = start
        exhausted = False
        restore_sigint = self._defer_sigint()
        try:
            while not self._stop_requested:
                while (self._retry or not exhausted) and self.target.in_flight < self.target.info.credits:
                    attempt = 1
                    if self._retry:
                        frame, attempt = self._retry.popleft()
                    else:
                        frame = self._next_frame(frames, reader, wait=0.0 if self._pending else 0.05)
                        if frame is None:
                            exhausted = reader.exhausted if reader is not None else True
                            break
                    seq += 1
                    self._send(seq, frame, attempt)
                    last_progress = time.monotonic() if len(self._pending) == 1 else last_progress
                if exhausted and not self._pending and not self._retry:
                    break
                # A live source with a free credit must not wait 50 ms for answers while a new camera frame is
                # ready: poll briefly and go back to the reader.
                credit_free = self.target.in_flight < self.target.info.credits
                events = self.target.poll(0.005 if reader is not None and credit_free and not exhausted else 0.05)
                for event in events:
                    self._handle(event)
                if events or not self._pending:
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > self.answer_timeout:
                    raise UserError(f"{self.target.name} target answered nothing for {self.answer_timeout:g} s with "
                                    f"{len(self._pending)} frame(s) in flight; is the board still running? "
                                    "(raise --timeout for very slow models)")
                if not self._refresh(reader, start):
                    exhausted = True  # window closed or q pressed: send nothing more, collect what is in flight
            if self._stop_requested:
                summary.interrupted = True
                for event in self.target.poll(0.0):  # answers already here are kept, not thrown away
                    self._handle(event)
                self._abandon("interrupted by the user (Ctrl-C)")
        except KeyboardInterrupt:  # a second Ctrl-C, or a session run off the main thread
            summary.interrupted = True
            self._abandon("interrupted by the user (Ctrl-C)")
        except UserError as exc:
            summary.error = str(exc)
            self._abandon(f"stream stopped: {exc}")
            raise
        finally:
            restore_sigint()
            if reader is not None:
                reader.stop()
                summary.dropped = reader.dropped
                summary.read = reader.read
            self._abandon("stream ended before the answer arrived")
            self._wrap_up(start)
        if summary.interrupted:
            raise KeyboardInterrupt
        return summary

    def _run_listen(self) -> Summary:
        """Listen mode: record what a camera-mode board sends, until ``listen_limit`` answers or Ctrl-C."""
        summary = self.summary
        start = last_progress = time.monotonic()
        restore_sigint = self._defer_sigint()
        try:
            while not self._stop_requested and (self.listen_limit is None or summary.answered < self.listen_limit):
                events = self.target.poll(0.05)
                for event in events:
                    if isinstance(event, Result):
                        index = event.seq - 1
                        name = f"board#{event.device_seq}" if event.device_seq is not None else f"board#{index}"
                        self._pending[event.seq] = _Pending(Frame(index, None, name), time.monotonic(), None)
                    self._handle(event)
                if events:
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > self.answer_timeout:
                    raise UserError(f"{self.target.name} sent no result for {self.answer_timeout:g} s; listening needs "
                                    "camera-mode firmware (e.g. the ESP32-CAM build), or stream a SOURCE to it")
                self._refresh(None, start)
            summary.interrupted = self._stop_requested
        except KeyboardInterrupt:
            summary.interrupted = True
        except UserError as exc:
            summary.error = str(exc)
            raise
        finally:
            restore_sigint()
            self._wrap_up(start)
        if summary.interrupted:
            raise KeyboardInterrupt
        return summary

    def _wrap_up(self, start: float) -> None:
        """End a run whatever happened: its duration, the summary record, then the target and the display."""
        self.summary.seconds = time.monotonic() - start
        self.log.write("summary", **self.summary.to_json())
        self.target.close()
        if self.display is not None:
            self.display.close()

    def _defer_sigint(self) -> Callable[[], None]:
        """Turn the first Ctrl-C into a stop request the loop honours between two records, so a record is never
        half-handled (answered but not logged); a second Ctrl-C interrupts at once. Main thread only."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_sigint(signum: int, frame: object) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True

        previous = signal.signal(signal.SIGINT, on_sigint)
        return lambda: signal.signal(signal.SIGINT, previous)

    def _next_frame(self, frames: Any, reader: LatestFrame | None, wait: float) -> Frame | None:
        if reader is not None:
            if reader.error is not None:
                raise UserError(f"reading {self.source.description} failed: {reader.error}")
            return reader.take(wait)
        try:
            frame = next(frames)
        except StopIteration:
            return None
        self.summary.read += 1
        return frame

    def _send(self, seq: int, frame: Frame, attempt: int) -> None:
        tensor = self.prepare(frame.image)
        self._pending[seq] = _Pending(frame, time.monotonic(), None, attempt)
        self.summary.sent += 1
        self.target.send(seq, tensor)
        if self._reference is not None:  # computed while the device works on the frame
            self._pending[seq].reference = self._reference.invoke(tensor)

    def _handle(self, event: Result | Lost | Notice) -> None:
        summary = self.summary
        if isinstance(event, Notice):
            summary.notices += 1
            if event.kind == "reconnected":
                summary.reconnects += 1
            self.log.write("notice", kind=event.kind, message=event.message, **event.data)
            return
        pending = self._pending.pop(event.seq, None)
        if pending is None:  # an answer for a frame already answered or recorded lost: never log it twice
            summary.unexpected += 1
            self.log.write("notice", kind="unexpected", message=f"{type(event).__name__.lower()} for seq {event.seq} "
                           "that is not in flight; ignored")
            return
        frame = pending.frame
        if isinstance(event, Lost):
            self._record_lost(event.seq, pending, event.reason)
            return
        output = np.asarray(event.output).reshape(-1)
        if output.size != len(self._labels):
            self._record_lost(event.seq, pending, f"answer has {output.size} values, the model has "
                              f"{len(self._labels)} classes")
            return
        pred = int(np.argmax(output))
        score = float(self._out_quant.dequantize(output)[pred])
        record: dict[str, Any] = {
            "seq": event.seq, "frame": frame.name, "index": frame.index, "pred": pred, "pred_label": self._labels[pred],
            "score": round(score, 6), "device_us": event.latency_us, "cycles": event.cycles,
            "output": output.tolist(),
        }
        if not self.listen:
            record["round_trip_ms"] = round((time.monotonic() - pending.sent_at) * 1e3, 3)
            summary.round_trip_ms.append(record["round_trip_ms"])
        if event.device_seq is not None:
            record["device_seq"] = event.device_seq
        if pending.attempt > 1:
            record["attempt"] = pending.attempt
        summary.answered += 1
        if event.latency_us is not None:
            summary.device_us.append(int(event.latency_us))
        if frame.label is not None:
            record.update(label=frame.label, correct=pred == frame.label)
            summary.labelled += 1
            summary.correct += int(pred == frame.label)
            if summary.confusion is not None:
                summary.confusion[frame.label, pred] += 1
        if pending.reference is not None:
            ref_pred = int(np.argmax(pending.reference))
            exact = bool(np.array_equal(pending.reference.astype(np.int32), output.astype(np.int32)))
            record.update(ref_pred=ref_pred, agree=ref_pred == pred, exact=exact)
            summary.compared += 1
            summary.agree_top1 += int(ref_pred == pred)
            summary.agree_exact += int(exact)
        self.log.write("result", **record)
        self._status.label, self._status.score = self._labels[pred], score
        if event.latency_us is not None:
            self._status.device_ms = event.latency_us / 1e3
        # listen mode has no image on the host: the window shows the answer on a blank canvas
        self._last_image = frame.image if frame.image is not None else np.zeros((240, 320), np.uint8)

    def _record_lost(self, seq: int, pending: _Pending, reason: str, final: bool = False) -> None:
        """Log a lost send attempt; queue the frame to be sent again if retries remain (never when ``final``)."""
        frame = pending.frame
        again = not final and pending.attempt <= self.retries
        self.summary.lost[reason] = self.summary.lost.get(reason, 0) + 1
        self.log.write("lost", seq=seq, frame=frame.name, index=frame.index, reason=reason,
                       attempt=pending.attempt, resend=again)
        if again:
            self.summary.resent += 1
            self._retry.append((frame, pending.attempt + 1))

    def _abandon(self, reason: str) -> None:
        """Record every frame still in flight as lost (the run is ending without their answers)."""
        for seq, pending in sorted(self._pending.items()):
            self._record_lost(seq, pending, reason, final=True)
        self._pending.clear()
        if self._retry:
            self.summary.resent -= len(self._retry)
            self.log.write("notice", kind="not-resent", message=f"{len(self._retry)} lost frame(s) were not sent "
                           f"again: {reason}", frames=[frame.name for frame, _ in self._retry])
            self._retry.clear()

    def _refresh(self, reader: LatestFrame | None, start: float) -> bool:
        """Update the display; False when the user asked to stop."""
        if self.display is None:
            return True
        s, st = self.summary, self._status
        elapsed = time.monotonic() - start
        st.fps = s.answered / elapsed if elapsed > 0 else 0.0
        st.sent, st.answered, st.lost = s.sent, s.answered, sum(s.lost.values())
        st.dropped = reader.dropped if reader is not None else 0
        st.accuracy, st.agreement = s.accuracy, s.agreement
        keep_going = self.display.show(self._last_image, st)
        self._last_image = None
        return keep_going


def _info_json(info: DeviceInfo) -> dict[str, Any]:
    return {"model_id": info.model_id, "input_shape": list(info.input_shape), "input_quant": info.input_quant.to_json(),
            "num_classes": info.num_classes, "output_quant": info.output_quant.to_json(), "engine": info.engine,
            "credits": info.credits, "build": info.build, "max_payload": info.max_payload}
