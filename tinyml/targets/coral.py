"""``--coral``: the bundle's Edge TPU model on a Coral USB Accelerator / PCIe / M.2 module, as a stream target.

The runtime (pycoral or LiteRT + libedgetpu, the interpreter runner, the load-cost timing) is
tinyml/edgetpu/runtime.py; this module only adds what the stream loop needs: the bundle's compiled model, refused
when stale, behind the Target API.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.bundle import Bundle
from models.errors import UserError
from tinyml.edgetpu.runtime import InterpreterRunner, open_runner, parse_device
from tinyml.targets.base import DeviceInfo, SynchronousTarget


def compiled_model(bundle: Bundle) -> Path:
    """The bundle's *_edgetpu.tflite, refused when it was compiled from an older int8 model."""
    path = bundle.verified_artifact("edgetpu")
    source = bundle.meta["artifacts"]["edgetpu"].get("source_sha256")
    if source and source != bundle.model_id:
        raise UserError(
            f"{path.name} was compiled from an older {bundle.artifact_path('tflite').name}; "
            f"run: python -m tools edgetpu {bundle.path}"
        )
    return path


class CoralTarget(SynchronousTarget):
    """The Edge TPU as a host/stream.py target: one frame at a time, latency measured on the host.

    ``model_id`` is the sha256 of the int8 model the Edge TPU model was compiled from, so the usual
    check_compatible refuses a stale compilation exactly as it refuses stale firmware.
    """

    name = "coral"

    def __init__(self, bundle: Bundle, device: str | None = None, runtime: str = "auto"):
        super().__init__()
        self.bundle = bundle
        self.device = parse_device(device)
        self.runtime = runtime
        self.runner: InterpreterRunner | None = None

    def open_runner(self) -> InterpreterRunner:
        """Open the compiled model on the Edge TPU (the one step that needs Coral hardware and its runtime)."""
        return open_runner(compiled_model(self.bundle), self.device, self.runtime)

    def open_device(self) -> DeviceInfo:
        self.runner = self.open_runner()
        cost = self.runner.load_cost
        assert cost is not None
        return self.runner.device_info(
            self.bundle.model_id,
            "edgetpu",
            f"{self.runner.runtime} device={self.device or 'first'} "
            f"load={cost.load_ms:.0f}ms first-inference={cost.first_invoke_ms:.1f}ms",
        )

    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, int | None]:
        if self.runner is None:
            raise RuntimeError("coral target used before open()")
        return self.runner.invoke(tensor), None

    def close(self) -> None:
        super().close()
        self.runner = None
