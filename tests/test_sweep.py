"""tools/sweep.py: a real Ray Tune sweep of full bundles, resumed per stage, and its error paths."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sys
import time

import pytest

from models.bundle import load_bundle
from models.errors import UserError
from tests.fault_counts import assert_no_orphans, check_no_traceback
from tests.tooling import PtyRun, assert_one_line_error, descendants_of, require_tool, run_tool

# pytest-xdist runs this module and tests/test_report_page.py on one worker: the two tests that start a local Ray
# never run side by side (each Ray's object store takes 30 % of the memory), and `measured` (conftest) is made once.
pytestmark = pytest.mark.xdist_group("measured")

TINY = [
    "--width",
    "0.25",
    "--size",
    "32",
    "--epochs",
    "1",
    "--limit",
    "200",
    "--eval-limit",
    "20",
    "--qemu-frames",
    "1",
    "--batch-size",
    "32",
]


def _require_ray() -> None:
    if importlib.util.find_spec("ray") is None:
        message = "ray is not installed (pip install -e '.[sweep]'; make test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.slow
@pytest.mark.qemu
def test_ray_sweep_makes_full_bundles_and_a_rerun_only_does_what_is_left(tmp_path):
    _require_ray()
    require_tool("qemu-system-arm", "sudo apt-get install -y qemu-system-arm")
    require_tool("arm-none-eabi-gcc", "sudo apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi")
    from tools.sweep import Budget, next_stage

    out = tmp_path / "sweep"
    proc = run_tool("sweep", "--out", str(out), "--arch", "v1,v2", *TINY, "--ray", "--cpus", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[ray] started v1_0.25_32_gray" in proc.stdout and "[2/2]" in proc.stdout
    log = json.loads((out / "sweep.json").read_text())
    assert sorted(log["trials"]) == ["v1_0.25_32_gray", "v2_0.25_32_gray"]
    budget = Budget(epochs=1, batch_size=32, limit=200, eval_limit=20, qemu_frames=1)
    for name, summary in log["trials"].items():
        assert summary["status"] == "from train" and next_stage(out / name, budget) is None
        bundle = load_bundle(out / name)
        metrics = bundle.meta["metrics"]
        assert metrics["evaluation"]["images"] == 20 and metrics["qemu"]["tflite_sha256"] == bundle.model_id
        assert summary["instructions"] == metrics["qemu"]["instructions_per_inference"] > 0
        assert bundle.meta["codegen"]["arena_bytes"] > 0 and metrics["evaluation"]["tflm_arena_bytes"]["total"] > 0
    assert (out / "report" / "report.html").exists() and (out / "report" / "acc_vs_macs.png").exists()

    # interrupted after codegen: the QEMU figure is missing; v1 is complete and must not be touched
    v2_meta = out / "v2_0.25_32_gray" / "model.json"
    meta = json.loads(v2_meta.read_text())
    del meta["metrics"]["qemu"]
    v2_meta.write_text(json.dumps(meta))
    v1_model = out / "v1_0.25_32_gray" / "model_int8.tflite"
    before = v1_model.stat().st_mtime_ns
    proc = run_tool("sweep", "--out", str(out), "--arch", "v1,v2", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "v1_0.25_32_gray: kept" in proc.stdout and "v2_0.25_32_gray: from qemu" in proc.stdout
    assert "training" not in proc.stdout and v1_model.stat().st_mtime_ns == before
    assert next_stage(out / "v2_0.25_32_gray", budget) is None


def _stop_ray_sweep(argv: list[str], how: str) -> tuple[int, str, set[int]]:
    """Run the sweep on a terminal and stop it once its Ray trial has started; its exit code, output and every
    process it started (Ray's GCS, raylet and workers among them)."""
    run = PtyRun(sys.executable, "-m", "tools", "sweep", *argv)
    started: set[int] = set()
    deadline = time.monotonic() + 300
    while "[ray] started v2_0.25_32_gray" not in run.text:
        assert run.proc.poll() is None and time.monotonic() < deadline, run.text[-3000:]
        started |= descendants_of(run.proc.pid)
        time.sleep(0.2)
    started |= descendants_of(run.proc.pid)
    if how == "ctrl-c":
        run.ctrl_c()
    else:
        run.signal(signal.SIGTERM, group=True)
    code = run.wait(120)
    check_no_traceback(run.text)
    return code, run.text, started


@pytest.mark.slow  # two local Rays start (no trial runs to its end)
@pytest.mark.qemu
def test_ray_sweep_stopped_by_ctrl_c_or_sigterm_keeps_finished_trials_and_runs_no_report(measured, tmp_path):
    """Ray Tune's own Ctrl-C handler ended the run as if it had finished: the sweep went on to report a half-run
    grid and ended with "no model.json". Ctrl-C on the terminal (the whole process group) and SIGTERM to the group
    stop it like the local sweep: exit 130/143, one line with what was kept and how to resume, no report, no Ray
    process left; the same command then resumes (the finished trial kept, only the other one started)."""
    _require_ray()
    _, (v1, _) = measured
    out = tmp_path / "sweep"
    shutil.copytree(v1.path, out / "v1_0.25_32_gray")  # a finished trial (V1 0.25 32x32 gray, 50 images, 2 frames)
    argv = ["--out", str(out), "--arch", "v1,v2", "--width", "0.25", "--size", "32", "--eval-limit", "50"]
    argv += ["--qemu-frames", "2", "--epochs", "1", "--limit", "200", "--batch-size", "32", "--ray", "--cpus", "2"]
    before = (out / "v1_0.25_32_gray" / "model.json").read_text()
    for how, code, word in (("ctrl-c", 130, "interrupted"), ("sigterm", 143, "terminated")):
        got, text, started = _stop_ray_sweep(argv, how)
        assert got == code, (got, text[-3000:])
        assert "[1/2] v1_0.25_32_gray: kept" in text  # never run again; the second stop is of the same command
        lines = [line.strip("^C") for line in text.splitlines() if word in line]
        assert lines == [f"{word}: 1 of 2 trials finished and kept in {out}; run the same command to resume"], text
        assert "model.json" not in text and not (out / "report").exists()
        assert len(started) >= 3  # GCS, raylet, a worker at least: all of them must be gone
        assert_no_orphans(started, timeout=20)
    assert (out / "v1_0.25_32_gray" / "model.json").read_text() == before
    assert sorted(json.loads((out / "sweep.json").read_text())["trials"]) == ["v1_0.25_32_gray"]


def test_another_budget_in_the_same_folder_and_bad_grids_are_one_line_errors(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"budget": {"epochs": 99}, "trials": {}}))
    assert_one_line_error(run_tool("sweep", "--out", str(out), *TINY), "holds a sweep with another budget")
    assert_one_line_error(run_tool("sweep", "--out", str(out), "--arch", "v3"), "unknown architecture 'v3'")
    (out / "sweep.json").write_text(json.dumps({"budget": {"augment": {"flip": True}, "colour": 3}, "trials": {}}))
    assert_one_line_error(run_tool("sweep", "--out", str(out), *TINY), "holds a sweep with another budget")
    assert_one_line_error(run_tool("sweep", "--out", str(out), "--colour", "sepia"), "unknown colour mode 'sepia'")
    assert_one_line_error(run_tool("sweep", "--out", str(out), "--size", "16"), "too small")
    assert_one_line_error(run_tool("sweep", "--out", str(out), "--width", "a,b"), "--width 'a,b'")


