"""Own int8 engine on QEMU Cortex-M4 (mps2-an386): instructions per inference, RAM, flash, and DSP bit-exactness.

For MobileNet V1 0.25 and V2 0.35 at 96x96x1 int8 (or the bundles given with --bundle, or bare .tflite files
such as the MLPerf Tiny VWW model given with --tflite), this generates the
engine C (tinyml/codegen), builds tests/c/engine_harness.c in its QEMU mode with the qemu_mps2 port's startup,
linker script and board code (arm-none-eabi-gcc, Cortex-M4F, the real SMLAD/SXTB16 DSP paths), runs it under
`qemu-system-arm -M mps2-an386 -icount shift=0` on preprocessed Fashion-MNIST test images, and reports:

* instructions per inference (SysTick ticks x 40, exact with -icount shift=0), min/median/max over the images;
* RAM: the generated arena (activations + kernel scratch), plus the caller's input frame;
* flash: what the engine adds to a firmware image linked as the firmware is (--gc-sections: only the kernels the
  model calls), split into the generated model and the kernels, against the model's constant bytes (weights,
  biases, requantisation tables);
* the tflite-micro Python runtime's arena for the same .tflite (tinyml.tflm.measure_arena);
* whether every output byte equals LiteRT BUILTIN_REF (models/reference.py) for every image.

Without --bundle the models are random-init (BatchNorm statistics set from real images so activations are
alive) and calibrated on Fashion-MNIST: instruction counts depend on shapes, not on trained values.

    python bench/engine_qemu.py                 # print the figures (about 2-4 minutes)
    python bench/engine_qemu.py --record        # ... and rewrite the "Own int8 engine" section of docs/benchmarks.md
    python bench/engine_qemu.py --tflite ../shared/models/vww_96_int8.tflite --profile   # per-layer table
    python bench/engine_qemu.py --models v1,v1c3,v2 --tflite ../shared/models/vww_96_int8.tflite --profile --record
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.bundle import TensorQuant, load_bundle  # noqa: E402
from models.errors import UserError, exit_cli  # noqa: E402
from models.mobilenet import layer_macs  # noqa: E402
from models.preprocess import PreprocessSpec, preprocess_batch, quantize_input  # noqa: E402
from models.reference import ReferenceModel  # noqa: E402
from tinyml.codegen import generate_from_tflite  # noqa: E402
from tinyml.tflite_graph import load_graph  # noqa: E402
from tools.codegen import parse_bytes  # noqa: E402

PORT_DIR = ROOT / "firmware" / "ports" / "qemu_mps2"
ENGINE_DIR = ROOT / "firmware" / "lib" / "engine"
HARNESS = ROOT / "tests" / "c" / "engine_harness.c"
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
SECTION = "## Own int8 engine"
# --models keys: architecture, width, input channels (v1c3: the VWW shape, 96x96x3)
DEFAULT_MODELS = {"v1": ("mobilenet_v1", 0.25, 1), "v2": ("mobilenet_v2", 0.35, 1), "v1c3": ("mobilenet_v1", 0.25, 3)}
ANCHORS = (
    "Anchors (MobileNet V1 0.25 96x96x1, TFLM person_detect.tflite, same QEMU setup): TFLM reference kernels "
    "526 M instructions, TFLM + CMSIS-NN 22.9 M; TFLM arena 82.3 KB; text 386 KB of which the model is 300.6 KB."
)


@dataclass
class Figures:
    name: str
    macs: int
    instructions: list[int]
    arena: int
    activations: int
    scratch: int
    input_bytes: int
    constants: int
    engine_flash: int
    model_flash: int
    tflm_arena: int | None
    exact: int
    checked: int
    layers: str = ""  # the per-layer table (--profile), "" otherwise


def random_init_tflite(architecture: str, width: float, size: int, channels: int, images: np.ndarray) -> bytes:
    """A random-init MobileNet whose BatchNorm statistics come from real images (so no layer is dead), int8."""
    import keras

    from models.mobilenet import build_model
    from tools.quantize import quantize_keras_model

    model = build_model(architecture, width, size, size, channels, classes=10, dropout=0.0)
    batch = preprocess_batch(images[:64], PreprocessSpec(size, size, channels))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0  # one training-mode pass copies the batch statistics into the moving ones
    model(batch, training=True)
    for layer in norms:
        layer.momentum = 0.9
    return quantize_keras_model(model, batch, "int8")


OP_KINDS = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "dense"}


def op_macs(graph, op) -> int:
    """Multiply-accumulates of one .tflite op (models.mobilenet.layer_macs, as count_cost counts Keras layers)."""
    kind = OP_KINDS.get(op.name)
    if kind is None:
        return 0
    out = graph.tensors[op.outputs[0]]
    w = graph.tensors[op.inputs[1]].shape  # conv (O, kh, kw, I), depthwise (1, kh, kw, O), dense (O, I)
    if kind == "dense":
        return layer_macs(kind, out.size, in_channels=int(w[-1]))
    return layer_macs(kind, out.size, int(w[1]), int(w[2]), int(w[3]))


def model_macs(tflite: bytes) -> int:
    """Multiply-accumulates of the conv/depthwise/dense layers, from the graph shapes."""
    graph = load_graph(tflite)
    return sum(op_macs(graph, op) for op in graph.operators)


WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def int8_constants(tflite: bytes) -> int:
    """The model's constants in the plain int8 layout: per weighted layer its int8 weights, and per output channel an
    int32 bias, an int32 multiplier and an int8 shift. The flash bar (weights + 24 KB) is measured from this figure,
    so a kernel that stores its weights wider pays for the extra bytes out of the 24 KB."""
    graph = load_graph(tflite)
    total = 0
    for op in graph.operators:
        if op.name in WEIGHTED_OPS:
            out_c = graph.tensors[op.outputs[0]].shape[-1]
            total += graph.tensors[op.inputs[1]].size + 9 * int(out_c)
    return total


def profile_table(name: str, graph, layers: dict[int, int]) -> str:
    """Markdown table of one inference's instructions per layer, with MACs and instructions per MAC."""
    total = sum(layers.values())
    lines = [
        f"Per-layer instructions, {name} (one inference, total {total / 1e6:.2f} M):",
        "",
        "| op | kind | output | MACs | instructions | instr/MAC | share |",
        "|---|---|---|---|---|---|---|",
    ]
    for op, count in layers.items():
        o = graph.operators[op]
        macs = op_macs(graph, o)
        per_mac = f"{count / macs:.2f}" if macs else ""
        lines.append(
            f"| #{op} | {o.name} | {'x'.join(map(str, graph.tensors[o.outputs[0]].shape[1:]))} | "
            f"{macs / 1e6:.3f} M | {count / 1e6:.3f} M | {per_mac} | {100 * count / total:.1f}% |"
        )
    return "\n".join(lines)


