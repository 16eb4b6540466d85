"""Shared session fixtures: small real model bundles, trained and int8-quantized once per test session.

Fixture API (stable; other test modules rely on it):

``bundle_v1`` -> models.bundle.Bundle
    MobileNet V1, width 0.25, 32x32x1 grayscale, 10 Fashion-MNIST classes, int8 input and output. Trained for 3
    epochs on a 3000-image class-balanced subset (about 55-65 % validation accuracy, chance is 10 %), quantized with
    200 calibration images. Has model.json, model.keras, model_int8.tflite, labels.txt.
``bundle_v2`` -> Bundle
    The same for MobileNet V2, width 0.35.
``make_bundle(architecture="mobilenet_v1", width=0.25, height=32, width_px=None, channels=1, input_dtype="int8")``
    -> Bundle: a factory for other configurations (non-square, RGB, uint8 input, other widths). Tiny training budget
    (1 epoch on 1000 images): use it for shape/dtype/plumbing checks, not for accuracy. Results are cached per
    session by arguments, so asking twice costs nothing.
``fmnist_test_samples`` -> tinyml.data.Dataset
    100 class-balanced raw Fashion-MNIST test images (uint8 28x28x1) with labels, never seen in training.

All bundles live in a session temporary directory; treat them as read-only (copy one with shutil.copytree before
modifying it). Under pytest-xdist (``make test`` runs ``-n 2``) the directory is the one the run's workers share, and
each bundle is trained once by whichever worker asks first while the others wait on its file lock, so a run trains
what a serial one trains and every worker tests the same weights. Fashion-MNIST comes from Debian's
dataset-fashion-mnist (``make test`` installs it).

Options for a real board (tests/test_board_real.py; skipped without ``--board-port``; docs/boards.md):
``--board-port PORT`` (e.g. /dev/ttyACM0), ``--board-env ENV`` (the platformio.ini environment it was flashed
with, e.g. nano33ble or nano33ble-engine), ``--board-bundle DIR`` (default firmware/src/model/bundle).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Fixtures that train a model: a test using any of them (directly, through another fixture, or by a parameter naming
# one for request.getfixturevalue) is marked slow.
TRAINING_FIXTURES = {"bundle_v1", "bundle_v2", "make_bundle"}
_running: list[pytest.Item] = []  # the test being set up, for the unmarked-training guard in _build


def _training_fixtures(item: pytest.Item) -> set[str]:
    """The training fixtures ``item`` uses, by name or through a parameter."""
    callspec = getattr(item, "callspec", None)
    named = {value for value in callspec.params.values() if isinstance(value, str)} if callspec else set()
    return TRAINING_FIXTURES & (set(getattr(item, "fixturenames", ())) | named)


def _needs_training(item: pytest.Item) -> bool:
    return bool(_training_fixtures(item))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark slow every test that needs a trained bundle, so `make test-fast` (-m "not slow") leaves it out."""
    for item in items:
        if _needs_training(item):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _running[:] = [item]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("board", "a real flashed board (tests/test_board_real.py, docs/boards.md)")
    group.addoption(
        "--board-port",
        default=None,
        metavar="PORT",
        help="serial port of a board flashed with this tree's firmware (e.g. /dev/ttyACM0): runs the "
        "on-device accuracy, fidelity and fault tests on it",
    )
    group.addoption(
        "--board-env",
        default=None,
        metavar="ENV",
        help="the PlatformIO environment the board was flashed with, e.g. nano33ble or "
        "esp32-s3-devkitc-1-engine (sets the baud rate and the expected runner)",
    )
    group.addoption(
        "--board-bundle",
        default=None,
        metavar="DIR",
        help="the bundle the board runs (default: firmware/src/model/bundle, the tree's model)",
    )


FIXTURE_TRAINING = dict(limit=3000, epochs=3, batch_size=32, lr=5e-3)
FACTORY_TRAINING = dict(limit=1000, epochs=1, batch_size=32, lr=5e-3)


def _build(
    root: Path,
    architecture: str,
    width: float,
    height: int,
    width_px: int | None,
    channels: int,
    input_dtype: str,
    budget: dict,
):
    if _running and _running[0].get_closest_marker("slow") is None:  # keeps `make test-fast` fast
        pytest.fail(
            f"{_running[0].nodeid} trains a model but is not marked slow: mark it @pytest.mark.slow or name "
            "the bundle fixture in its signature (or as a parameter) so conftest marks it",
            pytrace=False,
        )
    from models.bundle import load_bundle

    name = f"{architecture}_{width:g}_{height}x{width_px or height}x{channels}_{input_dtype}_{budget['epochs']}ep"
    done = root / f"{name}.done"
    with _locked(root / f"{name}.lock"):
        if done.exists():  # another worker of this run trained it
            return load_bundle(root / name)
        shutil.rmtree(root / name, ignore_errors=True)  # what a worker killed mid-training left
        bundle = _train(root / name, architecture, width, height, width_px, channels, input_dtype, budget)
        done.touch()
        return bundle


