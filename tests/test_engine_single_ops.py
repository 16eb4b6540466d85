"""Every convolution kernel variant and requantisation mode against LiteRT-ref on random one-op models.

tests/tflite_builder.py writes CONV_2D, DEPTHWISE_CONV_2D (depth multipliers 1-3) and FULLY_CONNECTED models
with random shapes, strides, dilations, paddings, activations, zero points and per-channel scales: effective
scales above 1/2 (the exact requantisation mode), full-range outputs (the SSAT mode), narrowed ReLU ranges, and
biases near +-2^30 on live channels, which only the wide kernel (engine_wide.c) may run. Each model's engine C
is compiled with its two entry points renamed, all of them are linked into one binary with the kernels, and
that binary is built twice (portable and emulated-DSP kernels) under ASan and UBSan. Every output byte for 24
random inputs per model must equal LiteRT BUILTIN_REF's.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.engine_exactness import engine_objects
from models.reference import ReferenceModel
from tests.tflite_builder import conv_model, fully_connected_model
from tests.tooling import require_tool
from tinyml.codegen import generate_from_tflite

ROOT = Path(__file__).resolve().parents[1]
ENGINE_DIR = ROOT / "firmware" / "lib" / "engine"
APP_DIR = ROOT / "firmware" / "lib" / "app"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
INPUTS = 24


def random_models(seed: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    models = []
    for i in range(12):
        models.append((f"conv{i}", conv_model(rng, depthwise=False, huge_bias=i % 4 == 3)))
        models.append((f"dw{i}", conv_model(rng, depthwise=True, huge_bias=i % 4 == 3)))
    for i in range(6):
        models.append((f"fc{i}", fully_connected_model(rng, huge_bias=i % 3 == 2)))
    return models


def build_linked(models: list[tuple[str, Path, int, int]], work: Path, emulate_dsp: bool) -> Path:
    """One executable running every model: stdin = each model's inputs in turn, stdout = its outputs."""
    gcc = require_tool("gcc")
    flags = ["-O1", "-g", "-std=c99", "-Wall", "-Wextra", "-Werror", *SANITIZE, f"-I{ENGINE_DIR}", f"-I{APP_DIR}"]
    flags += ["-DENG_EMULATE_DSP"] if emulate_dsp else []
    objects = []
    for name, model_dir, _, _ in models:
        obj = work / f"{name}{'_dsp' if emulate_dsp else ''}.o"
        renames = [f"-Dmodel_engine_invoke={name}_invoke", f"-Dmodel_engine_info={name}_info"]
        subprocess.run(
            [gcc, *flags, *renames, f"-I{model_dir}", "-c", str(model_dir / "model_engine.c"), "-o", str(obj)],
            check=True,
        )
        objects.append(obj)
    driver = ["#include <stdint.h>", "#include <stdio.h>"]
    driver += [f"int {name}_invoke(const uint8_t *in, uint8_t *out);" for name, *_ in models]
    driver += ["int main(void) {", "  static uint8_t in[65536], out[65536];"]
    for name, _, in_bytes, out_bytes in models:
        driver.append(
            f"  for (int i = 0; i < {INPUTS}; i++) {{\n"
            f"    if (fread(in, 1, {in_bytes}, stdin) != {in_bytes}) return 3;\n"
            f"    if ({name}_invoke(in, out) != 0) return 4;\n"
            f"    fwrite(out, 1, {out_bytes}, stdout);\n  }}"
        )
    driver.append("  return 0;\n}\n")
    source = work / "driver.c"
    source.write_text("\n".join(driver))
    exe = work / f"single_ops{'_dsp' if emulate_dsp else ''}"
    kernels = engine_objects(gcc, flags)  # compiled once per build kind, cached by content
    subprocess.run(
        [gcc, *flags, str(source), *map(str, kernels), *map(str, objects), "-lm", "-o", str(exe)], check=True
    )
    return exe


@pytest.mark.slow  # builds and converts many single-op models, then a C harness per seed
@pytest.mark.parametrize("seed", [11, 12])
def test_conv_depthwise_fc_variants_bit_exact_vs_litert_ref(seed, tmp_path) -> None:
    rng = np.random.default_rng(seed + 1000)
    linked, inputs, expected, kernels = [], [], [], set()
    for name, tflite in random_models(seed):
        model_dir = tmp_path / name
        generate_from_tflite(tflite, model_dir)
        source = (model_dir / "model_engine.c").read_text()
        kernels |= set(re.findall(r"\b(eng_(?:dw)?conv2d_s8\w*)\(", source))
        reference = ReferenceModel(tflite)
        frames = rng.integers(-128, 128, (INPUTS, *reference.input_shape[1:])).astype(np.int8)
        outs = np.stack([reference.invoke(f) for f in frames])
        linked.append((name, model_dir, frames[0].size, outs.shape[1]))
        inputs.append(frames.tobytes())
        expected.append(outs.reshape(-1))
    # every kernel family ran, each requantisation mode codegen chooses and the wide (exact general) ones included
    assert kernels >= {
        "eng_conv2d_s8_sat",
        "eng_conv2d_s8_fast",
        "eng_conv2d_s8_exact",
        "eng_conv2d_s8_single",
        "eng_conv2d_s8_wide",
        "eng_dwconv2d_s8",
        "eng_dwconv2d_s8_wide",
    }, kernels
    want = np.concatenate(expected)
    unsaturated = np.mean((want > -128) & (want < 127))
    assert unsaturated > 0.3, f"only {unsaturated:.0%} of the reference outputs are inside the int8 range"
    for emulate_dsp in (False, True):
        exe = build_linked(linked, tmp_path, emulate_dsp)
        run = subprocess.run([str(exe)], input=b"".join(inputs), capture_output=True)
        assert run.returncode == 0, run.stderr.decode()[-2000:]
        got = np.frombuffer(run.stdout, np.int8)
        assert got.size == want.size
        offset = 0
        for (name, *_), exp in zip(linked, expected, strict=True):
            part = got[offset : offset + exp.size]
            offset += exp.size
            bad = np.flatnonzero(part != exp)
            assert bad.size == 0, (
                f"{name} ({'emulated DSP' if emulate_dsp else 'portable'}): {bad.size} of "
                f"{exp.size} outputs differ from LiteRT-ref"
            )