def frames_for(tflite: bytes, images: np.ndarray) -> np.ndarray:
    x = load_graph(tflite).input_tensors()[0]
    _, h, w, c = x.shape
    quant = TensorQuant(x.dtype, float(x.quantization.scale[0]), int(x.quantization.zero_point[0]))
    return quantize_input(preprocess_batch(images, PreprocessSpec(h, w, c)), quant)


def build_elf(model_dir: Path, frames: np.ndarray, work: Path, profile: bool = False) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    rows = ",\n".join("  {" + ",".join(str(int(b)) for b in frame.tobytes()) + "}" for frame in frames)
    (work / "harness_inputs.h").write_text(
        "/* Generated by bench/engine_qemu.py: preprocessed test frames. */\n#include <stdint.h>\n"
        f"#define HARNESS_COUNT {len(frames)}u\n"
        f"static const uint8_t harness_inputs[HARNESS_COUNT][MODEL_ENGINE_INPUT_BYTES] = {{\n{rows}\n}};\n"
    )
    elf = work / "engine_bench.elf"
    sources = [HARNESS, *sorted(ENGINE_DIR.glob("*.c")), model_dir / "model_engine.c"]
    cmd = [
        "make",
        "-s",
        "-C",
        str(PORT_DIR),
        f"SRCS={' '.join(map(str, sources))}",
        f"INCLUDES={ENGINE_DIR} {model_dir} {work}",
        "DEFINES=ENGINE_HARNESS_QEMU" + (" ENG_LAYER_HOOK=harness_layer_hook" if profile else ""),
        f"OUT={elf}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"QEMU harness build failed: {result.stderr.strip().splitlines()[-1:]}")
    return elf


def run_qemu(elf: Path, count: int, timeout: float, profile: dict[int, int] | None = None) -> list[tuple[int, bytes]]:
    cmd = [
        "qemu-system-arm",
        "-M",
        "mps2-an386",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-semihosting-config",
        "enable=on,target=native",
        "-icount",
        "shift=0",
        "-kernel",
        str(elf),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in result.stdout.splitlines() if line.startswith("R ")]
    if result.returncode != 0 or "DONE" not in result.stdout or len(lines) != count:
        raise UserError(
            f"QEMU run failed (exit {result.returncode}, {len(lines)}/{count} results): {result.stderr.strip()[:200]}"
        )
    if profile is not None:
        for line in result.stdout.splitlines():
            if line.startswith("L "):
                _, op, instructions = line.split()
                profile[int(op)] = int(instructions)
    runs = []
    for line in lines:
        _, _, instructions, data = line.split()
        runs.append((int(instructions), bytes.fromhex(data)))
    return runs


FLASH_MAIN = """/* Generated by bench/engine_qemu.py: the smallest firmware that runs the model. */
#include "model_engine.h"
static uint8_t input[MODEL_ENGINE_INPUT_BYTES], output[MODEL_ENGINE_OUTPUT_BYTES];
int main(void) { return model_engine_invoke(input, output); }
"""
EMPTY_MAIN = "int main(void) { return 0; }\n"
_MAP_INPUT = re.compile(r"^ \S*\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+\.o)$")
_MAP_CONT = re.compile(r"^\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+\.o)$")


def image_flash(sources: list[Path], model_dir: Path, out: Path) -> tuple[int, dict[str, int]]:
    """text+data of a qemu_mps2 port image linked as the firmware is (-ffunction-sections -fdata-sections,
    --gc-sections), and the flash bytes each object file kept (from the link map, in the order the port's
    Makefile passes startup.c, board.c, port_board.c and then the sources)."""
    cmd = [
        "make",
        "-s",
        "-C",
        str(PORT_DIR),
        f"SRCS={' '.join(map(str, sources))}",
        f"INCLUDES={ENGINE_DIR} {model_dir}",
        f"OUT={out}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"flash image build failed: {result.stderr.strip().splitlines()[-1:]}")
    size = subprocess.run(["arm-none-eabi-size", str(out)], capture_output=True, text=True, check=True).stdout
    text, data = (int(v) for v in size.splitlines()[1].split()[:2])
    mapping = out.with_suffix(".map").read_text().split("Linker script and memory map", 1)[1]
    loaded = [line.split()[1] for line in mapping.splitlines() if line.startswith("LOAD ") and line.endswith(".o")]
    kept: dict[str, int] = {}
    section = ""
    for line in mapping.splitlines():
        if line and not line.startswith(" "):
            section = line.split()[0]
        m = _MAP_INPUT.match(line) or _MAP_CONT.match(line)
        if m and section in (".text", ".data"):
            kept[m.group(2)] = kept.get(m.group(2), 0) + int(m.group(1), 16)
    names = ["startup", "board", "port_board", *(src.stem for src in sources)]
    return text + data, {names[i]: kept.get(obj, 0) for i, obj in enumerate(loaded) if i < len(names)}


def linked_flash(model_dir: Path, work: Path) -> tuple[int, int]:
    """What the engine adds to a linked firmware image: (kernels + runtime library bytes, generated model bytes).
    The image is the port's startup and board code plus a main that runs the model, linked as the firmware is;
    minus the same image with an empty main. Only what the model's calls reach is linked."""
    flash = work / "flash"
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "flash_main.c").write_text(FLASH_MAIN)
    (flash / "empty_main.c").write_text(EMPTY_MAIN)
    total, kept = image_flash(
        [flash / "flash_main.c", *sorted(ENGINE_DIR.glob("*.c")), model_dir / "model_engine.c"],
        model_dir,
        flash / "engine.elf",
    )
    base, _ = image_flash([flash / "empty_main.c"], model_dir, flash / "base.elf")
    model = kept["model_engine"]
    return total - base - model, model


def measure(
    name: str,
    tflite: bytes,
    images: np.ndarray,
    work: Path,
    timeout: float,
    profile: bool = False,
    ram_budget: int | None = None,
) -> Figures:
    from tinyml.tflm import measure_arena

    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "codegen"
    gen = generate_from_tflite(tflite, model_dir, ram_budget)
    frames = frames_for(tflite, images)
    (work / "model.tflite").write_bytes(tflite)
    reference = ReferenceModel(tflite)
    expected = [reference.invoke(frame).tobytes() for frame in frames]
    runs = run_qemu(build_elf(model_dir, frames, work), len(frames), timeout)
    table = ""
    if profile:
        layers: dict[int, int] = {}
        run_qemu(build_elf(model_dir, frames[:1], work / "profile", profile=True), 1, timeout, layers)
        table = profile_table(name, load_graph(tflite), layers)
        print(table, file=sys.stderr)
    engine_flash, model_flash = linked_flash(model_dir, work)
    try:
        tflm_arena = measure_arena(work / "model.tflite")
    except UserError:
        tflm_arena = None
    return Figures(
        name,
        model_macs(tflite),
        [r[0] for r in runs],
        gen.arena_bytes,
        gen.activation_bytes,
        gen.scratch_bytes,
        int(frames[0].size),
        int8_constants(tflite),
        engine_flash,
        model_flash,
        tflm_arena,
        sum(r[1] == e for r, e in zip(runs, expected)),
        len(frames),
        table,
    )


def report(figures: list[Figures]) -> str:
    lines = [
        SECTION,
        "",
        "`python bench/engine_qemu.py --record` (QEMU mps2-an386, Cortex-M4F, `-icount shift=0`, arm-none-eabi-gcc "
        "12 -O2, DSP paths on). Instructions = SysTick ticks x 40 around one `model_engine_invoke`. RAM = the "
        "generated static arena (activations + kernel scratch); the input frame is the caller's buffer. Flash = what "
        "the engine adds to a linked firmware image (the qemu_mps2 port's startup and board code and a main that "
        "runs the model, -ffunction-sections -fdata-sections --gc-sections as the firmware links, text+data by "
        "arm-none-eabi-size, minus the same image with an empty main); model flash = the bytes the generated "
        "model_engine.c kept (link map), kernels flash = the rest (kernels the model calls, runtime library); "
        "model constants = the int8 weights, int32 biases and multipliers and int8 shifts in the plain layout "
        "(`int8_constants`), so weights a kernel stores wider count against the flash bar.",
        "",
        "| model | MACs | instructions / inference | instr/MAC | engine RAM (arena) | input frame | "
        "TFLM arena (tflite-micro runtime) | model constants | model flash | kernels flash | bit-exact vs LiteRT-ref |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        med = statistics.median(f.instructions)
        spread = f"{med / 1e6:.2f} M" + (
            ""
            if min(f.instructions) == max(f.instructions)
            else f" ({min(f.instructions) / 1e6:.2f}-{max(f.instructions) / 1e6:.2f})"
        )
        tflm = f"{f.tflm_arena / 1024:.1f} KB" if f.tflm_arena else "n/a"
        lines.append(
            f"| {f.name} | {f.macs / 1e6:.2f} M | {spread} | {med / f.macs:.2f} | {f.arena / 1024:.1f} KB "
            f"({f.activations} + {f.scratch} B) | {f.input_bytes / 1024:.1f} KB | {tflm} | "
            f"{f.constants / 1024:.1f} KB | {f.model_flash / 1024:.1f} KB | {f.engine_flash / 1024:.1f} KB | "
            f"{f.exact}/{f.checked} |"
        )
    lines += [
        "",
        ANCHORS,
        "",
        "Goals: <= 22.9 M instructions for V1 (stretch <= 15 M), peak RAM <= 50 KB, flash <= weights + 24 KB.",
        "",
    ]
    for f in figures:
        med = statistics.median(f.instructions)
        extra_flash = (f.model_flash + f.engine_flash - f.constants) / 1024
        anchor = (
            (
                f" = {526e6 / med:.0f}x fewer than the TFLM reference kernels' anchor and {22.9e6 / med:.2f}x the "
                "speed of TFLM + CMSIS-NN"
            )
            if f.name.startswith("V1 0.25 96x96x1")
            else ""
        )
        lines.append(
            f"* {f.name}: {med / 1e6:.2f} M instructions{anchor}; RAM {f.arena / 1024:.1f} KB"
            + (f" = {f.tflm_arena / f.arena:.1f}x less than TFLM's arena for the same model" if f.tflm_arena else "")
            + f"; flash = model constants + {extra_flash:.1f} KB (kernels, requantisation code, call sequence)."
        )
    lines.append("")
    for f in figures:
        if f.layers:
            lines += [f.layers, ""]
    return "\n".join(lines)


def record(section: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) only this script's section of docs/benchmarks.md, re-reading the file right before."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the own int8 engine on QEMU mps2-an386 (Cortex-M4).")
    parser.add_argument(
        "--bundle",
        action="append",
        default=[],
        help="bundle directory to measure (repeatable); default: random-init V1 0.25 and V2 0.35 at 96x96x1 int8",
    )
    parser.add_argument(
        "--tflite",
        action="append",
        default=[],
        help="a bare int8 .tflite to measure (repeatable), e.g. ../shared/models/vww_96_int8.tflite; "
        "it runs Fashion-MNIST test images converted to its input shape",
    )
    parser.add_argument(
        "--models",
        help="random-init models to measure, comma-separated from v1 (V1 0.25 x1), v2 (V2 0.35 x1), "
        "v1c3 (V1 0.25 x3, the VWW shape); default v1,v2 unless --tflite or --bundle is given",
    )
    parser.add_argument("--size", type=int, default=96, help="input height=width of the default models (default 96)")
    parser.add_argument(
        "--images",
        type=int,
        default=20,
        help="Fashion-MNIST test images to run and compare with LiteRT-ref (default 20)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per QEMU run (default 900)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print instructions per layer (one extra build with the ENG_LAYER_HOOK profiling hook)",
    )
    parser.add_argument(
        "--ram-budget",
        type=parse_bytes,
        help="generate the fastest schedule whose arena fits this many bytes (e.g. 1M: layer by layer, so --profile "
        "shows every layer a fused chain hides); default the smallest arena",
    )
    parser.add_argument("--keep", help="keep the build files in this directory instead of a temporary one")
    parser.add_argument(
        "--record", action="store_true", help="rewrite the 'Own int8 engine' section of docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "make"):
        if shutil.which(tool) is None:
            raise UserError(
                f"{tool} not found; install: sudo apt-get install -y gcc-arm-none-eabi "
                "libnewlib-arm-none-eabi qemu-system-arm make"
            )
    from tinyml.data import balanced_sample, load_fashion_mnist

    test = balanced_sample(load_fashion_mnist("test"), args.images, seed=5).images
    work_root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="engine_qemu_"))
    figures = []
    try:
        for t in args.tflite:
            if not Path(t).is_file():
                raise UserError(f"{t} does not exist; pass an int8 .tflite file to --tflite")
        models = [(Path(t).name, Path(t).read_bytes()) for t in args.tflite]
        if args.bundle:
            models += [(load_bundle(b).name, load_bundle(b).artifact_path("tflite").read_bytes()) for b in args.bundle]
        elif args.models or not models:
            keys = (args.models or "v1,v2").split(",")
            unknown = [k for k in keys if k not in DEFAULT_MODELS]
            if unknown:
                raise UserError(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(DEFAULT_MODELS)}")
            train = balanced_sample(load_fashion_mnist("train"), 64, seed=0).images
            for key in keys:
                arch, width, channels = DEFAULT_MODELS[key]
                models.append(
                    (
                        f"{arch[-2:].upper()} {width:g} {args.size}x{args.size}x{channels} int8 (random-init)",
                        random_init_tflite(arch, width, args.size, channels, train),
                    )
                )
        for i, (name, tflite) in enumerate(models):
            print(f"measuring {name} ...", file=sys.stderr)
            figures.append(
                measure(name, tflite, test, work_root / f"m{i}", args.timeout, args.profile, args.ram_budget)
            )
    finally:
        if not args.keep:
            shutil.rmtree(work_root, ignore_errors=True)
    section = report(figures)
    print(section)
    if args.record:
        record(section)
    return 0 if all(f.exact == f.checked for f in figures) else 1


if __name__ == "__main__":
    exit_cli(main)
