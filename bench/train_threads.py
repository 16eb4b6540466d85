"""Where training's CPU goes: TensorFlow thread settings for one Keras fit of a small MobileNet on 2 cores.

Training V1 0.25 48x48 keeps about one core busy. This measures why: the same fit (random inputs, no augmentation,
so the input pipeline is out of the picture) under TensorFlow's default thread pools, with one intra-op thread,
with one inter-op thread, and as two data-parallel replicas (MirroredStrategy on two logical CPUs, one intra-op
thread each). It prints CPU and wall milliseconds per image, the cores used (CPU / wall) and the load average, one
JSON line per setting; each setting runs in a fresh process because TensorFlow fixes its thread pools at start-up.

    nice -n 10 python bench/train_threads.py                   # every setting, 60 steps each
    nice -n 10 python bench/train_threads.py --mode intra1     # one setting
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Sequence

import numpy as np

MODES = ("default", "intra1", "inter1", "mirrored2")
WARMUP_STEPS = 5  # graph tracing and the first steps' allocations are left out of the figures


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(mode: str, steps: int, height: int, batch_size: int) -> dict[str, float | str]:
    """Fit ``steps`` batches in this process under ``mode`` and return the per-image figures."""
    from models.quiet import import_tensorflow

    import_tensorflow()
    import keras
    import tensorflow as tf

    from models.mobilenet import build_model

    if mode in ("intra1", "mirrored2"):
        tf.config.threading.set_intra_op_parallelism_threads(1)
    if mode == "inter1":
        tf.config.threading.set_inter_op_parallelism_threads(1)
    strategy = tf.distribute.get_strategy()
    if mode == "mirrored2":
        tf.config.threading.set_inter_op_parallelism_threads(2)
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    with strategy.scope():
        model = build_model("mobilenet_v1", 0.25, height, height, 1, 10, batch_size=None)
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch_size * steps, height, height, 1)).astype(np.float32)
    y = rng.integers(0, 10, batch_size * steps)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    model.fit(data.take(WARMUP_STEPS), verbose=0)
    cpu0, wall0 = _cpu_seconds(), time.monotonic()
    model.fit(data.skip(WARMUP_STEPS), verbose=0)
    cpu, wall = _cpu_seconds() - cpu0, time.monotonic() - wall0
    images = (steps - WARMUP_STEPS) * batch_size
    return {
        "mode": mode,
        "ms_cpu_per_image": round(1000 * cpu / images, 3),
        "ms_wall_per_image": round(1000 * wall / images, 3),
        "cores": round(cpu / wall, 2),
        "load": round(os.getloadavg()[0], 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, help="one setting in this process (default: each in a child)")
    parser.add_argument("--steps", type=int, default=60, help=f"batches per setting, {WARMUP_STEPS} of them warm-up")
    parser.add_argument("--height", type=int, default=48, help="input size in pixels (default 48)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    args = parser.parse_args(argv)
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must be > {WARMUP_STEPS}")
    if args.mode:
        print(json.dumps(measure(args.mode, args.steps, args.height, args.batch_size)), flush=True)
        return 0
    for mode in MODES:
        common = ["--steps", str(args.steps), "--height", str(args.height), "--batch-size", str(args.batch_size)]
        subprocess.run([sys.executable, "-m", "bench.train_threads", "--mode", mode, *common], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
