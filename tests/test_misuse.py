"""Misuse, the way a new user or an adversarial tester does it (issue #14): corrupt and swapped artifacts under
every step, hostile model.json files (property-based), every CLI's error paths, wrong fix hints, two answers for
one question, and the small things (noise, ignored options, empty logs).

Each error path must print exactly one ``error:`` line naming the fix, exit 2, and show no traceback; the
tally of what was tried goes into tests/fault_counts.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.bundle import load_bundle
from models.errors import UserError, run_cli
from tests.fault_counts import COUNTS, check_no_traceback

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(code: int, err: str, *fragments: str) -> str:
    """Check a CLI's error path: exit 2, a single ``error:`` line holding every fragment, no traceback."""
    COUNTS["cli_error_paths"] += 1
    check_no_traceback(err)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1, f"exit {code}, stderr:\n{err}"
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    return errors[0]


def run_main(capsys, main, *argv: str) -> tuple[int, str, str]:
    """A CLI's main() under run_cli, in this process (TensorFlow loaded once for the whole module)."""
    capsys.readouterr()
    code = run_cli(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_command(*argv: str, python: str = sys.executable, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}  # what a user's shell has: no quieting from outside
    return subprocess.run([python, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def _copy(bundle, tmp_path: Path, name: str = "b") -> Path:
    return Path(shutil.copytree(bundle.path, tmp_path / name))


def _table_rows(out: str) -> list[str]:
    """The report's bundle rows (its Markdown table without the header and the rule)."""
    return [line for line in out.splitlines() if line.startswith("| ")][1:]


# ---- #14 item 6 (and every step): corrupt or swapped artifacts -------------------------------------------------
def _steps():
    from host import stream
    from tools import classify, codegen, edgetpu, evaluate, export, firmware, quantize

    return {
        "quantize": (quantize.main, ["--samples", "20"], "keras"),
        "evaluate": (evaluate.main, ["--limit", "20"], "tflite"),
        "export": (export.main, [], "tflite"),
        "codegen": (codegen.main, [], "tflite"),
        "firmware": (firmware.main, ["--port", "native"], "tflite"),
        "edgetpu": (edgetpu.main, [], "tflite"),
        "classify": (classify.main, ["IMAGE", "--cpu"], "tflite"),
        "stream": (stream.main, ["fashion-mnist:test", "--limit", "3", "--cpu", "--headless", "--quiet"], "tflite"),
    }


def _damage(path: Path, how: str, other: Path) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flipped":
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :])
    else:  # swapped: the same artifact of another bundle, a valid file of the right kind
        shutil.copyfile(other, path)


DAMAGE = ("truncated", "flipped", "swapped")


def test_every_step_refuses_a_corrupt_or_swapped_artifact(bundle_v1, bundle_v2, tmp_path, capsys):
    """Every step that reads an artifact checks its sha256 against model.json first (codegen took any .tflite);
    every step gets every kind of damage (each is caught before any heavy work, so this is quick)."""
    import cv2

    from models.bundle import ARTIFACT_FILES

    image = tmp_path / "shirt.png"
    cv2.imwrite(str(image), np.full((28, 28), 128, np.uint8))
    for step, (main, extra, kind) in _steps().items():
        for how in DAMAGE:
            path = _copy(bundle_v1, tmp_path, f"{step}-{how}")
            _damage(path / ARTIFACT_FILES[kind], how, bundle_v2.path / ARTIFACT_FILES[kind])
            COUNTS["corrupt_inputs"] += 1
            argv = [str(path), *(str(image) if a == "IMAGE" else a for a in extra)]
            code, _, err = run_main(capsys, main, *argv)
            fix = "quantize" if kind == "tflite" else "train --out"
            one_line_error(code, err, "changed after it was recorded", f"python -m tools {fix} {path}")


def test_report_gives_a_changed_tflite_no_board_fit(bundle_v1, bundle_v2, tmp_path, capsys):
    """#14 item 5: a corrupt or replaced .tflite got a normal row ("fits: yes")."""
    from tools import report

    path = _copy(bundle_v1, tmp_path)
    _damage(path / "model_int8.tflite", "truncated", bundle_v2.path / "model_int8.tflite")
    COUNTS["corrupt_inputs"] += 1
    code, out, err = run_main(capsys, report.main, str(path))
    assert code == 0, err
    (row,) = _table_rows(out)
    assert "yes" not in row and "changed after it was recorded" in out
    assert f"python -m tools quantize {path}" in out


def test_report_keys_figures_by_model_and_split(bundle_v1, tmp_path, capsys):
    """#14 item 5: stale metrics after a re-quantize, a 50-image validation figure beside a test figure, and two
    copies of one bundle were shown as ordinary, comparable rows."""
    from tools import report
    from tools.evaluate import evaluate_bundle
    from tools.quantize import quantize_bundle

    first, second = _copy(bundle_v1, tmp_path, "one"), tmp_path / "copy" / "one"
    shutil.copytree(first, second)
    evaluate_bundle(load_bundle(first), split="val", limit=50)
    evaluate_bundle(load_bundle(second), split="test", limit=60)
    code, out, _ = run_main(capsys, report.main, str(first), str(second))
    assert code == 0
    rows = _table_rows(out)
    assert len(rows) == 2 and str(first) in rows[0] and str(second) in rows[1]  # same name: told apart by path
    assert "val 50" in rows[0] and "test 60" in rows[1] and "not comparable" in out

    quantize_bundle(load_bundle(second), samples=20, seed=5)  # a new model: its evaluation is now stale
    code, out, _ = run_main(capsys, report.main, str(second))
    (row,) = _table_rows(out)
    assert "STALE" in row
    warning = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "evaluate figures were recorded for another .tflite" in warning[0]
    assert f"python -m tools evaluate {second}" in warning[0]


def test_report_suggests_quantize_before_evaluate(bundle_v1, tmp_path, capsys):
    """#14 item 9: report suggested evaluate for a bundle that has no int8 model yet."""
    from tools import report

    path = _copy(bundle_v1, tmp_path)
    (path / "model_int8.tflite").unlink()
    code, out, _ = run_main(capsys, report.main, str(path))
    hints = out.split("fill in with:")[1]
    assert code == 0 and f"python -m tools quantize {path}" in hints and "evaluate" not in hints


# ---- #14 item 8: hostile model.json, property-based ------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _valid_meta(bundle_v1) -> dict:
    return json.loads((bundle_v1.path / "model.json").read_text())


def _mutate(meta: dict, data) -> dict:
    """Replace, delete or retype one field somewhere in a valid model.json."""
    node, path = meta, []
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    if not path:
        return data.draw(JSON)
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and data.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(JSON)
    return meta


def _use_everything(bundle) -> None:
    """What the steps read from a bundle before any heavy work."""
    from models.preprocess import PreprocessSpec

    _ = bundle.name, bundle.architecture, bundle.labels, bundle.input_shape, bundle.meta.get("width")
    PreprocessSpec.from_bundle(bundle)
    for accessor in ("input_quant", "output_quant", "model_id"):
        try:
            getattr(bundle, accessor)
        except UserError:
            pass
    try:
        bundle.verify()
    except UserError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_model_json_is_loaded_or_refused_in_one_line(bundle_v1, tmp_path, data):
    """Any JSON at all, or a valid model.json with one field broken: load_bundle and everything a step reads then
    either work or raise UserError, never another exception (which would be a traceback)."""
    path = tmp_path / "hostile"
    if not path.exists():
        shutil.copytree(bundle_v1.path, path)
    meta = _mutate(_valid_meta(bundle_v1), data) if data.draw(st.booleans()) else data.draw(JSON)
    (path / "model.json").write_text(json.dumps(meta))
    COUNTS["hostile_model_json"] += 1
    try:
        _use_everything(load_bundle(path))
    except UserError as exc:
        assert "\n" not in str(exc)
    except Exception:
        COUNTS["tracebacks"] += 1
        raise


@pytest.mark.parametrize("content", ["[1, 2, 3]", '{"schema": 1}', '"text"', '{"schema": 1, "labels": 5}'])
def test_model_json_of_the_wrong_shape_is_one_line_for_every_cli(tmp_path, capsys, content):
    from host import stream
    from tools import classify, codegen, evaluate, export, quantize, report

    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "model.json").write_text(content)
    COUNTS["hostile_model_json"] += 1
    for main, extra in (
        (quantize.main, []),
        (evaluate.main, []),
        (export.main, []),
        (codegen.main, []),
        (report.main, []),
        (classify.main, ["x.png", "--cpu"]),
        (stream.main, ["fashion-mnist:test", "--cpu", "--headless"]),
    ):
        code, _, err = run_main(capsys, main, str(bundle), *extra)
        one_line_error(code, err, "model.json", "python -m tools train --out")


