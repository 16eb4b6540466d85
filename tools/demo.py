"""The `make demo` walk-through: MobileNet V1 vs V2 on Fashion-MNIST, from training to firmware on a Cortex-M4.

For each architecture: train -> quantize -> evaluate (float, LiteRT-ref and TFLM) -> export (the TFLM C array and
op resolver a PlatformIO board builds) -> codegen + QEMU firmware, to which `python host/stream.py` streams a
labelled test slice over the emulated UART exactly as it would to a real board -> the Edge TPU pre-check. Then
`report` answers the question users start from (which architecture, on my data, on my board) with its table,
board fit, verdict and plots, and the demo prints where every artifact is, with the wall and CPU seconds of
every step. It is a plain sequence of the calls and commands a user would make, on a training budget that
finishes in minutes on two CPU cores: the two models' pipelines run side by side, one core each, each a
``python -m tools demo --only ARCH`` child (tools/train_jobs), so each model's later steps start as soon as its
own training ends, whatever the other is doing; the report waits for both. On a terminal a status line shows both
(``V1 epoch 3/6 41% | V2 quantize``), drawn from the children's progress records, not from Keras' text.
bench/train_fashion_mnist.py runs the same build steps at full size.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Sequence

from models.bundle import load_bundle
from models.errors import Terminated, UserError, exit_cli
from tools.evaluate import evaluate_bundle
from tools.quantize import quantize_bundle
from tools.train import TrainConfig, train_bundle
from tools.train_jobs import Channel, Console, Job, wait_all

# (architecture, width, epochs, batch size): what takes each past 85 % on the device within the demo's time budget.
# Measured on all 54,000 training images (docs/benchmarks.md, "make demo"): V1 at batch 128 stayed at 83.4 % int8
# on 1,000 test images after 4 epochs and 83.7 % after 5; at batch 64, 4 epochs gave 85.1 % for less CPU than 5 at
# 128, but seed to seed 4 epochs gave 85.5-90.0 % on 200 device frames: too close to 85 %, so V1 trains 6 (it trains
# beside V2, whose 3 epochs at 128 take about as long on one core). V2 reached 85.1-85.9 % in 3 epochs at either
# size, and batch 128 costs less CPU per image.
MODELS = (("mobilenet_v1", 0.25, 6, 64), ("mobilenet_v2", 0.35, 3, 128))
LR = 4e-3  # Adam's peak (cosine decay after half an epoch of warm-up), as in bench/train_fashion_mnist.py
REPORT_BOARD = "nano33ble"  # the smallest board in the table: where V1 vs V2 is a real choice
STREAM_STOP_SECONDS = 5.0  # for stream.py to end on its own once stopped (within the demo's grace, train_jobs.Job.stop)
STREAM_SCRIPT = Path(__file__).resolve().parents[1] / "host" / "stream.py"


class Steps:
    """Wall and CPU seconds of each step, in order, and when each started and ended (monotonic clock). CPU is user
    + system of this process and of its children that have ended (stream.py and the QEMU it ran, the TFLM arena
    child), so a loaded machine's figure can be judged. ``on_event(name, "start" | "end")`` hears of each step (the
    demo's progress channel, tools/train_jobs.Channel.step)."""

    def __init__(self, on_event: Callable[[str, str], None] | None = None) -> None:
        self.times: dict[str, tuple[float, float]] = {}
        self.spans: dict[str, tuple[float, float]] = {}
        self._on_event = on_event

    @staticmethod
    def _now() -> tuple[float, float]:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.monotonic(), own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self._on_event is not None:
            self._on_event(name, "start")
        wall, cpu = self._now()
        try:
            yield
        finally:
            wall_end, cpu_end = self._now()
            self.times[name] = (wall_end - wall, cpu_end - cpu)
            self.spans[name] = (wall, wall_end)
        if self._on_event is not None:  # not on failure: the step did not end, it broke
            self._on_event(name, "end")

    def to_json(self) -> dict[str, dict[str, float]]:
        return {
            name: {"start": self.spans[name][0], "end": self.spans[name][1], "wall": wall, "cpu": cpu}
            for name, (wall, cpu) in self.times.items()
        }

    @classmethod
    def from_json(cls, data: dict[str, dict[str, float]]) -> "Steps":
        steps = cls()
        for name, step in data.items():
            steps.times[name] = (step["wall"], step["cpu"])
            steps.spans[name] = (step["start"], step["end"])
        return steps

    def line(self) -> str:
        return ", ".join(f"{name} {wall:.0f} s ({cpu:.0f} CPU s)" for name, (wall, cpu) in self.times.items())


