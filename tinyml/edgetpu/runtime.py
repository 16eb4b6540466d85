"""The Edge TPU runtime: opening a compiled model on libedgetpu, and running any tflite-API interpreter.

Two runtimes, both driving Google's libedgetpu:

* Google's ``pycoral`` (``pycoral.utils.edgetpu.make_interpreter``) when it is importable. Google's wheels stop at
  Python 3.9; community builds cover newer Pythons (docs/coral.md). The PyPI package named ``pycoral`` is an
  unrelated project: it has no ``pycoral.utils.edgetpu`` and is ignored here.
* otherwise LiteRT (ai-edge-litert, a project dependency) with the libedgetpu delegate loaded by file name
  (``libedgetpu.so.1`` / ``libedgetpu.1.dylib`` / ``edgetpu.dll``), which is what maintainers recommend now.

Either way the interpreter has the tflite Interpreter API, so :class:`InterpreterRunner` runs both, and the very
same class runs the plain int8 model on the CPU (``cpu_interpreter``), which is how the shared pre/post-processing
is tested where no Edge TPU exists. Opening the model is timed apart from the first inference (which uploads the
parameters to the Edge TPU's on-chip cache) so neither pollutes the steady-state latency.

Users: the stream target (tinyml/targets/coral.py) and ``python -m tools classify``. The compiler side of the Edge
TPU (pre-check, edgetpu_compiler, its log) is the rest of this package.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.bundle import TensorQuant
from models.errors import UserError
from tinyml.targets.base import DeviceInfo

DELEGATE_LIBRARIES = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}

RUNTIME_INSTALL = {
    "Linux": "sudo apt-get install libedgetpu1-std after adding Coral's apt repository "
    "(deb https://packages.cloud.google.com/apt coral-edgetpu-stable main), or a community build of "
    "libedgetpu from github.com/feranick/libedgetpu/releases",
    "Darwin": "download Google's edgetpu_runtime_*.zip (coral.ai/software) and run its install.sh, "
    "or use a community build from github.com/feranick/libedgetpu/releases",
    "Windows": "download Google's edgetpu_runtime_*.zip (coral.ai/software) and run install.bat",
}

RUNTIMES = ("auto", "pycoral", "litert")
_DEVICE = re.compile(r"^(:\d+|usb|usb:\d+|pci|pci:\d+)$")


def delegate_library(system: str | None = None) -> str:
    """The libedgetpu file name the delegate loader looks for on this (or the given) OS."""
    system = system or platform.system()
    try:
        return DELEGATE_LIBRARIES[system]
    except KeyError:
        raise UserError(f"the Edge TPU runtime has no build for {system}; use Linux, macOS or Windows") from None


def install_hint(system: str | None = None) -> str:
    system = system or platform.system()
    return RUNTIME_INSTALL.get(system, RUNTIME_INSTALL["Linux"]) + "; see docs/coral.md"


def parse_device(spec: str | None) -> str | None:
    """Validate an Edge TPU device selector: None (first found), ':N', 'usb', 'usb:N', 'pci', 'pci:N'.

    ':usb:0' (a common spelling) is accepted as 'usb:0'. Returns the string libedgetpu expects.
    """
    if spec is None or spec == "":
        return None
    text = spec.strip().lower()
    if text.startswith(":") and text[1:4] in ("usb", "pci"):
        text = text[1:]
    if not _DEVICE.match(text):
        raise UserError(
            f"device {spec!r} is not an Edge TPU selector; use :0 (first Edge TPU), usb, usb:0, pci or pci:0"
        )
    return text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _pycoral_make_interpreter() -> Any | None:
    """Google's pycoral make_interpreter, or None when pycoral (the real one) is not installed."""
    try:
        from pycoral.utils.edgetpu import make_interpreter
    except ImportError:
        return None
    return make_interpreter


def edgetpu_interpreter(
    model_path: str | os.PathLike, device: str | None = None, runtime: str = "auto", system: str | None = None
) -> tuple[Any, str]:
    """Open an Edge TPU model; return (interpreter, runtime description). Failures name the install steps."""
    if runtime not in RUNTIMES:
        raise UserError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    path = Path(model_path)
    if not path.exists():
        raise UserError(f"{path} does not exist; compile it with: python -m tools edgetpu BUNDLE")
    device = parse_device(device)
    if runtime in ("auto", "pycoral"):
        make_interpreter = _pycoral_make_interpreter()
        if make_interpreter is not None:
            try:
                return make_interpreter(str(path), device=device), "pycoral"
            except (ValueError, RuntimeError) as exc:
                raise UserError(
                    f"pycoral cannot open the Edge TPU{f' {device}' if device else ''} "
                    f"({_first_line(exc)}); plug in the Coral and check `lsusb` shows it; "
                    f"{install_hint(system)}"
                ) from None
        if runtime == "pycoral":
            raise UserError(
                "Google's pycoral is not importable (the PyPI package named pycoral is a different "
                "project); use --runtime litert or install pycoral as docs/coral.md says"
            )
    from ai_edge_litert.interpreter import Interpreter, load_delegate

    library = delegate_library(system)
    try:
        # Probe with ctypes first: when the library is missing, LiteRT's Delegate half-constructs and prints an
        # "Exception ignored in __del__" traceback at exit, which users must not see for a missing install.
        ctypes.CDLL(library)
    except OSError as exc:
        raise UserError(
            f"cannot load the Edge TPU delegate {library} ({_first_line(exc)}); "
            f"install the Edge TPU runtime: {install_hint(system)}"
        ) from None
    try:
        delegate = load_delegate(library, {"device": device} if device else {})
    except (ValueError, RuntimeError) as exc:
        raise UserError(
            f"{library} loaded but found no Edge TPU{f' at {device}' if device else ''} "
            f"({_first_line(exc)}); plug the Coral in (USB 3 port), check that `lsusb` lists "
            "1a6e:089a or 18d1:9302, and on Linux that your user is in the plugdev group"
        ) from None
    try:
        interpreter = Interpreter(model_path=str(path), experimental_delegates=[delegate])
    except (ValueError, RuntimeError) as exc:
        raise UserError(
            f"LiteRT cannot run {path.name} on the Edge TPU ({_first_line(exc)}); "
            "recompile it with python -m tools edgetpu BUNDLE"
        ) from None
    return interpreter, f"litert+{library}"


