"""Datasets for training, calibration and evaluation: Fashion-MNIST (Debian IDX files) and image folders.

Images stay raw (uint8, RGB order, their own size) here; turning them into model inputs is the job of
models.preprocess, so the same decoding is used for training, calibration, evaluation and the host.

Image folder layout: ``DATA/<class name>/*.{jpg,jpeg,png,bmp}``, one subfolder per class (sorted names give the
label order). Unreadable files are listed and skipped, never silently dropped. The train/val/test split is
stratified per class and seeded, so the same folder and seed always give the same split.

``python -m tools data DATASET`` prints what a dataset holds (classes, split sizes, skipped files).
"""

from __future__ import annotations

import gzip
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.errors import UserError

FASHION_MNIST = "fashion_mnist"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_LABELS = [
    "t-shirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # what OpenCV decodes
APT_HINT = "sudo apt-get install dataset-fashion-mnist"


@dataclass
class Dataset:
    """Raw images (uint8 HxWxC, RGB, sizes may differ) with integer labels into ``class_names``."""

    images: list[np.ndarray] | np.ndarray
    labels: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> "Dataset":
        images = self.images[indices] if isinstance(self.images, np.ndarray) else [self.images[i] for i in indices]
        return Dataset(images, self.labels[indices], self.class_names)

    def class_counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=len(self.class_names)).tolist()


@dataclass
class Splits:
    """A dataset split three ways, plus the files that could not be read (path, reason)."""

    train: Dataset
    val: Dataset
    test: Dataset
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names