def test_system_python_outside_the_venv_is_one_line(bundle_v1):
    """#14 item 8: the system python3 (no numpy, no TensorFlow) ran into an ImportError traceback."""
    system = shutil.which("python3", path="/usr/bin:/bin")
    if system is None or subprocess.run([system, "-c", "import numpy"], capture_output=True).returncode == 0:
        pytest.skip("no system python3 without numpy on this machine")
    for argv in (("-m", "tools", "quantize", str(bundle_v1.path)), ("host/stream.py", str(bundle_v1.path), "--cpu")):
        proc = run_command(*argv, python=system)
        one_line_error(proc.returncode, proc.stderr, "no module", ".venv/bin/python")


@pytest.mark.slow  # runs the train CLI (TensorFlow start-up, model build)
def test_imagenet_weights_without_network_is_one_line(tmp_path):
    """#14 item 8: `train --weights imagenet` offline ended in Keras' download traceback."""
    env = {
        **os.environ,
        "KERAS_HOME": str(tmp_path / "keras"),
        "https_proxy": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools",
            "train",
            "--out",
            str(tmp_path / "b"),
            "--weights",
            "imagenet",
            "--channels",
            "3",
            "--height",
            "96",
            "--limit",
            "100",
            "--epochs",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    one_line_error(proc.returncode, proc.stderr, "ImageNet weights", "network")


# ---- #14 item 7: width is alpha, height is pixels, memory is estimated ---------------------------------------
@pytest.mark.slow  # runs the train CLI three times
@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--width", "64"], ["--width is alpha", "--height/--width-px"]),
        (["--height", "4096"], ["--height and --width-px are pixels"]),
        (["--height", "1024", "--batch-size", "100000"], ["GiB", "lower --batch-size"]),
    ],
)
def test_train_bounds_width_and_size_and_estimates_memory(tmp_path, args, fragments):
    """Run under an 8 GiB address-space limit: a version that starts such a run anyway fails fast here instead of
    taking the machine's memory (the OOM killer then picks whatever process is largest)."""
    import resource

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools",
            "train",
            "--out",
            str(tmp_path / "b"),
            "--limit",
            "100",
            "--epochs",
            "1",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit_memory,
    )
    one_line_error(proc.returncode, proc.stderr, *fragments)
    assert not (tmp_path / "b" / "model.json").exists()


