"""The engine's convolution kernel variants, one by one, against a plain-C loop of TFLite's reference arithmetic.

tests/c/kernel_variants_unit.c draws random shapes and parameters that reach every variant (3x3 depthwise row
kernel and border path, other depthwise kernels, first-layer and im2col convolutions, all requantisation modes)
and compares each output byte with the literal reference. It is built portable and with ENG_EMULATE_DSP (the
DSP paths' layout and loop structure) under ASan/UBSan; the real intrinsics run in test_engine_native.py's
QEMU test.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.tooling import require_tool

ROOT = Path(__file__).resolve().parents[1]
ENGINE_DIR = ROOT / "firmware" / "lib" / "engine"
UNIT = ROOT / "tests" / "c" / "kernel_variants_unit.c"
KERNELS = sorted(p for p in ENGINE_DIR.glob("engine_*.c"))


@pytest.mark.parametrize("emulate_dsp", [False, True], ids=["portable", "emulated-dsp"])
def test_kernel_variants_match_the_reference_arithmetic(emulate_dsp, tmp_path) -> None:
    gcc = require_tool("gcc")
    exe = tmp_path / "kernel_variants_unit"
    cmd = [gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-g", "-O1", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", *(["-DENG_EMULATE_DSP"] if emulate_dsp else []), f"-I{ENGINE_DIR}",
           str(UNIT), *map(str, KERNELS), "-lm", "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    for seed in (1, 2):
        run = subprocess.run([str(exe), "500", str(seed)], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert int(run.stdout.strip().splitlines()[-1]) == 1000
