"""platformio.ini: PlatformIO's own parser accepts it without a warning, it agrees with the board table
(tools/boards.py), and the firmware tree it points at holds an installed model, so a fresh clone builds."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from platformio.project.config import ProjectConfig

from tools.boards import BOARDS

REPO = Path(__file__).resolve().parent.parent
INI = REPO / "platformio.ini"


@pytest.fixture(scope="module")
def config() -> ProjectConfig:
    return ProjectConfig(str(INI))


def _flags(config: ProjectConfig, env: str) -> dict[str, str]:
    """-DNAME=VALUE build flags of an environment as a dict (-DNAME alone maps to "")."""
    flags = {}
    for flag in config.get(f"env:{env}", "build_flags"):
        for match in re.finditer(r"-D(\w+)(?:=(\S+))?", flag):
            flags[match.group(1)] = match.group(2) or ""
    return flags


def test_platformio_validates_without_warnings(config):
    assert config.validate(silent=True) is True
    assert config.warnings == []
    lint = ProjectConfig.lint(str(INI))  # validate + interpolation of every ${...}
    assert lint == {"errors": [], "warnings": []}


def test_directories_point_into_firmware(config):
    firmware = REPO / "firmware"
    for option in ("src_dir", "lib_dir", "include_dir"):
        path = Path(config.get("platformio", option))
        assert path.is_dir() and firmware in path.parents, option
    assert (Path(config.get("platformio", "src_dir")) / "main.cpp").is_file()
    for lib in ("app", "protocol", "runner_tflm"):
        assert (Path(config.get("platformio", "lib_dir")) / lib).is_dir()


def test_every_board_has_its_environment(config):
    envs = set(config.envs())
    for board in BOARDS.values():
        assert board.env in envs
        assert config.get(f"env:{board.env}", "framework") == ["arduino"]
        assert int(config.get(f"env:{board.env}", "monitor_speed")) == board.baud
        flags = _flags(config, board.env)
        assert int(flags["FIRMWARE_BAUD"]) == board.baud
        assert int(flags["FIRMWARE_RX_BUFFER"]) == board.rx_buffer
        assert "FIRMWARE_RUNNER_TFLM" in flags
        assert ("FIRMWARE_CAMERA" in flags) == bool(board.camera)
    assert set(config.default_envs()) <= envs


def test_board_specific_settings(config):
    for env in ("esp32-s3-devkitc-1", "esp32cam"):
        assert "pioarduino/platform-espressif32" in config.get(f"env:{env}", "platform")
    assert "BOARD_HAS_PSRAM" in _flags(config, "esp32cam")
    assert config.get("env:esp32cam", "board_build.partitions") == "huge_app.csv"
    assert config.get("env:nano33ble", "platform") == "nordicnrf52"
    assert any("Chirale_TensorFlowLite" in dep for dep in config.get("env:nano33ble", "lib_deps"))
    engine = _flags(config, "esp32-s3-devkitc-1-engine")
    assert "FIRMWARE_RUNNER_ENGINE" in engine and "FIRMWARE_RUNNER_TFLM" not in engine


def test_engine_environments_mirror_their_board(config):
    """Each *-engine environment is its board's environment with the engine runner instead of TFLM (issue #10
    asks for the Nano 33 BLE's: the Cortex-M4F the engine's DSP paths target)."""
    for board_env in ("esp32-s3-devkitc-1", "nano33ble"):
        env = f"{board_env}-engine"
        assert env in config.envs()
        for option in ("platform", "board", "monitor_speed"):
            assert config.get(f"env:{env}", option) == config.get(f"env:{board_env}", option), (env, option)
        flags, board_flags = _flags(config, env), _flags(config, board_env)
        assert "FIRMWARE_RUNNER_ENGINE" in flags and "FIRMWARE_RUNNER_TFLM" not in flags
        for name in ("FIRMWARE_BAUD", "FIRMWARE_RX_BUFFER"):
            assert flags[name] == board_flags[name], (env, name)
    assert config.get("env:nano33ble-engine", "lib_deps") == []  # no TFLM library in the engine build


def test_installed_default_model_is_consistent(config):
    """The committed model files agree with each other: the array is the model whose id the header announces."""
    model_dir = Path(config.get("platformio", "include_dir"))
    source = (model_dir / "model_data.cc").read_text()
    body = re.search(r"alignas\(16\) const unsigned char g_model_data\[\] = \{(.*?)\};", source, re.S).group(1)
    tflite = bytes(int(tok, 16) for tok in re.findall(r"0x[0-9a-f]{2}", body))
    info = (model_dir / "model_info.h").read_text()
    model_id = re.search(r'#define MODEL_ID_HEX\s+"([0-9a-f]{64})"', info).group(1)
    assert hashlib.sha256(tflite).hexdigest() == model_id
    assert f"g_model_data_size = {len(tflite)};" in (model_dir / "model_data.h").read_text()
    assert re.search(r"#define MODEL_OP_COUNT \d+", (model_dir / "model_ops.h").read_text())


def test_installed_bundle_is_the_installed_model(config):
    """firmware/src/model/bundle is the bundle of the committed model (what host/stream.py needs to talk to a freshly
    flashed board): it loads, verifies, and its model id and labels are the headers'."""
    from models.bundle import load_bundle

    model_dir = Path(config.get("platformio", "include_dir"))
    bundle = load_bundle(model_dir / "bundle")
    bundle.verify()
    info = (model_dir / "model_info.h").read_text()
    assert f'#define MODEL_ID_HEX               "{bundle.model_id}"' in info
    assert hashlib.sha256(bundle.artifact_path("tflite").read_bytes()).hexdigest() == bundle.model_id
    labels = re.search(r"#define MODEL_LABELS \{(.*?)\}", info, re.S).group(1)
    assert re.findall(r'"([^"]+)"', labels) == bundle.labels
    assert not bundle.artifact_path("keras", required=False).exists()  # the bundle stays small: no Keras model


def test_engine_model_goes_where_the_build_looks(config):
    """platformio.ini and the README name one place for the engine's generated model: the include_dir, which src/
    compiles and every library sees (so main.cpp and runner_engine find model_engine.h)."""
    include_dir = Path(config.get("platformio", "include_dir")).relative_to(REPO).as_posix()
    pattern = r"python -m tools codegen BUNDLE --out (\S+?)[`)]"
    for text in (INI.read_text(), (REPO / "README.md").read_text()):
        assert re.findall(pattern, text) == [include_dir]
