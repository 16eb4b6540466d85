"""The model bundle: one directory per trained model, written by train and extended by every later step.

Layout::

    BUNDLE/
      model.json             schema-versioned description (this module)
      model.keras            the float Keras model (train)
      model_int8.tflite      full-integer int8 model (quantize)
      model_int8_edgetpu.tflite   optional (edgetpu)
      labels.txt             one label per line
      export/ codegen/ ...   per-step outputs

Every tool takes a bundle path, and the host reads the same bundle to preprocess frames exactly as training
did. The model id used everywhere (HELLO, generated headers, host checks) is the sha256 of model_int8.tflite.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import UserError

SCHEMA_VERSION = 1
META_FILE = "model.json"

# Artifact kinds and their file names inside the bundle.
ARTIFACT_FILES = {
    "keras": "model.keras",
    "tflite": "model_int8.tflite",
    "edgetpu": "model_int8_edgetpu.tflite",
    "labels": "labels.txt",
}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed so large models do not load twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorQuant:
    """Quantisation of a model input or output tensor: real = scale * (q - zero_point)."""

    dtype: str  # "int8" or "uint8"
    scale: float
    zero_point: int

    def to_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TensorQuant":
        return cls(str(data["dtype"]), float(data["scale"]), int(data["zero_point"]))

    @classmethod
    def from_litert_detail(cls, detail: dict[str, Any]) -> "TensorQuant":
        """From a LiteRT interpreter's input/output tensor detail (per-tensor quantisation)."""
        import numpy as np

        scale, zero_point = detail["quantization"]
        return cls(np.dtype(detail["dtype"]).name, float(scale), int(zero_point))

    def dequantize(self, raw: Any) -> Any:
        """Raw int8/uint8 tensor -> float32 real values, flattened: scale * (q - zero_point)."""
        import numpy as np

        return (np.asarray(raw, np.float32).reshape(-1) - np.float32(self.zero_point)) * np.float32(self.scale)


class Bundle:
    """A model bundle directory and its model.json.

    Create one with :meth:`create` (train) or open one with :func:`load_bundle` (every later step).
    Mutate ``meta`` through :meth:`update` / :meth:`record_artifact`, then :meth:`save`.
    """

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = Path(path)
        self.meta = meta

    # ---- creation and loading -------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, meta: dict[str, Any]) -> "Bundle":
        """Start a new bundle at ``path`` (created if missing) with the given metadata."""
        bundle_dir = Path(path)
        bundle_dir.mkdir(parents=True, exist_ok=True)
        full = {"schema": SCHEMA_VERSION, **meta}
        full.setdefault("artifacts", {})
        full.setdefault("metrics", {})
        bundle = cls(bundle_dir, full)
        labels = full.get("labels")
        if labels:
            (bundle_dir / ARTIFACT_FILES["labels"]).write_text("\n".join(labels) + "\n")
            bundle.record_artifact("labels")
        bundle.save()
        return bundle

    def save(self) -> None:
        """Write model.json atomically (a killed process never leaves half a file)."""
        tmp = self.path / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(self.meta, indent=2, sort_keys=False) + "\n")
        os.replace(tmp, self.path / META_FILE)

    # ---- accessors ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.path.name))

    @property
    def architecture(self) -> str:
        return str(self.meta["architecture"])

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the model input."""
        inp = self.meta["input"]
        return int(inp["height"]), int(inp["width"]), int(inp["channels"])

    @property
    def input_quant(self) -> TensorQuant:
        return TensorQuant.from_json(self._quant("input"))

    @property
    def output_quant(self) -> TensorQuant:
        return TensorQuant.from_json(self._quant("output"))

    @property
    def model_id(self) -> str:
        """sha256 (hex) of the int8 .tflite: the id firmware reports in HELLO."""
        return self.artifact_sha256("tflite")

    def _quant(self, which: str) -> dict[str, Any]:
        quant = self.meta.get("quantization", {}).get(which)
        if quant is None:
            raise UserError(f"bundle {self.path} has no int8 model yet; run: python -m tools quantize {self.path}")
        return quant

    def artifact_path(self, kind: str, required: bool = True) -> Path:
        """Path of an artifact (see ARTIFACT_FILES); a missing required one is a UserError naming the step."""
        path = self.path / ARTIFACT_FILES[kind]
        if required and not path.exists():
            step = {"keras": "train", "tflite": "quantize", "edgetpu": "edgetpu", "labels": "train"}[kind]
            raise UserError(f"bundle {self.path} has no {path.name}; run: python -m tools {step} {self.path}")
        return path

    def artifact_sha256(self, kind: str) -> str:
        entry = self.meta.get("artifacts", {}).get(kind)
        if entry is None:
            return sha256_file(self.artifact_path(kind))
        return str(entry["sha256"])

    # ---- mutation -------------------------------------------------------------------------------
    def record_artifact(self, kind: str, **extra: Any) -> None:
        """Record an artifact's file name and sha256 in model.json (call save() afterwards)."""
        path = self.artifact_path(kind)
        self.meta.setdefault("artifacts", {})[kind] = {"file": path.name, "sha256": sha256_file(path), **extra}

    def update(self, section: str, data: dict[str, Any]) -> None:
        """Merge ``data`` into top-level ``section`` of model.json (call save() afterwards)."""
        current = self.meta.setdefault(section, {})
        current.update(data)

    def verify(self) -> None:
        """Check every recorded artifact still matches its recorded sha256."""
        for entry in self.meta.get("artifacts", {}).values():
            path = self.path / entry["file"]
            if not path.exists() or sha256_file(path) != entry["sha256"]:
                raise UserError(
                    f"{path} is missing or was changed after it was recorded; re-run the step that writes it"
                )


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Open a bundle directory; every failure is a one-line UserError naming the fix."""
    bundle_dir = Path(path)
    if not bundle_dir.exists():
        raise UserError(f"bundle {bundle_dir} does not exist; train one with: python -m tools train --out {bundle_dir}")
    if not bundle_dir.is_dir():
        raise UserError(f"{bundle_dir} is not a bundle directory; pass the folder that holds model.json")
    meta_path = bundle_dir / META_FILE
    if not meta_path.exists():
        raise UserError(f"{bundle_dir} has no {META_FILE}; it is not a model bundle (create one with python -m tools train)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{meta_path} is not valid JSON ({exc}); re-run python -m tools train") from None
    schema = meta.get("schema")
    if schema != SCHEMA_VERSION:
        raise UserError(f"{meta_path} has schema {schema!r}, this version reads schema {SCHEMA_VERSION}; re-train or upgrade")
    return Bundle(bundle_dir, meta)
