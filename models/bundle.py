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
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import UserError

SCHEMA_VERSION = 1
META_FILE = "model.json"

# Artifact kinds and their file names inside the bundle, and the step (with its arguments) that writes each.
ARTIFACT_FILES = {
    "keras": "model.keras",
    "tflite": "model_int8.tflite",
    "edgetpu": "model_int8_edgetpu.tflite",
    "labels": "labels.txt",
}
_WRITTEN_BY = {
    "keras": "train --out {path}",
    "tflite": "quantize {path}",
    "edgetpu": "edgetpu {path}",
    "labels": "train --out {path}",
}
_SHA256 = re.compile(r"[0-9a-f]{64}")
QUANT_DTYPES = {"int8": (-128, 127), "uint8": (0, 255)}


def fix_command(kind: str, path: Path) -> str:
    """The command that (re)writes artifact ``kind`` of the bundle at ``path``."""
    return "python -m tools " + _WRITTEN_BY[kind].format(path=path)


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
            raise UserError(f"bundle {self.path} has no {path.name}; run: {fix_command(kind, self.path)}")
        return path

    def verified_artifact(self, kind: str) -> Path:
        """Path of an artifact whose sha256 is the one model.json recorded: what every step that reads one uses.

        A file replaced or edited after its step ran (another model's .tflite copied in, a truncated download)
        would otherwise be compiled, flashed or evaluated under this bundle's name and model id.
        """
        path = self.artifact_path(kind)
        entry = self.meta.get("artifacts", {}).get(kind)
        if entry is None:
            raise UserError(
                f"{path} is not recorded in {self.path / META_FILE} (not written by the tools?); "
                f"run: {fix_command(kind, self.path)}"
            )
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise UserError(
                f"{path} was changed after it was recorded (sha256 {actual[:12]}… on disk, "
                f"{str(entry['sha256'])[:12]}… in model.json); re-run: {fix_command(kind, self.path)}, "
                "or put back the file that belongs to this bundle"
            )
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

    def write_artifact(self, kind: str, data: bytes, **extra: Any) -> Path:
        """Write an artifact atomically (a kill leaves the old file or the new one, never half of one) and record
        it (call save() afterwards). Until save(), the old model.json names the old hash, so a run killed in
        between is caught by :meth:`verified_artifact` and fixed by re-running the step."""
        path = self.artifact_path(kind, required=False)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self.record_artifact(kind, **extra)
        return path

    def update(self, section: str, data: dict[str, Any]) -> None:
        """Merge ``data`` into top-level ``section`` of model.json (call save() afterwards)."""
        current = self.meta.setdefault(section, {})
        current.update(data)

    def verify(self) -> None:
        """Check every recorded artifact still matches its recorded sha256."""
        for kind in self.meta.get("artifacts", {}):
            self.verified_artifact(kind)


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Open a bundle directory; every failure is a one-line UserError naming the fix."""
    bundle_dir = Path(path)
    if not bundle_dir.exists():
        raise UserError(f"bundle {bundle_dir} does not exist; train one with: python -m tools train --out {bundle_dir}")
    if not bundle_dir.is_dir():
        raise UserError(f"{bundle_dir} is not a bundle directory; pass the folder that holds model.json")
    meta_path = bundle_dir / META_FILE
    if not meta_path.exists():
        raise UserError(
            f"{bundle_dir} has no {META_FILE}; it is not a model bundle (create one with python -m tools train)"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{meta_path} is not valid JSON ({exc}); re-run python -m tools train") from None
    if not isinstance(meta, dict):
        raise UserError(
            f"{meta_path} holds a JSON {type(meta).__name__}, not a model description; "
            f"re-create the bundle with: python -m tools train --out {bundle_dir}"
        )
    schema = meta.get("schema")
    if schema != SCHEMA_VERSION:
        raise UserError(
            f"{meta_path} has schema {schema!r}, this version reads schema {SCHEMA_VERSION}; re-train or upgrade"
        )
    problem = _schema_problem(meta)
    if problem:
        raise UserError(
            f"{meta_path} is not a valid model description ({problem}); re-create the bundle with: "
            f"python -m tools train --out {bundle_dir}, or restore its model.json"
        )
    return Bundle(bundle_dir, meta)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _quant_problem(where: str, quant: Any) -> str | None:
    if not isinstance(quant, dict):
        return f"{where} is not an object"
    if quant.get("dtype") not in QUANT_DTYPES:
        return f"{where}.dtype must be one of {', '.join(QUANT_DTYPES)}"
    if not _is_number(quant.get("scale")) or not quant["scale"] > 0:
        return f"{where}.scale must be a positive number"
    low, high = QUANT_DTYPES[quant["dtype"]]
    if not _is_int(quant.get("zero_point")) or not low <= quant["zero_point"] <= high:
        return f"{where}.zero_point must be an integer in {low}..{high}"
    return None


def _schema_problem(meta: dict[str, Any]) -> str | None:
    """The first field of model.json (schema 1) that every step relies on and that is missing or of the wrong
    type; None when the description is sound. Sections a step adds later (metrics, codegen, ...) may be absent."""
    if not isinstance(meta.get("architecture"), str):
        return "architecture must be a string"
    if "name" in meta and not isinstance(meta["name"], str):
        return "name must be a string"
    if "width" in meta and (not _is_number(meta["width"]) or not meta["width"] > 0):
        return "width must be a positive number"
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(v, str) and v for v in labels):
        return "labels must be a non-empty list of class names"
    inp = meta.get("input")
    if not isinstance(inp, dict) or not all(_is_int(inp.get(k)) and inp[k] >= 1 for k in ("height", "width")):
        return "input must hold positive integers height and width"
    if inp.get("channels") not in (1, 3) or not _is_int(inp["channels"]):
        return "input.channels must be 1 or 3"
    pre = meta.get("preprocessing", {})
    if not isinstance(pre, dict):
        return "preprocessing is not an object"
    if "resize" in pre and not isinstance(pre["resize"], str):
        return "preprocessing.resize must be a string"
    if "range" in pre and (
        not isinstance(pre["range"], list)
        or len(pre["range"]) != 2
        or not all(_is_number(v) for v in pre["range"])
        or not pre["range"][0] < pre["range"][1]
    ):
        return "preprocessing.range must be [low, high] with low < high"
    for section in ("quantization", "artifacts", "metrics", "dataset", "training", "codegen", "export"):
        if section in meta and not isinstance(meta[section], dict):
            return f"{section} is not an object"
    for which in ("input", "output"):
        if which in meta.get("quantization", {}):
            problem = _quant_problem(f"quantization.{which}", meta["quantization"][which])
            if problem:
                return problem
    for kind, entry in meta.get("artifacts", {}).items():
        if kind not in ARTIFACT_FILES:
            return f"artifacts.{kind} is not an artifact kind ({', '.join(ARTIFACT_FILES)})"
        if not isinstance(entry, dict) or entry.get("file") != ARTIFACT_FILES[kind]:
            return f"artifacts.{kind}.file must be {ARTIFACT_FILES[kind]!r}"
        if not isinstance(entry.get("sha256"), str) or not _SHA256.fullmatch(entry["sha256"]):
            return f"artifacts.{kind}.sha256 must be 64 hex digits"
    return None