# ---- Fashion-MNIST --------------------------------------------------------------------------------
def _read_idx(path: Path, magic: int) -> np.ndarray:
    if not path.exists():
        raise UserError(f"Fashion-MNIST file {path} is missing; install it with: {APT_HINT}")
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3] if len(data) >= 4 else 0
    header = 4 + 4 * ndim
    if len(data) < header or struct.unpack(">I", data[:4])[0] != magic:
        raise UserError(f"{path} is not an IDX file (bad magic); reinstall it with: {APT_HINT}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(dims)):
        raise UserError(f"{path} is truncated; reinstall it with: {APT_HINT}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def load_fashion_mnist(split: str = "train", root: Path = FASHION_MNIST_DIR) -> Dataset:
    """Fashion-MNIST "train" (60000) or "test" (10000) images as uint8 (N, 28, 28, 1) with labels 0..9."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise UserError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
    images = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz", 2051)
    labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz", 2049).astype(np.int64)
    if len(images) != len(labels):
        raise UserError(f"Fashion-MNIST {split} images and labels differ in count; reinstall: {APT_HINT}")
    return Dataset(images[..., None], labels, list(FASHION_MNIST_LABELS))


# ---- image folders --------------------------------------------------------------------------------
def read_image(path: Path) -> np.ndarray | None:
    """Decode an image file to uint8 RGB (HxWx3); None when it cannot be decoded."""
    import cv2

    try:
        raw = np.fromfile(path, np.uint8)
    except OSError:
        return None
    if raw.size == 0:
        return None
    bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_image_file(path: str | Path) -> np.ndarray:
    """:func:`read_image` for a file the user named: a missing or undecodable one is a UserError."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"image {p} does not exist")
    image = read_image(p)
    if image is None:
        raise UserError(f"cannot decode {p} as an image; use {', '.join(IMAGE_EXTENSIONS)}")
    return image


def load_image_folder(root: str | Path) -> tuple[Dataset, list[tuple[str, str]]]:
    """All readable images under ``root/<class>/``; returns the dataset and the skipped (path, reason) list."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"dataset folder {root} does not exist; pass a folder with one subfolder per class")
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; pass a folder with one subfolder per class of images")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files_per_class = [
        sorted(f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS) for d in class_dirs
    ]
    class_dirs = [d for d, files in zip(class_dirs, files_per_class) if files]
    files_per_class = [files for files in files_per_class if files]
    if not class_dirs:
        raise UserError(
            f"{root} holds no images ({'/'.join(IMAGE_EXTENSIONS)}) in class subfolders; expected DATA/<class>/<image>"
        )
    if len(class_dirs) == 1:
        raise UserError(
            f"{root} has a single class ({class_dirs[0].name}); a classifier needs at least 2 class subfolders"
        )
    images: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[tuple[str, str]] = []
    for label, files in enumerate(files_per_class):
        for path in files:
            image = read_image(path)
            if image is None:
                skipped.append((str(path), "cannot be decoded (corrupt or not an image)"))
                continue
            images.append(image)
            labels.append(label)
    names = [d.name for d in class_dirs]
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(names))
    empty = [n for n, c in zip(names, counts) if c == 0]
    if empty:
        raise UserError(f"class folder(s) {', '.join(empty)} in {root} have no readable image; fix or remove them")
    return Dataset(images, np.asarray(labels, np.int64), names), skipped


def _share(count: int, fraction: float) -> int:
    """Items of a class that go to a held-out split: at least one when asked for and the class has >= 3 items."""
    if fraction <= 0:
        return 0
    return max(1 if count >= 3 else 0, int(round(count * fraction)))


def stratified_split(
    data: Dataset, val_fraction: float, test_fraction: float, seed: int
) -> tuple[Dataset, Dataset, Dataset]:
    """Seeded per-class split into train/val/test (each class contributes the same fractions)."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError(f"val ({val_fraction}) and test ({test_fraction}) fractions must be >= 0 and sum to < 1")
    rng = np.random.default_rng(seed)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for label in range(len(data.class_names)):
        idx = np.flatnonzero(data.labels == label)
        rng.shuffle(idx)
        n_val, n_test = (_share(len(idx), f) for f in (val_fraction, test_fraction))
        parts[1].extend(idx[:n_val])
        parts[2].extend(idx[n_val : n_val + n_test])
        parts[0].extend(idx[n_val + n_test :])
    return tuple(data.subset(np.sort(np.asarray(p, np.int64))) for p in parts)  # type: ignore[return-value]


def balanced_sample(data: Dataset, count: int, seed: int = 0) -> Dataset:
    """A class-balanced seeded subset of about ``count`` items (all of a class when it has fewer)."""
    if count >= len(data):
        return data
    rng = np.random.default_rng(seed)
    per_class = max(1, count // len(data.class_names))
    chosen: list[int] = []
    for label in range(len(data.class_names)):
        idx = np.flatnonzero(data.labels == label)
        chosen.extend(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    return data.subset(np.sort(np.asarray(chosen, np.int64)))


def load_splits(
    dataset: str, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0, limit: int | None = None
) -> Splits:
    """Load ``dataset`` ("fashion_mnist" or an image-folder path) as train/val/test splits.

    Fashion-MNIST keeps its official test set and takes ``val_fraction`` of its training set for validation.
    ``limit`` caps the training split to a class-balanced subset of that size (val/test to a fifth of it each),
    for quick runs.
    """
    skipped: list[tuple[str, str]]
    if dataset == FASHION_MNIST:
        train, val, _ = stratified_split(load_fashion_mnist("train"), val_fraction, 0.0, seed)
        test, skipped = load_fashion_mnist("test"), []
    else:
        data, skipped = load_image_folder(dataset)
        train, val, test = stratified_split(data, val_fraction, test_fraction, seed)
    if limit is not None:
        if limit < len(train.class_names):
            raise UserError(f"--limit {limit} is smaller than the number of classes ({len(train.class_names)})")
        train = balanced_sample(train, limit, seed)
        val = balanced_sample(val, max(len(train.class_names), limit // 5), seed)
        test = balanced_sample(test, max(len(train.class_names), limit // 5), seed)
    if len(train) == 0:
        raise UserError(
            f"dataset {dataset} leaves no training images after the split; add images or lower the fractions"
        )
    return Splits(train, val, test, skipped)


def bundle_splits(bundle, with_training_limit: bool = False) -> Splits:
    """The splits ``bundle`` (a models.bundle.Bundle) was trained on, as its model.json records them.

    ``with_training_limit`` keeps train's --limit subset (calibration draws from the training data the model saw);
    evaluation and measurements use the full recorded split.
    """
    source = bundle.meta.get("dataset")
    if not source:
        raise UserError(f"bundle {bundle.path} does not record its dataset; re-run python -m tools train")
    return load_splits(
        source["source"],
        source["val_fraction"],
        source["test_fraction"],
        source["seed"],
        source.get("limit") if with_training_limit else None,
    )


def report_skipped(skipped: list[tuple[str, str]], stream=sys.stderr) -> None:
    """Tell the user which files were left out and why (one line each)."""
    if skipped:
        print(f"warning: skipped {len(skipped)} unreadable file(s):", file=stream)
        for path, reason in skipped:
            print(f"  {path}: {reason}", file=stream)
