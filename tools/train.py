"""Train a MobileNet V1/V2 classifier and write a model bundle (model.json, model.keras, labels.txt).

Training survives being killed: after every epoch the full training state (weights, optimizer, learning-rate
schedule position, history) is checkpointed atomically into ``BUNDLE/checkpoint/``; running the same command again
resumes at the next epoch. The learning rate follows a per-step schedule (cosine decay with linear warm-up by
default) whose position lives in the optimizer's step counter, so a resumed run continues it exactly.

The network is trained with a dynamic batch dimension and its weights are then copied into the batch-1 graph that
is saved as model.keras (see models.mobilenet for why batch 1).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from models.bundle import ARTIFACT_FILES, META_FILE, Bundle
from models.errors import UserError, exit_cli
from models.mobilenet import ARCHITECTURES, build_model, check_args, count_cost
from models.preprocess import RESIZE_MODES, PreprocessSpec, preprocess_batch
from models.quiet import import_tensorflow
from tinyml.data import FASHION_MNIST, load_splits, report_skipped

CHECKPOINT_DIR = "checkpoint"
SCHEDULES = ("cosine", "constant", "step")


@dataclass
class Augment:
    """Training-time augmentation, applied to preprocessed float images (never to calibration or evaluation)."""

    flip: bool = False  # random horizontal flip (off for data where left/right matters, e.g. digits)
    shift: float = 0.0  # random translation, as a fraction of height/width
    zoom: float = 0.0  # random zoom in/out, as a fraction
    brightness: float = 0.0  # random brightness change, as a fraction of the value range
    erase: float = 0.0  # probability of random erasing: a rectangle of the image replaced by noise (Zhong et al.)

    def active(self) -> bool:
        return self.flip or self.shift > 0 or self.zoom > 0 or self.brightness > 0 or self.erase > 0


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in model.json and compared on resume."""

    dataset: str = FASHION_MNIST
    architecture: str = "mobilenet_v1"
    width: float = 0.25
    height: int | None = None  # None: 32 for Fashion-MNIST, 96 for image folders
    width_px: int | None = None  # None: same as height
    channels: int | None = None  # None: 1 for Fashion-MNIST, 3 for image folders
    resize: str = "crop"
    dropout: float = 0.1
    weights: str | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    schedule: str = "cosine"
    warmup_epochs: float = 0.5
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    limit: int | None = None
    seed: int = 0
    augment: Augment = field(default_factory=Augment)
    label_smoothing: float = 0.0  # share of each target spread over the other classes (0.1 is the V2 recipe's)

    def resolved(self) -> "TrainConfig":
        """Fill dataset-dependent defaults and check ranges (clear errors before any data is loaded)."""
        is_mnist = self.dataset == FASHION_MNIST
        height = self.height if self.height is not None else (32 if is_mnist else 96)
        out = TrainConfig(
            **{
                **asdict(self),
                "augment": Augment(**asdict(self.augment)),
                "height": height,
                "width_px": self.width_px if self.width_px is not None else height,
                "channels": self.channels if self.channels is not None else (1 if is_mnist else 3),
            }
        )
        if out.epochs < 1 or out.batch_size < 1:
            raise UserError(f"--epochs and --batch-size must be >= 1 (got {out.epochs}, {out.batch_size})")
        if not out.lr > 0:
            raise UserError(f"--lr must be > 0, got {out.lr}")
        if not 0.0 <= out.label_smoothing < 1.0:
            raise UserError(f"--label-smoothing must be in [0, 1), got {out.label_smoothing}; try 0.1")
        if not 0.0 <= out.augment.erase <= 1.0:
            raise UserError(f"--erase is a probability in [0, 1], got {out.augment.erase}; try 0.5")
        if out.schedule not in SCHEDULES:
            raise UserError(f"unknown schedule {out.schedule!r}; use one of {', '.join(SCHEDULES)}")
        return out


def _input_shape(config: TrainConfig) -> tuple[int, int, int]:
    """(height, width, channels) of a resolved() config (before it, None means "the dataset's default")."""
    if config.height is None or config.width_px is None or config.channels is None:
        raise RuntimeError("TrainConfig.resolved() first")
    return config.height, config.width_px, config.channels


