"""SOFTMAX follows TFLite's reference fixed-point arithmetic for every input, not only the images tried.

Hand-built one-op models (tests/tflite_builder.py) span input scales from 1e-4 to 30 and betas from 0.05 to 20,
depths from 2 to 500, with random logit rows, rows of near-equal logits and rows saturated at -128/127. LiteRT
BUILTIN_REF runs each model; the engine's eng_softmax_s8, compiled natively under ASan and UBSan with the
constants tools/codegen computes for the same model, must give the same bytes for every element.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from models.reference import ReferenceModel
from tests.tflite_builder import softmax_model
from tests.tooling import require_tool
from tinyml.codegen.ctext import c_struct
from tinyml.codegen.ops.softmax import Softmax
from tinyml.tflite_graph import load_graph

ENGINE_DIR = Path(__file__).resolve().parents[1] / "firmware" / "lib" / "engine"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
ROWS = 48


def logit_rows(rng: np.random.Generator, depth: int) -> np.ndarray:
    """Uniform rows, near-equal rows (the rounding-sensitive case), and rows pinned at the int8 ends."""
    rows = rng.integers(-128, 128, (ROWS, depth))
    for r in range(16):
        rows[r] = np.clip(rng.integers(-3, 4, depth) + rng.integers(-125, 125), -128, 127)
    rows[16] = 127
    rows[17] = -128
    rows[18] = -128
    rows[18, rng.integers(depth)] = 127
    return rows.astype(np.int8)


def test_softmax_matches_litert_ref_over_scales_betas_and_depths(tmp_path) -> None:
    gcc = require_tool("gcc")
    rng = np.random.default_rng(7)
    cases = []
    for i in range(60):
        scale = float(10 ** rng.uniform(-4, 1.5))
        beta = float(rng.choice([1.0, 1.0, 0.5, 2.0, 10 ** rng.uniform(-1.3, 1.3)]))
        depth = int(rng.choice([2, 3, 10, 1000 // 3, 500]) if i % 3 == 0 else rng.integers(2, 200))
        model = softmax_model(ROWS, depth, scale, beta, input_zp=int(rng.integers(-128, 128)))
        logits = logit_rows(rng, depth)
        expected = ReferenceModel(model).invoke(logits.reshape(1, 1, ROWS, depth))
        graph = load_graph(model)
        cases.append((Softmax(graph, graph.operators[0]).fields, logits.reshape(-1), expected))
    largest = max(x.size for _, x, _ in cases)
    lines = [
        "#include <stdio.h>",
        '#include "engine.h"',
        "int main(void) {",
        f"  static int8_t in[{largest}], out[{largest}];",
    ]
    for fields, x, _ in cases:
        lines.append("  {\n    " + c_struct("eng_softmax_t", "p", fields).replace("static const", "const"))
        lines.append(
            f"    if (fread(in, 1, {x.size}, stdin) != {x.size}) return 1;\n"
            f"    eng_softmax_s8(&p, in, out);\n    fwrite(out, 1, {x.size}, stdout);\n  }}"
        )
    lines.append("  return 0;\n}\n")
    source = tmp_path / "softmax_check.c"
    source.write_text("\n".join(lines))
    exe = tmp_path / "softmax_check"
    subprocess.run(
        [
            gcc,
            "-O1",
            "-g",
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            *SANITIZE,
            f"-I{ENGINE_DIR}",
            str(source),
            str(ENGINE_DIR / "engine_softmax.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    run = subprocess.run([str(exe)], input=b"".join(x.tobytes() for _, x, _ in cases), capture_output=True)
    assert run.returncode == 0, run.stderr.decode()
    got = np.frombuffer(run.stdout, np.int8)
    expected = np.concatenate([y for _, _, y in cases])
    assert got.size == expected.size == sum(x.size for _, x, _ in cases)
    assert len({tuple(y[:8]) for _, _, y in cases}) > 30  # the outputs vary: the comparison means something
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, f"{bad.size} of {expected.size} softmax outputs differ from LiteRT-ref, first at {bad[0]}"
