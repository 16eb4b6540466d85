"""Training: the bundle it writes, resume after being killed, generalisation of short runs, CLI errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from models.bundle import load_bundle
from models.preprocess import PreprocessSpec, preprocess_batch
from tests.tooling import assert_one_line_error, run_tool


def test_bundle_contents(bundle_v1):
    meta = load_bundle(bundle_v1.path).meta
    assert meta["schema"] == 1 and meta["architecture"] == "mobilenet_v1" and meta["width"] == 0.25
    assert meta["input"] == {"height": 32, "width": 32, "channels": 1} and meta["color_mode"] == "grayscale"
    assert meta["preprocessing"]["resize"] == "crop" and meta["preprocessing"]["range"] == [-1.0, 1.0]
    assert len(meta["labels"]) == 10
    assert (bundle_v1.path / "labels.txt").read_text().split() == meta["labels"]
    assert set(meta["artifacts"]) >= {"keras", "labels", "tflite"}
    bundle_v1.verify()  # every recorded sha256 matches the file
    assert meta["metrics"]["cost"]["macs"] > 0 and len(meta["metrics"]["train"]["history"]) == 3
    assert not (bundle_v1.path / "checkpoint").exists()


@pytest.mark.parametrize("fixture", ["bundle_v1", "bundle_v2"])
def test_short_training_generalises(request, fixture, fmnist_test_samples):
    """BatchNorm momentum 0.9: after 3 short epochs the inference-mode model is far above chance (10 %)."""
    import keras

    bundle = request.getfixturevalue(fixture)
    model = keras.models.load_model(bundle.artifact_path("keras"))
    x = preprocess_batch(fmnist_test_samples.images, PreprocessSpec.from_bundle(bundle))
    accuracy = np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == fmnist_test_samples.labels)
    assert accuracy > 0.4, accuracy
    assert bundle.meta["metrics"]["train"]["val_accuracy"] > 0.4


@pytest.mark.slow  # trains a model
def test_killed_training_resumes_at_next_epoch(tmp_path):
    out = tmp_path / "bundle"
    args = [
        sys.executable,
        "-m",
        "tools",
        "train",
        "--out",
        str(out),
        "--limit",
        "400",
        "--epochs",
        "4",
        "--batch-size",
        "32",
        "--schedule",
        "step",
        "--flip",
        "--shift",
        "0.1",
        "--zoom",
        "0.1",
        "--brightness",
        "0.1",
        "--quiet",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt = out / "checkpoint"
    deadline = time.monotonic() + 300
    while not (ckpt / "epoch-0002.keras").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "training never reached epoch 2"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The kill may land between epoch 2's rename and epoch 1's unlink: then both are there and 2 is the newest.
    assert sorted(p.name for p in ckpt.glob("epoch-*.keras"))[-1:] == ["epoch-0002.keras"]
    assert {p.name for p in ckpt.glob("epoch-*.keras")} <= {"epoch-0001.keras", "epoch-0002.keras"}
    history_before = json.loads((ckpt / "history.json").read_text())[:2]
    assert not (out / "model.json").exists()

    resumed = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at epoch 3 of 4" in resumed.stdout
    assert "Epoch 3/4" in resumed.stdout and "Epoch 1/4" not in resumed.stdout
    history = load_bundle(out).meta["metrics"]["train"]["history"]
    assert len(history) == 4 and history[:2] == history_before
    assert not ckpt.exists()

    again = run_tool("train", "--out", str(out), "--epochs", "4")
    assert_one_line_error(again, "already holds a trained model")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--width", "0"], "width multiplier must be > 0"),
        (["--width", "-1"], "width multiplier must be > 0"),
        (["--height", "31"], "too small"),
        (["--data", "/nonexistent/images"], "does not exist"),
        (["--epochs", "0"], "--epochs"),
        (["--label-smoothing", "1.5"], "--label-smoothing must be in [0, 1)"),
        (["--erase", "1.5"], "--erase is a probability in [0, 1]"),
    ],
)
def test_train_cli_bad_input(tmp_path, args, fragment):
    assert_one_line_error(run_tool("train", "--out", str(tmp_path / "b"), *args), fragment)


def test_train_cli_help_explains_options():
    proc = run_tool("train", "--help")
    assert proc.returncode == 0
    for option in ("--arch", "--width", "--height", "--channels", "--schedule", "--shift", "--restart", "--limit"):
        assert option in proc.stdout


@pytest.mark.slow  # trains a model
def test_label_smoothing_spreads_the_targets_and_trains(tmp_path):
    import keras

    from tools.train import TrainConfig, _dataset, _loss, train_bundle

    config = TrainConfig(label_smoothing=0.3).resolved()
    x, y = np.zeros((4, 32, 32, 1), np.float32), np.array([0, 3, 9, 3])
    _, targets = next(iter(_dataset(x, y, config, False, classes=10)))
    assert targets.shape == (4, 10) and np.argmax(targets, axis=1).tolist() == y.tolist()
    # Keras smooths one-hot targets to 0.73 / 0.03; the loss of predicting exactly that is its entropy
    smoothed = np.full((4, 10), 0.03, np.float32)
    smoothed[np.arange(4), y] = 0.73
    entropy = -(0.73 * np.log(0.73) + 9 * 0.03 * np.log(0.03))
    assert float(_loss(config)(targets, smoothed)) == pytest.approx(entropy, rel=1e-3)
    assert isinstance(_loss(config), keras.losses.CategoricalCrossentropy)

    bundle = train_bundle(
        tmp_path / "ls", TrainConfig(limit=200, epochs=1, batch_size=32, label_smoothing=0.1), verbose=0
    )
    assert bundle.meta["training"]["label_smoothing"] == 0.1 and bundle.meta["metrics"]["train"]["epochs"] == 1


@pytest.mark.parametrize("probability", [1.0, 0.5])
def test_random_erasing_replaces_one_rectangle_per_chosen_image(probability):
    """--erase p: each training image, with probability p, gets one rectangle of in-range noise; evaluation none."""
    from tools.train import Augment, TrainConfig, _dataset

    config = TrainConfig(batch_size=400, augment=Augment(erase=probability)).resolved()
    x, y = np.full((400, 32, 32, 1), 0.25, np.float32), np.zeros(400, np.int64)
    erased, _ = next(iter(_dataset(x, y, config, True)))
    changed = np.asarray(erased)[..., 0] != 0.25
    hit = changed.any(axis=(1, 2))
    assert abs(hit.mean() - probability) < 0.1, hit.mean()
    assert np.asarray(erased).min() >= -1.0 and np.asarray(erased).max() <= 1.0
    for mask in changed[hit]:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        assert box.mean() > 0.9  # one filled rectangle (noise equal to 0.25 only by chance)
    assert 0.02 < changed[hit].mean() < 0.35  # Keras' default patch area, 2-33 % of the image
    plain, _ = next(iter(_dataset(x, y, config, False)))
    assert np.array_equal(np.asarray(plain), x)
