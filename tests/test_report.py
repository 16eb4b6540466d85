"""tools/report.py: the V1-vs-V2 comparison table, its hints for missing figures, and the QEMU measurement."""

from __future__ import annotations

import json
import shutil

import pytest

from models.bundle import load_bundle
from tests.tooling import assert_one_line_error, require_tool, run_tool


def test_unrecorded_figures_are_dashes_with_the_command_that_records_them(bundle_v1, bundle_v2, tmp_path):
    v1 = shutil.copytree(bundle_v1.path, tmp_path / "v1")
    v2 = shutil.copytree(bundle_v2.path, tmp_path / "v2")
    proc = run_tool("report", str(v1), str(v2))
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 3  # header + one row per bundle
    v1_row = table[1].split(" | ")
    assert "MobileNet V1 0.25" in v1_row and "32x32x1" in v1_row
    assert "MobileNet V2 0.35" in table[2]
    # the fixtures were trained and quantized, never evaluated or code-generated
    assert f"python -m tools evaluate {v1}" in proc.stdout
    assert f"python -m tools codegen {v2}" in proc.stdout
    size = (v1 / "model_int8.tflite").stat().st_size
    assert f"{size / 1024:.1f} KiB" in table[1]


def test_recorded_figures_and_board_fit(bundle_v1, tmp_path):
    from tools.boards import BOARDS
    from tools.evaluate import evaluate_bundle
    from tools.report import collect

    bundle = load_bundle(shutil.copytree(bundle_v1.path, tmp_path / "v1"))
    evaluate_bundle(bundle, limit=50)
    row = collect(load_bundle(bundle.path))
    evaluation = load_bundle(bundle.path).meta["metrics"]["evaluation"]
    assert row.int8_acc == evaluation["int8_litert_ref"]["accuracy"]
    assert row.tflm_arena == evaluation["tflm_arena_bytes"]["required"] > 0
    assert set(row.fits) == set(BOARDS) and all(row.fits.values())  # a 32x32 V1 0.25 fits every board
    # report's board fit stands on export's arena figure: one measurement (tinyml.tflm.measure_arena)
    from tools.export import export_bundle

    exported = export_bundle(bundle.path)
    assert exported.arena_measured == row.tflm_arena
    assert {f.board.name: f.fits for f in exported.fits} == {BOARDS[name].name: fits for name, fits in row.fits.items()}


@pytest.mark.qemu
def test_qemu_measurement_is_recorded_and_repeatable(bundle_v1, tmp_path):
    require_tool("qemu-system-arm", "sudo apt-get install -y qemu-system-arm")
    require_tool("arm-none-eabi-gcc", "sudo apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi")
    from tools.report import measure_qemu

    bundle = load_bundle(shutil.copytree(bundle_v1.path, tmp_path / "v1"))
    first = measure_qemu(bundle, frames=2)
    recorded = json.loads((bundle.path / "model.json").read_text())["metrics"]["qemu"]
    assert recorded["instructions_per_inference"] == first and recorded["frames"] == 2
    macs = bundle.meta["metrics"]["cost"]["macs"]
    assert macs / 2 < first < 50 * macs  # real work was counted: at most 2 MACs per instruction (SMLAD)
    # icount makes the count repeatable; only UART bytes arriving mid-inference move it by a few instructions
    assert abs(measure_qemu(bundle, frames=2) - first) < 1e-4 * first


def test_missing_bundle_is_one_line_error(tmp_path):
    assert_one_line_error(run_tool("report", str(tmp_path / "nope")), "does not exist")


def _row(name: str, family: str, int8: float, images: int):
    from tools.report import Row

    return Row(
        name=name,
        model=family,
        input="32x32x1",
        macs=1_000_000,
        params=200_000,
        float_acc=int8,
        int8_acc=int8,
        tflm_acc=int8,
        tflite_bytes=300_000,
        tflm_arena=40_000,
        engine_ram=10_000,
        instructions=2e6,
        fits={},
        architecture=family,
        path=name,
        input_bytes=1024,
        engine_flash=350_000,
        split="test",
        images=images,
        model_id=name * 8,
    )


@pytest.mark.parametrize(
    "v1, v2, images, side",
    [(0.880, 0.890, 2000, "within"), (0.880, 0.890, 100_000, "beyond"), (0.900, 0.870, 2000, "beyond")],
)
def test_verdict_says_whether_a_lead_is_within_the_test_images_noise(v1, v2, images, side):
    from tools.boards import BOARDS
    from tools.report_page import basis, noise_points, verdict

    rows = [_row("a", "mobilenet_v1", v1, images), _row("b", "mobilenet_v2", v2, images)]
    # two binomial standard errors added in quadrature: 0.88 and 0.89 on 2,000 images each -> +-2.0 points
    assert noise_points(rows[0], rows[1]) == pytest.approx(196 * ((v1 * (1 - v1) + v2 * (1 - v2)) / images) ** 0.5)
    sentences = verdict(rows, basis(rows), {"nano33ble": BOARDS["nano33ble"]})
    lead = next(s for s in sentences if " leads by " in s)
    assert f"leads by {100 * abs(v1 - v2):.2f} points at its best ({side} the +-" in lead
    assert f"95 % noise of {images:,} test images)" in lead
    board = next(s for s in sentences if s.startswith("nano33ble: "))
    assert f"points ({side} the +-" in board
