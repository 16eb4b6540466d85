"""report --paper: the papers' MobileNet configurations rebuilt from our builders match the published counts."""

from __future__ import annotations

import pytest

from tests.tooling import run_tool
from tools.paper_table import PUBLISHED, Comparison, deviation, interval


def test_printed_figures_stand_for_their_rounding_interval():
    assert interval(14, 1, "nearest") == (13.5, 14.5)
    assert interval(11, 1, "floor") == (11, 12)
    assert deviation(13.57, 14, 1, "nearest") == 0.0
    assert deviation(11.94, 11, 1, "floor") == 0.0
    assert deviation(11.94, 11, 1, "nearest") == pytest.approx(0.44 / 11)  # 11.94 would print as 12
    row = PUBLISHED[0]
    assert not Comparison(row, row.params_m * 1.05, row.macs_m).within  # 5 % more parameters is caught
    assert not Comparison(row, row.params_m, row.macs_m * 0.97).within


@pytest.mark.slow  # builds every published 224x224 configuration
def test_paper_table_reproduces_every_published_row_within_two_percent():
    proc = run_tool("report", "--paper")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(" | ") for line in proc.stdout.splitlines() if line.startswith("| V")]
    assert len(rows) == len(PUBLISHED)
    labels = {cells[0].lstrip("| ") for cells in rows}
    assert {"V1 1.0-224", "V1 0.5-128", "V1 0.25-128", "V2 1.0-224", "V2 0.5-96", "V2 0.35-96"} <= labels
    for cells in rows:
        params_dev, macs_dev = float(cells[5].rstrip(" %")), float(cells[9].rstrip(" %"))
        assert params_dev <= 2.0 and macs_dev <= 2.0 and cells[10] == "yes", cells
        if cells[0].endswith("1.0-224"):  # three printed digits: the plain difference is within 2 % as well
            assert abs(float(cells[8].rstrip(" %"))) <= 2.0, cells
    assert "arXiv:1704.04861" in proc.stdout and "research/slim/nets/mobilenet/README.md" in proc.stdout
