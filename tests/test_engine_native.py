"""The generated engine, compiled natively (gcc -O2 -Wall -Wextra -Werror), is byte-for-byte LiteRT BUILTIN_REF.

For V1 and V2 at several widths, square and non-square inputs, 1 and 3 channels, int8 and uint8 input, real
Fashion-MNIST test images (2,000 per trained model, 500 per random-init configuration, preprocessed and quantised by models.preprocess exactly as the host
does) go through tests/c/engine_harness.c and through models.reference.ReferenceModel; the output bytes must be
identical. The MLPerf Tiny VWW reference model (../shared/models) runs 1,000 random image-like inputs. Each
model is built twice: the portable C kernels, and the Cortex-M4 DSP kernels with plain-C stand-ins for the
intrinsics (ENG_EMULATE_DSP), so the DSP paths' data layout is checked here too (QEMU runs the real ones:
bench/engine_qemu.py --check). Every model is checked in three schedules (tests/tooling.schedule_budgets): the
default smallest arena (fused row-band chains, tinyml/codegen/schedule.py), a RAM budget halfway to layer by
layer (some runs fused), and layer by layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import engine_exactness
from models.preprocess import prepare_frame
from models.reference import ReferenceModel
from tests.tooling import check_bit_exact, require_shared_model, require_tool, schedule_budgets
from tinyml.codegen import generate, generate_from_tflite

IMAGES = 2000  # per trained model: a 1-in-2,000 fault shows up
EXTRA_IMAGES = 500  # per random-init configuration (shapes and dtypes; LiteRT-ref is the slow side)

# Extra configurations beyond the shared bundle_v1 / bundle_v2 fixtures (both 32x32x1 int8). They are
# random-init (no training needed for a bit-exactness check) with BatchNorm statistics taken from real images,
# so no layer is dead and the outputs vary from image to image.
EXTRA_CONFIGS = [
    dict(architecture="mobilenet_v1", width=0.5, height=40, width_px=32, channels=3, input_dtype="uint8"),
    dict(architecture="mobilenet_v1", width=0.25, height=32, width_px=48, channels=1, input_dtype="uint8"),
    dict(architecture="mobilenet_v2", width=0.5, height=32, width_px=40, channels=3, input_dtype="uint8"),
    dict(architecture="mobilenet_v2", width=0.35, height=48, width_px=32, channels=3, input_dtype="int8"),
    dict(architecture="mobilenet_v2", width=0.35, height=64, width_px=48, channels=1, input_dtype="int8"),
]


def random_init_tflite(
    architecture: str,
    width: float,
    height: int,
    width_px: int | None,
    channels: int,
    input_dtype: str,
    images: np.ndarray,
    seed: int = 0,
) -> bytes:
    """A random-init MobileNet (models.mobilenet) quantised by tools.quantize, BatchNorm statistics set from
    ``images`` (one training-mode pass with momentum 0) so that activations stay alive through the depth."""
    import keras

    from models.mobilenet import build_model
    from models.preprocess import PreprocessSpec, preprocess_batch
    from tools.quantize import quantize_keras_model

    keras.utils.set_random_seed(seed)
    model = build_model(architecture, width, height, width_px, channels, classes=10, dropout=0.0)
    batch = preprocess_batch(images, PreprocessSpec(height, width_px or height, channels))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(batch, training=True)
    for layer in norms:
        layer.momentum = 0.9
    return quantize_keras_model(model, batch, input_dtype)


@pytest.fixture(scope="module")
def test_images():
    """2,000 class-balanced raw Fashion-MNIST test images (uint8 28x28x1): a 1-in-2,000 fault shows up."""
    from tinyml.data import balanced_sample, load_fashion_mnist

    return balanced_sample(load_fashion_mnist("test"), IMAGES, seed=3).images


@pytest.mark.parametrize("fixture", ["bundle_v1", "bundle_v2"])
def test_trained_models_bit_exact_on_2000_test_images(fixture, request, test_images, tmp_path) -> None:
    bundle = request.getfixturevalue(fixture)
    frames = np.stack([prepare_frame(image, bundle) for image in test_images])  # exactly what the host sends
    # The bare .tflite, not the bundle: generating from a bundle records into model.json, and shared
    # fixture bundles stay untouched.
    tflite = bundle.artifact_path("tflite")
    check_bit_exact(tflite, frames, tmp_path, budgets=schedule_budgets(tflite))


@pytest.mark.slow  # trains (make_bundle) and builds C
@pytest.mark.parametrize(
    "config",
    EXTRA_CONFIGS,
    ids=lambda c: (
        f"{c['architecture'][-2:]}-{c['width']}-{c['height']}x{c['width_px'] or c['height']}"
        f"x{c['channels']}-{c['input_dtype']}"
    ),
)
def test_more_widths_shapes_and_dtypes_bit_exact(config, test_images, tmp_path) -> None:
    from models.bundle import TensorQuant
    from models.preprocess import PreprocessSpec, preprocess_batch, quantize_input
    from tinyml.tflite_graph import load_graph

    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(random_init_tflite(**config, images=test_images[-64:]))
    x = load_graph(tflite).input_tensors()[0]
    assert x.dtype == config["input_dtype"]
    quant = TensorQuant(x.dtype, float(x.quantization.scale[0]), int(x.quantization.zero_point[0]))
    spec = PreprocessSpec(config["height"], config["width_px"] or config["height"], config["channels"])
    frames = quantize_input(preprocess_batch(test_images[:EXTRA_IMAGES], spec), quant)
    check_bit_exact(tflite, frames, tmp_path, budgets=schedule_budgets(tflite))


def test_runner_reports_the_model(bundle_v1, tmp_path) -> None:
    """model_engine_info carries the bundle's shapes, quantisation and model id (what HELLO announces)."""
    out_dir = tmp_path / "codegen"
    generate(bundle_v1.artifact_path("tflite"), out_dir)
    source = (out_dir / "model_engine.c").read_text()
    model_id = bytes.fromhex(bundle_v1.model_id)
    assert ", ".join(f"0x{b:02x}" for b in model_id) in source
    h, w, c = bundle_v1.input_shape
    assert f".in_h = {h}, .in_w = {w}, .in_c = {c}" in source
    assert f".in_zero_point = {bundle_v1.input_quant.zero_point}" in source
    assert f".out_len = {len(bundle_v1.labels)}" in source


