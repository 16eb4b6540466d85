"""Deploy a bundle to a board in one command: its sources into the firmware tree, PlatformIO build + upload, then a
HELLO check and a short labelled self-test on the board.

    python -m tools deploy BUNDLE --board nano33ble [--engine] [--port /dev/ttyACM0]

1. ``tools export --install`` (TFLM): model_data.cc/.h, model_ops.h, model_info.h and the bundle copy into
   firmware/src/model/; with ``--engine`` also the engine's model_engine.c/.h (tinyml/codegen) next to them.
2. ``pio run -e ENV -t upload`` for the board's environment (``ENV-engine`` with ``--engine``), once PlatformIO's
   platform and toolchain for it are installed. Where they are not (PlatformIO installs them from its registry),
   deploy stops here: one line naming what is missing and how to get it, exit status 2, after saying what step 1
   changed (nothing else is touched).
3. The board's HELLO must announce this bundle's model id, input and quantisation (host/stream.py's handshake
   refuses anything else), then SELF_TEST_FRAMES labelled test images of the bundle's dataset stream through
   host/stream.py, each answer compared with LiteRT BUILTIN_REF.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from models.bundle import Bundle, load_bundle
from models.errors import UserError, exit_cli
from tools.boards import BOARDS, Board, get_board

REPO_ROOT = Path(__file__).resolve().parent.parent
STREAM_SCRIPT = REPO_ROOT / "host" / "stream.py"
MODEL_SUBDIR = Path("firmware") / "src" / "model"
SELF_TEST_FRAMES = 50
# Top-1 agreement with the CPU reference the self-test needs: the engine and TFLM's reference kernels are exact,
# optimised TFLM kernels (ESP-NN, CMSIS-NN) may round one logit by one step now and then.
SELF_TEST_AGREEMENT = 0.95


def environment(board: Board, engine: bool, project_dir: Path) -> str:
    """The platformio.ini environment for ``board`` (its ``-engine`` twin with ``engine``); a UserError if absent."""
    from platformio.project.config import ProjectConfig

    ini = project_dir / "platformio.ini"
    if not ini.is_file():
        raise UserError(f"{ini} does not exist; pass --project-dir the folder holding platformio.ini and firmware/")
    env = board.env + ("-engine" if engine else "")
    envs = ProjectConfig(str(ini)).envs()
    if env not in envs:
        raise UserError(
            f"{ini} has no environment {env!r} for {board.name}"
            f"{' with the engine' if engine else ''}; environments: {', '.join(envs)}"
        )
    return env


def install_sources(bundle: Bundle, board: Board, engine: bool, project_dir: Path) -> list[str]:
    """Step 1: generate the board's sources into the firmware tree; returns what changed, one line each."""
    from tinyml.codegen import HEADER_NAME, SOURCE_NAME, generate_from_tflite
    from tools.export import INSTALLED_BUNDLE, export_bundle

    model_dir = project_dir / MODEL_SUBDIR
    result = export_bundle(bundle.path, board=board.name, install=True, install_dir=model_dir)
    changed = [
        f"wrote {', '.join(result.files)} and {INSTALLED_BUNDLE}/ into {model_dir}",
        f"recorded the export in {bundle.path / 'model.json'} (sources also in {result.out_dir})",
    ]
    engine_files = [model_dir / HEADER_NAME, model_dir / SOURCE_NAME]
    if engine:
        generate_from_tflite(bundle.artifact_path("tflite").read_bytes(), model_dir)
        changed.append(f"wrote {HEADER_NAME}, {SOURCE_NAME} (engine) into {model_dir}")
    else:
        stale = [path for path in engine_files if path.exists()]
        for path in stale:  # another model's engine code must not stay beside this model
            path.unlink()
        if stale:
            changed.append(f"removed {', '.join(p.name for p in stale)} (an earlier engine model) from {model_dir}")
    return changed


def missing_toolchain(project_dir: Path, env: str) -> str | None:
    """What PlatformIO still needs to build ``env``: None when its platform and every required package are
    installed, else a description (PlatformIO's package API: PlatformPackageManager, PlatformFactory)."""
    from platformio.package.manager.platform import PlatformPackageManager
    from platformio.package.meta import PackageSpec
    from platformio.platform.factory import PlatformFactory
    from platformio.project.config import ProjectConfig

    config = ProjectConfig(str(project_dir / "platformio.ini"))
    platform_spec = config.get(f"env:{env}", "platform")
    package = PlatformPackageManager().get_package(PackageSpec(platform_spec))
    if package is None:
        return f"PlatformIO platform {platform_spec!r} and its toolchain are not installed"
    platform = PlatformFactory.new(package)
    options = config.items(env=env, as_dict=True)
    options["pioframework"] = options.get("framework", [])
    platform.configure_default_packages(options, ["upload"])
    absent = sorted(
        name
        for name, opts in platform.packages.items()
        if not opts.get("optional") and platform.get_package_dir(name) is None
    )
    return f"PlatformIO packages {', '.join(absent)} are not installed" if absent else None


def pio_command() -> list[str]:
    """PlatformIO's CLI: the ``pio`` beside this Python (the venv installs it), else on PATH, else the module."""
    beside = Path(sys.executable).with_name("pio")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("pio") or shutil.which("platformio")
    return [found] if found else [sys.executable, "-m", "platformio"]


