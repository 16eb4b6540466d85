"""Engine vs LiteRT-ref at scale: every output byte, natively, portable and emulated-DSP builds.

For each model the engine C is generated (tools/codegen), compiled with the native harness
(tests/c/engine_harness.c, gcc -O2) twice: the portable kernels and the Cortex-M4 DSP kernels on plain-C
intrinsic stand-ins (-DENG_EMULATE_DSP). Every input goes through both and through LiteRT BUILTIN_REF
(models/reference.py); the bench prints, per model and build, how many inputs differ in any output byte.

* Fashion-MNIST bundles (--bundle, repeatable): all 10,000 test images, preprocessed and quantised exactly as
  the host streams them (models.preprocess).
* The MLPerf Tiny VWW reference model (../shared/models/vww_96_int8.tflite, never copied into the tree) on
  --random-inputs random image-like int8 inputs (default 1,000; see random_frames).

    python bench/engine_exactness.py --bundle runs/demo/mobilenet_v1 --bundle runs/demo/mobilenet_v2
    python bench/engine_exactness.py --no-vww --bundle runs/bench_fmnist/mobilenet_v1_0.25_32

Exits 1 when any input differs (after printing the table). tests/test_engine_native.py uses build_native and
run_native from here for its own (smaller) checks.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.errors import UserError, exit_cli  # noqa: E402
from models.reference import ReferenceModel  # noqa: E402

ENGINE_DIR = ROOT / "firmware" / "lib" / "engine"
APP_DIR = ROOT / "firmware" / "lib" / "app"
HARNESS = ROOT / "tests" / "c" / "engine_harness.c"
VWW_MODEL = ROOT.parent / "shared" / "models" / "vww_96_int8.tflite"
CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror"]
BUILDS = (("portable", False), ("emulated DSP", True))


OBJECT_CACHE = ROOT / "build" / "engine_objects"


def engine_objects(cc: str, flags: Sequence[str], cache: Path = OBJECT_CACHE) -> list[Path]:
    """The engine's kernels (every firmware/lib/engine/*.c but runner_engine.c, the one that includes the generated
    model's header) compiled with ``cc flags -c``, one object per source.

    They do not depend on the model, so every harness build links the same objects: each is cached under
    ``cache`` by a hash of the compiler's version, the flags, the source and every engine and app header, so an
    edit to any of those recompiles and nothing stale is linked. Objects are written to a temporary name and
    renamed, so two builds running at once never see half a file.
    """
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True).stdout
    headers = b"".join(p.read_bytes() for d in (ENGINE_DIR, APP_DIR) for p in sorted(d.glob("*.h")))
    cache.mkdir(parents=True, exist_ok=True)
    objects = []
    for source in sorted(ENGINE_DIR.glob("*.c")):
        if source.name == "runner_engine.c":
            continue
        key = hashlib.sha256("\0".join([cc, version, *flags]).encode() + headers + source.read_bytes()).hexdigest()
        obj = cache / f"{source.stem}-{key[:20]}.o"
        if not obj.exists():
            partial = obj.with_suffix(f".{os.getpid()}.tmp")
            cmd = [cc, *flags, f"-I{ENGINE_DIR}", f"-I{APP_DIR}", "-c", str(source), "-o", str(partial)]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"compiling {source.name} failed:\n{result.stderr}")
            os.replace(partial, obj)
        objects.append(obj)
    return objects


def build_native(model_dir: Path, exe: Path, emulate_dsp: bool = False, gcc: str = "gcc") -> Path:
    """Compile the native file-in/file-out harness against a generated model directory (the kernels' objects come
    from engine_objects' cache; the harness, the runner and the generated model are compiled each time)."""
    defines = ["-DENG_EMULATE_DSP"] if emulate_dsp else []
    kernels = engine_objects(gcc, [*CFLAGS, *defines])
    sources = [HARNESS, ENGINE_DIR / "runner_engine.c", model_dir / "model_engine.c"]
    cmd = [
        gcc,
        *CFLAGS,
        *defines,
        f"-I{ENGINE_DIR}",
        f"-I{APP_DIR}",
        f"-I{model_dir}",
        *map(str, sources),
        *map(str, kernels),
        "-lm",
        "-o",
        str(exe),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"building the engine harness failed:\n{result.stderr}")
    return exe


def run_native(exe: Path, frames: np.ndarray, out_dtype: np.dtype, work: Path) -> np.ndarray:
    """All frames through the harness in one process; returns one output row per frame."""
    inputs, outputs = work / "inputs.bin", work / "outputs.bin"
    np.ascontiguousarray(frames).tofile(inputs)
    result = subprocess.run([str(exe), str(inputs), str(outputs)], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0 or int(result.stdout.strip() or -1) != len(frames):
        raise RuntimeError(f"the engine harness failed (exit {result.returncode}): {result.stderr.strip()}")
    return np.fromfile(outputs, dtype=out_dtype).reshape(len(frames), -1)


def reference_outputs(tflite: Path, frames: np.ndarray) -> np.ndarray:
    reference = ReferenceModel(tflite)
    return np.stack([reference.invoke(frame) for frame in frames])


def mismatches(tflite: Path, frames: np.ndarray, expected: np.ndarray, work: Path) -> dict[str, list[int]]:
    """Per build, the indices of the frames whose engine output differs from ``expected`` in any byte."""
    from tinyml.codegen import generate

    model_dir = work / "codegen"
    generate(tflite, model_dir)
    found = {}
    for name, emulate in BUILDS:
        exe = build_native(model_dir, work / f"harness_{'dsp' if emulate else 'portable'}", emulate)
        got = run_native(exe, frames, expected.dtype, work)
        found[name] = np.flatnonzero((got != expected).any(axis=1)).tolist()
    return found


def fashion_mnist_frames(bundle_dir: Path) -> tuple[Path, np.ndarray]:
    """The bundle's .tflite and all 10,000 Fashion-MNIST test images as the host would send them."""
    from models.bundle import load_bundle
    from models.preprocess import PreprocessSpec, preprocess_batch, quantize_input
    from tinyml.data import load_fashion_mnist

    bundle = load_bundle(bundle_dir)
    images = load_fashion_mnist("test").images
    frames = quantize_input(preprocess_batch(images, PreprocessSpec.from_bundle(bundle)), bundle.input_quant)
    return bundle.artifact_path("tflite"), frames


def random_frames(tflite: Path, count: int, seed: int = 0) -> np.ndarray:
    """Random inputs with image-like structure: blocks of random colour at a random scale, random contrast,
    brightness and pixel noise. (Uniform noise alone drives a trained model into a handful of outputs.)"""
    reference = ReferenceModel(tflite)
    _, h, w, c = reference.input_shape
    info = np.iinfo(reference.input_dtype)
    rng = np.random.default_rng(seed)
    frames = np.empty((count, h, w, c), reference.input_dtype)
    for i in range(count):
        k = int(rng.integers(2, 25))
        coarse = rng.uniform(info.min, info.max, (k, k, c))
        img = coarse[(np.arange(h) * k) // h][:, (np.arange(w) * k) // w]
        mid = (info.min + info.max) / 2
        img = (
            (img - mid) * rng.uniform(0.2, 1.0)
            + mid
            + rng.uniform(-60, 60)
            + rng.normal(0, rng.uniform(0, 40), img.shape)
        )
        frames[i] = np.clip(np.round(img), info.min, info.max)
    return frames


def check(label: str, tflite: Path, frames: np.ndarray) -> list[tuple[str, str, int, int, float]]:
    started = time.monotonic()
    expected = reference_outputs(tflite, frames)
    with tempfile.TemporaryDirectory(prefix="engine_exact_") as tmp:
        found = mismatches(tflite, frames, expected, Path(tmp))
    seconds = time.monotonic() - started
    rows = []
    for build, bad in found.items():
        rows.append((label, build, len(frames), len(bad), seconds))
        if bad:
            print(f"  {label} ({build}): differs on inputs {bad[:20]}", flush=True)
    return rows


def format_table(rows: list[tuple[str, str, int, int, float]]) -> str:
    lines = [
        "| model | build | inputs | differ from LiteRT-ref | seconds (both builds + reference) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {m} | {b} | {n:,} | {bad} | {s:.0f} |" for m, b, n, bad, s in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", action="append", default=[], help="Fashion-MNIST bundle (repeatable)")
    parser.add_argument("--vww", type=Path, default=VWW_MODEL, help=f"VWW reference model (default {VWW_MODEL})")
    parser.add_argument("--no-vww", action="store_true", help="skip the VWW model")
    parser.add_argument("--random-inputs", type=int, default=1000, help="random inputs for the VWW model")
    args = parser.parse_args(argv)
    rows = []
    for bundle_dir in map(Path, args.bundle):
        tflite, frames = fashion_mnist_frames(bundle_dir)
        print(f"== {bundle_dir}: {len(frames):,} Fashion-MNIST test images", flush=True)
        rows += check(str(bundle_dir), tflite, frames)
    if not args.no_vww:
        if not args.vww.exists():
            raise UserError(f"{args.vww} does not exist; put the MLPerf Tiny VWW model there or pass --no-vww")
        print(f"== {args.vww.name}: {args.random_inputs:,} random inputs", flush=True)
        rows += check(args.vww.name, args.vww, random_frames(args.vww, args.random_inputs))
    print()
    print(format_table(rows))
    return 1 if any(bad for *_, bad, _ in rows) else 0


if __name__ == "__main__":
    exit_cli(main)
