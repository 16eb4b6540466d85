"""host/stream.py end to end on the QEMU Cortex-M4 board: agreement with the CPU reference, and the faults a real
link has (board killed and restarted, bytes corrupted in transit, the port vanishing, the port never coming back).

Every fault test checks the accounting promise on the JSON-lines log: each frame sent is recorded exactly once, as
a result or as lost with a reason, and every accepted answer is byte-identical to the CPU reference (corrupt
bytes must never turn into a wrong answer).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from host.link_relay import LinkRelay
from host.results_log import read_log
from host.sources import open_source
from host.stream import stream
from models.errors import UserError
from tests.board_checks import accounted
from tests.tooling import require_tool
from tinyml.targets.serial_board import SerialBoardTarget

# pytest-xdist (`make test`): the tests that drive real processes against deadlines (a Ctrl-C on a pty, kills at
# random points, frame timeouts) run on one worker one after another, in file order, so two never compete
# (tests/test_faults.py is in the same group).
pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("timing")]

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 48


@pytest.fixture(scope="session")
def qemu_elf(bundle_v1):
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    from tinyml import firmware

    return firmware.build(bundle_v1, "qemu")


@pytest.fixture
def qemu_board(qemu_elf):
    from tinyml.local_boards import QemuBoard

    board = QemuBoard(qemu_elf)
    board.start()
    yield board
    board.stop()


def _slice(bundle, count: int = FRAMES):
    return open_source("fashion-mnist:test", bundle.labels, count=count)


def _target(url, bundle, **kwargs) -> SerialBoardTarget:
    height, width, channels = bundle.input_shape
    options = dict(
        name="qemu", hello_timeout=10.0, reconnect_s=20.0, frame_timeout=2.0, frame_bytes=height * width * channels
    )
    options.update(kwargs)
    return SerialBoardTarget(url, **options)


def _after_results(log: Path, count: int, action, timeout: float = 60.0) -> threading.Thread:
    """Run ``action`` on a thread once the log holds ``count`` results (the log is flushed per record)."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.exists() and sum(r["type"] == "result" for r in read_log(log)) >= count:
                action()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _stream_cli(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "host/stream.py", *args, "--headless", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_qemu_board_agrees_with_cpu_reference(bundle_v1, qemu_elf, tmp_path):
    """The must-show: a labelled Fashion-MNIST slice on the QEMU board and on --cpu, same answers."""
    common = (str(bundle_v1.path), "fashion-mnist:test", "--limit", str(FRAMES))
    _stream_cli(*common, "--board", "qemu", "--log", str(tmp_path / "qemu.jsonl"))
    _stream_cli(*common, "--cpu", "--log", str(tmp_path / "cpu.jsonl"))
    board, cpu = read_log(tmp_path / "qemu.jsonl"), read_log(tmp_path / "cpu.jsonl")
    board_summary, cpu_summary = board[-1], cpu[-1]
    assert board_summary["answered"] == cpu_summary["answered"] == FRAMES
    assert board_summary["agreement_top1"] == 1.0 and board_summary["agreement_exact"] == 1.0
    assert board_summary["compared_with_reference"] == FRAMES
    assert board_summary["accuracy"] == cpu_summary["accuracy"]
    assert board_summary["confusion"] == cpu_summary["confusion"]
    board_results = {r["frame"]: r["output"] for r in board if r["type"] == "result"}
    cpu_results = {r["frame"]: r["output"] for r in cpu if r["type"] == "result"}
    assert board_results == cpu_results
    assert board[0]["device"]["engine"] == "engine" and board_summary["device_ms"]["mean"] > 0


def test_native_board_agrees_with_cpu_reference(bundle_v1, tmp_path):
    require_tool("gcc")
    log = tmp_path / "native.jsonl"
    _stream_cli(
        str(bundle_v1.path), "fashion-mnist:test", "--limit", str(FRAMES), "--board", "native", "--log", str(log)
    )
    summary = read_log(log)[-1]
    assert summary["answered"] == FRAMES and summary["agreement_exact"] == 1.0


def test_board_killed_and_restarted_mid_stream(bundle_v1, qemu_board, tmp_path):
    log = tmp_path / "run.jsonl"

    def power_cycle() -> None:
        qemu_board.kill()
        time.sleep(0.5)
        qemu_board.restart()  # a new QEMU process, listening on a new port

    watcher = _after_results(log, 10, power_cycle)
    summary = stream(bundle_v1, _slice(bundle_v1), _target(lambda: qemu_board.url, bundle_v1), log_path=log)
    watcher.join()
    assert summary.reconnects >= 1 and summary.answered + summary.unanswered == FRAMES
    results, losses = accounted(log, FRAMES)
    assert losses and summary.answered == FRAMES  # the frames lost in the power cut were sent again
    assert all("link lost" in r["reason"] or "device reset" in r["reason"] for r in losses)
    reconnect_at = next(i for i, r in enumerate(read_log(log)) if r.get("kind") == "reconnected")
    assert any(i > reconnect_at for i, r in enumerate(read_log(log)) if r["type"] == "result")


def test_device_reset_on_a_link_that_stays_up(bundle_v1, qemu_board, tmp_path):
    """A board reset behind a USB-serial bridge: the port stays open and the board's boot HELLO arrives unasked."""
    log = tmp_path / "run.jsonl"
    with LinkRelay(lambda: qemu_board.url, host_side="pty") as relay:
        watcher = _after_results(log, 10, lambda: (qemu_board.kill(), qemu_board.restart()))
        summary = stream(bundle_v1, _slice(bundle_v1), _target(relay.url, bundle_v1), log_path=log)
        watcher.join()
    records = read_log(log)
    assert any(r.get("kind") == "device-reset" for r in records) and summary.reconnects == 0
    results, losses = accounted(log, FRAMES)
    assert losses and all(
        r["reason"] in ("device reset", "no answer: request or answer lost in transit")
        or r["reason"].startswith("device error")
        for r in losses
    )
    assert len(results) > 10


def test_corrupted_bytes_are_resynced_and_accounted(bundle_v1, qemu_board, tmp_path):
    log = tmp_path / "run.jsonl"
    with LinkRelay(lambda: qemu_board.url, flip_rate=3e-4, seed=7) as relay:
        summary = stream(bundle_v1, _slice(bundle_v1), _target(relay.url, bundle_v1), log_path=log)
    assert relay.flipped["to_device"] > 0 and relay.flipped["to_host"] >= 0
    results, losses = accounted(log, FRAMES)
    assert losses, "bit flips at this rate must destroy some frames"
    assert summary.resent > 0 and len(results) >= 0.9 * FRAMES
    assert summary.agreement == 1.0 and summary.exact_agreement == 1.0


def test_blackout_is_settled_by_ping_and_frames_are_sent_again(bundle_v1, qemu_board, tmp_path):
    """Bytes silently vanish for a moment (port still open): the stall PING's PONG proves the answers are gone."""
    log = tmp_path / "run.jsonl"
    with LinkRelay(lambda: qemu_board.url) as relay:
        watcher = _after_results(log, 10, lambda: relay.blackout(0.5))
        summary = stream(bundle_v1, _slice(bundle_v1), _target(relay.url, bundle_v1, frame_timeout=1.0), log_path=log)
        watcher.join()
    assert relay.dropped > 0 and summary.reconnects == 0
    results, losses = accounted(log, FRAMES)
    assert any(r["reason"] == "no answer: request or answer lost in transit" for r in losses)
    assert summary.answered == FRAMES


def test_port_vanishes_and_comes_back(bundle_v1, qemu_board, tmp_path):
    log = tmp_path / "run.jsonl"
    with LinkRelay(lambda: qemu_board.url, host_side="pty") as relay:
        watcher = _after_results(log, 10, lambda: relay.vanish(1.0))
        summary = stream(bundle_v1, _slice(bundle_v1), _target(relay.url, bundle_v1), log_path=log)
        watcher.join()
    assert summary.reconnects >= 1
    results, losses = accounted(log, FRAMES)
    assert len(results) > 10
    assert all(r["reason"] for r in losses)


def test_port_that_never_returns_stops_with_a_clear_error(bundle_v1, qemu_board, tmp_path):
    log = tmp_path / "run.jsonl"
    relay = LinkRelay(lambda: qemu_board.url, host_side="pty")
    relay.start()
    watcher = _after_results(log, 5, relay.stop)
    with pytest.raises(UserError, match=r"did not come back within 1\.5 s"):
        stream(bundle_v1, _slice(bundle_v1), _target(relay.url, bundle_v1, reconnect_s=1.5), log_path=log)
    watcher.join()
    records = read_log(log)
    accounted(log, None)
    assert "did not come back" in records[-1]["error"]


def test_board_with_other_model_is_refused_with_both_ids(bundle_v1, bundle_v2, qemu_board):
    """Old firmware still flashed: the HELLO's model id is not the bundle's."""
    with pytest.raises(UserError) as exc:
        stream(bundle_v2, _slice(bundle_v2, 4), _target(lambda: qemu_board.url, bundle_v2))
    message = str(exc.value)
    assert bundle_v1.model_id[:16] in message and bundle_v2.model_id[:16] in message
