"""Engine RAM and instructions, fused row-band schedules vs layer by layer (issue #11), and the per-layer plot.

For MobileNet V2 0.35 and V1 0.25 at 96x96x1, V2 0.35 at 96x96x3 (random-init, calibrated on Fashion-MNIST:
RAM and instructions depend on shapes, not on trained values) and any --tflite (e.g. the MLPerf Tiny VWW model,
read in place), each model is generated (tinyml/codegen) in the layer-by-layer schedule, the default smallest
schedule and the fastest schedule under each --budget, built for QEMU mps2-an386 (bench/engine_qemu.py's
harness: arm-none-eabi-gcc -O2, Cortex-M4 DSP paths) and run with -icount shift=0 (instructions deterministic
whatever the host load). Printed per schedule: engine RAM (activations + scratch, the generated arena), its
instructions per inference, the planner's estimate of the extra instructions, and whether every output byte
equals LiteRT-ref's. --calibrate also prints, per fused chain, the measured extra instructions (profiling hook)
against schedule.py's cost model. --plot writes the bytes in use at each layer for the first model.

    python bench/engine_memory.py --tflite ../shared/models/vww_96_int8.tflite --plot docs/engine_memory_v2.png
    python bench/engine_memory.py --models v2 --calibrate
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import engine_qemu  # noqa: E402
from models.errors import UserError, exit_cli  # noqa: E402
from models.reference import ReferenceModel  # noqa: E402
from tinyml.codegen import generate_from_tflite  # noqa: E402
from tinyml.codegen.emit import Generated  # noqa: E402
from tinyml.codegen.schedule import LAYER_BY_LAYER, chain_overhead  # noqa: E402
from tinyml.tflite_graph import load_graph  # noqa: E402

DEFAULT_MODELS = {"v2": ("mobilenet_v2", 0.35, 1), "v1": ("mobilenet_v1", 0.25, 1), "v2rgb": ("mobilenet_v2", 0.35, 3)}


@dataclass
class Run:
    schedule: str
    gen: Generated
    instructions: int
    exact: int
    checked: int
    profile: dict[int, int]


def schedule_name(budget: int | None) -> str:
    if budget is None:
        return "smallest (default)"
    return "layer by layer" if budget == LAYER_BY_LAYER else f"fastest in {budget / 1024:g} KiB"


def run_schedule(tflite: bytes, budget: int | None, images, work: Path, profile: bool) -> Run:
    gen = generate_from_tflite(tflite, work / "codegen", budget)
    frames = engine_qemu.frames_for(tflite, images)
    reference = ReferenceModel(work / "model.tflite")
    expected = [reference.invoke(frame).tobytes() for frame in frames]
    runs = engine_qemu.run_qemu(engine_qemu.build_elf(work / "codegen", frames, work / "qemu"), len(frames), 900)
    layers: dict[int, int] = {}
    if profile:
        elf = engine_qemu.build_elf(work / "codegen", frames[:1], work / "profile", profile=True)
        engine_qemu.run_qemu(elf, 1, 900, layers)
    return Run(
        schedule_name(budget),
        gen,
        max(r[0] for r in runs),
        sum(r[1] == e for r, e in zip(runs, expected)),
        len(frames),
        layers,
    )


def table(name: str, runs: list[Run]) -> list[str]:
    base = next(r for r in runs if r.schedule == "layer by layer")
    lines = []
    for r in runs:
        s = r.gen.schedule
        chains = ", ".join(f"#{c.members[0].op.index}-#{c.op.index}" for c in s.chains) or "none"
        lines.append(
            f"| {name} | {r.schedule} | {r.gen.arena_bytes / 1024:.1f} KB ({r.gen.activation_bytes} + "
            f"{r.gen.scratch_bytes} B) | {r.instructions / 1e6:.3f} M | "
            f"{100 * (r.instructions / base.instructions - 1):+.1f}% | {s.overhead / 1e6:.3f} M | "
            f"{chains} | {r.exact}/{r.checked} |"
        )
    return lines


def calibration(runs: list[Run]) -> list[str]:
    """Per fused chain: measured extra instructions (chain vs its layers layer by layer) and the model's."""
    base = next(r for r in runs if r.schedule == "layer by layer").profile
    lines = []
    for r in runs:
        for chain in r.gen.schedule.chains:
            members = [m.op.index for m in chain.members]
            measured = r.profile[members[-1]] - sum(base[i] for i in members)
            lines.append(
                f"  {r.schedule}: ops #{members[0]}-#{members[-1]}: measured +{measured} instructions, "
                f"model +{chain_overhead(chain):.0f}, {chain.simulation().copied} B moved"
            )
    return lines


