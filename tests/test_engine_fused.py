"""Fused row-band schedules (tinyml/codegen/schedule.py, ops/chain.py, firmware/lib/engine/engine_chain.c): what
the planner chooses for a RAM budget, that a chain computes every row once, the --ram-budget command line.

Their bit-exactness against LiteRT-ref is checked with every other engine build in test_engine_native.py (each
model in the smallest, a halfway and the layer-by-layer schedule, portable and emulated-DSP, and the default
schedule's real DSP build on QEMU).
"""

from __future__ import annotations

import pytest

from tests.tooling import assert_one_line_error, require_shared_model, run_tool
from tinyml.codegen import lower_graph, plan_memory
from tinyml.codegen.schedule import LAYER_BY_LAYER, choose_schedule
from tinyml.tflite_graph import load_graph
from tools.codegen import parse_bytes


@pytest.fixture(scope="module")
def vww():
    path = require_shared_model("vww_96_int8.tflite")
    return path, load_graph(path.read_bytes())


def test_every_row_of_a_chain_is_computed_once(vww) -> None:
    _, graph = vww
    schedule = choose_schedule(graph, lower_graph(graph))
    assert schedule.chains
    for chain in schedule.chains:
        sim = chain.simulation()
        # MobileNet's windows cover every row (SAME padding, kernel >= stride): each row exactly once, no recompute.
        assert sim.calls == tuple(g.out_h for g in chain.geoms), chain.label
        assert all(r < g.out_h for r, g in zip(chain.rows, chain.geoms)), "a row buffer holds a whole tensor"


def test_budget_gives_the_fastest_schedule_that_fits(vww) -> None:
    _, graph = vww
    unfused = plan_memory(graph, lower_graph(graph))
    fastest = choose_schedule(graph, lower_graph(graph), LAYER_BY_LAYER)
    assert not fastest.chains and fastest.overhead == 0
    assert fastest.plan.arena_bytes == unfused.arena_bytes  # layer by layer is today's plan, unchanged
    smallest = choose_schedule(graph, lower_graph(graph))
    assert smallest.arena_bytes < fastest.arena_bytes / 2
    previous = smallest.overhead
    step = (fastest.arena_bytes - smallest.arena_bytes) // 5
    for budget in [*range(smallest.arena_bytes, fastest.arena_bytes, step), fastest.arena_bytes]:
        schedule = choose_schedule(graph, lower_graph(graph), budget)
        assert schedule.arena_bytes <= budget
        assert schedule.overhead <= previous  # more RAM never costs more instructions
        previous = schedule.overhead
    assert previous == 0


def test_ram_budget_sizes_parse() -> None:
    assert parse_bytes("64K") == parse_bytes("64KB") == parse_bytes("64 KiB") == 65536
    assert parse_bytes("40000") == 40000 and parse_bytes("1.5M") == 1536 * 1024


def test_cli_budget_too_small_says_by_how_much_and_where(vww, tmp_path) -> None:
    path, graph = vww
    smallest = choose_schedule(graph, lower_graph(graph)).arena_bytes
    proc = run_tool("codegen", str(path), "--out", str(tmp_path / "c"), "--ram-budget", "8K")
    assert_one_line_error(proc, f"the smallest needs {smallest} B, {smallest - 8192} B more, its peak at op")
    assert_one_line_error(
        run_tool("codegen", str(path), "--out", str(tmp_path / "c"), "--ram-budget", "lots"), "is not a size"
    )


def test_cli_budget_that_fits_generates_it(vww, tmp_path) -> None:
    path, _ = vww
    proc = run_tool("codegen", str(path), "--out", str(tmp_path / "c"), "--ram-budget", "64K")
    assert proc.returncode == 0, proc.stderr
    header = (tmp_path / "c" / "model_engine.h").read_text()
    arena = int(header.split("MODEL_ENGINE_ARENA_BYTES ")[1].split("u")[0])
    assert arena <= 65536
