"""The portable firmware core (firmware/lib/app) under host gcc with AddressSanitizer and UBSan.

tests/c/app_test.c plays the port and a checksum runner and decodes the device's replies with the real
protocol library; each of its cases prints ``ok <name>`` or ``FAIL <name>: <why>``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.tooling import require_tool

pytestmark = pytest.mark.c

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    "boot_hello_and_hello_req",
    "frames_give_results_in_order",
    "byte_at_a_time_transport",
    "credits_pipeline_and_overrun",
    "bad_frames_get_errors_and_loop_continues",
    "oversized_and_version",
    "corrupt_stream_never_breaks_the_loop",
    "runner_init_failure_reported",
    "config_checked",
    "pong_follows_earlier_frames",
    "camera_mode_submit",
    "idle_link_flushes_truncated_frame",
]


@pytest.fixture(scope="session")
def app_test_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Build and run tests/c/app_test.c once; map each case name to its line of output."""
    gcc = require_tool("gcc", "sudo apt-get install -y gcc")
    exe = tmp_path_factory.mktemp("app_core") / "app_test"
    fw = ROOT / "firmware" / "lib"
    subprocess.run(
        [
            gcc,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-g",
            "-O1",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            f"-I{fw / 'app'}",
            f"-I{fw / 'protocol'}",
            str(ROOT / "tests" / "c" / "app_test.c"),
            str(fw / "app" / "app.c"),
            str(fw / "protocol" / "protocol.c"),
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert "Sanitizer" not in run.stderr, run.stderr
    lines: dict[str, str] = {}
    for line in run.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "bytes":  # "bytes <name> <hex>": what the device sent, for the Python side
            name, _, data = rest.partition(" ")
            lines[f"bytes {name}"] = data
        else:
            lines.setdefault(rest.split(":")[0], line)
    assert run.returncode in (0, 1), f"app_test crashed (status {run.returncode}): {run.stderr[-2000:]}"
    return lines


@pytest.mark.parametrize("case", CASES)
def test_app_core(app_test_output: dict[str, str], case: str) -> None:
    assert app_test_output.get(case) == f"ok {case}", app_test_output.get(case, f"{case} did not run")


def test_no_model_hello_reaches_the_user_as_the_runner_failure(app_test_output: dict[str, str]) -> None:
    """#15: a board whose runner failed to initialise sends HELLO with dtype codes 0/0; the host used to reject it
    as malformed ("unknown dtype codes 0/0") and time out, hiding the runner's tag. Fed the exact bytes app.c sent,
    the codec decodes it and the serial target stops at once with the tag and its fix in one line."""
    import os
    import threading
    import tty

    from models.errors import UserError
    from tinyml import protocol as proto
    from tinyml.targets.serial_board import SerialBoardTarget

    data = bytes.fromhex(app_test_output["bytes no_model_hello"])
    (packet,) = proto.Decoder().feed(data)
    hello = packet.message()
    assert isinstance(hello, proto.Hello)
    assert (hello.in_dtype, hello.out_dtype, hello.input_shape, hello.num_classes) == ("none", "none", (0, 0, 0), 0)
    assert hello.runner_failure == "test:arena-too-small" and hello.build == "app-test"
    assert proto.encode(hello, packet.seq) == data

    master, slave = os.openpty()
    tty.setraw(slave)

    def board() -> None:  # answers the host's first bytes (its HELLO_REQ) with the C's boot HELLO
        os.read(master, 4096)
        os.write(master, data)

    thread = threading.Thread(target=board, daemon=True)
    thread.start()
    try:
        with pytest.raises(UserError) as failure:
            SerialBoardTarget(os.ttyname(slave), name="the board", hello_timeout=5.0).open()
    finally:
        thread.join(5.0)
        os.close(master)
        os.close(slave)
    message = str(failure.value)
    assert "\n" not in message and message.startswith(
        "the board has no model running: its runner failed to initialise (test:arena-too-small); flash firmware"
    )
