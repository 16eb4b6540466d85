"""The target interface: what host/stream.py needs from anything that runs the model.

A target is a serial board (``--port``, ``--board qemu|native``), the in-process CPU reference (``--cpu``) or a
Coral Edge TPU (``--coral``). The stream loop never knows which one it drives: it opens the target, checks the
:class:`DeviceInfo` against the bundle, sends frames while fewer than ``credits`` are unanswered (the loop counts
them: every frame sent yields exactly one Result or Lost) and polls for events.

Events are :class:`Result` (an answer), :class:`Lost` (a frame that will never be answered, with the reason, so
every frame sent is accounted for) and :class:`Notice` (a link event such as a reconnect, logged but not a frame).

In-process targets that answer synchronously (CPU, Coral) subclass :class:`SynchronousTarget` and implement only
``open_device`` and ``infer``.
"""

from __future__ import annotations

import abc
import collections
import time
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from models.bundle import Bundle, TensorQuant
from models.errors import UserError
from tinyml.protocol import Hello


@dataclass(frozen=True)
class DeviceInfo:
    """What a target announces about the model it runs (a board's HELLO, or the CPU/Coral equivalent)."""

    model_id: str  # hex sha256 of the int8 .tflite the target runs (bundle.model_id)
    input_shape: tuple[int, int, int]  # (height, width, channels)
    input_quant: TensorQuant
    num_classes: int
    output_quant: TensorQuant
    engine: str  # "engine", "tflm", "litert-ref", "edgetpu", ...
    credits: int  # frames the target can hold at once (flow-control window)
    build: str = ""  # firmware build string or runtime version
    max_payload: int = 0  # largest payload the target accepts (0: unknown / unlimited)

    @classmethod
    def from_hello(cls, hello: Hello) -> "DeviceInfo":
        """What a board's HELLO announces, in the terms the stream loop checks (the codec knows no targets)."""
        return cls(
            model_id=hello.model_id.hex(),
            input_shape=hello.input_shape,
            input_quant=TensorQuant(hello.in_dtype, float(hello.in_scale), int(hello.in_zero_point)),
            num_classes=hello.num_classes,
            output_quant=TensorQuant(hello.out_dtype, float(hello.out_scale), int(hello.out_zero_point)),
            engine=hello.engine,
            credits=hello.credits,
            build=hello.build,
            max_payload=hello.max_payload,
        )


@dataclass(frozen=True)
class Result:
    """One answer: the raw quantised output tensor for frame ``seq``."""

    seq: int
    output: np.ndarray  # flat, dtype of the model output (int8/uint8)
    latency_us: int | None  # inference time measured by the target itself (None: not measured)
    cycles: int = 0  # instruction/cycle count if the target reports one, else 0
    device_seq: int | None = None  # listen mode: the board's own seq of a frame it captured itself


@dataclass(frozen=True)
class Lost:
    """Frame ``seq`` will never be answered (link lost, device reset, device ERROR, timeout)."""

    seq: int
    reason: str


@dataclass(frozen=True)
class Notice:
    """A link event that is not about one frame (reconnected, device reset, resync after corrupt bytes)."""

    kind: str
    message: str
    data: dict = field(default_factory=dict)


Event = Union[Result, Lost, Notice]


def _quant_text(q: TensorQuant) -> str:
    return f"{q.dtype} scale={q.scale:.6g} zero_point={q.zero_point}"


FLASH_FIX = "flash firmware built from this bundle (python -m tools export BUNDLE --install, then upload)"


