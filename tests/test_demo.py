"""`make demo`'s pieces (tools/demo.py), on the tree's committed model (firmware/src/model/bundle), so nothing trains:

- the stream to the QEMU board is the measurement report shows: its icount figures become ``metrics.qemu``, with no
  second QEMU boot to count again;
- the TFLM arena is measured once per model: evaluate's figure is what export and the firmware step reuse;
- its output carries no TensorFlow, absl, MLIR or OpenCV log lines, the C-level ones of child processes included;
- the stream's live status line (the demo's progress indicator after training) shows only on a terminal.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from models.bundle import load_bundle
from tests.tooling import ROOT, PtyRun, require_tool
from tinyml.tflm import bundle_arena, measure_arena

COMMITTED = ROOT / "firmware" / "src" / "model" / "bundle"
# Lines the native logging of TensorFlow / XLA / MLIR / absl / oneDNN / OpenCV prints when nothing silences it.
NOISE = re.compile(
    r"absl::InitializeLog|cpu_feature_guard|oneDNN|TF-TRT|XLA service|StreamExecutor|"
    r"^[IWE]\d{4} \d\d:\d\d|tensorflow/(core|compiler)|mlir|\[ WARN:|\[ INFO:|Created TensorFlow Lite",
    re.M | re.I,
)
STATUS_LINE = r"\d+/\d+ answered"


@pytest.fixture
def committed_copy(tmp_path) -> Path:
    """A writable copy of the committed bundle (the steps record their figures in its model.json)."""
    return Path(shutil.copytree(COMMITTED, tmp_path / "bundle"))


def test_arena_is_measured_once_per_model(committed_copy):
    bundle = load_bundle(committed_copy)
    evaluation = bundle.meta["metrics"]["evaluation"]
    evaluation["tflm_arena_bytes"]["required"] = 123_456  # not what TFLM needs: shows that the record is what is used
    evaluation["tflite_sha256"] = bundle.model_id
    assert bundle_arena(bundle) == 123_456
    evaluation["tflite_sha256"] = "0" * 64  # recorded for another .tflite: measured again
    assert bundle_arena(bundle) == measure_arena(bundle.verified_artifact("tflite")) != 123_456


def _qemu_tools() -> None:
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")


@pytest.mark.qemu
def test_stream_counts_are_the_reports_qemu_figures(committed_copy, capfd):
    _qemu_tools()
    from tools.demo import run_on_qemu
    from tools.report import collect

    figures = run_on_qemu(committed_copy, frames=4)
    out, err = capfd.readouterr()
    log = [line for line in (committed_copy / "qemu.jsonl").read_text().splitlines() if '"type": "result"' in line]
    cycles = [int(re.search(r'"cycles": (\d+)', line).group(1)) for line in log]
    assert len(cycles) == figures["frames"] == 4 and figures["agreement"] == 1.0
    assert figures["instructions"] == sum(cycles) / 4 and figures["elf"].is_file()
    bundle = load_bundle(committed_copy)
    qemu = bundle.meta["metrics"]["qemu"]
    assert qemu["frames"] == 4 and qemu["instructions_per_inference"] == figures["instructions"]
    assert qemu["tflite_sha256"] == bundle.model_id and qemu["engine"] == figures["engine"] == "engine"
    row = collect(bundle)  # what `report` shows, read from model.json: no --measure-qemu run needed
    assert row.instructions == figures["instructions"] and row.engine_flash == figures["flash_bytes"] and not row.stale
    assert "--quiet" in out  # stdout is not a terminal here: no live status line ...
    assert not re.search(STATUS_LINE + r" +\d", out + err), out + err
    assert not NOISE.search(out + err), out + err  # ... and no native log lines from stream.py or QEMU


@pytest.mark.qemu
def test_stream_shows_its_status_line_on_a_terminal(committed_copy):
    _qemu_tools()
    code = (
        f"from pathlib import Path; from tools.demo import run_on_qemu; run_on_qemu(Path({str(committed_copy)!r}), 4)"
    )
    run = PtyRun(sys.executable, "-c", code)
    assert run.wait(180) == 0, run.text
    assert "--quiet" not in run.text and re.search("\r" + STATUS_LINE, run.text), run.text
    assert not NOISE.search(run.text), run.text


def _run_in_own_group(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``argv`` piped, in a session of its own, so a timeout ends its children (the demo's pipelines) too."""
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"the demo did not end within {timeout} s:\n{out[-3000:]}{err[-3000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.slow  # two tiny trainings, each model's quantize and evaluate
def test_each_models_later_steps_start_when_its_own_training_ends(tmp_path):
    """#12: the two pipelines overlap fully: the model whose training ends first starts its quantize while the other
    still trains, each model's steps run in order, and the report waits for both. Read from the recorded timeline
    (OUT/timeline.json), not timed. V2 trains 1 epoch here and V1 40, so V2 normally ends first, as in the full
    demo: the case the old order (V1's later steps first, V2's after them) got wrong.
    Piped, as in a CI log: the epoch lines come prefixed with their model, and no status line is drawn."""
    out = tmp_path / "demo"
    code = (
        "import sys; import tools.demo as demo; from models.errors import run_cli; "
        "demo.MODELS = (('mobilenet_v1', 0.25, 40, 64), ('mobilenet_v2', 0.35, 1, 128)); "
        f"sys.exit(run_cli(demo.main, ['--out', {str(out)!r}, '--limit', '1000', '--eval-limit', '50', "
        "'--board-frames', '0']))"
    )
    proc = _run_in_own_group([sys.executable, "-c", code], timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stderr == "" and not NOISE.search(proc.stdout), proc.stdout + proc.stderr
    timeline = json.loads((out / "timeline.json").read_text())
    steps = ["train", "quantize", "evaluate", "export + Edge TPU pre-check"]
    models = timeline["models"]
    for spans in models.values():
        assert list(spans) == steps
        for before, after in zip(steps, steps[1:]):
            assert spans[before]["end_s"] <= spans[after]["start_s"]
    first, second = sorted(models.values(), key=lambda spans: spans["train"]["end_s"])
    assert first["quantize"]["start_s"] < second["train"]["end_s"], timeline
    assert timeline["demo"]["report"]["start_s"] >= max(
        s["export + Edge TPU pre-check"]["end_s"] for s in (first, second)
    )
    assert "\r" not in proc.stdout and not re.search(r"V\d epoch \d+/\d+ \d+%", proc.stdout)
    assert "[mobilenet_v1 0.25] Epoch 40/40" in proc.stdout  # Keras prints no "Epoch 1/1" for V2's single epoch
    assert re.search(r"^   \[mobilenet_v2 0\.35\] \d+/\d+ - .* val_accuracy: ", proc.stdout, re.M), proc.stdout
    assert f"timeline (when each step ran, wall and CPU seconds): {out / 'timeline.json'}" in proc.stdout
    assert f"report: {out / 'report' / 'report.md'}" in proc.stdout
