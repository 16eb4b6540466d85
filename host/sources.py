"""Frame sources for host/stream.py: camera, video file, image folder, labelled dataset split.

Every source yields :class:`Frame` objects holding a uint8 RGB (or grayscale) image, so preprocessing is the
bundle's one definition (models.preprocess) whatever the origin. Sources are either *live* (a camera, or a video
played in real time: frames keep coming whether or not the link keeps up, so the stream loop takes the newest
frame and counts the ones it skipped) or *exhaustive* (dataset, folder, video file: every frame is sent, which is
what accuracy needs).

The source spec on the command line is parsed by :func:`open_source`:

    0, 1, ...                         camera by OpenCV index
    rtsp://..., http://...            network camera / stream URL
    fashion-mnist[:test|:train]       the Debian Fashion-MNIST split, labelled
    DIR                               image folder; one subfolder per class makes it a labelled dataset
                                      (--split train|val|test as tinyml.data splits it, default all)
    FILE.mp4 / .avi / .mkv / ...      video file
    FILE.png / .jpg / ...             a single image
"""

from __future__ import annotations

import abc
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from models.errors import UserError
from tinyml.data import IMAGE_EXTENSIONS as IMAGE_EXTS  # what training reads

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
STREAM_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class Frame:
    """One image from a source; ``label`` is the class index (bundle label order) for labelled sources."""

    index: int
    image: np.ndarray | None  # None only for frames a camera-mode board captured itself (listen mode)
    name: str
    label: int | None = None


class Source(abc.ABC):
    """An iterable of frames. ``live`` sources are drained through :class:`LatestFrame` by the stream loop."""

    live: bool = False
    labelled: bool = False
    description: str = "source"

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Yield frames in order; a live source yields until closed or the stream ends."""

    def __len__(self) -> int:
        """Number of frames if known, else 0."""
        return 0

    def close(self) -> None:  # noqa: B027 (a default: most sources hold nothing to release)
        """Release devices/files; safe to call twice."""


class ArraySource(Source):
    """Images held in memory, optionally labelled (dataset splits)."""

    def __init__(
        self, images: np.ndarray | list[np.ndarray], labels: np.ndarray | None, description: str, offset: int = 0
    ):
        self.images = images
        self.labels = labels
        self.offset = offset  # index of images[0] in the full split, so frame names match the dataset
        self.labelled = labels is not None
        self.description = description

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self.images)):
            label = int(self.labels[i]) if self.labels is not None else None
            yield Frame(i, self.images[i], f"{self.description}#{self.offset + i}", label)


class FileListSource(Source):
    """Image files, decoded lazily; unreadable files are reported once on stderr and skipped."""

    def __init__(self, files: list[Path], labels: list[int] | None, description: str):
        self.files = files
        self.labels = labels
        self.labelled = labels is not None
        self.description = description
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        import sys

        from tinyml.data import read_image

        index = 0
        for i, path in enumerate(self.files):
            img = read_image(path)
            if img is None:
                self.skipped.append(str(path))
                print(f"warning: skipping {path}: not a readable image", file=sys.stderr)
                continue
            yield Frame(index, img, str(path), self.labels[i] if self.labels is not None else None)
            index += 1


class VideoSource(Source):
    """A camera (index or stream URL) or a video file through OpenCV, converted to RGB."""

    def __init__(self, spec: str | int, live: bool, description: str, capture_size: tuple[int, int] | None = None):
        import cv2

        self.spec = spec
        self.live = live
        self.description = description
        self._cap: cv2.VideoCapture | None = cv2.VideoCapture(spec)
        if not self._cap.isOpened():
            what = f"camera {spec}" if isinstance(spec, int) else f"{spec}"
            raise UserError(f"cannot open {what} with OpenCV; check the index/URL/file (list cameras: ls /dev/video*)")
        if capture_size is not None and isinstance(spec, int):
            # Ask the camera for a small mode: decoding 640x480 MJPEG costs more than the rest of the host
            # pipeline together (bench/host_overhead.py); cameras without the mode keep their own.
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, capture_size[0])
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, capture_size[1])
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._frames = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not isinstance(spec, int) else 0

    def __len__(self) -> int:
        return max(self._frames, 0)

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        index = 0
        while self._cap is not None:
            ok, bgr = self._cap.read()
            if not ok:
                return
            yield Frame(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"{self.description}#{index}")
            index += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class PacedSource(Source):
    """Play an exhaustive source in real time (``fps``), making it live: frames the link cannot take are skipped."""

    live = True

    def __init__(self, inner: Source, fps: float):
        if fps <= 0:
            raise UserError(f"--fps must be > 0 to play {inner.description} in real time (got {fps:g})")
        self.inner = inner
        self.fps = fps
        self.labelled = inner.labelled
        self.description = f"{inner.description} @ {fps:g} fps"

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[Frame]:
        start = time.monotonic()
        for count, frame in enumerate(self.inner):
            due = start + count / self.fps
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield frame

    def close(self) -> None:
        self.inner.close()


class LatestFrame:
    """Reads a live source on a thread and keeps only the newest frame.

    This is how frames are dropped at the source when the link (or the device) is the bottleneck: the stream loop
    takes a frame only when it has a credit, and every frame overwritten before it was taken is counted in
    ``dropped``. Nothing queues without bound, so latency stays one frame deep.
    """

    def __init__(self, source: Source):
        self.source = source
        self.dropped = 0
        self.read = 0
        self.finished = False
        self.error: BaseException | None = None
        self._latest: Frame | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.source:
                with self._cond:
                    if self._stop:
                        break
                    if self._latest is not None:
                        self.dropped += 1
                    self._latest = frame
                    self.read += 1
                    self._cond.notify_all()
        except BaseException as exc:  # reported to the stream loop, which raises it on its own thread
            self.error = exc
        finally:
            with self._cond:
                self.finished = True
                self._cond.notify_all()

    def take(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken (waiting up to ``timeout``), or None."""
        with self._cond:
            if self._latest is None and not self.finished:
                self._cond.wait(timeout)
            frame, self._latest = self._latest, None
            return frame

    @property
    def exhausted(self) -> bool:
        with self._cond:
            return self.finished and self._latest is None

    def stop(self) -> None:
        with self._cond:
            self._stop = True
        self.source.close()
        self._thread.join(timeout=2.0)


