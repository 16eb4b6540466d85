"""Build the inference firmware for a bundle: the engine's generated C + the portable core, for QEMU or native.

``build(bundle, port)`` runs the code generator (tinyml/codegen) and the port's Makefile
(firmware/ports/<port>/Makefile) and returns the image: an ELF for ``qemu`` (mps2-an386, Cortex-M4F,
arm-none-eabi-gcc) or a Linux executable for ``native`` (host gcc). The ``arduino`` ports build the sketch the
PlatformIO boards flash (firmware/src/main.cpp, unchanged) with the engine on the project's Arduino API stand-in
(firmware/ports/arduino): ``arduino`` as a Linux executable on a pty, ``arduino-m4`` cross-compiled with the Nano
33 BLE's Cortex-M4F flags (an ELF that also boots on QEMU mps2-an386); the sketch also needs export's model_info.h,
which the caller writes (``model_files``; tools/firmware.py does). Images are cached under
``build/<model-id>/<port>/`` and rebuilt only when the model or any firmware source changes, so tests and
``host/stream.py --board`` can call it freely; a file lock lets parallel callers share one build.

    python -m tools firmware BUNDLE --port qemu      # prints the image path
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.bundle import Bundle, load_bundle
from models.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE_DIR = ROOT / "firmware"
DEFAULT_BUILD_ROOT = ROOT / "build"
# Everything the image is made of: a change in any of these files rebuilds it.
SOURCE_DIRS = ("lib/app", "lib/protocol", "lib/engine", "ports/common")
ARM_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi"
# Writes further files into the model directory before the build (e.g. export's model_info.h for the sketch).
ModelFiles = Callable[[Bundle, bytes, Path], object]


@dataclass(frozen=True)
class Port:
    """A firmware port this machine can build: its directory, image name, compiler and Debian packages.

    make_args: extra Makefile variables; sources: further firmware directories the image is built from;
    sketch: the Arduino sketch (firmware/src), whose camera mode also reads export's model_info.h (the files
    of ``sketch_inputs`` are part of the cache key).
    """

    name: str
    directory: str
    image: str
    compiler: str
    packages: str
    build_id: str
    make_args: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    sketch: bool = False


PORTS = {
    "qemu": Port("qemu", "qemu_mps2", "firmware.elf", "arm-none-eabi-gcc", ARM_PACKAGES, "qemu-mps2-an386"),
    "native": Port("native", "native", "firmware", "gcc", "gcc", "native-linux"),
    "arduino": Port(
        "arduino", "arduino", "firmware", "g++", "g++", "", ("BOARD=native",), ("src", "ports/native"), sketch=True
    ),
    "arduino-m4": Port(
        "arduino-m4",
        "arduino",
        "firmware.elf",
        "arm-none-eabi-g++",
        ARM_PACKAGES + " libstdc++-arm-none-eabi-newlib",
        "",
        ("BOARD=qemu",),
        ("src", "ports/qemu_mps2"),
        sketch=True,
    ),
}
# What writes model_info.h for the sketch ports (tools/export.py's renderer): part of their cache key.
SKETCH_INPUTS = (ROOT / "tools" / "export.py",)


def _port(name: str) -> Port:
    if name not in PORTS:
        raise UserError(f"unknown firmware port {name!r}; choose one of: {', '.join(PORTS)}")
    return PORTS[name]


def _require(tool: str, packages: str) -> None:
    if shutil.which(tool) is None:
        raise UserError(
            f"{tool} not found on PATH; install it with: sudo apt-get install -y {packages} "
            "(or run `make test` as root, which installs it)"
        )


def _generator_files() -> list[Path]:
    """The code generator's source (a module or a package): a change in it rebuilds every image."""
    from tinyml import codegen

    path = Path(codegen.__file__)
    return sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]


