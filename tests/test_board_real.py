"""The on-device tests on a real board, flashed with this tree's firmware (``pio run -e ENV -t upload`` or
``python -m tools deploy``):

    pytest tests/test_board_real.py --board-port /dev/ttyACM0 --board-env nano33ble

Skipped without ``--board-port``. The checks are the ones the suite runs on the same sketch over a pty
(tests/board_checks.py): 200 labelled frames through host/stream.py compared with LiteRT BUILTIN_REF, and malformed
requests answered with ERRORs. The engine is exact; TFLM with optimised kernels (ESP-NN, CMSIS-NN) may round a
logit by one step, so a TFLM board must agree on every top-1 and stay within one step on every byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from models.bundle import Bundle, load_bundle
from tests.board_checks import check_fault_replies, stream_labelled
from tools.boards import Board, get_board

ROOT = Path(__file__).resolve().parents[1]
LABELLED_FRAMES = 200


@dataclass(frozen=True)
class RealBoard:
    port: str
    env: str
    board: Board
    bundle: Bundle

    @property
    def engine(self) -> bool:
        return self.env.endswith("-engine")


@pytest.fixture(scope="module")
def real_board(request: pytest.FixtureRequest) -> RealBoard:
    from platformio.project.config import ProjectConfig

    port = request.config.getoption("--board-port")
    if not port:
        pytest.skip("no --board-port: these tests need a board flashed with this tree's firmware (docs/boards.md)")
    env = request.config.getoption("--board-env")
    envs = ProjectConfig(str(ROOT / "platformio.ini")).envs()
    if env not in envs:
        pytest.fail(f"--board-env must name the environment the board was flashed with, one of: {', '.join(envs)}")
    bundle = load_bundle(request.config.getoption("--board-bundle") or ROOT / "firmware" / "src" / "model" / "bundle")
    return RealBoard(port, env, get_board(env.removesuffix("-engine")), bundle)


def test_board_runs_the_bundle(real_board: RealBoard, tmp_path) -> None:
    """HELLO names the bundle's model and the environment's runner; a short labelled self-test (tools deploy's)."""
    from host.results_log import read_log
    from tools.deploy import verify

    verify(real_board.bundle, real_board.port, real_board.board, frames=20, log_path=tmp_path / "hello.jsonl")
    device = read_log(tmp_path / "hello.jsonl")[0]["device"]
    assert device["model_id"] == real_board.bundle.model_id
    assert device["engine"].startswith("engine" if real_board.engine else "tflm")


def test_on_device_accuracy_and_fidelity(real_board: RealBoard, tmp_path) -> None:
    summary = stream_labelled(
        real_board.bundle,
        real_board.port,
        tmp_path / "run.jsonl",
        LABELLED_FRAMES,
        baud=real_board.board.baud,
        exact=real_board.engine,
    )
    print(
        f"\n{real_board.env}: accuracy {summary['accuracy']:.2%} on {LABELLED_FRAMES} test images, "
        f"exact agreement {summary['agreement_exact']:.2%}, device {summary['device_ms']['mean']:.1f} ms"
    )


def test_on_device_faults(real_board: RealBoard) -> None:
    check_fault_replies(real_board.bundle, real_board.port, baud=real_board.board.baud)
