"""``--cpu``: the bundle's int8 model under LiteRT BUILTIN_REF in this process: the reference answer.

It is the answer the project's engine gives byte for byte, so an engine board that disagrees with this target on
any frame computes something other than what the host evaluated. TFLite-Micro rounds FULLY_CONNECTED differently
on a few images in 10,000 (models/reference.py); a TFLM board's stream is checked against the tflite-micro runtime. The DeviceInfo is read from
the .tflite actually loaded (its sha256 and tensor details), not copied from model.json, so the same
compatibility check as for a board applies.
"""

from __future__ import annotations

import numpy as np

from models.bundle import Bundle, TensorQuant, sha256_file
from models.reference import ReferenceModel
from tinyml.targets.base import DeviceInfo, SynchronousTarget


class CpuTarget(SynchronousTarget):
    """In-process LiteRT reference interpreter; one frame at a time, latency measured on the host."""

    name = "cpu"

    def __init__(self, bundle: Bundle):
        super().__init__()
        self.bundle = bundle
        self._model: ReferenceModel | None = None

    def open_device(self) -> DeviceInfo:
        path = self.bundle.verified_artifact("tflite")
        self._model = ReferenceModel(path)
        shape = self._model.input_shape
        out = self._model.output_detail
        import ai_edge_litert

        return DeviceInfo(
            model_id=sha256_file(path),
            input_shape=(int(shape[1]), int(shape[2]), int(shape[3])),
            input_quant=TensorQuant.from_litert_detail(self._model.input_detail),
            num_classes=int(np.prod(out["shape"])),
            output_quant=TensorQuant.from_litert_detail(out),
            engine="litert-builtin-ref",
            credits=1,
            build=f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}",
        )

    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, int | None]:
        assert self._model is not None, "open() first"
        return self._model.invoke(tensor), None
