"""Per-kernel C unit tests (tests/c/engine_kernels/test_*.c), one beside each kernel family, CMSIS-NN style.

Each compares one kernel family, over thousands of random shapes and parameters and every requantisation
mode, with a plain-C loop of TFLite's reference arithmetic written out in the test (kernel_ref.h), not with
the engine's own helpers. Built with gcc and clang under AddressSanitizer and UndefinedBehaviorSanitizer (any
report aborts), once with the portable kernels and once with the DSP paths on plain-C intrinsic stand-ins;
scratch buffers are allocated at exactly their header macro's size, so an overrun is an ASan error.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.tooling import require_tool

ROOT = Path(__file__).resolve().parents[1]
ENGINE_DIR = ROOT / "firmware" / "lib" / "engine"
TEST_DIR = ROOT / "tests" / "c" / "engine_kernels"
KERNELS = [p for p in sorted(ENGINE_DIR.glob("*.c")) if p.name != "runner_engine.c"]  # the runner needs a model
FLAGS = ["-O1", "-g", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]


@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "emulated-dsp"])
@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("test", sorted(p.name for p in TEST_DIR.glob("test_*.c")))
def test_kernel_unit(test, compiler, dsp, tmp_path) -> None:
    cc = require_tool(compiler)
    exe = tmp_path / Path(test).stem
    defines = ["-DENG_EMULATE_DSP"] if dsp else []
    build = subprocess.run([cc, *FLAGS, *defines, f"-I{ENGINE_DIR}", str(TEST_DIR / test), *map(str, KERNELS), "-lm",
                            "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "match the reference" in run.stdout
