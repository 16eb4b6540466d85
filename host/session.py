"""The stream loop: source -> prepare_frame -> target (credit-based) -> result -> log, display, statistics.

Flow control: the loop keeps exactly ``credits`` frames in flight (never more), so the link transfers frame n+1
while the device computes frame n. An exhaustive source (dataset, folder, video file) waits for a credit and sends
every frame; a live source is read on its own thread (sources.LatestFrame) and the loop takes the newest frame when
a credit frees, so frames the link cannot carry are dropped at the source and counted, never queued.

Accounting: every frame sent gets exactly one ``result`` or ``lost`` record in the log, including frames still in
flight when the run ends (Ctrl-C, a port that never came back): those are recorded as lost with the reason before
the summary is written. In labelled mode each frame is also run through the CPU reference while the device works:
the tflite-micro runtime for a board whose HELLO names the TFLM engine, LiteRT BUILTIN_REF for every other
(models.reference.reference_for: the two round FULLY_CONNECTED differently), and the summary reports accuracy, the
confusion matrix and frame-by-frame agreement with that reference.
"""

from __future__ import annotations

import collections
import signal
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from host.live_view import Display, LiveView
from host.results_log import ResultsLog
from host.signals import StopRequest
from host.sources import Frame, LatestFrame, Source
from host.summary import Summary
from models.bundle import Bundle
from models.errors import UserError
from models.preprocess import prepare_frame
from models.reference import MicroModel, ReferenceModel, reference_for
from models.scoring import RunningScore
from tinyml.targets.base import DeviceInfo, Event, Lost, Notice, Result, Target, check_compatible


@dataclass
class _Pending:
    frame: Frame
    sent_at: float
    reference: np.ndarray | None
    attempt: int = 1


