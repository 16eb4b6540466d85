"""host/stream.py on the --cpu target: labelled accuracy against an independent evaluation, image-folder
datasets, live sources dropping frames, and Ctrl-C leaving a complete log and summary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from host.results_log import check_accounted, read_log
from models.preprocess import prepare_frame
from models.reference import ReferenceModel
from tinyml.data import load_fashion_mnist

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _stream(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "host/stream.py", *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def test_cpu_labelled_slice_matches_independent_evaluation(bundle_v1, tmp_path):
    start, count = 100, 40
    log = tmp_path / "cpu.jsonl"
    result = _stream(
        str(bundle_v1.path),
        "fashion-mnist:test",
        "--start",
        str(start),
        "--limit",
        str(count),
        "--cpu",
        "--headless",
        "--log",
        str(log),
    )
    assert result.returncode == 0, result.stderr
    data = load_fashion_mnist("test")
    model = ReferenceModel(bundle_v1.artifact_path("tflite"))
    expected = [model.invoke(prepare_frame(data.images[i], bundle_v1)) for i in range(start, start + count)]
    records = read_log(log)
    assert check_accounted(records) == {"start": 1, "result": count, "summary": 1}
    results = [r for r in records if r["type"] == "result"]
    assert [r["frame"] for r in results] == [f"fashion-mnist:test#{i}" for i in range(start, start + count)]
    assert [r["output"] for r in results] == [e.tolist() for e in expected]
    accuracy = np.mean([int(np.argmax(e)) == data.labels[start + i] for i, e in enumerate(expected)])
    summary = records[-1]
    assert summary["accuracy"] == accuracy and summary["answered"] == count
    assert np.asarray(summary["confusion"]).sum() == count
    assert f"accuracy: {100 * accuracy:.2f}%" in result.stdout


def test_image_folder_test_split_is_labelled(bundle_v1, tmp_path):
    import cv2

    data = load_fashion_mnist("test")
    for i in range(60):
        folder = tmp_path / "data" / bundle_v1.labels[data.labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), data.images[i][:, :, 0])
    log = tmp_path / "folder.jsonl"
    result = _stream(
        str(bundle_v1.path),
        str(tmp_path / "data"),
        "--split",
        "test",
        "--cpu",
        "--headless",
        "--quiet",
        "--log",
        str(log),
    )
    assert result.returncode == 0, result.stderr
    records = read_log(log)
    results = [r for r in records if r["type"] == "result"]
    assert 0 < len(results) < 60  # the held-out share only
    assert all("label" in r and r["correct"] == (r["pred"] == r["label"]) for r in results)
    assert records[-1]["labelled"] == len(results)


def test_live_source_drops_frames_and_ctrl_c_keeps_the_log_complete(bundle_v1, tmp_path):
    log = tmp_path / "live.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "host/stream.py",
            str(bundle_v1.path),
            "fashion-mnist:test",
            "--realtime",
            "2000",
            "--cpu",
            "--headless",
            "--log",
            str(log),
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.exists() and len(read_log(log)) > 20):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    records = read_log(log)
    summary = records[-1]
    assert summary["type"] == "summary" and summary["interrupted"]
    counts = check_accounted(records)
    assert counts.get("result", 0) + counts.get("lost", 0) == summary["sent"]
    assert summary["dropped_at_source"] > 0  # 2000 fps offered, the loop cannot take them all
    # every frame read was sent or dropped, except at most the one waiting when Ctrl-C came
    assert summary["frames_read"] - summary["sent"] - summary["dropped_at_source"] in (0, 1)
    assert "(interrupted)" in out and "Traceback" not in err


def test_video_file_sends_every_frame_in_order(bundle_v1, tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(12):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    log = tmp_path / "video.jsonl"
    result = _stream(str(bundle_v1.path), str(path), "--cpu", "--headless", "--quiet", "--log", str(log))
    assert result.returncode == 0, result.stderr
    records = read_log(log)
    results = [r for r in records if r["type"] == "result"]
    assert [r["frame"] for r in results] == [f"video clip.avi#{i}" for i in range(12)]
    assert records[-1]["dropped_at_source"] == 0 and records[-1]["labelled"] == 0
    assert all("label" not in r for r in results)


def test_record_writes_the_overlay_video(bundle_v1, tmp_path):
    import cv2

    clip = tmp_path / "overlay.avi"
    result = _stream(
        str(bundle_v1.path),
        "fashion-mnist:test",
        "--limit",
        "15",
        "--cpu",
        "--headless",
        "--quiet",
        "--record",
        str(clip),
    )
    assert result.returncode == 0, result.stderr
    cap = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 15 and frames[0].shape[:2] == (480, 480)  # 28x28 scaled up so the text is readable
    plain = cv2.resize(load_fashion_mnist("test").images[0], (480, 480), interpolation=cv2.INTER_NEAREST)
    text_band = np.abs(frames[0][:80].mean(axis=2) - plain[:80].astype(float))
    assert (text_band > 100).sum() > 500  # the overlay text, far beyond MJPG's compression error
