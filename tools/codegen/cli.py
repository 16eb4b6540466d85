"""``python -m tools codegen``: a bundle (recorded in its model.json) or a bare .tflite to engine C."""
from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import Sequence

from models.bundle import Bundle, load_bundle
from models.errors import UserError
from tools.codegen.emit import generate_from_tflite


def generate(bundle_or_tflite: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Generate the engine C for a bundle (recorded in its model.json) or a bare .tflite file.

    Default output: BUNDLE/codegen/ for a bundle, <file stem>_codegen/ next to a bare .tflite.
    """
    src = Path(bundle_or_tflite)
    bundle: Bundle | None = None
    if src.is_dir():
        bundle = load_bundle(src)
        tflite_path = bundle.artifact_path("tflite")
        default_out = bundle.path / "codegen"
    elif src.suffix == ".tflite" or src.exists():
        tflite_path = src
        default_out = src.with_name(src.stem + "_codegen")
    else:
        raise UserError(f"{src} does not exist; pass a bundle directory (or a .tflite file)")
    if not tflite_path.exists():
        raise UserError(f"{tflite_path} does not exist; create it with: python -m tools quantize BUNDLE")
    result = generate_from_tflite(tflite_path.read_bytes(), out_dir or default_out)
    if bundle is not None:
        out = Path(out_dir or default_out)
        rel = os.path.relpath(out, bundle.path)
        bundle.meta["codegen"] = {
            "dir": rel,
            "tflite_sha256": hashlib.sha256(tflite_path.read_bytes()).hexdigest(),
            "arena_bytes": result.arena_bytes,
            "activation_bytes": result.activation_bytes,
            "scratch_bytes": result.scratch_bytes,
            "weights_bytes": result.weights_bytes,
            "layers": result.layers,
            "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in result.paths},
        }
        bundle.save()
    return result.paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools codegen",
        description="Generate C for the project's int8 engine (firmware/lib/engine) from a bundle's "
                    "model_int8.tflite: weights, requantisation constants, a static memory plan and the kernel "
                    "call sequence. The result links into the native and QEMU firmware ports.")
    parser.add_argument("bundle", help="model bundle directory (holding model.json and model_int8.tflite), "
                                       "or a bare .tflite file")
    parser.add_argument("--out", help="output directory for model_engine.h/.c (default: BUNDLE/codegen/)")
    args = parser.parse_args(argv)
    paths = generate(args.bundle, args.out)
    for path in paths:
        print(path)
    return 0