class StreamSession:
    """Runs one stream from ``source`` to ``target``; see the module docstring for the guarantees."""

    def __init__(
        self,
        bundle: Bundle,
        source: Source | None,
        target: Target,
        log: ResultsLog | None = None,
        display: Display | None = None,
        compare_cpu: bool | None = None,
        answer_timeout: float = 30.0,
        retries: int = 2,
    ):
        self.bundle = bundle
        # A frame of an exhaustive source lost to a link fault is sent again (as a new seq) up to ``retries``
        # times, so on-device accuracy covers every frame; live frames are never re-sent (they are stale).
        self.retries = 0 if source is None or source.live else retries
        self._retry: collections.deque[tuple[Frame, int]] = collections.deque()
        self.source = source
        self.target = target
        self.log = log or ResultsLog(None)
        self.view = LiveView(display)
        self.answer_timeout = answer_timeout
        # source None = listen mode: the board captures frames itself (camera-mode firmware); the host sends
        # nothing and records every RESULT the board sends, until --limit answers or Ctrl-C.
        self.listen = source is None
        self.listen_limit: int | None = None
        # The reference runs in labelled mode (or on request) unless the target *is* the reference.
        wanted = (source is not None and source.labelled) if compare_cpu is None else compare_cpu
        self.compare_cpu = bool(wanted) and target.name != "cpu" and not self.listen
        self._out_quant = bundle.output_quant
        self._labels = bundle.labels
        self._reference: ReferenceModel | MicroModel | None = None
        self.summary = Summary(
            self._labels, target.name, "", "the board's camera" if source is None else source.description
        )
        self._pending: dict[int, _Pending] = {}  # the frames in flight: sent, neither answered nor lost yet
        self._stop = StopRequest()
        self.started = False  # the target answered the handshake and matches the bundle

    # ---- the loop -----------------------------------------------------------------------------------
    def run(self) -> Summary:
        """Connect, then send / poll / handle / show until the source ends, the user stops or the link dies.

        The start record and the summary record come as a pair: from the moment the target has answered, a stop
        signal is a request (host/signals.py) that holds until the summary is written, so a signal that lands as
        the run ends (or as it begins) cannot leave a log with a start and no summary.
        """
        with self._stop:
            self._connect()
            start = time.monotonic()
            reader: LatestFrame | None = None
            try:
                self._log_start()
                if self.listen:
                    self._listen_loop(start)
                else:
                    assert self.source is not None
                    reader = LatestFrame(self.source) if self.source.live else None
                    self._stream_loop(iter(self.source) if reader is None else None, reader, start)
            except KeyboardInterrupt:  # a second signal, or a session run off the main thread
                self._stop.signum = self._stop.signum or signal.SIGINT
            except UserError as exc:
                self.summary.error = str(exc)
                self._abandon(f"stream stopped: {exc}")
                raise
            finally:
                if reader is not None:
                    reader.stop()
                    self.summary.dropped, self.summary.read = reader.dropped, reader.read
                self._abandon(self._stop.reason or "stream ended before the answer arrived")
                self._wrap_up(start)
        return self.summary

    def _stream_loop(self, frames: Any, reader: LatestFrame | None, start: float) -> None:
        """Keep the target's credits busy and handle what comes back until the source is done or a stop comes."""
        last_progress = time.monotonic()
        exhausted = False
        while not self._stop.requested:
            exhausted = self._fill_credits(frames, reader, exhausted)
            if exhausted and not self._pending and not self._retry:
                return
            events = self.target.poll(self._poll_wait(reader, exhausted))
            for event in events:
                self._handle(event)
            if events or not self._pending:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > self.answer_timeout:
                raise UserError(
                    f"{self.target.name} target answered nothing for {self.answer_timeout:g} s "
                    f"with {len(self._pending)} frame(s) in flight; is the board still running? "
                    "(raise --timeout for very slow models)"
                )
            if not self.view.refresh(self.summary, reader.dropped if reader else 0, time.monotonic() - start):
                exhausted = True  # window closed or q pressed: send nothing more, collect what is in flight
        for event in self.target.poll(0.0):  # stopped: answers already here are kept, not thrown away
            self._handle(event)

    def _connect(self) -> None:
        """Open the target and refuse one that runs another model; a signal meanwhile stops at once.

        The handshake can take seconds (a board booting), so until it is done a Ctrl-C raises as usual; from its
        end on, signals are stop requests (see :meth:`run`).
        """
        try:
            info = self.target.open()
            check_compatible(self.bundle, info, where=f"{self.target.name} target")
            if self.compare_cpu:
                self._reference, self.summary.reference = reference_for(
                    info.engine, self.bundle.verified_artifact("tflite")
                )
            self._stop.defer()
        except BaseException:
            self.target.close()
            raise
        self.started = True
        self.summary.engine = info.engine
        if self.source is not None and self.source.labelled or self.compare_cpu:
            self.summary.score = RunningScore(len(self._labels))

    def _log_start(self) -> None:
        """The log's first record: what runs where, as the handshake described it."""
        info = self.target.info
        self.log.write(
            "start",
            bundle=str(self.bundle.path),
            model_id=self.bundle.model_id,
            target=self.target.name,
            device=_info_json(info),
            source=self.summary.source,
            compare_cpu=self.compare_cpu,
        )

    def _fill_credits(self, frames: Any, reader: LatestFrame | None, exhausted: bool) -> bool:
        """Send frames (lost ones again first) while the target has a free credit; True once the source is done."""
        while (self._retry or not exhausted) and len(self._pending) < self.target.info.credits:
            attempt = 1
            frame: Frame | None
            if self._retry:
                frame, attempt = self._retry.popleft()
            else:
                frame = self._next_frame(frames, reader, wait=0.0 if self._pending else 0.05)
                if frame is None:
                    return reader.exhausted if reader is not None else True
            self._send(self.summary.sent + 1, frame, attempt)
        return exhausted

    def _poll_wait(self, reader: LatestFrame | None, exhausted: bool) -> float:
        """A live source with a free credit must not wait 50 ms for answers while a new camera frame is ready."""
        credit_free = len(self._pending) < self.target.info.credits
        return 0.005 if reader is not None and credit_free and not exhausted else 0.05

    def _listen_loop(self, start: float) -> None:
        """Listen mode: record what a camera-mode board sends, until ``listen_limit`` answers or Ctrl-C."""
        summary = self.summary
        last_progress = time.monotonic()
        while not self._stop.requested and (self.listen_limit is None or summary.answered < self.listen_limit):
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
                raise UserError(
                    f"{self.target.name} sent no result for {self.answer_timeout:g} s; listening "
                    "needs camera-mode firmware (e.g. the ESP32-CAM build), or stream a SOURCE "
                    "to it"
                )
            self.view.refresh(summary, 0, time.monotonic() - start)

    def _wrap_up(self, start: float) -> None:
        """End a run whatever happened: its duration, the summary record, then the target and the display.

        Runs while stop signals are still requests, so the summary is always written. A run stopped by a signal
        raises it on (KeyboardInterrupt, or Terminated for SIGTERM) once everything is recorded, so the process
        exits 130 or 143 after the summary.
        """
        self.summary.seconds = time.monotonic() - start
        self.summary.interrupted = self._stop.requested
        if self._stop.requested and self.summary.error is None and self._stop.signum != signal.SIGINT:
            self.summary.error = self._stop.reason
        self.log.write("summary", **self.summary.to_json())
        self.target.close()
        self.view.close()
        if self._stop.requested and self.summary.error in (None, self._stop.reason):
            raise self._stop.interrupt()

    def _next_frame(self, frames: Any, reader: LatestFrame | None, wait: float) -> Frame | None:
        if reader is not None:
            if reader.error is not None:
                raise UserError(f"reading {self.summary.source} failed: {reader.error}")
            return reader.take(wait)
        try:
            frame = next(frames)
        except StopIteration:
            return None
        self.summary.read += 1
        return frame

    def _send(self, seq: int, frame: Frame, attempt: int) -> None:
        assert frame.image is not None, "only listen mode has frames without an image, and it sends none"
        tensor = prepare_frame(frame.image, self.bundle)
        self._pending[seq] = _Pending(frame, time.monotonic(), None, attempt)
        self.summary.sent += 1
        self.target.send(seq, tensor)
        if self._reference is not None:  # computed while the device works on the frame
            self._pending[seq].reference = self._reference.invoke(tensor)

    # ---- events -------------------------------------------------------------------------------------
    def _handle(self, event: Event) -> None:
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
            self.log.write(
                "notice",
                kind="unexpected",
                message=f"{type(event).__name__.lower()} for seq {event.seq} that is not in flight; ignored",
            )
            return
        if isinstance(event, Lost):
            self._record_lost(event.seq, pending, event.reason)
            return
        output = np.asarray(event.output).reshape(-1)
        if output.size != len(self._labels):
            self._record_lost(
                event.seq, pending, f"answer has {output.size} values, the model has {len(self._labels)} classes"
            )
            return
        self._record_result(event, pending, output)

    def _record_result(self, event: Result, pending: _Pending, output: np.ndarray) -> None:
        """Score one answer and log it as the frame's ``result`` record."""
        summary, frame = self.summary, pending.frame
        pred = int(np.argmax(output))
        score = float(self._out_quant.dequantize(output)[pred])
        record: dict[str, Any] = {
            "seq": event.seq,
            "frame": frame.name,
            "index": frame.index,
            "pred": pred,
            "pred_label": self._labels[pred],
            "score": round(score, 6),
            "device_us": event.latency_us,
            "cycles": event.cycles,
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
        if frame.label is not None and summary.score is not None:
            record.update(label=frame.label, correct=summary.score.add_label(pred, frame.label))
        if pending.reference is not None and summary.score is not None:
            ref_pred, agree, exact = summary.score.add_reference(output, pending.reference)
            record.update(ref_pred=ref_pred, agree=agree, exact=exact)
        self.log.write("result", **record)
        self.view.answered(self._labels[pred], score, event.latency_us, frame.image)

    def _record_lost(self, seq: int, pending: _Pending, reason: str, final: bool = False) -> None:
        """Log a lost send attempt; queue the frame to be sent again if retries remain (never when ``final``)."""
        frame = pending.frame
        again = not final and pending.attempt <= self.retries
        self.summary.lost[reason] = self.summary.lost.get(reason, 0) + 1
        self.log.write(
            "lost", seq=seq, frame=frame.name, index=frame.index, reason=reason, attempt=pending.attempt, resend=again
        )
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
            self.log.write(
                "notice",
                kind="not-resent",
                message=f"{len(self._retry)} lost frame(s) were not sent again: {reason}",
                frames=[frame.name for frame, _ in self._retry],
            )
            self._retry.clear()


def _info_json(info: DeviceInfo) -> dict[str, Any]:
    return {
        "model_id": info.model_id,
        "input_shape": list(info.input_shape),
        "input_quant": info.input_quant.to_json(),
        "num_classes": info.num_classes,
        "output_quant": info.output_quant.to_json(),
        "engine": info.engine,
        "credits": info.credits,
        "build": info.build,
        "max_payload": info.max_payload,
    }