def _map_labels(data, bundle_labels: list[str], where: str, fix: str) -> np.ndarray:
    """Dataset label indices -> the bundle's label indices (matched by name, case-insensitive)."""
    lookup = {label.lower(): i for i, label in enumerate(bundle_labels)}
    unknown = [n for n in data.class_names if n.lower() not in lookup]
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise UserError(
            f"{where} has classes ({shown}) that are not labels of the bundle ({', '.join(bundle_labels[:10])}); {fix}"
        )
    table = np.asarray([lookup[n.lower()] for n in data.class_names], np.int64)
    return table[np.asarray(data.labels, np.int64)]


def _folder_source(path: Path, bundle_labels: list[str], split: str, split_args: dict) -> Source:
    """A folder with class subfolders is a labelled dataset (``split`` as tinyml.data splits it for training with
    ``split_args`` = val_fraction/test_fraction/seed, or ``all``); a flat folder is a list of unlabelled images."""
    from tinyml import data

    if any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        if split == "all":
            dataset, skipped = data.load_image_folder(path)
        else:
            splits = data.load_splits(str(path), **split_args)
            dataset, skipped = getattr(splits, split), splits.skipped
        data.report_skipped(skipped)
        labels = _map_labels(
            dataset, bundle_labels, str(path), "rename the class folders, or stream a flat folder of unlabelled images"
        )
        return ArraySource(dataset.images, labels, f"{path}:{split}")
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise UserError(f"{path} holds no images ({', '.join(IMAGE_EXTS)}) and no class subfolders")
    return FileListSource(files, None, f"folder {path}")


def _dataset_source(spec: str, bundle_labels: list[str]) -> Source:
    from tinyml import data

    _, _, split = spec.partition(":")
    split = split or "test"
    if split not in ("train", "test"):
        raise UserError(f"unknown split {split!r} in {spec!r}; use fashion-mnist:test or fashion-mnist:train")
    dataset = data.load_fashion_mnist(split)
    labels = _map_labels(
        dataset, bundle_labels, f"fashion-mnist:{split}", "stream it to a bundle trained on Fashion-MNIST"
    )
    return ArraySource(dataset.images, labels, f"fashion-mnist:{split}")


CAMERA_MODES = ((320, 240), (640, 480), (1280, 720), (1920, 1080))  # modes UVC webcams commonly offer


