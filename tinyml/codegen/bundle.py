"""A bundle (recorded in its model.json) or a bare .tflite to engine C: what ``python -m tools codegen`` runs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from models.bundle import Bundle, load_bundle
from models.errors import UserError
from tinyml.codegen.emit import generate_from_tflite
from tinyml.firmware import engine_digest


def generate(
    bundle_or_tflite: str | os.PathLike, out_dir: str | os.PathLike | None = None, ram_budget: int | None = None
) -> list[Path]:
    """Generate the engine C for a bundle (recorded in its model.json) or a bare .tflite file.

    Default output: BUNDLE/codegen/ for a bundle, <file stem>_codegen/ next to a bare .tflite. ram_budget:
    the fastest schedule whose arena fits (bytes); None: the smallest arena (tinyml/codegen/schedule.py).
    """
    src = Path(bundle_or_tflite)
    bundle: Bundle | None = None
    if src.is_dir():
        bundle = load_bundle(src)
        tflite_path = bundle.verified_artifact("tflite")  # the hashes codegen relies on, as every step
        default_out = bundle.path / "codegen"
    elif src.suffix == ".tflite" or src.exists():
        tflite_path = src
        default_out = src.with_name(src.stem + "_codegen")
    else:
        raise UserError(f"{src} does not exist; pass a bundle directory (or a .tflite file)")
    if not tflite_path.exists():
        raise UserError(f"{tflite_path} does not exist; create it with: python -m tools quantize BUNDLE")
    result = generate_from_tflite(tflite_path.read_bytes(), out_dir or default_out, ram_budget)
    if bundle is not None:
        out = Path(out_dir or default_out)
        rel = os.path.relpath(out, bundle.path)
        bundle.meta["codegen"] = {
            "dir": rel,
            "tflite_sha256": hashlib.sha256(tflite_path.read_bytes()).hexdigest(),
            "engine_sha256": engine_digest(),  # the generator and engine these figures are of (tools/report)
            "arena_bytes": result.arena_bytes,
            "activation_bytes": result.activation_bytes,
            "scratch_bytes": result.scratch_bytes,
            "weights_bytes": result.weights_bytes,
            "layers": result.layers,
            "schedule": {
                "ram_budget": ram_budget,
                "fused": [[m.op.index for m in chain.members] for chain in result.schedule.chains],
                "extra_instructions_estimate": round(result.schedule.overhead),
            },
            "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in result.paths},
        }
        bundle.save()
    return result.paths