@pytest.mark.slow
def test_local_ray_trials_run_at_the_sweeps_own_niceness():
    """Ray's raylet would start workers 15 niceness steps down (nice 19 under `nice -n 5`), starving the trials."""
    _require_ray()
    import ray

    from tools.sweep import init_ray

    assert os.nice(0) < 19, "at nice 19 this test cannot tell Ray's default apart; run the suite at a lower one"
    init_ray(None, 1)
    try:
        worker = ray.get(ray.remote(num_cpus=1)(lambda: os.nice(0)).remote())
    finally:
        ray.shutdown()
    assert worker == os.nice(0)
    assert "RAY_worker_niceness" not in os.environ  # the driver's environment is left as it was


@pytest.mark.qemu
def test_a_resumed_sweep_re_measures_only_the_figures_of_another_engine(measured, tmp_path):
    """After an engine change the sweep re-runs codegen and QEMU, never the training or the evaluation."""
    from tinyml.firmware import engine_digest
    from tools.sweep import Budget, next_stage

    _, (v1, _) = measured
    out = tmp_path / "sweep"
    trial = shutil.copytree(v1.path, out / "v1_0.25_32_gray")  # the fixture is V1 0.25 32x32 gray, 50 images
    budget = Budget(eval_limit=50, qemu_frames=2)
    assert next_stage(trial, budget) is None
    meta = json.loads((trial / "model.json").read_text())
    meta["metrics"]["qemu"]["engine_sha256"] = "e" * 64
    (trial / "model.json").write_text(json.dumps(meta))
    assert next_stage(trial, budget) == "qemu"  # codegen's figures are still this engine's
    meta["codegen"]["engine_sha256"] = "e" * 64
    (trial / "model.json").write_text(json.dumps(meta))
    assert next_stage(trial, budget) == "codegen"
    model, keras = trial / "model_int8.tflite", trial / "model.keras"
    before = (model.stat().st_mtime_ns, keras.stat().st_mtime_ns, meta["metrics"]["evaluation"])
    args = ["--arch", "v1", "--width", "0.25", "--size", "32", "--eval-limit", "50", "--qemu-frames", "2"]
    proc = run_tool("sweep", "--out", str(out), *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "v1_0.25_32_gray: from codegen" in proc.stdout and "training" not in proc.stdout
    after = load_bundle(trial).meta
    assert (model.stat().st_mtime_ns, keras.stat().st_mtime_ns, after["metrics"]["evaluation"]) == before
    assert after["codegen"]["engine_sha256"] == after["metrics"]["qemu"]["engine_sha256"] == engine_digest()
    counted, first = after["metrics"]["qemu"]["instructions_per_inference"], v1.meta["metrics"]["qemu"]
    assert abs(counted - first["instructions_per_inference"]) < 1e-4 * counted  # in fact the same engine (icount)
    assert next_stage(trial, budget) is None and "STALE" not in proc.stdout
    assert json.loads((out / "sweep.json").read_text())["trials"]["v1_0.25_32_gray"]["engine_sha256"] == engine_digest()


def test_a_sweep_written_before_a_budget_field_existed_resumes(tmp_path):
    """sweep.json of an older version lacks the fields added since (Augment.erase): their defaults are what it did."""
    from tools.sweep import Budget, SweepLog, grid

    trials = grid(["v1"], [0.25], [32], ["gray"])
    budget = Budget(epochs=2, limit=12000)
    old = budget.stored()
    del old["augment"]["erase"], old["label_smoothing"]  # both added after the first sweeps, defaults 0
    (tmp_path / "sweep.json").write_text(json.dumps({"budget": old, "trials": {"v1_0.25_32_gray": {"kept": 1}}}))
    log = SweepLog(tmp_path, trials, budget, restart=False)
    assert log.data["trials"] == {"v1_0.25_32_gray": {"kept": 1}}  # resumed, not refused
    with pytest.raises(UserError, match="another budget"):
        SweepLog(tmp_path, trials, Budget(epochs=2, limit=12000, label_smoothing=0.1), restart=False)