# ---- #14 item 9: the fix a hint names must be the right one ----------------------------------------------------
def test_changed_tflite_under_stream_names_quantize_not_firmware(bundle_v1, bundle_v2, tmp_path, capsys):
    from host import stream

    path = _copy(bundle_v1, tmp_path)
    shutil.copyfile(bundle_v2.path / "model_int8.tflite", path / "model_int8.tflite")
    code, _, err = run_main(capsys, stream.main, str(path), "fashion-mnist:test", "--limit", "2", "--cpu", "--headless")
    line = one_line_error(code, err, f"python -m tools quantize {path}")
    assert "flash" not in line and "export" not in line


def test_quantize_without_a_model_names_a_valid_train_command(bundle_v1, tmp_path, capsys):
    from tools import quantize

    path = _copy(bundle_v1, tmp_path)
    (path / "model.keras").unlink()
    code, _, err = run_main(capsys, quantize.main, str(path))
    one_line_error(code, err, f"python -m tools train --out {path}")


# ---- #14 item 10: one image reader, one preprocessing, one CPU oracle ----------------------------------------
def test_classify_cpu_and_stream_cpu_give_one_answer(bundle_v1, tmp_path, capsys):
    """A 16-bit PNG, an RGBA PNG, a grayscale JPEG: `tools classify --cpu` and `stream.py --cpu` agree on the
    scores (same decoder, same preprocessing, the same BUILTIN_REF oracle)."""
    import cv2

    from host import stream
    from host.results_log import read_log
    from tools import classify

    rng = np.random.default_rng(3)
    folder = tmp_path / "images"
    folder.mkdir()
    images = {
        "deep.png": (rng.integers(0, 65535, (40, 30), dtype=np.uint16)),
        "alpha.png": rng.integers(0, 255, (28, 28, 4), dtype=np.uint8),
        "gray.jpg": rng.integers(0, 255, (28, 28), dtype=np.uint8),
        "colour.bmp": rng.integers(0, 255, (50, 50, 3), dtype=np.uint8),
    }
    for name, pixels in images.items():
        cv2.imwrite(str(folder / name), pixels)
    files = sorted(str(p) for p in folder.iterdir())
    code, out, err = run_main(capsys, classify.main, str(bundle_v1.path), *files, "--cpu", "--json", "--top-k", "10")
    assert code == 0, err
    classified = {
        Path(p["image"]).name: {label: score for _, label, score in p["top"]} for p in json.loads(out)["predictions"]
    }
    log = tmp_path / "cpu.jsonl"
    code, _, err = run_main(
        capsys, stream.main, str(bundle_v1.path), str(folder), "--cpu", "--headless", "--quiet", "--log", str(log)
    )
    assert code == 0, err
    streamed = {Path(r["frame"]).name: r for r in read_log(log) if r["type"] == "result"}
    assert set(streamed) == set(classified) == set(images)
    out_quant = bundle_v1.output_quant
    for name, record in streamed.items():
        scores = out_quant.dequantize(np.asarray(record["output"]))
        assert {label: float(s) for label, s in zip(bundle_v1.labels, scores, strict=True)} == classified[name], name