def _hash_sources(port: Port, prefix: str) -> str:
    """sha256 of ``prefix``, the port's make variables and every source file its image is built from."""
    digest = hashlib.sha256(prefix.encode() + " ".join(port.make_args).encode())
    files = [*_generator_files(), *(SKETCH_INPUTS if port.sketch else ())]
    for rel in (*SOURCE_DIRS, f"ports/{port.directory}", *port.sources):
        files += sorted(p for p in (FIRMWARE_DIR / rel).glob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def source_digest(port: Port, tflite_sha256: str) -> str:
    """Hash of the model and every file that goes into the image (the cache key)."""
    return _hash_sources(port, tflite_sha256)


def engine_digest(port: str = "qemu") -> str | None:
    """Hash of the engine: the code generator and the firmware sources of ``port``, without the model.

    The engine's figures in model.json (codegen's RAM, the QEMU instruction count and flash) record it, so a
    figure measured on an older engine is told apart from one of this tree's (tools/report flags it, tools/sweep
    re-measures it). None when this installation has no firmware sources to hash.
    """
    return _hash_sources(_port(port), "engine") if FIRMWARE_DIR.is_dir() else None


def build_dir(bundle: Bundle, port: str, build_root: Path | None = None) -> Path:
    """Where build() puts the image for this bundle and port: build/<model-id>/<port>/."""
    return Path(build_root or DEFAULT_BUILD_ROOT) / bundle.model_id[:16] / _port(port).name


def build(
    bundle: Bundle | str | Path,
    port: str,
    *,
    build_root: Path | None = None,
    force: bool = False,
    model_files: ModelFiles | None = None,
) -> Path:
    """Generate the model's engine C and build the firmware image for ``port``; returns the image path.

    ``model_files(bundle, tflite_bytes, model_dir)`` adds files to the generated model directory; the sketch
    ports need it (their model_info.h).
    """
    spec = _port(port)
    if spec.sketch and model_files is None:
        raise ValueError(f"the {port} port builds the Arduino sketch: pass model_files (tools.firmware.build does)")
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    tflite = bundle.verified_artifact("tflite")
    _require("make", "make")
    _require(spec.compiler, spec.packages)
    out = build_dir(bundle, port, build_root)
    out.mkdir(parents=True, exist_ok=True)
    image = out / spec.image
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tflite_bytes = tflite.read_bytes()
        # The schedule `python -m tools codegen BUNDLE --ram-budget` chose, so HELLO's arena is the recorded one.
        budget = ((bundle.meta.get("codegen") or {}).get("schedule") or {}).get("ram_budget")
        key = source_digest(
            spec, hashlib.sha256(tflite_bytes).hexdigest() + ("" if budget is None else f" ram_budget={budget}")
        )
        stamp = out / "stamp"
        if not force and image.exists() and stamp.exists() and stamp.read_text() == key:
            return image
        from tinyml.codegen import generate_from_tflite  # TensorFlow-free, but keep `--help` instant

        model_dir = out / "model"
        generate_from_tflite(tflite_bytes, model_dir, budget)
        if model_files is not None:
            model_files(bundle, tflite_bytes, model_dir)
        image.unlink(missing_ok=True)
        cmd = [
            "make",
            "-C",
            str(FIRMWARE_DIR / "ports" / spec.directory),
            f"MODEL_DIR={model_dir}",
            f"OUT={image}",
            *spec.make_args,
        ]
        if spec.build_id:
            cmd.append(f"BUILD_ID={spec.build_id} {bundle.model_id[:12]}")
        run = subprocess.run(cmd, capture_output=True, text=True)
        (out / "build.log").write_text(" ".join(cmd) + "\n" + run.stdout + run.stderr)
        if run.returncode != 0:
            errors = [line for line in run.stderr.splitlines() if "error" in line] or run.stderr.splitlines()[-1:]
            raise UserError(
                f"the {port} firmware build failed ({errors[0].strip() if errors else 'no output'}); "
                f"full log: {out / 'build.log'}"
            )
        stamp.write_text(key)
    return image


def image_size(elf: Path) -> dict[str, int]:
    """text/data/bss of an ARM ELF (arm-none-eabi-size): flash = text + data, static RAM = data + bss."""
    _require("arm-none-eabi-size", "binutils-arm-none-eabi")
    run = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True)
    sections = {}
    for line in run.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    text = sections.get(".text", 0) + sections.get(".ARM.exidx", 0)
    return {"text": text, "data": sections.get(".data", 0), "bss": sections.get(".bss", 0)}
