"""Sweep a grid of MobileNet configurations: every trial a full bundle, measured the way `report` compares them.

``python -m tools sweep --out runs/sweep --arch v1,v2 --width 0.25,0.5 --size 32,48 --colour gray`` trains each
architecture x width x input size x colour mode on one dataset with one training budget, then takes every trial
through the whole build flow: quantize (int8), evaluate (float, LiteRT-ref and TFLM accuracy, TFLM arena), codegen
(the engine's static RAM) and a QEMU Cortex-M4 run (instructions per inference, firmware flash). The sweep ends
with ``report`` over all trials (table, board fit, plots, report.html in OUT/report/).

Trials run one after another in this process by default. With ``--ray`` (a local Ray) or ``--address`` (a running
Ray cluster) each trial is a Ray Tune trial: one single-process Keras training per trial, never Ray Train's
TensorflowTrainer or MultiWorkerMirroredStrategy, which do not work under Keras 3 (ray-project/ray#47464,
keras-team/keras#20585). Ray is an optional extra: ``pip install -e '.[sweep]'``.

Resuming is per stage and decided from the bundles, not from a log: a trial whose bundle has every figure for its
current .tflite is kept; one interrupted mid-training resumes from its last epoch checkpoint (tools.train); one
that was trained but not measured continues at the first missing step. The codegen and QEMU figures also record
the engine they were measured on (tinyml.firmware.engine_digest): after an engine change only those two cheap steps
are re-run, the training and evaluation kept. Re-running the same command therefore only does what is left, and
a different budget in the same OUT is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from models.bundle import ARTIFACT_FILES, META_FILE, Bundle, load_bundle
from models.errors import UserError, exit_cli
from models.mobilenet import ARCHITECTURES
from tinyml.data import FASHION_MNIST
from tinyml.firmware import engine_digest
from tools.train import CHECKPOINT_DIR, Augment, TrainConfig

SWEEP_FILE = "sweep.json"
COLOURS = {"gray": 1, "rgb": 3}
ARCH_ALIASES = {"v1": "mobilenet_v1", "v2": "mobilenet_v2", **{a: a for a in ARCHITECTURES}}
STAGES = ("train", "quantize", "evaluate", "codegen", "qemu")
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Trial:
    """One grid point."""

    architecture: str
    width: float
    size: int
    colour: str

    @property
    def name(self) -> str:
        return f"{self.architecture.replace('mobilenet_', '')}_{self.width:g}_{self.size}_{self.colour}"


@dataclass
class Budget:
    """What every trial shares: dataset, training recipe and how much is measured. Stored in sweep.json."""

    dataset: str = FASHION_MNIST
    epochs: int = 3
    batch_size: int = 64
    lr: float = 4e-3
    limit: int | None = None
    seed: int = 0
    augment: Augment = field(default_factory=Augment)
    label_smoothing: float = 0.0
    calibration: int = 300
    eval_limit: int | None = 1000
    qemu_frames: int = 2

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Budget:
        """The budget stored in sweep.json (or a Ray trial's spec). A field added since it was written takes its
        default, which is what that sweep did (e.g. ``Augment.erase`` = 0: no erasing); TypeError for a key this
        version does not know."""
        return cls(**{**data, "augment": Augment(**data.get("augment", {}))})

    def stored(self) -> dict[str, Any]:
        """As sweep.json holds it (JSON types)."""
        return json.loads(json.dumps(asdict(self)))

    def train_config(self, trial: Trial) -> TrainConfig:
        return TrainConfig(
            dataset=self.dataset,
            architecture=trial.architecture,
            width=trial.width,
            height=trial.size,
            channels=COLOURS[trial.colour],
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            limit=self.limit,
            seed=self.seed,
            augment=Augment(**asdict(self.augment)),
            label_smoothing=self.label_smoothing,
        )


def grid(archs: Sequence[str], widths: Sequence[float], sizes: Sequence[int], colours: Sequence[str]) -> list[Trial]:
    """The cross product, validated up front (one clear line for a bad value, before anything trains)."""
    from models.mobilenet import check_args

    trials = []
    for arch, width, size, colour in product(archs, widths, sizes, colours):
        if arch not in ARCH_ALIASES:
            raise UserError(f"unknown architecture {arch!r}; use v1, v2 (or {', '.join(ARCHITECTURES)})")
        if colour not in COLOURS:
            raise UserError(f"unknown colour mode {colour!r}; use {' or '.join(COLOURS)}")
        check_args(ARCH_ALIASES[arch], width, size, size, COLOURS[colour], 2, 0.1, None)
        trials.append(Trial(ARCH_ALIASES[arch], float(width), int(size), colour))
    if not trials:
        raise UserError("the grid is empty; give at least one value to --arch, --width, --size and --colour")
    return list(dict.fromkeys(trials))


# ---- one trial --------------------------------------------------------------------------------------------------
def next_stage(path: Path, budget: Budget) -> str | None:
    """The first build step the trial at ``path`` still needs (None: every figure is there for its .tflite)."""
    if (
        (path / CHECKPOINT_DIR).exists()
        or not (path / ARTIFACT_FILES["keras"]).exists()
        or not (path / META_FILE).exists()
    ):
        return "train"
    meta = load_bundle(path).meta
    tflite = path / ARTIFACT_FILES["tflite"]
    if not tflite.exists() or "tflite" not in meta.get("artifacts", {}) or "quantization" not in meta:
        return "quantize"
    model_id = meta["artifacts"]["tflite"]["sha256"]
    evaluation = meta.get("metrics", {}).get("evaluation", {})
    wanted_images = evaluation.get("images") if budget.eval_limit is None else budget.eval_limit
    if evaluation.get("tflite_sha256") != model_id or evaluation.get("images") != wanted_images:
        return "evaluate"
    engine = engine_digest()  # codegen's and QEMU's figures are of an engine too: an engine change re-measures them
    codegen = meta.get("codegen", {})
    if codegen.get("tflite_sha256") != model_id or codegen.get("engine_sha256") != engine:
        return "codegen"
    qemu = meta.get("metrics", {}).get("qemu", {})
    if qemu.get("tflite_sha256") != model_id or qemu.get("frames") != budget.qemu_frames:
        return "qemu"
    if qemu.get("engine_sha256") != engine:
        return "qemu"
    return None


def run_trial(
    out: Path, trial: Trial, budget: Budget, verbose: int | str = 0, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Take one trial through every build step it still needs; return its summary (for sweep.json)."""
    from tinyml.codegen import generate
    from tools.evaluate import evaluate_bundle
    from tools.quantize import quantize_bundle
    from tools.report import measure_qemu
    from tools.train import train_bundle

    path = out / trial.name
    started = time.monotonic()
    stage = next_stage(path, budget)
    first = stage
    if stage is None:
        return summarize(path, trial, "kept", 0.0)
    if stage == "train":
        log(f"{trial.name}: training {budget.epochs} epochs")
        train_bundle(path, budget.train_config(trial), verbose=verbose)
        stage = "quantize"
    bundle: Bundle = load_bundle(path)
    if stage == "quantize":
        log(f"{trial.name}: quantize, evaluate, codegen, QEMU")
        quantize_bundle(bundle, samples=budget.calibration, seed=budget.seed)
        stage = "evaluate"
    if stage == "evaluate":
        evaluate_bundle(bundle, limit=budget.eval_limit, seed=budget.seed)
        stage = "codegen"
    if stage == "codegen":
        generate(bundle.path)
        bundle = load_bundle(path)
        stage = "qemu"
    if stage == "qemu":
        measure_qemu(bundle, budget.qemu_frames)
    return summarize(path, trial, f"from {first}", time.monotonic() - started)


def summarize(path: Path, trial: Trial, status: str, seconds: float) -> dict[str, Any]:
    """The figures of a finished trial, read back from its bundle."""
    meta = load_bundle(path).meta
    metrics = meta["metrics"]
    evaluation = metrics["evaluation"]
    return {
        "name": trial.name,
        "trial": asdict(trial),
        "status": status,
        "seconds": round(seconds, 1),
        "bundle": str(path),
        "model_id": meta["artifacts"]["tflite"]["sha256"],
        "int8_accuracy": evaluation["int8_litert_ref"]["accuracy"],
        "float_accuracy": evaluation["float"]["accuracy"],
        "split": evaluation["split"],
        "images": evaluation["images"],
        "macs": metrics["cost"]["macs"],
        "tflm_arena_bytes": evaluation["tflm_arena_bytes"]["required"],
        "engine_ram_bytes": meta["codegen"]["arena_bytes"],
        "instructions": metrics["qemu"]["instructions_per_inference"],
        "engine_sha256": metrics["qemu"].get("engine_sha256"),
        "train_seconds": metrics["train"]["seconds_last_run"],
    }


# ---- the sweep --------------------------------------------------------------------------------------------------
class SweepLog:
    """OUT/sweep.json: the grid, the budget and each trial's summary, rewritten atomically after every trial."""

    def __init__(self, out: Path, trials: list[Trial], budget: Budget, restart: bool):
        self.path = out / SWEEP_FILE
        self.data: dict[str, Any] = {"budget": budget.stored(), "trials": {}}
        if self.path.exists() and not restart:
            old = json.loads(self.path.read_text())
            try:  # an older sweep.json lacks the fields added since: compare with their defaults filled in
                same = Budget.from_dict(old["budget"]).stored() == self.data["budget"]
            except (KeyError, TypeError):
                same = False
            if not same:
                raise UserError(
                    f"{out} holds a sweep with another budget ({SWEEP_FILE}); rerun with the same "
                    "options to resume, choose another --out, or pass --restart"
                )
            self.data["trials"] = old.get("trials", {})
        self.data["grid"] = [t.name for t in trials]
        out.mkdir(parents=True, exist_ok=True)
        self.save()

    def record(self, summary: dict[str, Any]) -> None:
        self.data["trials"][summary["name"]] = summary
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        os.replace(tmp, self.path)


def _describe(index: int, total: int, summary: dict[str, Any]) -> str:
    return (
        f"[{index}/{total}] {summary['name']}: {summary['status']}, int8 {100 * summary['int8_accuracy']:.2f}% "
        f"on {summary['images']} {summary['split']} images, {summary['macs'] / 1e6:.2f} M MACs, "
        f"{summary['instructions'] / 1e6:.2f} M instructions ({summary['seconds']:.0f} s)"
    )


def sweep_local(
    out: Path, trials: list[Trial], budget: Budget, log_file: SweepLog, verbose: int | str
) -> list[dict[str, Any]]:
    """Run the trials here, one after another."""
    results = []
    for i, trial in enumerate(trials, 1):

        def log(message: str, i: int = i) -> None:
            print(f"[{i}/{len(trials)}] {message}", flush=True)

        summary = run_trial(out, trial, budget, verbose=verbose, log=log)
        log_file.record(summary)
        print(_describe(i, len(trials), summary), flush=True)
        results.append(summary)
    return results


def _ray_trial(config: dict[str, Any]) -> None:
    """A Ray Tune function trainable: one trial, one single-process Keras training in this worker."""
    from ray import tune

    spec = config["spec"]
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(int(spec["threads"]))
    tf.config.threading.set_inter_op_parallelism_threads(int(spec["threads"]))
    budget = Budget.from_dict(spec["budget"])
    summary = run_trial(Path(spec["out"]), Trial(**spec["trial"]), budget, verbose=0, log=lambda m: None)
    tune.report(
        {
            "name": summary["name"],
            "status": summary["status"],
            "seconds": summary["seconds"],
            "int8_accuracy": summary["int8_accuracy"],
        }
    )


def init_ray(address: str | None, cpus: int | None) -> None:
    """Start a local Ray (or join the cluster at ``address``) whose workers can import this project.

    A local Ray's raylet starts its workers 15 niceness steps below the driver (Ray's ``worker_niceness``), so
    under ``nice -n 5`` on a shared machine every trial ran at nice 19, behind every other job, whatever the user
    chose. ``RAY_worker_niceness=0`` (unless the user set it) keeps the trials at the sweep's own priority.
    """
    import ray

    env = {
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
    }
    own_niceness = address is None and "RAY_worker_niceness" not in os.environ
    if own_niceness:  # read by the raylet ray.init starts, from the environment it inherits
        os.environ["RAY_worker_niceness"] = "0"
    try:
        ray.init(
            address=address,
            num_cpus=None if address else cpus,
            include_dashboard=False,
            runtime_env={"env_vars": env},
            log_to_driver=False,
            configure_logging=False,
        )
    finally:
        if own_niceness:
            del os.environ["RAY_worker_niceness"]


def sweep_ray(
    out: Path,
    trials: list[Trial],
    budget: Budget,
    log_file: SweepLog,
    address: str | None,
    cpus: int | None,
    cpus_per_trial: int,
    concurrency: int | None,
) -> list[dict[str, Any]]:
    """Run the trials as Ray Tune trials (local Ray, or the cluster at ``address``)."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise UserError(
            "Ray is not installed; install the sweep extra: pip install -e '.[sweep]' (or run the sweep without --ray)"
        ) from None
    total = len(trials)
    done: list[dict[str, Any]] = []

    by_name = {t.name: t for t in trials}

    class Progress(tune.Callback):
        """Prints each trial's start and figures as Ray reports them, and records them in sweep.json."""

        def on_trial_start(self, iteration, trials, trial, **info):
            print(f"[ray] started {trial.config['spec']['trial_name']}", flush=True)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            name = result["name"]
            summary = summarize(out / name, by_name[name], str(result["status"]), float(result["seconds"]))
            log_file.record(summary)
            done.append(summary)
            print(_describe(len(done), total, summary), flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            print(f"[ray] {trial.config['spec']['trial_name']} failed; its log is under {trial.local_path}", flush=True)

    started_here = not ray.is_initialized()
    if started_here:
        init_ray(address, cpus)
    try:
        space = [
            {
                "trial": asdict(t),
                "trial_name": t.name,
                "out": str(out.resolve()),
                "threads": cpus_per_trial,
                "budget": budget.stored(),
            }
            for t in trials
        ]
        tuner = tune.Tuner(
            tune.with_resources(_ray_trial, {"cpu": cpus_per_trial}),
            param_space={"spec": tune.grid_search(space)},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=concurrency, trial_dirname_creator=lambda t: t.config["spec"]["trial_name"]
            ),
            run_config=tune.RunConfig(
                name="ray", storage_path=str((out / "ray_results").resolve()), verbose=0, callbacks=[Progress()]
            ),
        )
        grid_results = tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    errors = [e for e in (grid_results[i].error for i in range(len(grid_results))) if e is not None]
    if errors:
        raise UserError(
            f"{len(errors)} of {total} trials failed under Ray (first: {str(errors[0]).splitlines()[-1]}); "
            f"rerun the same command to retry them, finished trials are kept"
        )
    return done


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--width {text!r} must be comma-separated numbers, e.g. 0.25,0.5") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--size {text!r} must be comma-separated pixel counts, e.g. 32,48") from None