def build_and_evaluate(
    out: Path,
    config: TrainConfig,
    samples: int = 300,
    eval_limit: int | None = None,
    restart: bool = True,
    verbose: int | str = 2,
    steps: Steps | None = None,
    on_batch: Callable[[int, int, int, int], None] | None = None,
) -> dict[str, Any]:
    """Train (in this process), quantize and evaluate one bundle at ``out``: bench/train_fashion_mnist.py's run and
    the first steps of one model's demo pipeline (:func:`run_model`).

    ``restart`` discards what is at ``out``; without it an interrupted training there resumes. ``steps`` times the
    steps (a fresh :class:`Steps` by default); ``on_batch`` is train_bundle's progress hook.
    """
    steps = steps or Steps()
    with steps("train"):
        train_bundle(out, config, restart=restart, verbose=verbose, on_batch=on_batch)
    return quantize_and_evaluate(out, f"{config.architecture} {config.width:g}", steps, samples, eval_limit)


def quantize_and_evaluate(
    out: Path, model: str, steps: Steps, samples: int = 300, eval_limit: int | None = None
) -> dict[str, Any]:
    """Quantize and evaluate the trained bundle at ``out`` (its figures land in model.json, where report reads them).

    Returns what only this run knows, for :func:`format_runs`; ``steps`` (:class:`Steps`) times these and the
    demo's later steps.
    """
    with steps("quantize"):
        quantize_bundle(out, samples=samples)
    with steps("evaluate"):
        result = evaluate_bundle(out, limit=eval_limit)
    return {
        "model": model,
        "bundle": str(out),
        "float": result["float"]["accuracy"],
        "int8": result["int8_litert_ref"]["accuracy"],
        "drop": result["int8_drop_points"],
        "images": result["images"],
        "split": result["split"],
        "ref_tflm": "identical" if result["ref_tflm_identical"] else f"{result['ref_tflm_mismatches']} differ",
        "steps": steps,
    }


def format_runs(rows: list[dict[str, Any]]) -> str:
    """One line per :func:`quantize_and_evaluate` run: accuracies, LiteRT-ref vs TFLM, and the time it took.

    The V1-vs-V2 table itself is tools/report's (format_rows), the one the project has.
    """
    return "\n".join(
        f"{r['model']}: float {100 * r['float']:.1f}%, int8 {100 * r['int8']:.1f}% (drop {r['drop']:.2f} points), "
        f"LiteRT-ref vs TFLM {r['ref_tflm']} on {r['images']} {r['split']} images; {r['steps'].line()}"
        for r in rows
    )


