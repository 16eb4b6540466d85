"""tools/deploy.py: on this machine PlatformIO's platforms and toolchains are missing (its registry is
unreachable), so deploy must stop after generating the sources, with one line naming what is missing, exit 2, and
nothing changed that it did not report. The board check (HELLO + labelled self-test) runs against the real sketch
on the Arduino stand-in (firmware/ports/arduino) over a pty."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.errors import UserError
from tests.tooling import require_tool

ROOT = Path(__file__).resolve().parents[1]


def _tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the PlatformIO project (platformio.ini + firmware/, without build outputs)."""
    dest = tmp_path / "project"
    dest.mkdir()
    shutil.copy(ROOT / "platformio.ini", dest)
    shutil.copytree(ROOT / "firmware", dest / "firmware", ignore=shutil.ignore_patterns("build", "*.o"))
    return dest


def _deploy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools", "deploy", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("engine", [False, True], ids=["tflm", "engine"])
def test_without_toolchain_deploy_stops_after_the_sources(bundle_v1, project, tmp_path, engine) -> None:
    from tools.boards import get_board
    from tools.deploy import environment, missing_toolchain

    env = environment(get_board("nano33ble"), engine, project)
    if missing_toolchain(project, env) is None:
        pytest.skip(f"PlatformIO's toolchain for {env} is installed here; this test is for machines without it")
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_v1.path, bundle)
    before_project, before_bundle = _tree(project), _tree(bundle)
    run = _deploy(str(bundle), "--board", "nano33ble", "--project-dir", str(project), *(["--engine"] if engine else []))
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith(
        f"error: cannot build {env}: PlatformIO platform 'nordicnrf52' and its toolchain are not installed"
    )
    assert f"pio pkg install -d {project} -e {env}" in run.stderr
    after_project, after_bundle = _tree(project), _tree(bundle)
    changed = {
        path
        for path in before_project.keys() | after_project.keys()
        if before_project.get(path) != after_project.get(path)
    }
    model = "firmware/src/model/"
    expected = {
        model + name
        for name in (
            "model_data.cc",
            "model_data.h",
            "model_ops.h",
            "model_info.h",
            "bundle/model.json",
            "bundle/model_int8.tflite",
        )
    }
    expected |= {model + name for name in ("model_engine.c", "model_engine.h")} if engine else set()
    assert expected <= changed <= expected | {model + "bundle/labels.txt"}, changed ^ expected
    assert (
        f"wrote model_data.h, model_data.cc, model_ops.h, model_info.h and bundle/ into {project / model}" in run.stdout
    )
    assert ("wrote model_engine.h, model_engine.c (engine)" in run.stdout) == engine
    # in the bundle: the export record in model.json and the export/ folder, as reported
    bundle_changed = {
        p for p in before_bundle.keys() | after_bundle.keys() if before_bundle.get(p) != after_bundle.get(p)
    }
    assert bundle_changed == {"model.json"} | {
        f"export/{n}" for n in ("model_data.cc", "model_data.h", "model_ops.h", "model_info.h")
    }
    assert f"recorded the export in {bundle / 'model.json'}" in run.stdout
    assert bundle_v1.model_id in (project / model / "model_info.h").read_text()


def test_deploy_user_errors_are_one_line_and_change_nothing(bundle_v1, project, tmp_path) -> None:
    before = _tree(project)
    for args, message in (
        ([str(tmp_path / "absent"), "--board", "nano33ble"], "does not exist"),
        (
            [str(bundle_v1.path), "--board", "esp32cam", "--engine", "--project-dir", str(project)],
            "has no environment 'esp32cam-engine' for esp32cam with the engine",
        ),
        (
            [str(bundle_v1.path), "--board", "nano33ble", "--project-dir", str(tmp_path)],
            "platformio.ini does not exist",
        ),
        ([str(bundle_v1.path), "--board", "nano33ble", "--frames", "0"], "--frames must be at least 1"),
    ):
        run = _deploy(*args)
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and message in run.stderr, (args, run.stderr)
    assert _tree(project) == before


@pytest.fixture(scope="module")
def sketch_v1(bundle_v1) -> Path:
    require_tool("g++", "sudo apt-get install -y g++")
    from tools import firmware

    return firmware.build(bundle_v1, "arduino")


def test_board_check_passes_on_the_flashed_model(bundle_v1, sketch_v1, tmp_path) -> None:
    from host.results_log import read_log
    from tinyml.local_boards import NativeBoard
    from tools.boards import get_board
    from tools.deploy import verify

    with NativeBoard(sketch_v1) as board:
        summary = verify(bundle_v1, board.url, get_board("nano33ble"), frames=20, log_path=tmp_path / "check.jsonl")
    assert summary["answered"] == 20 and summary["agreement_exact"] == 1.0 and summary["labelled"] == 20
    assert read_log(tmp_path / "check.jsonl")[0]["device"]["model_id"] == bundle_v1.model_id


def test_board_check_refuses_a_board_running_another_model(bundle_v2, sketch_v1) -> None:
    from tinyml.local_boards import NativeBoard
    from tools.boards import get_board
    from tools.deploy import verify

    with NativeBoard(sketch_v1) as board, pytest.raises(UserError, match="model"):
        verify(bundle_v2, board.url, get_board("nano33ble"), frames=5)