def _spec(config: TrainConfig) -> PreprocessSpec:
    return PreprocessSpec(*_input_shape(config), config.resize)


def _lr_schedule(config: TrainConfig, steps_per_epoch: int):
    import keras

    total = config.epochs * steps_per_epoch
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "step":  # x0.1 at 50% and 75% of training
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            [int(total * 0.5), int(total * 0.75)], [config.lr, config.lr * 0.1, config.lr * 0.01]
        )
    warmup = min(int(config.warmup_epochs * steps_per_epoch), total - 1)
    return keras.optimizers.schedules.CosineDecay(
        config.lr * 0.1 if warmup else config.lr,
        max(1, total - warmup),
        alpha=0.01,
        warmup_target=config.lr if warmup else None,
        warmup_steps=warmup,
    )


def _augmenter(config: TrainConfig):
    import keras

    aug, seed = config.augment, config.seed
    lo, hi = _spec(config).range
    layers = []
    if aug.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if aug.shift > 0:
        layers.append(keras.layers.RandomTranslation(aug.shift, aug.shift, fill_mode="nearest", seed=seed))
    if aug.zoom > 0:
        layers.append(keras.layers.RandomZoom(aug.zoom, fill_mode="nearest", seed=seed))
    if aug.brightness > 0:
        layers.append(keras.layers.RandomBrightness(aug.brightness, value_range=(lo, hi), seed=seed))
    if aug.erase > 0:  # factor (p, p): Keras would otherwise draw each image's probability from [0, p]
        layers.append(keras.layers.RandomErasing((aug.erase, aug.erase), value_range=(lo, hi), seed=seed))
    return keras.Sequential(layers)


def _loss(config: TrainConfig):
    """Cross-entropy on integer labels, or on one-hot targets when label smoothing is on (see _dataset)."""
    import keras

    if config.label_smoothing > 0:
        return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    return "sparse_categorical_crossentropy"


