"""Where LiteRT BUILTIN_REF and the tflite-micro runtime part: every intermediate tensor, every test image.

For each bundle, all 10,000 Fashion-MNIST test images (preprocessed and quantised as the host streams them) run
through both runtimes with every tensor kept (LiteRT ``experimental_preserve_all_tensors``, TFLM
``kPreserveAllTensors``). Printed per bundle: the op each difference starts in (the first op whose output differs
while all its inputs are identical), how many images differ in any output byte, the largest output byte difference
and how many images change their top-1 class.

Then, per model, every int32 accumulator of its FULLY_CONNECTED head whose requantised value lands in the int8
range, requantised three ways: LiteRT's ``round(acc * (double)scale)``, the engine's one rounding and TFLM's two
(tinyml.codegen.arithmetic). Only accumulators near a half can disagree, so those are found with numpy and then
computed exactly; the table says how many of all of them each rule puts elsewhere than LiteRT.

    python bench/oracle_diff.py firmware/src/model/bundle runs/bench_fmnist/mobilenet_v1_0.25_32
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine_exactness import fashion_mnist_frames
from models.errors import exit_cli
from tinyml.codegen.arithmetic import multiply_by_quantized_multiplier, quantize_multiplier, round_half_away


def _interpreters(model: bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    ref = Interpreter(
        model_content=model,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    ref.allocate_tensors()
    micro = runtime.Interpreter.from_bytes(model, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    return ref, micro


def tensor_scan(bundle: Path) -> dict:
    """Every op's output in both runtimes for every test image of ``bundle`` (see the module doc)."""
    tflite, frames = fashion_mnist_frames(bundle)
    ref, micro = _interpreters(tflite.read_bytes())
    ops = ref._get_ops_details()
    detail = ref.get_input_details()[0]
    out = ref.get_output_details()[0]["index"]
    starts: collections.Counter[str] = collections.Counter()
    differing: collections.Counter[str] = collections.Counter()
    images, largest, top1 = 0, 0, 0
    for frame in frames:
        x = frame.reshape(detail["shape"])
        ref.set_tensor(detail["index"], x)
        ref.invoke()
        micro.set_input(x, 0)
        micro.invoke()
        changed: set[int] = set()
        for op in ops:
            index = int(op["outputs"][0])
            a = ref.get_tensor(index)
            if np.array_equal(a, np.asarray(micro.GetTensor(index, 0)["tensor_data"]).reshape(a.shape)):
                continue
            differing[op["op_name"]] += 1
            if not changed & {int(i) for i in op["inputs"]}:
                starts[op["op_name"]] += 1
            changed.add(index)
        r = ref.get_tensor(out).reshape(-1).astype(np.int32)
        m = np.asarray(micro.GetTensor(out, 0)["tensor_data"]).reshape(-1).astype(np.int32)
        if not np.array_equal(r, m):
            images += 1
            largest = max(largest, int(np.abs(r - m).max()))
            top1 += int(np.argmax(r) != np.argmax(m))
    return {
        "frames": len(frames),
        "starts": dict(starts),
        "differing": dict(differing),
        "images": images,
        "largest": largest,
        "top1": top1,
        "tflite": tflite,
    }


def head_accumulators(tflite: Path) -> dict:
    """The FULLY_CONNECTED head's in-range accumulators under the three rules (see the module doc)."""
    ref, _ = _interpreters(tflite.read_bytes())
    tensors = {t["index"]: t for t in ref.get_tensor_details()}
    op = next(o for o in ref._get_ops_details() if o["op_name"] == "FULLY_CONNECTED")
    quant = [tensors[int(i)]["quantization_parameters"] for i in (op["inputs"][0], op["inputs"][1], op["outputs"][0])]
    s_in, s_out, zp_out = (
        np.float32(quant[0]["scales"][0]),
        np.float32(quant[2]["scales"][0]),
        int(quant[2]["zero_points"][0]),
    )
    total = engine = micro = 0
    for s_w in quant[1]["scales"]:
        real = float(s_in) * float(np.float32(s_w)) / float(s_out)
        multiplier, shift = quantize_multiplier(real)
        limit = int(260 / real) + 2
        acc = np.arange(-limit, limit + 1, dtype=np.int64)
        product = acc * real
        exact = np.sign(product) * np.floor(np.abs(product) + 0.5)
        in_range = (exact + zp_out >= -129) & (exact + zp_out <= 128)  # int8, and one step past each end
        total += int(in_range.sum())
        # Two roundings part from one only within 2^(shift-1) of a half; one rounding from exact within ~2^-31.
        window = 2.0 ** min(shift - 1, -2) + 1e-6
        near = acc[in_range & (np.abs(np.abs(product) % 1 - 0.5) <= window)]
        for a in near.tolist():
            want = round_half_away(a * real)
            engine += multiply_by_quantized_multiplier(a, multiplier, shift, single_round=True) != want
            micro += multiply_by_quantized_multiplier(a, multiplier, shift) != want
    return {"accumulators": total, "engine": engine, "micro": micro}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="+", type=Path, help="a trained, quantised Fashion-MNIST bundle")
    parser.add_argument(
        "--head-only", action="store_true", help="only the head's accumulators (seconds, not minutes, per bundle)"
    )
    args = parser.parse_args(argv)
    print(
        "| bundle | images | op a difference starts in (images) | ops whose output differs (images) "
        "| images with any output byte different | largest byte difference | top-1 changed "
        "| head accumulators in range | engine != LiteRT | TFLM != LiteRT |"
    )
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for bundle in args.bundle:
        start = time.monotonic()
        if args.head_only:
            scan = {"frames": "-", "starts": "", "differing": "", "images": "-", "largest": "-", "top1": "-"}
            head = head_accumulators(bundle / "model_int8.tflite")
        else:
            scan = tensor_scan(bundle)
            head = head_accumulators(scan["tflite"])
        print(
            f"| {bundle} | {scan['frames']} | {scan['starts'] or '-'} | {scan['differing'] or '-'} | {scan['images']} "
            f"| {scan['largest']} | {scan['top1']} | {head['accumulators']:,} | {head['engine']} "
            f"| {head['micro']:,} ({head['micro'] / head['accumulators']:.2e}) |",
            flush=True,
        )
        print(f"  ({time.monotonic() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    exit_cli(main)