@pytest.mark.qemu
@pytest.mark.parametrize("fixture", ["bundle_v1", "bundle_v2"])
def test_cortex_m4_dsp_build_bit_exact_on_qemu(fixture, request, test_images, tmp_path) -> None:
    """The real SMLAD/SXTB16 paths (arm-none-eabi-gcc, Cortex-M4F) under QEMU mps2-an386 give LiteRT-ref's bytes,
    in the default (fused) schedule."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from bench import engine_qemu as bench

    bundle = request.getfixturevalue(fixture)
    frames = np.stack([prepare_frame(image, bundle) for image in test_images[:20]])
    gen = generate_from_tflite(bundle.artifact_path("tflite").read_bytes(), tmp_path / "codegen")
    assert gen.schedule.chains, "the default schedule should fuse the first blocks"
    runs = bench.run_qemu(bench.build_elf(tmp_path / "codegen", frames, tmp_path), len(frames), timeout=300)
    reference = ReferenceModel(bundle.artifact_path("tflite"))
    expected = [reference.invoke(frame).tobytes() for frame in frames]
    assert [data for _, data in runs] == expected
    assert all(instructions > 0 for instructions, _ in runs)  # SysTick-derived counts came through


def vww_frames(count: int, seed: int = 0) -> tuple[Path, np.ndarray]:
    vww = require_shared_model("vww_96_int8.tflite")
    return vww, engine_exactness.random_frames(vww, count, seed)


@pytest.mark.slow  # 1,000 inferences of a 96x96 model in two C builds
def test_vww_reference_model_bit_exact_on_1000_random_inputs(tmp_path) -> None:
    """MLPerf Tiny's VWW model, as its producer made it (dead channels with biases of +-2^30 included)."""
    vww, frames = vww_frames(1000)
    check_bit_exact(vww, frames, tmp_path, distinct=False, budgets=schedule_budgets(vww))


@pytest.mark.qemu
def test_vww_reference_model_bit_exact_on_qemu(tmp_path) -> None:
    """The real Cortex-M4 DSP build of the VWW model under QEMU, 20 random inputs, default (fused) schedule."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from bench import engine_qemu as bench

    vww, frames = vww_frames(20, seed=1)
    assert generate_from_tflite(vww.read_bytes(), tmp_path / "codegen").schedule.chains
    runs = bench.run_qemu(bench.build_elf(tmp_path / "codegen", frames, tmp_path), len(frames), timeout=600)
    reference = ReferenceModel(vww)
    assert [data for _, data in runs] == [reference.invoke(frame).tobytes() for frame in frames]
