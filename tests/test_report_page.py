"""report --board / --ram --flash and report --out: board fit per backend, plots, Markdown and HTML pages."""

from __future__ import annotations

import base64
import json
import re
import shutil

import pytest

from tests.tooling import assert_one_line_error, run_tool

# Every test uses `measured` (conftest), which boots QEMU. pytest-xdist runs this module and tests/test_sweep.py (the
# other user of `measured`) on one worker, so it is measured once.
pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("measured")]


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


def test_figures_of_another_engine_are_flagged_and_set_aside(measured, tmp_path):
    """A resumed sweep after an engine change must not mix two engines' instruction counts silently."""
    from tinyml.firmware import engine_digest

    root, (v1, v2) = measured
    current = engine_digest()
    assert current and v1.meta["codegen"]["engine_sha256"] == current == v2.meta["metrics"]["qemu"]["engine_sha256"]
    bundles = tmp_path / "bundles"
    for b in (v1, v2):
        shutil.copytree(b.path, bundles / b.path.name)
    proc = run_tool("report", str(bundles))
    assert proc.returncode == 0, proc.stderr
    assert "STALE" not in proc.stdout and "warning" not in proc.stdout  # one engine, this tree's: nothing flagged
    stale = bundles / v2.path.name / "model.json"
    meta = json.loads(stale.read_text())
    meta["metrics"]["qemu"]["engine_sha256"] = "e" * 64  # counted on an older engine
    stale.write_text(json.dumps(meta))
    proc = run_tool("report", str(bundles), "--out", str(tmp_path / "page"))
    assert proc.returncode == 0, proc.stderr
    v2_row = next(line for line in proc.stdout.splitlines() if line.startswith(f"| {v2.name} |"))
    assert v2_row.endswith(f"{v2.model_id[:12]} STALE |")
    assert (
        f"warning: {v2.name}: QEMU figures were measured on engine eeeeeeeeeeee, this tree's is {current[:12]} "
        f"(re-run: python -m tools report {bundles / v2.path.name} --measure-qemu)"
    ) in proc.stdout
    assert f"warning: engine figures come from 2 engines: {current[:12]} (1 rows), eeeeeeeeeeee (1 rows)" in proc.stdout
    md = (tmp_path / "page" / "report.md").read_text()
    assert "1 set aside" in md and "Most accurate MobileNet V2" not in md.split("## Verdict")[1]
    # a figure recorded before engine digests existed is as stale: its engine is unknown
    del meta["metrics"]["qemu"]["engine_sha256"]
    meta["codegen"]["engine_sha256"] = None
    stale.write_text(json.dumps(meta))
    proc = run_tool("report", str(bundles))
    assert f"{v2.name}: codegen figures were measured on an engine of unrecorded digest" in proc.stdout
    assert f"QEMU figures were measured on an engine of unrecorded digest, this tree's is {current[:12]}" in proc.stdout


@pytest.mark.parametrize("stale", [False, True])
def test_every_plot_caption_lies_inside_its_figure(measured, tmp_path, stale):
    """The caption (what the accuracies were measured on) was one line wider than a one-plot figure and the PNG cut
    it off at the right edge: drawn by matplotlib's Agg renderer, every caption line ends inside the figure, above
    none of the axes' labels, and the caption says all of it (with a stale row: the longest caption)."""
    import matplotlib.pyplot as plt

    from models.bundle import load_bundle
    from tools.boards import BOARDS
    from tools.report import collect, distinguish
    from tools.report_page import PLOTS, basis, figure

    root, (v1, v2) = measured
    bundles = []
    for b in (v1, v2):
        bundles.append(load_bundle(shutil.copytree(b.path, tmp_path / b.path.name)))
    if stale:
        path = bundles[1].path / "model.json"
        meta = json.loads(path.read_text())
        meta["metrics"]["evaluation"]["tflite_sha256"] = "0" * 64
        path.write_text(json.dumps(meta))
        bundles[1] = load_bundle(bundles[1].path)
    rows = [collect(b) for b in bundles]
    distinguish(rows)
    fit_basis = basis(rows)
    caption = fit_basis.caption(1 if stale else 2)
    for name in PLOTS:
        fig = figure(rows, name, fit_basis, dict(BOARDS))
        fig.canvas.draw()  # the real rendering savefig does, at the PNG's dpi
        (text,) = [t for t in fig.texts if "LiteRT reference kernels" in t.get_text()]
        assert " ".join(text.get_text().split()) == caption
        box, frame = text.get_window_extent(), fig.bbox
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, (name, box)
        for ax in fig.axes:
            assert ax.get_tightbbox().y0 >= box.y1, (name, "the caption overlaps the axes")
        plt.close(fig)
