"""Constants the Python side and the C firmware both spell out agree with the one Python table that owns them.

Each C copy names its owner in a comment; when a value changes in one place this test says where else it lives.
"""

from __future__ import annotations

import re
from pathlib import Path

from tinyml import protocol
from tinyml.codegen.emit import RUNNER_DTYPE
from tools import boards

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"


def _defines(path: Path) -> dict[str, str]:
    """#define NAME VALUE lines of a C file (VALUE up to a comment), the first definition of each name."""
    found: dict[str, str] = {}
    for name, value in re.findall(r"^\s*#define\s+(\w+)[ \t]+([^/\n]+)", path.read_text(), re.M):
        found.setdefault(name, value.strip())
    return found


def test_runner_dtype_enum_is_the_protocol_table() -> None:
    """runner.h's enum runner_dtype, HELLO's dtype codes (tinyml/protocol.py) and the generated C's names."""
    enum = re.search(r"enum runner_dtype\s*\{([^}]*)\}", (FIRMWARE / "lib/app/runner.h").read_text())
    assert enum is not None
    c_codes = {name: int(value) for name, value in re.findall(r"(RUNNER_DTYPE_\w+)\s*=\s*(\d+)", enum.group(1))}
    assert c_codes.pop("RUNNER_DTYPE_NONE") == protocol.DTYPE_NONE  # the no-model HELLO's code
    assert c_codes == {f"RUNNER_DTYPE_{name.upper()}": code for code, name in protocol.DTYPES.items()}
    assert set(RUNNER_DTYPE.values()) == set(c_codes) and all(
        RUNNER_DTYPE[n] == f"RUNNER_DTYPE_{n.upper()}" for n in RUNNER_DTYPE
    )


def test_c_parser_accepts_exactly_the_table_codes() -> None:
    """protocol.c refuses a HELLO whose dtype code is outside PROTO_DTYPE_MIN..MAX (protocol.h)."""
    defines = _defines(FIRMWARE / "lib/protocol/protocol.h")
    assert (int(defines["PROTO_DTYPE_MIN"].rstrip("u")), int(defines["PROTO_DTYPE_MAX"].rstrip("u"))) == (
        min(protocol.DTYPES),
        max(protocol.DTYPES),
    )
    assert sorted(protocol.DTYPES) == list(range(min(protocol.DTYPES), max(protocol.DTYPES) + 1))
    assert int(defines["PROTO_DTYPE_NONE"].rstrip("u")) == protocol.DTYPE_NONE not in protocol.DTYPES
    source = " ".join((FIRMWARE / "lib/protocol/protocol.c").read_text().split())
    for field in ("in_dtype", "out_dtype"):
        assert f"h->{field} < PROTO_DTYPE_MIN || h->{field} > PROTO_DTYPE_MAX" in source


def test_board_table_counts_the_frame_buffers_main_cpp_allocates() -> None:
    """tools/boards.py budgets FIRMWARE_CREDITS + 1 frame buffers per board, as firmware/src/main.cpp declares."""
    main = FIRMWARE / "src/main.cpp"
    assert int(_defines(main)["FIRMWARE_CREDITS"]) == boards.FIRMWARE_CREDITS
    assert re.search(r"frame_bufs\[FIRMWARE_CREDITS \+ 1\]", main.read_text())
    assert boards.FRAME_BUFFERS == boards.FIRMWARE_CREDITS + 1


def test_every_tflm_failure_tag_has_a_fix_on_the_host() -> None:
    """The tags runner_tflm.h documents for its "no model" HELLO are the ones the serial target explains."""
    from tinyml.targets.serial_board import RUNNER_FAILURE_FIXES

    header = (FIRMWARE / "lib/runner_tflm/runner_tflm.h").read_text()
    source = (FIRMWARE / "lib/runner_tflm/runner_tflm.cpp").read_text()
    documented = set(re.findall(r'"(tflm:[\w-]+)"', header))
    assert documented == set(re.findall(r'fail\(info, "(tflm:[\w-]+)"', source)) == set(RUNNER_FAILURE_FIXES)