def camera_capture_size(input_shape: tuple[int, int, int]) -> tuple[int, int]:
    """The smallest common camera mode that still covers the model input (no upscaling)."""
    height, width = input_shape[:2]
    for mode in CAMERA_MODES:
        if mode[0] >= width and mode[1] >= height:
            return mode
    return CAMERA_MODES[-1]


def training_split_args(bundle_meta: dict, seed: int | None = None) -> dict:
    """The val/test fractions and seed the bundle was trained with (model.json "dataset"), so ``--split test``
    streams exactly the images training held out; ``seed`` overrides."""
    recorded = bundle_meta.get("dataset", {})
    args = {k: recorded[k] for k in ("val_fraction", "test_fraction", "seed") if k in recorded}
    if seed is not None:
        args["seed"] = seed
    return args


def open_source(
    spec: str,
    bundle_labels: list[str],
    start: int = 0,
    count: int | None = None,
    realtime_fps: float | None = None,
    split: str = "all",
    split_args: dict | None = None,
    capture_size: tuple[int, int] | None = None,
) -> Source:
    """Turn the command-line source spec (see module docstring) into a Source.

    ``split`` picks a split of an image-folder dataset the way tinyml.data splits it for training
    (``split_args``: val_fraction, test_fraction, seed; see :func:`training_split_args`). ``capture_size``
    (width, height) is requested from a camera (see :func:`camera_capture_size`).
    ``start``/``count`` select a slice (labelled slices for quick checks). ``realtime_fps`` plays an exhaustive source (video, folder, dataset) at that rate as a live source; a video
    file given ``realtime_fps=0`` plays at its own frame rate.
    """
    source: Source
    if spec.isdigit():
        camera = VideoSource(int(spec), live=True, description=f"camera {spec}", capture_size=capture_size)
        return limit(camera, start, count)
    if spec.lower().startswith(STREAM_SCHEMES):
        return limit(VideoSource(spec, live=True, description=spec), start, count)
    if spec.lower().split(":")[0] in ("fashion-mnist", "fashion_mnist"):
        source = _dataset_source(spec.lower(), bundle_labels)
    else:
        path = Path(spec)
        if not path.exists():
            raise UserError(
                f"source {spec!r} is not a camera index, stream URL, dataset name or existing path; "
                "examples: 0, rtsp://cam/stream, fashion-mnist:test, images/, clip.mp4"
            )
        if path.is_dir():
            source = _folder_source(path, bundle_labels, split, split_args or {})
        elif path.suffix.lower() in VIDEO_EXTS:
            source = VideoSource(str(path), live=False, description=f"video {path.name}")
        elif path.suffix.lower() in IMAGE_EXTS:
            source = FileListSource([path], None, f"image {path.name}")
        else:
            raise UserError(
                f"{path} is neither an image ({', '.join(IMAGE_EXTS)}) nor a video ({', '.join(VIDEO_EXTS)})"
            )
    fps = getattr(source, "fps", 0.0)
    source = limit(source, start, count)
    if realtime_fps is not None:
        source = PacedSource(source, realtime_fps or fps or 30.0)
    return source


def limit(source: Source, start: int, count: int | None) -> Source:
    """Take ``count`` frames starting at ``start`` (labelled slices for quick checks)."""
    if start == 0 and count is None:
        return source
    if isinstance(source, ArraySource):
        stop = len(source.images) if count is None else start + count
        if start >= len(source.images):
            raise UserError(f"--start {start} is past the end of {source.description} ({len(source.images)} frames)")
        labels = source.labels[start:stop] if source.labels is not None else None
        return ArraySource(source.images[start:stop], labels, source.description, offset=start)
    return _Sliced(source, start, count)


class _Sliced(Source):
    def __init__(self, inner: Source, start: int, count: int | None):
        self.inner, self.start, self.count = inner, start, count
        self.live, self.labelled, self.description = inner.live, inner.labelled, inner.description

    def __len__(self) -> int:
        n = max(len(self.inner) - self.start, 0)
        return n if self.count is None else min(n, self.count)

    def __iter__(self) -> Iterator[Frame]:
        taken = 0
        for frame in self.inner:
            if frame.index < self.start:
                continue
            if self.count is not None and taken >= self.count:
                return
            yield frame
            taken += 1

    def close(self) -> None:
        self.inner.close()
