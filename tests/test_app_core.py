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
        [gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-g", "-O1", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", f"-I{fw / 'app'}", f"-I{fw / 'protocol'}",
         str(ROOT / "tests" / "c" / "app_test.c"), str(fw / "app" / "app.c"), str(fw / "protocol" / "protocol.c"),
         "-o", str(exe)],
        check=True, capture_output=True, text=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert "Sanitizer" not in run.stderr, run.stderr
    lines: dict[str, str] = {}
    for line in run.stdout.splitlines():
        _, _, rest = line.partition(" ")
        lines.setdefault(rest.split(":")[0], line)
    assert run.returncode in (0, 1), f"app_test crashed (status {run.returncode}): {run.stderr[-2000:]}"
    return lines


@pytest.mark.parametrize("case", CASES)
def test_app_core(app_test_output: dict[str, str], case: str) -> None:
    assert app_test_output.get(case) == f"ok {case}", app_test_output.get(case, f"{case} did not run")