def cpu_interpreter(model_path: str | os.PathLike) -> tuple[Any, str]:
    """The plain int8 model on the CPU oracle (LiteRT BUILTIN_REF, models.reference), the answer ``stream.py
    --cpu`` and a bit-exact board give; LiteRT's default XNNPACK path is not bit-identical and is never used."""
    from models import reference

    path = Path(model_path)
    if not path.exists():
        raise UserError(f"{path} does not exist; create it with: python -m tools quantize BUNDLE")
    return reference.reference_interpreter(path), reference.RUNTIME


@dataclass(frozen=True)
class LoadCost:
    """What opening a model costs, kept apart from steady-state latency."""

    load_ms: float  # interpreter + delegate + allocate_tensors
    first_invoke_ms: float  # first inference: on an Edge TPU this uploads the cached parameters


class InterpreterRunner:
    """One input, one output, batch 1, on any interpreter with the tflite Interpreter API."""

    def __init__(self, interpreter: Any, runtime: str):
        self.runtime = runtime
        self._interp = interpreter
        start = time.perf_counter()
        try:
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"{runtime} cannot prepare the model ({_first_line(exc)})") from None
        self._allocate_ms = (time.perf_counter() - start) * 1e3
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserError(f"the model has {len(inputs)} inputs and {len(outputs)} outputs; a classifier has 1 and 1")
        self.input_detail, self.output_detail = inputs[0], outputs[0]
        self.load_cost: LoadCost | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input_detail["shape"])

    @property
    def input_quant(self) -> TensorQuant:
        return TensorQuant.from_litert_detail(self.input_detail)

    @property
    def output_quant(self) -> TensorQuant:
        return TensorQuant.from_litert_detail(self.output_detail)

    @property
    def num_classes(self) -> int:
        return int(np.prod(self.output_detail["shape"]))

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one input (HxWxC or 1xHxWxC in the model's input dtype); return the flat raw output."""
        data = np.asarray(tensor)
        want = np.dtype(self.input_detail["dtype"])
        if data.dtype != want:
            raise UserError(f"input dtype {data.dtype} does not match the model's {want}; quantize the frame first")
        if data.size != int(np.prod(self.input_shape)):
            raise UserError(f"input has {data.size} values, the model takes {'x'.join(map(str, self.input_shape))}")
        self._interp.set_tensor(self.input_detail["index"], data.reshape(self.input_shape))
        self._interp.invoke()
        return self._interp.get_tensor(self.output_detail["index"]).reshape(-1).copy()

    def device_info(self, model_id: str, engine: str, build: str = "") -> DeviceInfo:
        """What this runner runs, for tinyml.targets.base.check_compatible (the one bundle compatibility check)."""
        shape = self.input_shape
        return DeviceInfo(
            model_id=model_id,
            input_shape=(int(shape[1]), int(shape[2]), int(shape[3])),
            input_quant=self.input_quant,
            num_classes=self.num_classes,
            output_quant=self.output_quant,
            engine=engine,
            credits=1,
            build=build,
        )

    def warm_up(self, open_ms: float) -> LoadCost:
        """Time the first inference on an all-zero-point input and record the load cost."""
        zero = np.full(self.input_shape, self.input_quant.zero_point, dtype=np.dtype(self.input_detail["dtype"]))
        start = time.perf_counter()
        self.invoke(zero)
        self.load_cost = LoadCost(open_ms + self._allocate_ms, (time.perf_counter() - start) * 1e3)
        return self.load_cost


def open_runner(
    model_path: str | os.PathLike, device: str | None = None, runtime: str = "auto", cpu: bool = False
) -> InterpreterRunner:
    """Open a model (Edge TPU, or CPU when ``cpu``), allocate it and run the timed warm-up inference."""
    start = time.perf_counter()
    interpreter, name = cpu_interpreter(model_path) if cpu else edgetpu_interpreter(model_path, device, runtime)
    open_ms = (time.perf_counter() - start) * 1e3
    runner = InterpreterRunner(interpreter, name)
    runner.warm_up(open_ms)
    return runner
