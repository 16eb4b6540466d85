"""The engine's kernels, one by one, against plain-C loops of TFLite's reference arithmetic (CMSIS-NN style).

* tests/c/kernel_variants_unit.c draws random shapes and parameters that reach every convolution variant (the
  3x3 depthwise kernel eng_dwconv2d_s8_3x3 where codegen calls it, the per-pixel depthwise path, other depthwise kernels, im2col convolutions, all requantisation modes) and
  compares each output byte with the literal reference.
* tests/c/engine_kernels/test_*.c, one beside each kernel family (conv and the wide exact conv, depthwise and
  the wide exact depthwise with multipliers 1-4 and more than 25 taps, the 3x3 depthwise kernel with its
  borders, strides, narrow rows and one-row chain views, the 4-pixel x 2-channel pointwise kernel with its
  pair-layout weights and its tail, the pair-word first-layer and small pointwise kernels, pooling / ADD / MEAN / QUANTIZE / PAD),
  do the same over thousands of random cases with the reference written out in kernel_ref.h; their scratch
  buffers are malloc'd at exactly the header macro's size, so an overrun is an ASan error.

Everything is built portable and with ENG_EMULATE_DSP (the DSP paths' layout and loop structure) under ASan and
UBSan (any report aborts); the real intrinsics run in test_engine_native.py's QEMU tests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.engine_exactness import engine_objects
from tests.tooling import require_tool

pytestmark = [pytest.mark.c, pytest.mark.slow]  # 14 C builds (gcc, clang; portable, emulated DSP): minutes

ROOT = Path(__file__).resolve().parents[1]
ENGINE_DIR = ROOT / "firmware" / "lib" / "engine"
UNIT = ROOT / "tests" / "c" / "kernel_variants_unit.c"
FAMILY_TESTS = ROOT / "tests" / "c" / "engine_kernels"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def build(cc: str, source: Path, exe: Path, emulate_dsp: bool) -> Path:
    """``source`` linked with every kernel, all under ASan/UBSan; the kernels' objects are compiled once per
    compiler and build (bench/engine_exactness.engine_objects caches them by content)."""
    flags = [
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-g",
        "-O1",
        *SANITIZE,
        *(["-DENG_EMULATE_DSP"] if emulate_dsp else []),
    ]
    kernels = engine_objects(cc, flags)
    cmd = [cc, *flags, f"-I{ENGINE_DIR}", str(source), *map(str, kernels), "-lm", "-o", str(exe)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return exe


@pytest.mark.parametrize("emulate_dsp", [False, True], ids=["portable", "emulated-dsp"])
def test_kernel_variants_match_the_reference_arithmetic(emulate_dsp, tmp_path) -> None:
    exe = build(require_tool("gcc"), UNIT, tmp_path / "kernel_variants_unit", emulate_dsp)
    for seed in (1, 2):
        run = subprocess.run([str(exe), "500", str(seed)], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert int(run.stdout.strip().splitlines()[-1]) == 1500


@pytest.mark.parametrize("emulate_dsp", [False, True], ids=["portable", "emulated-dsp"])
@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("test", sorted(p.name for p in FAMILY_TESTS.glob("test_*.c")))
def test_kernel_family_matches_the_reference_arithmetic(test, compiler, emulate_dsp, tmp_path) -> None:
    exe = build(require_tool(compiler), FAMILY_TESTS / test, tmp_path / Path(test).stem, emulate_dsp)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "match the reference" in run.stdout