# ---- #14 item 11: noise and small things -----------------------------------------------------------------------
def test_split_for_fashion_mnist_is_not_ignored(bundle_v1, capsys):
    from host import stream

    code, _, err = run_main(
        capsys, stream.main, str(bundle_v1.path), "fashion-mnist:test", "--split", "val", "--cpu", "--headless"
    )
    one_line_error(code, err, "--split", "fashion-mnist:")


def test_failed_handshake_leaves_no_empty_log(bundle_v1, tmp_path, capsys):
    import socket

    from host import stream

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts the connection and never says HELLO
    log = tmp_path / "never.jsonl"
    try:
        code, _, err = run_main(
            capsys,
            stream.main,
            str(bundle_v1.path),
            "fashion-mnist:test",
            "--port",
            f"socket://127.0.0.1:{server.getsockname()[1]}",
            "--hello-timeout",
            "1",
            "--headless",
            "--log",
            str(log),
        )
    finally:
        server.close()
    one_line_error(code, err, "no HELLO")
    assert not log.exists()


def test_unsupported_image_files_are_named_not_skipped_silently(tmp_path, capsys):
    from tinyml.data import load_image_folder

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        import cv2

        cv2.imwrite(str(tmp_path / name / "x.png"), np.zeros((8, 8), np.uint8))
        (tmp_path / name / "y.webp").write_bytes(b"RIFF\0\0\0\0WEBPVP8 ")
        (tmp_path / name / "notes.txt").write_text("not an image")
    dataset, skipped = load_image_folder(tmp_path)
    assert len(dataset) == 2
    assert sorted(Path(p).name for p, _ in skipped) == ["y.webp", "y.webp"]  # named; a .txt is not an image file


def test_tools_without_a_step_lists_the_steps_and_exits_0():
    proc = run_command("-m", "tools")
    assert proc.returncode == 0 and "steps:" in proc.stdout and "train" in proc.stdout
