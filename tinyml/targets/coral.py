"""``--coral``: the bundle's Edge TPU model as a host/stream.py target (the runtime is tinyml/edgetpu/runtime.py)."""
from __future__ import annotations

import numpy as np

from models.bundle import Bundle
from tinyml.edgetpu.runtime import InterpreterRunner, compiled_model, open_runner, parse_device
from tinyml.targets.base import DeviceInfo, SynchronousTarget


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
        shape = self.runner.input_shape
        cost = self.runner.load_cost
        assert cost is not None
        return DeviceInfo(
            model_id=self.bundle.model_id,
            input_shape=(int(shape[1]), int(shape[2]), int(shape[3])),
            input_quant=self.runner.input_quant,
            num_classes=self.runner.num_classes,
            output_quant=self.runner.output_quant,
            engine="edgetpu",
            credits=1,
            build=(f"{self.runner.runtime} device={self.device or 'first'} load={cost.load_ms:.0f}ms "
                   f"first-inference={cost.first_invoke_ms:.1f}ms"),
        )

    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, int | None]:
        if self.runner is None:
            raise RuntimeError("coral target used before open()")
        return self.runner.invoke(tensor), None

    def close(self) -> None:
        super().close()
        self.runner = None