def upload(project_dir: Path, env: str, port: str | None) -> None:
    """Step 2: ``pio run -e ENV -t upload``; a failed build or upload is a UserError with its last error line."""
    cmd = [*pio_command(), "run", "-d", str(project_dir), "-e", env, "-t", "upload"]
    if port:
        cmd += ["--upload-port", port]
    print("$ " + " ".join(cmd), flush=True)
    run = subprocess.run(cmd, text=True, capture_output=True)
    sys.stdout.write(run.stdout)
    if run.returncode != 0:
        lines = [ln for ln in (run.stderr + run.stdout).splitlines() if "error" in ln.lower()]
        detail = (lines or (run.stderr + run.stdout).strip().splitlines() or ["no output"])[-1].strip()
        raise UserError(f"pio run -e {env} -t upload failed ({detail}); see its output above")


def self_test_source(bundle: Bundle) -> list[str]:
    """host/stream.py's source arguments for labelled test images of the bundle's dataset: Fashion-MNIST's test
    set, or the test split of the bundle's image folder, made as training made it."""
    dataset = bundle.meta.get("dataset", {}).get("source", "fashion_mnist")
    return ["fashion-mnist:test"] if dataset == "fashion_mnist" else [str(dataset), "--split", "test"]


def verify(
    bundle: Bundle, url: str, board: Board, frames: int = SELF_TEST_FRAMES, log_path: Path | None = None
) -> dict:
    """Step 3 through host/stream.py (a CLI beside this one, so run as a program): its handshake refuses a board
    whose HELLO does not describe this bundle, then ``frames`` labelled images stream with every answer compared
    with the CPU reference. Returns the run's summary record."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(log_path) if log_path else Path(tmp) / "self_test.jsonl"
        cmd = [
            sys.executable,
            str(STREAM_SCRIPT),
            str(bundle.path),
            *self_test_source(bundle),
            "--limit",
            str(frames),
            "--port",
            url,
            "--baud",
            str(board.baud),
            "--compare-cpu",
            "--headless",
            "--quiet",
            "--log",
            str(log),
        ]
        print("$ python host/stream.py " + " ".join(cmd[2:]), flush=True)
        run = subprocess.run(cmd, capture_output=True, text=True)
        sys.stdout.write(run.stdout)
        if run.returncode != 0:
            lines = run.stderr.strip().splitlines() or [f"exit status {run.returncode}"]
            raise UserError(f"self-test on {url} failed: {lines[-1].removeprefix('error: ')}")
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    summary = records[-1]
    if summary["unanswered_frames"] or summary["compared_with_reference"] < summary["answered"]:
        raise UserError(
            f"self-test: {summary['unanswered_frames']} of {frames} frames got no answer from the board; "
            "check the serial link and the board's power, then run deploy again"
        )
    agreement = summary["agreement_top1"] or 0.0
    if agreement < SELF_TEST_AGREEMENT:
        raise UserError(
            f"self-test: the board agrees with the CPU reference on {agreement:.0%} of "
            f"{summary['answered']} frames (at least {SELF_TEST_AGREEMENT:.0%} expected); rebuild with "
            "python -m tools deploy, and report the model if it persists"
        )
    return summary


def deploy(
    bundle_path: str | Path,
    board_name: str,
    engine: bool = False,
    port: str | None = None,
    project_dir: Path = REPO_ROOT,
    frames: int = SELF_TEST_FRAMES,
) -> None:
    """Steps 1-3 (module docstring)."""
    bundle = load_bundle(bundle_path)
    board = get_board(board_name)
    env = environment(board, engine, project_dir)
    for line in install_sources(bundle, board, engine, project_dir):
        print(line, flush=True)
    missing = missing_toolchain(project_dir, env)
    if missing:
        raise UserError(
            f"cannot build {env}: {missing} (PlatformIO installs them from its registry, which this "
            f"machine cannot reach); on a machine that can: pio pkg install -d {project_dir} -e {env}, "
            f"then run deploy again"
        )
    upload(project_dir, env, port)
    if port is None:
        from tinyml.transport import list_serial_ports

        found = list_serial_ports()
        if len(found) != 1:
            raise UserError(
                f"flashed {env}; to check it, name its serial port with --port (found: {', '.join(found) or 'none'})"
            )
        port = found[0]
    verify(bundle, port, board, frames)
    print(f"{board.name} ({env}) at {port} runs {bundle.name} (model id {bundle.model_id[:16]}...)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools deploy",
        description="Put a bundle's model on a board: generate the firmware sources (export, or codegen with "
        "--engine), build and flash with PlatformIO, then check the board's HELLO and run a short "
        "labelled self-test against the CPU reference.",
    )
    parser.add_argument("bundle", help="model bundle directory (holds model.json and model_int8.tflite)")
    parser.add_argument("--board", required=True, choices=sorted(BOARDS), help="the board to flash")
    parser.add_argument(
        "--engine",
        action="store_true",
        help="the project's int8 engine instead of TFLite-Micro (environment ENV-engine)",
    )
    parser.add_argument(
        "--port",
        help="the board's serial port (default: PlatformIO finds it for the upload, "
        "the one USB serial port found for the check)",
    )
    parser.add_argument(
        "--frames", type=int, default=SELF_TEST_FRAMES, help=f"labelled self-test frames (default {SELF_TEST_FRAMES})"
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=REPO_ROOT,
        help="the folder holding platformio.ini and firmware/ (default: this repository)",
    )
    args = parser.parse_args(argv)
    if args.frames < 1:
        raise UserError(f"--frames must be at least 1, got {args.frames}")
    deploy(args.bundle, args.board, args.engine, args.port, args.project_dir.resolve(), args.frames)
    return 0


if __name__ == "__main__":
    exit_cli(main)
