"""Export a bundle's int8 model for TFLite-Micro boards: C array, op resolver, model header, board fit.

Writes into BUNDLE/export/ (and with --install into firmware/src/model/, which PlatformIO builds, together with
a copy of the bundle itself in firmware/src/model/bundle/: model.json, the int8 .tflite and labels, so the tree
always carries the bundle that `host/stream.py` needs to talk to the firmware it builds):

- model_data.h / model_data.cc: the .tflite as ``alignas(16) const unsigned char g_model_data[]`` plus
  ``g_model_data_size``, the layout of TFLM's generate_cc_arrays. ``const`` keeps it in flash (``xxd -i`` makes a
  writable array that the startup code copies into scarce RAM); 16-byte alignment is what TFLM's flatbuffer
  access and the optimised kernels need.
- model_ops.h: a ``tflite::MicroMutableOpResolver<N>`` with exactly the model's N ops, INT8-specialised kernel
  registrations where TFLM has them (smaller code and, with CMSIS-NN, faster kernels). Registering only what the
  model uses is what keeps TFLM's code size small; an AllOpsResolver would pull in every kernel.
- model_info.h: plain C macros (input shape, dtype, quantisation, classes, labels, model id = sha256 of the
  .tflite, which HELLO reports, arena size, camera pixel lookup table). C99 and C++ both include it.

The arena size is measured, not guessed (tinyml.tflm.bundle_arena: the figure evaluate recorded for this .tflite,
which report uses too, or a new measurement, the tflite-micro runtime allocating the model in a child process). The measured figure comes from a 64-bit host;
32-bit targets need less for TFLM's own structs, but optimised kernels (ESP-NN, CMSIS-NN) request scratch buffers
the reference kernels do not, so a stated margin is added (ARENA_MARGIN_PERCENT, ARENA_MARGIN_BYTES).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.bundle import META_FILE, Bundle, load_bundle, sha256_file
from models.errors import UserError, exit_cli
from models.preprocess import PreprocessSpec, preprocess, quantize_input
from tinyml.protocol import DTYPE_CODES
from tinyml.tflite_graph import Graph, load_graph
from tinyml.tflm import bundle_arena
from tools.boards import BOARDS, Fit, check_fit, get_board

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALL_DIR = REPO_ROOT / "firmware" / "src" / "model"
EXPORT_SUBDIR = "export"
GENERATED_FILES = ("model_data.h", "model_data.cc", "model_ops.h", "model_info.h")
INSTALLED_BUNDLE = "bundle"  # install_dir/bundle: the bundle the installed sources were generated from
INSTALLED_ARTIFACTS = ("tflite", "labels")  # what a host needs to stream to the board (no Keras model)

ARENA_MARGIN_PERCENT = 25  # optimised-kernel scratch buffers (ESP-NN / CMSIS-NN im2col, depthwise tiles)
ARENA_MARGIN_BYTES = 4096  # fixed slack: interpreter bookkeeping differences between TFLM versions
ARENA_ALIGN = 16

# Builtin op -> (MicroMutableOpResolver method, INT8-specialised registration or None).
# The INT8 registrations exist in every TFLM build (inline fallbacks to the generic kernel where no optimised
# variant exists: tensorflow/lite/micro/kernels/{conv,depthwise_conv,fully_connected,softmax,pooling,add,mul}.h).
TFLM_OPS: dict[str, tuple[str, str | None]] = {
    "ADD": ("AddAdd", "Register_ADD_INT8"),
    "AVERAGE_POOL_2D": ("AddAveragePool2D", "Register_AVERAGE_POOL_2D_INT8"),
    "CONCATENATION": ("AddConcatenation", None),
    "CONV_2D": ("AddConv2D", "Register_CONV_2D_INT8"),
    "DEPTHWISE_CONV_2D": ("AddDepthwiseConv2D", "Register_DEPTHWISE_CONV_2D_INT8"),
    "DEQUANTIZE": ("AddDequantize", None),
    "FULLY_CONNECTED": ("AddFullyConnected", "Register_FULLY_CONNECTED_INT8"),
    "HARD_SWISH": ("AddHardSwish", None),
    "LEAKY_RELU": ("AddLeakyRelu", None),
    "LOGISTIC": ("AddLogistic", None),
    "MAX_POOL_2D": ("AddMaxPool2D", "Register_MAX_POOL_2D_INT8"),
    "MAXIMUM": ("AddMaximum", None),
    "MEAN": ("AddMean", None),
    "MINIMUM": ("AddMinimum", None),
    "MUL": ("AddMul", "Register_MUL_INT8"),
    "PAD": ("AddPad", None),
    "PADV2": ("AddPadV2", None),
    "QUANTIZE": ("AddQuantize", None),
    "RELU": ("AddRelu", None),
    "RELU6": ("AddRelu6", None),
    "RESHAPE": ("AddReshape", None),
    "RESIZE_BILINEAR": ("AddResizeBilinear", None),
    "RESIZE_NEAREST_NEIGHBOR": ("AddResizeNearestNeighbor", None),
    "SOFTMAX": ("AddSoftmax", "Register_SOFTMAX_INT8"),
    "SQUEEZE": ("AddSqueeze", None),
    "STRIDED_SLICE": ("AddStridedSlice", None),
    "SUB": ("AddSub", None),
    "TANH": ("AddTanh", None),
    "TRANSPOSE": ("AddTranspose", None),
}
# Kernel headers declaring the INT8 registrations (older TFLM resolvers do not include them all).
_INT8_HEADERS = {
    "ADD": "add.h",
    "AVERAGE_POOL_2D": "pooling.h",
    "MAX_POOL_2D": "pooling.h",
    "CONV_2D": "conv.h",
    "DEPTHWISE_CONV_2D": "depthwise_conv.h",
    "FULLY_CONNECTED": "fully_connected.h",
    "MUL": "mul.h",
    "SOFTMAX": "softmax.h",
}
_RESIZE_CODES = {"crop": 0, "letterbox": 1, "stretch": 2}


@dataclass(frozen=True)
class ExportResult:
    """What export wrote and concluded."""

    out_dir: Path
    files: dict[str, Path]
    ops: list[tuple[str, int]]
    arena_measured: int
    arena_bytes: int
    fits: list[Fit]
    installed_dir: Path | None


def arena_with_margin(measured: int, margin_percent: float = ARENA_MARGIN_PERCENT) -> int:
    """Measured arena + margin_percent + ARENA_MARGIN_BYTES, rounded up to ARENA_ALIGN."""
    raw = measured * (1 + margin_percent / 100.0) + ARENA_MARGIN_BYTES
    return int(math.ceil(raw / ARENA_ALIGN) * ARENA_ALIGN)


# ---- C generation ----------------------------------------------------------------------------------------------
def _hex_rows(data: bytes, per_row: int = 12) -> str:
    """Array body: per_row bytes a line, each 0xNN, trailing commas (generate_cc_arrays' layout)."""
    return "\n".join(
        "    " + ", ".join(f"0x{v:02x}" for v in data[i : i + per_row]) + "," for i in range(0, len(data), per_row)
    )


def _macro_initializer(name: str, values: Sequence[str], per_row: int = 16) -> str:
    """``#define NAME { v, v, ... }`` continued over several lines with backslashes."""
    rows = [", ".join(values[i : i + per_row]) for i in range(0, len(values), per_row)]
    body = (", \\\n    ").join(rows)
    return f"#define {name} {{ \\\n    {body} }}"


def _c_string(text: str) -> str:
    """A C string literal; non-ASCII goes out as octal escapes so any compiler reads the same bytes."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= byte < 127 and ch != "?":  # '?' avoids trigraphs
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _banner(bundle: Bundle, what: str) -> str:
    return (
        f"/* {what}\n * Generated by `python -m tools export` from bundle '{bundle.name}' "
        f"(model id {bundle.model_id[:16]}...). Do not edit: re-run the export. */\n"
    )


def render_model_data(bundle: Bundle, tflite: bytes) -> tuple[str, str]:
    """model_data.h and model_data.cc, in the layout of TFLM's generate_cc_arrays."""
    header = _banner(bundle, "The int8 .tflite flatbuffer as a const, 16-byte aligned C array (stays in flash).") + (
        "#ifndef MODEL_DATA_H\n#define MODEL_DATA_H\n\n"
        f"constexpr unsigned int g_model_data_size = {len(tflite)};\n"
        "extern const unsigned char g_model_data[];\n\n"
        "#endif  // MODEL_DATA_H\n"
    )
    source = _banner(bundle, "The int8 .tflite flatbuffer.") + (
        f'#include "model_data.h"\n\nalignas(16) const unsigned char g_model_data[] = {{\n{_hex_rows(tflite)}\n}};\n'
    )
    return header, source


def resolver_ops(graph: Graph) -> list[tuple[str, int]]:
    """The model's (op, version) list, sorted, after checking TFLM has every op."""
    ops = sorted(graph.op_set())
    missing = sorted({name for name, _ in ops if name not in TFLM_OPS})
    if missing:
        raise UserError(
            f"the model uses {', '.join(missing)}, which this export does not register for TFLite-Micro; "
            f"supported ops: {', '.join(sorted(TFLM_OPS))}"
        )
    names = [name for name, _ in ops]
    if len(names) != len(set(names)):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise UserError(
            f"the model uses several versions of {', '.join(dup)}; TFLM registers one kernel per op, "
            "re-convert the model with one TensorFlow version"
        )
    return ops


def render_model_ops(bundle: Bundle, ops: list[tuple[str, int]]) -> str:
    """model_ops.h: a MicroMutableOpResolver sized to the op count, registering exactly the model's ops."""
    includes = sorted({_INT8_HEADERS[name] for name, _ in ops if name in _INT8_HEADERS})
    lines = [
        _banner(bundle, "Op resolver with exactly the ops the model uses (TFLite-Micro)."),
        "#ifndef MODEL_OPS_H",
        "#define MODEL_OPS_H",
        "",
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"',
        "",
        "/* INT8-specialised kernels are used by default; build with -DMODEL_OPS_GENERIC_KERNELS to register the",
        " * generic kernels instead (TFLM releases whose Add* methods take no registration argument). */",
        "#ifndef MODEL_OPS_GENERIC_KERNELS",
    ]
    lines += [f'#include "tensorflow/lite/micro/kernels/{h}"' for h in includes]
    lines += [
        "#define MODEL_INT8_KERNEL(registration) registration",
        "#else",
        "#define MODEL_INT8_KERNEL(registration)",
        "#endif",
        "",
        f"#define MODEL_OP_COUNT {len(ops)}",
        "typedef tflite::MicroMutableOpResolver<MODEL_OP_COUNT> ModelOpResolver;",
        "",
        "/* Registers every op of the model; kTfLiteError if one fails (resolver full or a duplicate). */",
        "inline TfLiteStatus model_register_ops(ModelOpResolver &resolver) {",
    ]
    for name, version in ops:
        method, int8 = TFLM_OPS[name]
        arg = f"MODEL_INT8_KERNEL(tflite::{int8}())" if int8 else ""
        lines.append(f"  if (resolver.{method}({arg}) != kTfLiteOk) return kTfLiteError;  /* {name} v{version} */")
    lines += ["  return kTfLiteOk;", "}", "", "#endif  // MODEL_OPS_H", ""]
    return "\n".join(lines)


def pixel_lut(bundle: Bundle) -> np.ndarray:
    """Input-tensor value for each 0..255 pixel: models.preprocess scaling + quantize_input, so the camera path
    on the board quantizes exactly as the host and training do."""
    spec = PreprocessSpec.from_bundle(bundle)
    ramp = np.arange(256, dtype=np.uint8).reshape(1, 256)
    flat_spec = PreprocessSpec(1, 256, 1, "stretch", spec.range)
    return quantize_input(preprocess(ramp, flat_spec), bundle.input_quant).reshape(256)


def render_model_info(
    bundle: Bundle, graph: Graph, tflite: bytes, arena_measured: int, arena_bytes: int, margin_percent: float
) -> str:
    """model_info.h: everything the firmware needs to know about the model, as C99 macros."""
    height, width, channels = bundle.input_shape
    inq, outq = bundle.input_quant, bundle.output_quant
    for which, q in (("input", inq), ("output", outq)):
        if q.dtype not in DTYPE_CODES:
            raise UserError(
                f"the model's {which} is {q.dtype}; firmware takes int8 or uint8, re-run python -m tools quantize"
            )
    out_tensor = graph.output_tensors()[0]
    classes = int(np.prod(out_tensor.shape)) if out_tensor.shape else 1
    labels = bundle.labels
    if len(labels) != classes:
        raise UserError(f"model.json lists {len(labels)} labels but the model outputs {classes} values; re-run train")
    spec = PreprocessSpec.from_bundle(bundle)
    model_id = bytes.fromhex(bundle.model_id)
    lut = pixel_lut(bundle).astype(np.int16)
    defines = [
        ("MODEL_NAME", _c_string(bundle.name)),
        ("MODEL_ARCHITECTURE", _c_string(str(bundle.meta.get("architecture", "")))),
        ("MODEL_SCHEMA_VERSION", str(graph.version)),
        ("MODEL_TFLITE_BYTES", f"{len(tflite)}u"),
        ("MODEL_INPUT_HEIGHT", str(height)),
        ("MODEL_INPUT_WIDTH", str(width)),
        ("MODEL_INPUT_CHANNELS", str(channels)),
        ("MODEL_INPUT_BYTES", f"{height * width * channels}u"),
        ("MODEL_INPUT_DTYPE", f"{DTYPE_CODES[inq.dtype]} /* {inq.dtype}: enum runner_dtype */"),
        ("MODEL_INPUT_SCALE", f"{inq.scale!r}f"),
        ("MODEL_INPUT_ZERO_POINT", f"({inq.zero_point})"),
        ("MODEL_OUTPUT_DTYPE", f"{DTYPE_CODES[outq.dtype]} /* {outq.dtype} */"),
        ("MODEL_OUTPUT_SCALE", f"{outq.scale!r}f"),
        ("MODEL_OUTPUT_ZERO_POINT", f"({outq.zero_point})"),
        ("MODEL_NUM_CLASSES", str(classes)),
        ("MODEL_ARENA_MEASURED_BYTES", f"{arena_measured}u /* tflite-micro runtime, 64-bit host */"),
        ("MODEL_ARENA_BYTES", f"{arena_bytes}u /* measured + {margin_percent:g}% + {ARENA_MARGIN_BYTES} B */"),
        ("MODEL_RESIZE_MODE", f"{_RESIZE_CODES[spec.resize]} /* {spec.resize}: 0 crop, 1 letterbox, 2 stretch */"),
        ("MODEL_ID_HEX", _c_string(bundle.model_id)),
    ]
    width_col = max(len(name) for name, _ in defines) + 1
    lines = [
        _banner(bundle, "Model description for the firmware (C99 and C++)."),
        "#ifndef MODEL_INFO_H",
        "#define MODEL_INFO_H",
        "",
    ]
    lines += [f"#define {name.ljust(width_col)}{value}" for name, value in defines]
    lines += [
        "",
        "/* sha256 of the .tflite (what HELLO reports): initialiser for uint8_t[32]. */",
        _macro_initializer("MODEL_ID_BYTES", [f"0x{b:02x}" for b in model_id]),
        "",
        "/* Class labels: initialiser for const char *[MODEL_NUM_CLASSES]. */",
        _macro_initializer("MODEL_LABELS", [_c_string(label) for label in labels], 1),
        "",
        "/* Camera mode: input-tensor value for each 0..255 pixel (preprocessing range + input quantisation). */",
        _macro_initializer("MODEL_PIXEL_LUT", [str(int(v)) for v in lut]),
        "",
        "#endif /* MODEL_INFO_H */",
        "",
    ]
    return "\n".join(lines)


# ---- the step --------------------------------------------------------------------------------------------------
def export_bundle(
    bundle_path: str | Path,
    board: str | None = None,
    install: bool = False,
    force: bool = False,
    out_dir: str | Path | None = None,
    margin_percent: float = ARENA_MARGIN_PERCENT,
    install_dir: Path = INSTALL_DIR,
) -> ExportResult:
    """Generate the TFLM sources for a bundle, check it against the board table and record it in model.json.

    board: refuse (UserError with the numbers) when the model does not fit it, unless force.
    install: also copy the generated files into install_dir (the firmware tree PlatformIO builds).
    """
    bundle = load_bundle(bundle_path)
    tflite_path = bundle.verified_artifact("tflite")  # the id HELLO reports must be this array's hash
    tflite = tflite_path.read_bytes()
    graph = load_graph(tflite)
    if graph.num_subgraphs != 1:
        raise UserError(f"{tflite_path} has {graph.num_subgraphs} subgraphs; export takes single-graph classifiers")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UserError(
            f"{tflite_path} has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
            "export takes a classifier with one of each"
        )
    if margin_percent < 0:
        raise UserError(f"--arena-margin must be >= 0, got {margin_percent}")
    ops = resolver_ops(graph)
    arena_measured = bundle_arena(bundle)
    arena_bytes = arena_with_margin(arena_measured, margin_percent)
    height, width, channels = bundle.input_shape
    fits = [check_fit(b, len(tflite), arena_bytes, height * width * channels) for b in BOARDS.values()]
    chosen = None
    if board is not None:
        chosen = next(f for f in fits if f.board is get_board(board))
        if not chosen.fits and not force:
            raise UserError(
                f"model '{bundle.name}' does not fit {chosen.board.name}: {'; '.join(chosen.problems)}; "
                "pick a smaller width/resolution, another --board, or pass --force"
            )

    data_h, data_cc = render_model_data(bundle, tflite)
    texts = {
        "model_data.h": data_h,
        "model_data.cc": data_cc,
        "model_ops.h": render_model_ops(bundle, ops),
        "model_info.h": render_model_info(bundle, graph, tflite, arena_measured, arena_bytes, margin_percent),
    }
    out = Path(out_dir) if out_dir is not None else bundle.path / EXPORT_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, text in texts.items():
        (out / name).write_text(text)
        files[name] = out / name
    installed = None
    if install:
        installed = Path(install_dir)
        installed.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=installed.parent) as staging:  # each file appears whole: copy, then rename
            for name, path in files.items():
                shutil.copyfile(path, Path(staging) / name)
            for name in files:
                (Path(staging) / name).replace(installed / name)
        install_bundle(bundle, installed / INSTALLED_BUNDLE)

    bundle.meta["export"] = {
        "dir": str(out),
        "files": {name: sha256_file(path) for name, path in files.items()},
        "ops": [f"{name}:v{version}" for name, version in ops],
        "op_count": len(ops),
        "tflite_bytes": len(tflite),
        "arena_measured_bytes": arena_measured,
        "arena_margin": {"percent": margin_percent, "bytes": ARENA_MARGIN_BYTES},
        "arena_bytes": arena_bytes,
        "frame_buffer_bytes": fits[0].buffer_bytes,
        "boards": {
            f.board.name: {"fits": f.fits, "arena_in_psram": f.arena_in_psram, "problems": list(f.problems)}
            for f in fits
        },
        "target_board": get_board(board).name if board else None,
        "forced": bool(chosen is not None and force and not chosen.fits),
        "installed": str(installed) if installed else None,
    }
    bundle.save()
    return ExportResult(out, files, ops, arena_measured, arena_bytes, fits, installed)