def plot(path: Path, name: str, runs: list[Run], graph) -> None:
    """Bytes in use in the arena while each layer runs (a fused chain: all its layers), per schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for r in runs:
        xs, ys = [], []
        for layer, live in zip(r.gen.schedule.layers, r.gen.schedule.plan.live):
            members = getattr(layer, "members", [layer])
            for m in members:
                xs.append(m.op.index)
                ys.append((live + r.gen.scratch_bytes) / 1024)
        ax.step(xs, ys, where="mid", label=f"{r.schedule}: arena {r.gen.arena_bytes / 1024:.1f} KB")
    ax.axhline(64, color="grey", linestyle=":", linewidth=1)
    ax.text(0, 65, "64 KB", color="grey", fontsize=8)
    ax.set_xlabel("operator index (a fused chain: the same bytes for all its operators)")
    ax.set_ylabel("KB in use (live tensors + row buffers + scratch)")
    ax.set_title(f"Engine RAM per layer, {name}")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Engine RAM and QEMU instructions, fused vs layer by layer.")
    parser.add_argument("--models", default="v2,v1,v2rgb", help="random-init models: v2, v1, v2rgb (default all)")
    parser.add_argument("--tflite", action="append", default=[], help="also a bare int8 .tflite (repeatable)")
    parser.add_argument("--budget", action="append", default=[], help="also the fastest schedule in this RAM, e.g. 64K")
    parser.add_argument("--images", type=int, default=3, help="images per build checked against LiteRT-ref")
    parser.add_argument("--calibrate", action="store_true", help="profile per layer and print the cost model's fit")
    parser.add_argument("--plot", type=Path, help="PNG of the bytes in use per layer for the first model")
    args = parser.parse_args(argv)
    from tinyml.data import balanced_sample, load_fashion_mnist
    from tools.codegen import parse_bytes

    budgets = [LAYER_BY_LAYER, None, *(parse_bytes(b) for b in args.budget)]
    for t in args.tflite:
        if not Path(t).is_file():
            raise UserError(f"{t} does not exist; pass an int8 .tflite file to --tflite")
    images = balanced_sample(load_fashion_mnist("test"), args.images, seed=5).images
    train = balanced_sample(load_fashion_mnist("train"), 64, seed=0).images
    models = []
    for key in (k for k in args.models.split(",") if k):
        if key not in DEFAULT_MODELS:
            raise UserError(f"--models: unknown model {key!r}; choose from {', '.join(DEFAULT_MODELS)}")
        arch, width, channels = DEFAULT_MODELS[key]
        print(f"building {key} ...", file=sys.stderr)
        models.append(
            (
                f"{arch[-2:].upper()} {width:g} 96x96x{channels}",
                engine_qemu.random_init_tflite(arch, width, 96, channels, train),
            )
        )
    models += [(Path(t).stem, Path(t).read_bytes()) for t in args.tflite]
    work_root = Path(tempfile.mkdtemp(prefix="engine_memory_"))
    lines = [
        "| model | schedule | engine RAM (activations + scratch) | QEMU instructions | vs layer by layer | "
        "planner's estimate of the extra | fused chains (ops) | bit-exact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    try:
        for i, (name, tflite) in enumerate(models):
            runs = []
            for k, budget in enumerate(budgets):
                work = work_root / f"m{i}_{k}"
                work.mkdir(parents=True)
                (work / "model.tflite").write_bytes(tflite)
                print(f"measuring {name}, {schedule_name(budget)} ...", file=sys.stderr)
                try:
                    runs.append(run_schedule(tflite, budget, images, work, args.calibrate))
                except UserError as exc:
                    notes.append(f"* {name}, {schedule_name(budget)}: {exc}")
            lines += table(name, runs)
            if args.calibrate:
                notes += [f"* {name} cost model:", *calibration(runs)]
            if args.plot and i == 0:
                plot(args.plot, name, runs[:2], load_graph(tflite))
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    print("\n".join(lines + [""] + notes))
    return 0


if __name__ == "__main__":
    exit_cli(main)
