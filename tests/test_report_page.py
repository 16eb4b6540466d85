"""report --board / --ram --flash and report --out: board fit per backend, plots, Markdown and HTML pages."""

from __future__ import annotations

import base64
import json
import re
import shutil

import pytest

from models.bundle import load_bundle
from tests.tooling import assert_one_line_error, require_tool, run_tool

# Every test uses `measured`, which boots QEMU; one pytest-xdist worker runs them all, so it is measured once.
pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("test_report_page")]


@pytest.fixture(scope="module")
def measured(bundle_v1, bundle_v2, tmp_path_factory):
    """Copies of the V1 and V2 fixtures with every figure recorded: evaluate, codegen and a QEMU count."""
    require_tool("qemu-system-arm", "sudo apt-get install -y qemu-system-arm")
    require_tool("arm-none-eabi-gcc", "sudo apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi")
    from tinyml.codegen import generate
    from tools.evaluate import evaluate_bundle
    from tools.report import measure_qemu

    root = tmp_path_factory.mktemp("measured")
    out = []
    for src in (bundle_v1, bundle_v2):
        bundle = load_bundle(shutil.copytree(src.path, root / src.path.name))
        evaluate_bundle(bundle, limit=50)
        generate(bundle.path)
        bundle = load_bundle(bundle.path)
        measure_qemu(bundle, frames=2)
        out.append(load_bundle(bundle.path))
    return root, out


def test_board_fit_names_the_most_accurate_of_each_family_with_margins(measured):
    root, (v1, v2) = measured
    proc = run_tool("report", str(root), "--board", "nano33ble", "--out", str(root / "page"))
    assert proc.returncode == 0, proc.stderr
    verdict = (root / "page" / "report.md").read_text().split("## Verdict")[1].split("## Models")[0]
    assert "leads by" in verdict and "nano33ble: MobileNet V" in verdict
    fit_rows = [line for line in proc.stdout.splitlines() if line.startswith("| MobileNet")]
    assert len(fit_rows) == 4  # V1 and V2, TFLM and engine
    tflm_v2 = next(line for line in fit_rows if line.startswith("| MobileNet V2 | tflm"))
    # the figures behind the margin: nano33ble has 640 KiB for the model, the .tflite is in the row
    size = (v2.path / "model_int8.tflite").stat().st_size
    assert f"{size / 1024:.1f} KiB" in tflm_v2 and f"{(640 * 1024 - size) / 1024:.1f} KiB" in tflm_v2
    engine_v1 = next(line for line in fit_rows if line.startswith("| MobileNet V1 | engine"))
    flash = v1.meta["metrics"]["qemu"]["flash_bytes"]
    assert flash > v1.meta["codegen"]["weights_bytes"] and f"{flash / 1024:.1f} KiB" in engine_v1


def test_custom_budget_too_small_for_anything_and_bad_sizes(measured):
    root, _ = measured
    proc = run_tool("report", str(root), "--ram", "8K", "--flash", "64K")
    assert proc.returncode == 0, proc.stderr
    fit_rows = [line for line in proc.stdout.splitlines() if line.startswith("| MobileNet")]
    assert len(fit_rows) == 4 and all("none fits" in line for line in fit_rows)
    assert_one_line_error(run_tool("report", str(root), "--ram", "lots", "--flash", "1M"), "--ram 'lots'")
    assert_one_line_error(run_tool("report", str(root), "--ram", "256K"), "--ram and --flash go together")
    assert_one_line_error(run_tool("report", str(root), "--board", "uno"), "unknown board 'uno'")


def test_page_has_plots_verdict_and_flags_a_stale_row(measured, tmp_path):
    root, (v1, v2) = measured
    bundles = tmp_path / "bundles"
    for b in (v1, v2):
        shutil.copytree(b.path, bundles / b.path.name)
    stale = bundles / v2.path.name / "model.json"
    meta = json.loads(stale.read_text())
    meta["metrics"]["evaluation"]["tflite_sha256"] = "0" * 64  # evaluated on another .tflite than the bundle's
    stale.write_text(json.dumps(meta))
    proc = run_tool("report", str(bundles), "--out", str(tmp_path / "page"))
    assert proc.returncode == 0, proc.stderr
    page = tmp_path / "page"
    for name in ("acc_vs_macs", "acc_vs_ram", "acc_vs_flash", "acc_vs_instructions"):
        png = (page / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    html = (page / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == 4 and base64.b64decode(embedded[0])[:4] == b"\x89PNG"
    assert 'src="http' not in html and "<link" not in html  # self-contained
    md = (page / "report.md").read_text()
    assert "STALE" in md and "evaluate figures were recorded for another .tflite" in md
    assert "test split, 50 images each; 1 models, labelled by model id" in md and "1 set aside" in md
    verdict = md.split("## Verdict")[1].split("## Models")[0]
    assert f"Most accurate MobileNet V1: {v1.name}" in verdict and "Most accurate MobileNet V2" not in verdict
    assert f"nano33ble: MobileNet V1 {v1.name}" in verdict and "no MobileNet V2 in this comparison fits" in verdict
    # the terminal's board answer leaves the stale V2 out too, and says why
    proc = run_tool("report", str(bundles), "--board", "nano33ble")
    assert proc.returncode == 0, proc.stderr
    v2_rows = [line for line in proc.stdout.splitlines() if line.startswith("| MobileNet V2 |")]
    assert len(v2_rows) == 2 and all("none fits" in line and "0 / 0" in line for line in v2_rows)
    assert (
        f"Not considered (figures stale or measured on another basis): {v2.name}: evaluate figures were "
        "recorded for another .tflite"
    ) in proc.stdout