def _train(
    path: Path,
    architecture: str,
    width: float,
    height: int,
    width_px: int | None,
    channels: int,
    input_dtype: str,
    budget: dict,
):
    from tools.quantize import quantize_bundle
    from tools.train import TrainConfig, train_bundle

    config = TrainConfig(
        architecture=architecture,
        width=width,
        height=height,
        width_px=width_px,
        channels=channels,
        dropout=0.0,
        seed=1,
        **budget,
    )
    bundle = train_bundle(path, config, verbose=0)
    quantize_bundle(bundle, samples=200, input_dtype=input_dtype)
    return bundle


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (the kernel drops it if the holder dies, so no stale lock is left)."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _run_root(tmp_path_factory) -> Path:
    """This run's temporary directory: under pytest-xdist the parent of every worker's own, which they share
    (pytest-xdist's documented way to share session data); in a serial run the session's own."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def _bundle_root(tmp_path_factory) -> Path:
    root = _run_root(tmp_path_factory) / "bundles"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session", autouse=True)
def _train_ahead(request: pytest.FixtureRequest) -> None:
    """Under pytest-xdist, each worker starts by training a different one of the fixture bundles the selected tests
    need (gw0 bundle_v2, the longer one, gw1 bundle_v1), so the two trainings run side by side instead of one
    worker waiting on the other's lock as soon as both reach a test that needs the same bundle."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return
    needed = set().union(*map(_training_fixtures, request.session.items)) & {"bundle_v1", "bundle_v2"}
    mine = sorted(needed, reverse=True)[int(worker.removeprefix("gw")) :: int(os.environ["PYTEST_XDIST_WORKER_COUNT"])]
    current = _running[:]
    _running.clear()  # the first test need not be slow: this training is for the slow tests to come
    try:
        for name in mine:
            request.getfixturevalue(name)
    finally:
        _running[:] = current


@pytest.fixture(scope="session")
def bundle_v1(_bundle_root):
    """MobileNet V1 0.25, 32x32x1, trained 3 epochs on 3000 Fashion-MNIST images, int8."""
    return _build(_bundle_root, "mobilenet_v1", 0.25, 32, None, 1, "int8", FIXTURE_TRAINING)


@pytest.fixture(scope="session")
def bundle_v2(_bundle_root):
    """MobileNet V2 0.35, 32x32x1, trained 3 epochs on 3000 Fashion-MNIST images, int8."""
    return _build(_bundle_root, "mobilenet_v2", 0.35, 32, None, 1, "int8", FIXTURE_TRAINING)


@pytest.fixture(scope="session")
def make_bundle(_bundle_root) -> Callable[..., object]:
    """Factory for other bundle configurations (tiny training; cached per session by arguments)."""
    cache: dict[tuple, object] = {}

    def factory(
        architecture: str = "mobilenet_v1",
        width: float = 0.25,
        height: int = 32,
        width_px: int | None = None,
        channels: int = 1,
        input_dtype: str = "int8",
    ):
        key = (architecture, float(width), height, width_px, channels, input_dtype)
        if key not in cache:
            cache[key] = _build(
                _bundle_root, architecture, width, height, width_px, channels, input_dtype, FACTORY_TRAINING
            )
        return cache[key]

    return factory


@pytest.fixture(scope="session")
def measured(bundle_v1, bundle_v2, tmp_path_factory):
    """Copies of the V1 and V2 fixtures with every figure recorded: evaluate (50 images), codegen, a QEMU count.

    Tests that use it need the qemu mark; they copy a bundle before changing it.
    """
    from tests.tooling import require_tool

    require_tool("qemu-system-arm", "sudo apt-get install -y qemu-system-arm")
    require_tool("arm-none-eabi-gcc", "sudo apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi")
    from models.bundle import load_bundle
    from tinyml.codegen import generate
    from tools.evaluate import evaluate_bundle
    from tools.report import measure_qemu

    root = tmp_path_factory.mktemp("measured")
    out = []
    for src in (bundle_v1, bundle_v2):
        bundle = load_bundle(shutil.copytree(src.path, root / src.path.name))
        evaluate_bundle(bundle, limit=50)
        generate(bundle.path)
        bundle = load_bundle(bundle.path)
        measure_qemu(bundle, frames=2)
        out.append(load_bundle(bundle.path))
    return root, out


@pytest.fixture(scope="session")
def fmnist_test_samples():
    """100 class-balanced raw Fashion-MNIST test images (uint8 28x28x1) and labels."""
    from tinyml.data import balanced_sample, load_fashion_mnist

    return balanced_sample(load_fashion_mnist("test"), 100, seed=0)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker: hand this worker's fault-injection tally to the controller, which prints it."""
    if hasattr(session.config, "workeroutput"):
        from tests.fault_counts import COUNTS

        session.config.workeroutput["fault_counts"] = dict(COUNTS)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: the controller hears of each worker that finished
def pytest_testnodedown(node, error) -> None:
    from tests.fault_counts import COUNTS

    COUNTS.update(getattr(node, "workeroutput", {}).get("fault_counts", {}))


def pytest_terminal_summary(terminalreporter) -> None:
    """The fault-injection tally (tests/fault_counts.py) summed over the workers, when fault tests ran."""
    if hasattr(terminalreporter.config, "workeroutput"):  # a worker: the controller reports the sum
        return
    from tests.fault_counts import report_lines

    for line in report_lines():
        terminalreporter.write_line(line)
