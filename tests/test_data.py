"""Datasets: Fashion-MNIST IDX files and image folders (split, corrupt files, clear errors), incl. the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.errors import UserError
from tests.tooling import assert_one_line_error, run_tool
from tinyml.data import (
    FASHION_MNIST_LABELS,
    balanced_sample,
    load_fashion_mnist,
    load_image_folder,
    load_splits,
    stratified_split,
)


def write_folder(root: Path, classes: dict[str, int], size=(40, 30)) -> Path:
    """An image folder with `count` images per class, alternating png/jpg/bmp and gray/RGB; class k is bright k."""
    import cv2

    rng = np.random.default_rng(0)
    for k, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            ext = (".png", ".jpg", ".bmp")[i % 3]
            shape = size if i % 2 else (*size, 3)
            image = np.clip(rng.normal(60 + 60 * k, 5, shape), 0, 255).astype(np.uint8)
            assert cv2.imwrite(str(root / name / f"img{i}{ext}"), image)
    return root


def test_fashion_mnist_real_files():
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    assert train.images.shape == (60000, 28, 28, 1) and train.images.dtype == np.uint8
    assert test.images.shape == (10000, 28, 28, 1)
    assert train.class_counts() == [6000] * 10 and test.class_counts() == [1000] * 10
    assert test.class_names == FASHION_MNIST_LABELS


def test_fashion_mnist_missing_files_name_the_apt_package(tmp_path):
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path)


def test_image_folder_loads_every_format_and_lists_corrupt_files(tmp_path):
    root = write_folder(tmp_path / "data", {"cat": 6, "dog": 6, "owl": 6})
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "owl" / "empty.png").write_bytes(b"")
    (root / "owl" / "notes.txt").write_text("ignored: not an image extension")
    data, skipped = load_image_folder(root)
    assert data.class_names == ["cat", "dog", "owl"]
    assert data.class_counts() == [6, 6, 6]
    assert sorted(Path(p).name for p, _ in skipped) == ["broken.jpg", "empty.png"]
    assert all(img.dtype == np.uint8 and img.shape == (40, 30, 3) for img in data.images)
    # gray and colour files both decode to RGB with the class brightness
    assert abs(float(data.images[data.labels.tolist().index(2)].mean()) - 180) < 10


def test_split_is_deterministic_stratified_and_disjoint(tmp_path):
    data, _ = load_image_folder(write_folder(tmp_path / "d", {"a": 20, "b": 20}))
    tagged = data.subset(np.arange(len(data)))
    tagged.images = [np.full((2, 2, 3), i, np.uint8) for i in range(len(data))]  # tag each image with its index
    first = stratified_split(tagged, 0.2, 0.2, seed=3)
    again = stratified_split(tagged, 0.2, 0.2, seed=3)
    other = stratified_split(tagged, 0.2, 0.2, seed=4)
    ids = [[int(img[0, 0, 0]) for img in part.images] for part in first]
    assert ids == [[int(img[0, 0, 0]) for img in part.images] for part in again]
    assert ids != [[int(img[0, 0, 0]) for img in part.images] for part in other]
    assert [p.class_counts() for p in first] == [[12, 12], [4, 4], [4, 4]]
    assert len(set(ids[0]) | set(ids[1]) | set(ids[2])) == 40


def test_balanced_sample_and_limit():
    splits = load_splits("fashion_mnist", limit=500)
    assert splits.train.class_counts() == [50] * 10
    assert len(splits.test) == 100 and len(splits.val) == 100
    sample = balanced_sample(splits.train, 100, seed=1)
    assert sample.class_counts() == [10] * 10


@pytest.mark.parametrize(
    "layout,fragment",
    [
        ("missing", "does not exist"),
        ("empty", "holds no images"),
        ("one_class", "single class"),
        ("corrupt_class", "no readable image"),
    ],
)
def test_bad_folders_are_one_line_errors(tmp_path, layout, fragment):
    root = tmp_path / "data"
    if layout == "empty":
        (root / "cat").mkdir(parents=True)
    elif layout == "one_class":
        write_folder(root, {"cat": 3})
    elif layout == "corrupt_class":
        write_folder(root, {"cat": 3})
        (root / "dog").mkdir()
        (root / "dog" / "x.png").write_bytes(b"garbage")
    with pytest.raises(UserError, match=fragment):
        load_image_folder(root)
    assert_one_line_error(run_tool("data", str(root)), fragment)


def test_data_cli_reports_classes_and_skipped(tmp_path):
    root = write_folder(tmp_path / "data", {"cat": 5, "dog": 5})
    (root / "cat" / "bad.bmp").write_bytes(b"BM broken")
    proc = run_tool("data", str(root))
    assert proc.returncode == 0, proc.stderr
    assert "2 classes; train 6, val 2, test 2" in proc.stdout
    assert "bad.bmp" in proc.stderr and "skipped 1" in proc.stderr


def test_dispatcher_lists_steps_and_rejects_unknown():
    listing = run_tool()  # a listing asked for by running no step is not an error (test_misuse checks exit 0)
    for step in ("data", "train", "quantize", "evaluate", "demo"):
        assert f"  {step} " in listing.stdout
    assert "tflite_graph" not in listing.stdout  # a helper module without main() is not a step
    assert_one_line_error(run_tool("trian"), "unknown step 'trian'")
    for step in ("data", "quantize", "evaluate", "demo"):
        helped = run_tool(step, "--help")
        assert helped.returncode == 0 and "usage: python -m tools " + step in helped.stdout