def main(argv: Sequence[str] | None = None) -> int:
    d = Budget()
    parser = argparse.ArgumentParser(
        prog="python -m tools sweep",
        description="Train and measure a grid of MobileNet configurations (architecture x width x input size x "
        "colour mode), each trial a full bundle (quantize, evaluate, codegen, QEMU Cortex-M4 count), "
        "then write the report. Re-running the same command resumes: finished trials are kept. "
        "Example: python -m tools sweep --out runs/sweep --arch v1,v2 --width 0.25,0.5 --size 32,48 --ray",
    )
    parser.add_argument("--out", required=True, help="sweep directory: one bundle per trial, sweep.json, report/")
    parser.add_argument("--data", default=d.dataset, help=f"'{FASHION_MNIST}' (default) or an image folder")
    parser.add_argument("--arch", default="v1,v2", help="architectures, comma-separated: v1, v2 (default v1,v2)")
    parser.add_argument("--width", default="0.25,0.5", help="width multipliers, comma-separated (default 0.25,0.5)")
    parser.add_argument("--size", default="32,48", help="square input sizes in pixels, comma-separated (default 32,48)")
    parser.add_argument("--colour", "--color", default="gray", help="colour modes: gray, rgb (default gray)")
    parser.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs per trial (default {d.epochs})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"batch size (default {d.batch_size})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    parser.add_argument("--limit", type=int, help="train on a class-balanced subset of this many images")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed for every trial (default 0)")
    parser.add_argument("--flip", action="store_true", help="augment: random horizontal flips")
    parser.add_argument("--shift", type=float, default=0.0, help="augment: random shift, fraction (e.g. 0.1)")
    parser.add_argument("--zoom", type=float, default=0.0, help="augment: random zoom, fraction (e.g. 0.1)")
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing (default 0; e.g. 0.1)")
    parser.add_argument("--calibration", type=int, default=d.calibration, help="int8 calibration images (default 300)")
    parser.add_argument(
        "--eval-limit",
        type=int,
        default=d.eval_limit,
        help="test images each trial is evaluated on, class-balanced (default 1000; 0 = all)",
    )
    parser.add_argument(
        "--qemu-frames", type=int, default=d.qemu_frames, help="test frames per QEMU instruction count (default 2)"
    )
    parser.add_argument("--ray", action="store_true", help="run the trials on a local Ray (pip install -e '.[sweep]')")
    parser.add_argument(
        "--address",
        help="run the trials on the Ray cluster at this address (e.g. ray://host:10001 "
        "or auto); its nodes need this project installed",
    )
    parser.add_argument("--cpus", type=int, help="CPUs a local Ray may use (default: all)")
    parser.add_argument("--cpus-per-trial", type=int, default=1, help="CPUs (TensorFlow threads) per trial (default 1)")
    parser.add_argument("--concurrency", type=int, help="at most this many trials at once under Ray")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="forget sweep.json's budget (bundles are still reused when they match; delete OUT to retrain everything)",
    )
    args = parser.parse_args(argv)
    for option, value in (
        ("--epochs", args.epochs),
        ("--qemu-frames", args.qemu_frames),
        ("--cpus-per-trial", args.cpus_per_trial),
        ("--calibration", args.calibration),
    ):
        if value < 1:
            raise UserError(f"{option} must be >= 1, got {value}")
    trials = grid(
        [a.strip() for a in args.arch.split(",") if a.strip()],
        _floats(args.width),
        _ints(args.size),
        [c.strip() for c in args.colour.split(",") if c.strip()],
    )
    budget = Budget(
        dataset=args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        limit=args.limit,
        seed=args.seed,
        augment=Augment(args.flip, args.shift, args.zoom),
        label_smoothing=args.label_smoothing,
        calibration=args.calibration,
        eval_limit=args.eval_limit or None,
        qemu_frames=args.qemu_frames,
    )
    budget.train_config(trials[0]).resolved()  # budget errors before anything runs
    out = Path(args.out)
    log_file = SweepLog(out, trials, budget, args.restart)
    print(f"sweep of {len(trials)} trials into {out}: {', '.join(t.name for t in trials)}", flush=True)
    started = time.monotonic()
    pending = []
    for i, trial in enumerate(trials, 1):
        if next_stage(out / trial.name, budget) is None:
            summary = summarize(out / trial.name, trial, "kept", 0.0)
            log_file.record(summary)
            print(_describe(i, len(trials), summary), flush=True)
        else:
            pending.append(trial)
    if pending and (args.ray or args.address):
        sweep_ray(out, pending, budget, log_file, args.address, args.cpus, args.cpus_per_trial, args.concurrency)
    elif pending:
        sweep_local(out, pending, budget, log_file, verbose="auto" if sys.stdout.isatty() else 2)
    print(
        f"{len(trials) - len(pending)} trials kept, {len(pending)} run in {time.monotonic() - started:.0f} s; "
        f"sweep.json: {log_file.path}",
        flush=True,
    )
    from tools.report import main as report_main

    return report_main([str(out / t.name) for t in trials] + ["--out", str(out / "report")])


if __name__ == "__main__":
    exit_cli(main)