def run_on_qemu(bundle_dir: Path, frames: int, on_frame: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Stream ``frames`` labelled test images to the bundle's firmware on QEMU with host/stream.py; return figures.

    stream.py builds the firmware (engine code generator + arm-none-eabi-gcc), boots QEMU, checks the board's HELLO
    against the bundle and compares every answer with the CPU reference; its JSON-lines log gives the figures. QEMU
    runs with ``-icount shift=0``, so the instruction counts in the log are the exact, repeatable ones report shows:
    they are recorded as the bundle's ``metrics.qemu`` instead of booting QEMU a second time to count again.
    ``on_frame(answered, frames)`` hears how far the stream is, read from that log as it grows (the demo's status
    line; stream.py's own only shows on a terminal).
    """
    from tinyml.codegen import generate
    from tinyml.firmware import build, image_size
    from tools.report import record_qemu

    generate(bundle_dir)  # BUNDLE/codegen/: the C the firmware links; records arena and weight bytes in model.json
    log = bundle_dir / "qemu.jsonl"
    status = [] if sys.stdout.isatty() else ["--quiet"]  # the live status line only on a terminal
    cmd = [
        sys.executable,
        str(STREAM_SCRIPT),
        str(bundle_dir),
        "fashion-mnist:test",
        "--limit",
        str(frames),
        "--board",
        "qemu",
        "--headless",
        *status,
        "--log",
        str(log),
    ]
    print("$ python host/stream.py " + " ".join(cmd[2:]), flush=True)
    if _stream(cmd, log, frames, on_frame) != 0:
        raise UserError(f"streaming to the QEMU board failed (see above); the log is {log}")
    figures = stream_figures(log)
    bundle = load_bundle(bundle_dir)
    elf = build(bundle, "qemu")  # the image stream.py ran (cached: no rebuild)
    record_qemu(bundle, figures["instructions"], figures["frames"], figures["engine"], elf)
    size = image_size(elf)
    return {
        **figures,
        "elf": elf,
        "arena_bytes": bundle.meta.get("codegen", {}).get("arena_bytes"),
        "flash_bytes": size["text"] + size["data"],
        "weights_bytes": bundle.meta.get("codegen", {}).get("weights_bytes"),
    }


def _stream(cmd: list[str], log: Path, frames: int, on_frame: Callable[[int, int], None] | None) -> int:
    """Run stream.py to its end, telling ``on_frame`` the answers its log holds; its exit code. Stopped: a Ctrl-C
    at the terminal reached it too, any other stop is passed on as SIGTERM; either way it gets time to close its
    log (summary record included) before it is killed."""
    proc = subprocess.Popen(cmd)
    answered, offset = 0, 0
    try:
        while proc.poll() is None:
            if on_frame is not None and log.is_file():
                with log.open("rb") as f:  # only what the log gained since the last look
                    f.seek(offset)
                    chunk = f.read()
                whole = chunk[: chunk.rfind(b"\n") + 1]  # a record still being written is counted next time
                offset += len(whole)
                answered += whole.count(b'"type": "result"')
                on_frame(answered, frames)
            time.sleep(0.5)
    except BaseException as exc:
        if isinstance(exc, Terminated) or not isinstance(exc, KeyboardInterrupt):
            proc.terminate()
        try:
            proc.wait(STREAM_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    return proc.returncode


def stream_figures(log: Path) -> dict[str, Any]:
    """What a stream.py JSON-lines log says: frames answered, on-device accuracy, agreement with the CPU reference,
    mean instructions per inference and the board's engine (from its HELLO, in the start record)."""
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    start = next(r for r in records if r["type"] == "start")
    summary = next(r for r in reversed(records) if r["type"] == "summary")
    cycles = [r["cycles"] for r in records if r["type"] == "result"]
    if not cycles:
        raise UserError(
            f"the QEMU board answered no frame (see {log}); rebuild with python -m tools firmware "
            f"{start['bundle']} --port qemu --force"
        )
    return {
        "frames": summary["answered"],
        "accuracy": summary["accuracy"],
        "agreement": summary["agreement_exact"],
        "instructions": sum(cycles) / len(cycles),
        "engine": start["device"]["engine"],
    }


def format_board_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the QEMU Cortex-M4 runs (run_on_qemu figures, keyed by model name)."""
    head = (
        "| model | frames | on-device acc | identical to CPU reference | instructions / inference "
        "| activation RAM | firmware flash |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        q = r["qemu"]
        arena = f"{q['arena_bytes'] / 1024:.1f} KiB" if q["arena_bytes"] else "?"
        flash = f"{q['flash_bytes'] / 1024:.1f} KiB" if q["flash_bytes"] else "?"
        lines.append(
            f"| {r['model']} | {q['frames']} | {100 * (q['accuracy'] or 0):.2f}% "
            f"| {100 * (q['agreement'] or 0):.2f}% | {q['instructions'] / 1e6:.2f} M | {arena} | {flash} |"
        )
    return "\n".join(lines)


def model_label(architecture: str, width: float) -> str:
    return f"{architecture} {width:g}"


def short_name(architecture: str) -> str:
    """What the status line calls a model: mobilenet_v1 -> V1."""
    return "V" + architecture.rsplit("_v", 1)[-1]


class Status:
    """The status line's text per model, from its pipeline's channel records: ``V1 epoch 3/6 41% | V2 quantize``."""

    def __init__(self, console: Console, names: Sequence[str]) -> None:
        self._console = console
        self._texts = {name: f"{name} starting" for name in names}
        self._lock = threading.Lock()

    def update(self, name: str, record: dict[str, Any]) -> None:
        if record["type"] == "progress":
            percent = 100 * record["batch"] // max(record["batches"], 1)
            text = f"{name} epoch {record['epoch']}/{record['epochs']} {percent}%"
        elif record["type"] == "frames":
            text = f"{name} stream {record['answered']}/{record['frames']}"
        elif record["type"] == "step" and record["event"] == "start":
            text = f"{name} {record['name']}"
        elif record["type"] == "result":
            text = f"{name} done"
        else:
            return
        with self._lock:  # two channel threads: each redraw shows both models' latest
            self._texts[name] = text
            self._console.status(" | ".join(self._texts.values()))


def run_demo(
    out: Path,
    limit: int | None = None,
    epochs: int | None = None,
    eval_limit: int = 1000,
    board_frames: int = 200,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """V1 and V2 on Fashion-MNIST (``limit`` training images, all by default), ``epochs`` each (default: MODELS).

    Both pipelines start at once, each a ``python -m tools demo --only ARCH`` child on one TensorFlow thread
    (tools/train_jobs), so each model's later steps start as soon as its own training ends, beside whatever the
    other one is doing. A step that fails ends the demo with its error, the other pipeline stopped; so does a
    Ctrl-C (it reaches the children too). Returns each model's summary row, its steps' times included.
    """
    print(
        f"== {' and '.join(model_label(a, w) for a, w, _, _ in MODELS)} side by side, one core each: "
        "train -> quantize -> evaluate -> export + Edge TPU pre-check -> codegen + firmware + stream on QEMU "
        "(python -m tools demo --only ARCH)",
        flush=True,
    )
    console = Console()
    status = Status(console, [short_name(a) for a, _, _, _ in MODELS])
    jobs: list[Job] = []
    try:
        for architecture, width, default_epochs, _ in MODELS:
            argv = ["-m", "tools", "demo", "--only", architecture, "--out", str(out), "--seed", str(seed)]
            argv += ["--epochs", str(epochs or default_epochs), "--eval-limit", str(eval_limit)]
            argv += ["--board-frames", str(board_frames)] + (["--limit", str(limit)] if limit is not None else [])
            update = functools.partial(status.update, short_name(architecture))
            jobs.append(Job(model_label(architecture, width), argv, console, update))
        wait_all(jobs)
    except BaseException as exc:
        for job in jobs:
            job.stop(interrupted=isinstance(exc, KeyboardInterrupt))
        raise
    finally:
        console.close()
    rows = []
    for job in jobs:
        if job.result is None:
            raise UserError(f"{job.label}: its pipeline ended without its summary (its output is above)")
        rows.append({**job.result, "steps": Steps.from_json(job.result["steps"])})
    return rows


def run_model(
    out: Path,
    architecture: str,
    channel: Channel,
    limit: int | None = None,
    epochs: int | None = None,
    eval_limit: int = 1000,
    board_frames: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """One model's pipeline into ``out/ARCH``: train -> quantize -> evaluate -> export + Edge TPU pre-check ->
    codegen + firmware + stream on QEMU, each step announced on stdout and on ``channel``; its summary row."""
    width, default_epochs, batch = next((w, e, b) for a, w, e, b in MODELS if a == architecture)
    config = TrainConfig(
        architecture=architecture,
        width=width,
        epochs=epochs or default_epochs,
        batch_size=batch,
        lr=LR,
        seed=seed,
        limit=limit,
    )

    def announce(name: str, event: str) -> None:
        if event == "start":
            print(f"== {name}", flush=True)
        channel.step(name, event)

    # Keras' progress bar only when a person watches this command alone; under the demo, one line per epoch.
    verbose = 1 if channel.idle and sys.stdout.isatty() else 2
    row = build_and_evaluate(
        out / architecture,
        config,
        eval_limit=eval_limit,
        verbose=verbose,
        steps=Steps(announce),
        on_batch=channel.progress,
    )
    later_steps(row, board_frames, channel.frames)
    return row


def later_steps(row: dict[str, Any], board_frames: int, on_frame: Callable[[int, int], None] | None = None) -> None:
    """Export + Edge TPU pre-check, then (``board_frames`` > 0) the QEMU firmware fed by stream.py, into ``row``."""
    with row["steps"]("export + Edge TPU pre-check"):
        row.update(export_and_precheck(Path(row["bundle"])))
    if board_frames > 0:
        with row["steps"]("codegen + firmware + stream on QEMU"):
            row["qemu"] = run_on_qemu(Path(row["bundle"]), board_frames, on_frame)


def export_and_precheck(bundle_dir: Path) -> dict[str, Any]:
    """The TFLM export (C array, op resolver, board fit) and the Edge TPU pre-check of one bundle."""
    from tools.edgetpu import edgetpu
    from tools.export import export_bundle

    exported = export_bundle(bundle_dir)
    lines: list[str] = []
    section = edgetpu(bundle_dir, allow_cpu_fallback=True, precheck_only=True, echo=lines.append)
    verdict = next((line for line in lines if line.startswith("verdict: ")), "verdict: ?")
    print(
        f"   export: {exported.out_dir} ({', '.join(sorted(exported.files))}); Edge TPU pre-check {verdict}", flush=True
    )
    return {"export_dir": exported.out_dir, "edgetpu": section["precheck"], "edgetpu_verdict": verdict[9:]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools demo",
        description="MobileNet V1 vs V2 on Fashion-MNIST, the whole flow: train, quantize, "
        "evaluate, export, engine firmware on QEMU fed by host/stream.py, Edge "
        "TPU pre-check, report with plots (what `make demo` runs).",
    )
    parser.add_argument("--out", default="runs/demo", help="where the bundles and the report go (default runs/demo)")
    parser.add_argument("--limit", type=int, help="training images, class-balanced (default: all 54,000)")
    parser.add_argument("--epochs", type=int, help="training epochs per model (default: 6 for V1, 3 for V2)")
    parser.add_argument("--eval-limit", type=int, default=1000, help="test images to evaluate on (default 1000)")
    parser.add_argument(
        "--board-frames",
        type=int,
        default=200,
        help="labelled test images streamed to each model's firmware on QEMU (default 200: each costs about 0.15-0.2 s "
        "of the serial link; 0 skips)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of both trainings (default 0)")
    parser.add_argument(
        "--only",
        choices=[architecture for architecture, _, _, _ in MODELS],
        help="one model's steps alone (train to QEMU stream, no report); the demo runs one such child per model",
    )
    parser.add_argument(
        "--progress-fd",
        type=int,
        metavar="FD",
        help="with --only: write step and training-progress records (JSON lines) to this inherited file descriptor "
        "instead of a summary (the demo reads its children's this way)",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    options = (args.limit, args.epochs, args.eval_limit, args.board_frames, args.seed)
    if args.only is not None:
        channel = Channel(args.progress_fd)
        row = run_model(out, args.only, channel, *options)
        channel.send({"type": "result", "row": {**row, "steps": row["steps"].to_json()}})
        if channel.idle:
            print(format_summary([row], args.board_frames))
            print(format_artifacts([row]))
        return 0
    if args.progress_fd is not None:
        raise UserError("--progress-fd goes with --only (one model's steps); leave it out")
    whole = Steps()
    load_start = os.getloadavg()[0]
    with whole("in all"):
        rows = run_demo(out, *options)
        report_dir = out / "report"
        print(
            f"\n== report: python -m tools report {' '.join(r['bundle'] for r in rows)} --board {REPORT_BOARD} "
            f"--out {report_dir}",
            flush=True,
        )
        from tools.report import main as report_main

        with whole("report"):
            report_main([r["bundle"] for r in rows] + ["--board", REPORT_BOARD, "--out", str(report_dir)])
    timeline = write_timeline(out / "timeline.json", whole, rows)
    print()
    print(format_summary(rows, args.board_frames))
    print(f"\n{format_time(whole, rows, load_start)}")
    print(format_artifacts(rows, report_dir, timeline))
    return 0


def format_summary(rows: list[dict[str, Any]], board_frames: int) -> str:
    """The accuracy and time lines of each model, and the QEMU board table when there was a stream."""
    return format_runs(rows) + (f"\n\n{format_board_table(rows)}" if board_frames > 0 else "")


def write_timeline(path: Path, whole: Steps, rows: list[dict[str, Any]]) -> Path:
    """When each model's steps ran, in seconds since the demo started, with their wall and CPU seconds: the profile
    docs/benchmarks.md's tables come from, and the record of which step overlapped which."""
    start = whole.spans["in all"][0]

    def spans(steps: Steps) -> dict[str, dict[str, float]]:
        return {
            name: {
                "start_s": round(s - start, 3),
                "end_s": round(e - start, 3),
                "wall_s": round(e - s, 3),
                "cpu_s": round(steps.times[name][1], 3),
            }
            for name, (s, e) in steps.spans.items()
        }

    timeline = {"models": {row["model"]: spans(row["steps"]) for row in rows}, "demo": spans(whole)}
    path.write_text(json.dumps(timeline, indent=1) + "\n")
    return path


def format_time(whole: Steps, rows: list[dict[str, Any]], load_start: float) -> str:
    """The demo's total wall and CPU time, the trainings' overlap, and how busy the machine was (to judge them)."""
    wall, cpu = whole.times["in all"]
    trains = [row["steps"].times["train"] for row in rows]
    cores = os.cpu_count() or 1
    report_wall, report_cpu = whole.times["report"]
    return (
        f"time: {int(wall // 60)} min {wall % 60:02.0f} s wall, {cpu:.0f} CPU s in all ({cpu / wall:.2f} of "
        f"{cores} cores busy on average); the {len(trains)} trainings side by side "
        f"{max(w for w, _ in trains):.0f} s wall ({sum(c for _, c in trains):.0f} CPU s); "
        f"report {report_wall:.0f} s ({report_cpu:.0f} CPU s); "
        f"load average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )


def format_artifacts(rows: list[dict[str, Any]], report_dir: Path | None = None, timeline: Path | None = None) -> str:
    """Where everything the demo made is: bundles, TFLM export, engine C, firmware ELF, stream log, report."""
    lines = ["\nartifacts:"]
    for row in rows:
        bundle = Path(row["bundle"])
        lines.append(f"  {row['model']}: bundle {bundle}/ (model.json, model.keras, model_int8.tflite, labels.txt)")
        lines.append(f"    TFLM export {row['export_dir']}/, engine C {bundle / 'codegen'}/")
        if "qemu" in row:
            lines.append(f"    QEMU firmware {row['qemu']['elf']}, stream log {bundle / 'qemu.jsonl'}")
    if report_dir is not None:
        plots = ", ".join(p.name for p in sorted(report_dir.glob("*.png")))
        lines.append(
            f"  report: {report_dir / 'report.md'}, {report_dir / 'report.html'} (self-contained), "
            f"plots in {report_dir}/: {plots or 'none'}"
        )
    if timeline is not None:
        lines.append(f"  timeline (when each step ran, wall and CPU seconds): {timeline}")
    return "\n".join(lines)


if __name__ == "__main__":
    exit_cli(main)