def _dataset(x: np.ndarray, y: np.ndarray, config: TrainConfig, training: bool, first_epoch: int = 0, classes: int = 0):
    """Batched tf.data pipeline; a resumed run seeds its shuffle with the epoch so it does not replay epoch 1's order.

    With label smoothing the labels become one-hot vectors of ``classes`` entries (Keras smooths only those).
    """
    import tensorflow as tf

    if config.label_smoothing > 0:
        y = np.eye(classes, dtype=np.float32)[y]
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(len(x), seed=config.seed + first_epoch, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size)
    if training and config.augment.active():
        augmenter = _augmenter(config)
        ds = ds.map(lambda a, b: (augmenter(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


CHECKPOINT_NAME = re.compile(r"epoch-(\d{4})\.keras")
PARTIAL_DIR = "partial"


class _Checkpointer:
    """Atomic per-epoch checkpoints: ``epoch-NNNN.keras`` (model + optimizer) and ``history.json``.

    A checkpoint is written under ``partial/`` and renamed into place only when complete, so a kill during the save
    leaves a stray file there, never a half-written ``epoch-NNNN.keras``; resuming deletes ``partial/`` and reads
    only names that match :data:`CHECKPOINT_NAME` exactly.
    """

    def __init__(self, directory: Path, config: dict[str, Any]):
        self.dir = directory
        self.config = config

    def latest(self) -> tuple[int, Path | None, list[dict[str, float]]]:
        """(epochs done, checkpoint file, per-epoch history) of the newest complete checkpoint."""
        if not self.dir.exists():
            return 0, None, []
        saved = json.loads((self.dir / "config.json").read_text()) if (self.dir / "config.json").exists() else None
        if saved != self.config:
            raise UserError(
                f"{self.dir} holds a checkpoint of a different training configuration; "
                "re-run with the same options to resume, or pass --restart to start over"
            )
        shutil.rmtree(self.dir / PARTIAL_DIR, ignore_errors=True)  # a save the last run did not finish
        files = sorted(f for f in self.dir.iterdir() if CHECKPOINT_NAME.fullmatch(f.name))
        if not files:
            return 0, None, []
        history_path = self.dir / "history.json"
        history = json.loads(history_path.read_text()) if history_path.exists() else []
        match = CHECKPOINT_NAME.fullmatch(files[-1].name)
        assert match is not None  # files were globbed by that pattern
        epoch = int(match.group(1))
        return epoch, files[-1], history[:epoch]

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.dir / "config.json", json.dumps(self.config, indent=2))

    def save(self, model, epoch: int, history: list[dict[str, float]]) -> None:
        name = f"epoch-{epoch:04d}.keras"
        (self.dir / PARTIAL_DIR).mkdir(exist_ok=True)
        model.save(self.dir / PARTIAL_DIR / name)
        _write_atomic(self.dir / "history.json", json.dumps(history))
        os.replace(self.dir / PARTIAL_DIR / name, self.dir / name)
        for old in self.dir.iterdir():
            if CHECKPOINT_NAME.fullmatch(old.name) and old.name != name:
                old.unlink()


def training_memory_bytes(model, batch_size: int) -> int:
    """A lower bound on what fitting ``model`` needs: every layer's output kept for the backward pass plus its
    gradient (float32, per batch), and weights with their gradient and Adam's two moments."""
    activations = sum(int(np.prod(layer.output.shape[1:])) for layer in model.layers)
    return 2 * 4 * activations * batch_size + 4 * 4 * model.count_params()


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is no such file)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(model, config: TrainConfig) -> None:
    """Refuse a run that cannot fit in this machine's memory before it starts (instead of an OOM kill later)."""
    needed, available = training_memory_bytes(model, config.batch_size), available_memory_bytes()
    if available is not None and needed > available:
        gib = 1024**3
        raise UserError(
            f"training this model needs at least {needed / gib:.1f} GiB (batch {config.batch_size}, input "
            f"{config.height}x{config.width_px}, width {config.width:g}) but {available / gib:.1f} GiB "
            "are available; lower --batch-size, --height/--width-px or --width"
        )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def train_bundle(
    out: str | Path,
    config: TrainConfig | None = None,
    restart: bool = False,
    verbose: int | str = "auto",
    on_batch: Callable[[int, int, int, int], None] | None = None,
) -> Bundle:
    """Train per ``config`` and write the bundle at ``out``; resumes from ``out/checkpoint`` when one exists.

    Args:
        out: bundle directory to create.
        config: the training run (defaults: Fashion-MNIST, V1 0.25, 32x32x1, 10 epochs).
        restart: discard an existing checkpoint or bundle at ``out`` instead of resuming / refusing.
        verbose: Keras' verbosity: "auto" (progress bar on a terminal), 0, 1 (bar) or 2 (one line per epoch).
        on_batch: called as ``on_batch(epoch, epochs, batch, batches)`` (1-based epoch, batches done) after every
            training batch, possibly from Keras' worker threads and out of order: progress for a caller that draws
            its own (the demo's status line), no Keras text parsed.
    Returns the bundle (model.json, model.keras, labels.txt written; metrics.train filled in).
    """
    config = (config or TrainConfig()).resolved()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a directory for the bundle")
    if restart:  # only what train wrote: --out may be a folder that holds other things
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
        for kind in ("keras", "tflite", "edgetpu"):
            (out / ARTIFACT_FILES[kind]).unlink(missing_ok=True)
    ckpt = _Checkpointer(out / CHECKPOINT_DIR, json.loads(json.dumps(asdict(config))))
    done, ckpt_file, history = ckpt.latest()
    if ckpt_file is None and (out / ARTIFACT_FILES["keras"]).exists():
        raise UserError(f"{out} already holds a trained model; pass --restart to train again or choose another --out")
    height, width_px, channels = _input_shape(config)
    check_args(
        config.architecture, config.width, height, width_px, channels, 2, config.dropout, config.weights
    )  # fail fast, before the dataset is read
    spec = _spec(config)
    build = functools.partial(
        build_model, config.architecture, config.width, height, width_px, channels, dropout=config.dropout
    )
    splits = load_splits(config.dataset, config.val_fraction, config.test_fraction, config.seed, config.limit)
    report_skipped(splits.skipped)
    import_tensorflow()  # after the checks above: a user mistake should not wait for TensorFlow to load
    import keras

    classes = len(splits.class_names)
    steps = -(-len(splits.train) // config.batch_size)

    keras.utils.set_random_seed(config.seed)
    if ckpt_file is not None:
        print(f"resuming at epoch {done + 1} of {config.epochs} from {ckpt_file}", flush=True)
        model = keras.models.load_model(ckpt_file)
        model.jit_compile = False  # the saved compile config does not keep it; see the compile call below
    else:
        model = build(classes=classes, weights=config.weights, batch_size=None)
    check_memory(model, config)
    if ckpt_file is None:
        model.compile(
            optimizer=keras.optimizers.Adam(_lr_schedule(config, steps)),
            loss=_loss(config),
            metrics=["accuracy"],
            # XLA ("auto") costs 5x the CPU time per image for these small models and 2x the start-up
            # (docs/benchmarks.md, "make demo phase profile"): plain TensorFlow graphs are faster here.
            jit_compile=False,
        )
        ckpt.start()
    x_train, x_val = preprocess_batch(splits.train.images, spec), preprocess_batch(splits.val.images, spec)

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            history.append({k: float(v) for k, v in (logs or {}).items()})
            ckpt.save(self.model, epoch + 1, history)

    class BatchProgress(keras.callbacks.Callback):
        # Keras may then call on_train_batch_end from its worker threads, as without this callback, instead of
        # waiting for every batch's logs (which this one does not read): on_batch must be thread-safe.
        async_safe = True

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1

        def on_train_batch_end(self, batch, logs=None):
            assert on_batch is not None
            on_batch(self.epoch, config.epochs, batch + 1, steps)

    started = time.monotonic()
    if done < config.epochs:
        model.fit(
            _dataset(x_train, splits.train.labels, config, True, done, classes),
            epochs=config.epochs,
            initial_epoch=done,
            validation_data=_dataset(x_val, splits.val.labels, config, False, 0, classes) if len(x_val) else None,
            callbacks=[EpochCheckpoint()] + ([BatchProgress()] if on_batch is not None else []),
            verbose=verbose,
            shuffle=False,
        )
    seconds = time.monotonic() - started

    export = build(classes=classes, batch_size=1)
    export.set_weights(model.get_weights())
    meta = {
        "name": out.name,
        "architecture": config.architecture,
        "width": config.width,
        **spec.to_meta(),
        "labels": splits.class_names,
        "dataset": {
            "source": config.dataset if config.dataset == FASHION_MNIST else str(Path(config.dataset).resolve()),
            "val_fraction": config.val_fraction,
            "test_fraction": config.test_fraction,
            "seed": config.seed,
            "limit": config.limit,
            "sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
            "skipped": [p for p, _ in splits.skipped],
        },
        "training": asdict(config),
    }
    for stale in (META_FILE, ARTIFACT_FILES["tflite"]):  # a retrained model invalidates later steps
        (out / stale).unlink(missing_ok=True)
    bundle = Bundle.create(out, meta)
    export.save(bundle.artifact_path("keras", required=False))
    bundle.record_artifact("keras")
    last = history[-1] if history else {}
    bundle.update(
        "metrics",
        {
            "cost": count_cost(export).to_json(),
            "train": {
                "epochs": len(history),
                "seconds_last_run": round(seconds, 1),
                "accuracy": last.get("accuracy"),
                "val_accuracy": last.get("val_accuracy"),
                "history": history,
            },
        },
    )
    bundle.save()
    shutil.rmtree(out / CHECKPOINT_DIR)
    return bundle


def main(argv: Sequence[str] | None = None) -> int:
    d = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m tools train",
        description="Train a MobileNet classifier and write a model bundle. Re-running "
        "the same command after an interruption resumes at the next epoch.",
    )
    parser.add_argument("--out", required=True, help="bundle directory to write (e.g. runs/fmnist_v1)")
    parser.add_argument(
        "--data",
        default=d.dataset,
        help=f"'{FASHION_MNIST}' (default; Debian dataset-fashion-mnist) or an image folder with one "
        "subfolder per class (jpg/png/bmp)",
    )
    parser.add_argument("--arch", choices=ARCHITECTURES, default=d.architecture, help="network (default mobilenet_v1)")
    parser.add_argument(
        "--width", type=float, default=d.width, help="width multiplier alpha, any value > 0 (default 0.25)"
    )
    parser.add_argument(
        "--height", type=int, help="input height in pixels, >= 32 (default 32 for Fashion-MNIST, 96 otherwise)"
    )
    parser.add_argument("--width-px", type=int, help="input width in pixels, >= 32 (default: same as --height)")
    parser.add_argument(
        "--channels", type=int, choices=(1, 3), help="1 = grayscale, 3 = RGB (default 1 for Fashion-MNIST, 3 otherwise)"
    )
    parser.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default=d.resize,
        help="fit images to the input: crop (centre crop, default), letterbox (pad) or stretch",
    )
    parser.add_argument("--dropout", type=float, default=d.dropout, help="dropout before the classifier (default 0.1)")
    parser.add_argument(
        "--weights",
        choices=("imagenet",),
        help="start from Keras' ImageNet weights (needs network, 3 channels, a published width/size)",
    )
    parser.add_argument("--epochs", type=int, default=d.epochs, help="training epochs (default 10)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="batch size (default 64)")
    parser.add_argument("--lr", type=float, default=d.lr, help="peak learning rate of Adam (default 0.002)")
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=d.schedule,
        help="learning-rate schedule: cosine (decay with warm-up, default), constant, or step (x0.1 at 50%% and 75%%)",
    )
    parser.add_argument(
        "--warmup-epochs", type=float, default=d.warmup_epochs, help="linear warm-up for cosine (default 0.5)"
    )
    parser.add_argument("--flip", action="store_true", help="augment: random horizontal flips")
    parser.add_argument(
        "--shift", type=float, default=0.0, help="augment: random shift, fraction of the size (e.g. 0.1)"
    )
    parser.add_argument("--zoom", type=float, default=0.0, help="augment: random zoom, fraction (e.g. 0.1)")
    parser.add_argument("--brightness", type=float, default=0.0, help="augment: random brightness, fraction (e.g. 0.2)")
    parser.add_argument(
        "--erase",
        type=float,
        default=0.0,
        help="augment: probability of erasing a random rectangle (2-33 %% of the image) with noise (e.g. 0.5)",
    )
    parser.add_argument(
        "--label-smoothing",
        type=float,
        default=d.label_smoothing,
        help="label smoothing, in [0, 1) (default 0; the MobileNet V2 recipe uses 0.1)",
    )
    parser.add_argument(
        "--val-fraction", type=float, default=d.val_fraction, help="validation share of each class (default 0.1)"
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=d.test_fraction,
        help="test share of each class, image folders only (default 0.1)",
    )
    parser.add_argument("--limit", type=int, help="train on a class-balanced subset of this many images (quick runs)")
    parser.add_argument(
        "--seed", type=int, default=d.seed, help="seed for split, initialisation and shuffling (default 0)"
    )
    parser.add_argument(
        "--restart", action="store_true", help="discard an existing checkpoint/bundle at --out and start over"
    )
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of progress bars")
    args = parser.parse_args(argv)
    config = TrainConfig(
        dataset=args.data,
        architecture=args.arch,
        width=args.width,
        height=args.height,
        width_px=args.width_px,
        channels=args.channels,
        resize=args.resize,
        dropout=args.dropout,
        weights=args.weights,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        limit=args.limit,
        seed=args.seed,
        augment=Augment(args.flip, args.shift, args.zoom, args.brightness, args.erase),
        label_smoothing=args.label_smoothing,
    )
    # Progress bars only on a terminal: in a log file or a pipe their ANSI redraws become noise.
    verbose = 2 if args.quiet or not sys.stdout.isatty() else 1
    bundle = train_bundle(args.out, config, restart=args.restart, verbose=verbose)
    train = bundle.meta["metrics"]["train"]
    cost = bundle.meta["metrics"]["cost"]
    val = train["val_accuracy"]
    print(
        f"wrote {bundle.path}: {bundle.architecture} width {config.width:g} input {bundle.input_shape}, "
        f"{cost['params']} params, {cost['macs']} MACs, "
        f"val accuracy {'-' if val is None else f'{100 * val:.2f}%'}"
    )
    return 0


if __name__ == "__main__":
    exit_cli(main)