def check_compatible(bundle: Bundle, info: DeviceInfo, where: str = "the target", fix: str = FLASH_FIX) -> None:
    """Refuse a target whose model differs from the bundle; the message holds both values and the fix.

    The one compatibility check for boards, the CPU reference, the Coral and ``tools classify``. The common real
    failure on a board is old firmware still flashed on it, so the default fix names the build step; a model file
    on this machine names the step that rebuilds it.
    """
    if info.model_id.lower() != bundle.model_id.lower():
        raise UserError(
            f"{where} runs model {info.model_id[:16]}… but bundle {bundle.path} is {bundle.model_id[:16]}…; {fix}"
        )
    if tuple(info.input_shape) != tuple(bundle.input_shape):
        raise UserError(
            f"{where} expects input {'x'.join(map(str, info.input_shape))} but bundle {bundle.path} has "
            f"{'x'.join(map(str, bundle.input_shape))}; {fix}"
        )
    for which, theirs, ours in (
        ("input", info.input_quant, bundle.input_quant),
        ("output", info.output_quant, bundle.output_quant),
    ):
        same = (
            theirs.dtype == ours.dtype
            and theirs.zero_point == ours.zero_point
            and np.isclose(theirs.scale, ours.scale, rtol=1e-6, atol=0.0)
        )
        if not same:
            raise UserError(
                f"{where} {which} quantisation is {_quant_text(theirs)} but bundle {bundle.path} has "
                f"{_quant_text(ours)}; {fix}"
            )
    if info.num_classes != len(bundle.labels):
        raise UserError(
            f"{where} has {info.num_classes} classes but bundle {bundle.path} has {len(bundle.labels)} classes; {fix}"
        )


class Target(abc.ABC):
    """Something that runs the bundle's model on frames (see module docstring).

    Contract for the stream loop:
    - ``open()`` once; it returns the DeviceInfo, which the caller checks with :func:`check_compatible`.
    - ``send(seq, tensor)`` only while fewer than ``info.credits`` frames await their Result or Lost; ``tensor``
      is the device input tensor
      (models.preprocess.prepare_frame output, HxWxC in the model's input dtype). ``seq`` increases.
    - ``poll(timeout)`` returns the events that arrived (possibly none) within ``timeout`` seconds; every sent
      frame eventually yields exactly one Result or Lost.
    - ``close()`` releases the device; targets are context managers.
    """

    name: str = "target"

    @abc.abstractmethod
    def open(self) -> DeviceInfo:
        """Connect, handshake and return what the target runs."""

    @property
    @abc.abstractmethod
    def info(self) -> DeviceInfo:
        """The DeviceInfo of the current connection (may change after a reconnect)."""

    @abc.abstractmethod
    def send(self, seq: int, tensor: np.ndarray) -> None:
        """Send one input tensor as frame ``seq`` (never blocks for the answer)."""

    @abc.abstractmethod
    def poll(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` seconds for events; return those that arrived."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SynchronousTarget(Target):
    """Base for in-process targets that compute an answer on ``send`` (CPU reference, Coral).

    Subclasses implement :meth:`open_device` and :meth:`infer`; answers are queued and handed out by ``poll``,
    so the stream loop treats them exactly like a board with one credit.
    """

    def __init__(self) -> None:
        self._info: DeviceInfo | None = None
        self._answers: collections.deque[Event] = collections.deque()

    @abc.abstractmethod
    def open_device(self) -> DeviceInfo:
        """Load the model and describe it."""

    @abc.abstractmethod
    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, int | None]:
        """Run one input tensor; return (flat raw output tensor, inference time in us or None)."""

    def open(self) -> DeviceInfo:
        self._info = self.open_device()
        return self._info

    @property
    def info(self) -> DeviceInfo:
        if self._info is None:
            raise RuntimeError(f"{self.name} target used before open()")
        return self._info

    def send(self, seq: int, tensor: np.ndarray) -> None:
        start = time.perf_counter()
        output, latency_us = self.infer(tensor)
        if latency_us is None:
            latency_us = int((time.perf_counter() - start) * 1e6)
        self._answers.append(Result(seq, np.asarray(output).reshape(-1), latency_us))

    def poll(self, timeout: float) -> list[Event]:
        events = list(self._answers)
        self._answers.clear()
        return events

    def close(self) -> None:
        self._answers.clear()