def install_bundle(bundle: Bundle, dest: Path) -> Path:
    """Copy what a host needs of ``bundle`` (model.json, int8 .tflite, labels) to ``dest``, replacing what was there.

    The copy's model.json lists only the copied artifacts and leaves out this machine's export record, so it
    loads (and verifies) anywhere, e.g. in a fresh clone of the repository.
    """
    meta = json.loads(json.dumps(bundle.meta))
    meta.pop("export", None)
    meta["artifacts"] = {kind: meta["artifacts"][kind] for kind in INSTALLED_ARTIFACTS}
    with tempfile.TemporaryDirectory(dir=dest.parent) as staging:
        staged = Path(staging) / dest.name
        staged.mkdir()
        for kind in INSTALLED_ARTIFACTS:
            shutil.copyfile(bundle.artifact_path(kind), staged / meta["artifacts"][kind]["file"])
        (staged / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        load_bundle(staged).verify()
        if dest.exists():
            shutil.rmtree(dest)
        staged.replace(dest)
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools export",
        description="Export a bundle's int8 model for TFLite-Micro boards: C array, op resolver, model header, "
        "and whether it fits each board.",
    )
    parser.add_argument("bundle", help="model bundle directory (holds model.json and model_int8.tflite)")
    parser.add_argument(
        "--board",
        choices=sorted({*BOARDS, *(b.env for b in BOARDS.values())}),
        help="the board you will flash: export refuses it when the model does not fit",
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help=f"also copy the generated files into {INSTALL_DIR.relative_to(REPO_ROOT)} (what `pio run` builds)",
    )
    parser.add_argument("--force", action="store_true", help="export for --board even when the model does not fit")
    parser.add_argument("--out", help=f"output directory (default: BUNDLE/{EXPORT_SUBDIR})")
    parser.add_argument(
        "--arena-margin",
        type=float,
        default=ARENA_MARGIN_PERCENT,
        metavar="PERCENT",
        help=f"arena headroom over the measured size, in percent (default {ARENA_MARGIN_PERCENT}), "
        f"plus {ARENA_MARGIN_BYTES} bytes",
    )
    args = parser.parse_args(argv)
    result = export_bundle(
        args.bundle,
        board=args.board,
        install=args.install,
        force=args.force,
        out_dir=args.out,
        margin_percent=args.arena_margin,
    )
    print(f"ops ({len(result.ops)}): {', '.join(f'{n} v{v}' for n, v in result.ops)}")
    print(f"arena: {result.arena_measured} bytes measured by tflite-micro -> {result.arena_bytes} bytes with margin")
    for fit in result.fits:
        print("  " + fit.summary())
    print(f"wrote {', '.join(result.files)} to {result.out_dir}")
    if result.installed_dir:
        print(f"installed into {result.installed_dir}; build and flash with: pio run -e ENV -t upload")
    return 0


if __name__ == "__main__":
    exit_cli(main)
