"""The board table: every PlatformIO board the firmware targets, in one place.

Export uses it to say whether a model fits each board (and to refuse one it does not fit), platformio.ini
mirrors its environment names and baud rates (tests/test_platformio.py checks they agree), the host uses
``baud`` as the default serial speed, and docs/boards.md prints it.

Memory figures are the chip's totals plus what the firmware itself takes (core, RTOS, protocol buffers, stack,
TFLM + kernels code). The "reserved" numbers are estimates from typical Arduino builds of this size, stated here
so a fit verdict can be checked by hand; a real board build (``pio run -e ENV``) prints the exact RAM/flash use.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import UserError

KIB = 1024
MIB = 1024 * 1024
# Frames the host may have in flight on a board (firmware/src/main.cpp's FIRMWARE_CREDITS default) and the frame
# buffers that costs in internal RAM (one more: the frame being parsed). tests/test_constants.py checks main.cpp.
FIRMWARE_CREDITS = 2
FRAME_BUFFERS = FIRMWARE_CREDITS + 1


@dataclass(frozen=True)
class Board:
    """One target board.

    sram: on-chip RAM; ram_reserved: what core, RTOS, stacks, serial/protocol buffers use before the arena.
    psram: external PSRAM the arena may fall back to (slower); 0 when the board has none.
    app_flash: the application partition (ESP32: from the partition table platformio.ini selects);
    code_reserved: firmware code without the model (Arduino core + TFLM/ESP-NN kernels + app + camera driver).
    baud: the serial speed the firmware opens and the host uses by default (ignored over native USB CDC).
    rx_buffer: serial RX buffer bytes the firmware requests (0 = fixed by the core; then USB CDC flow control
    keeps the host from overrunning it).
    camera: on-board camera model when the board supports camera mode, else "".
    """

    name: str
    env: str
    description: str
    mcu: str
    sram: int
    ram_reserved: int
    psram: int
    app_flash: int
    code_reserved: int
    baud: int
    rx_buffer: int
    camera: str = ""

    @property
    def arena_budget(self) -> int:
        """Bytes of on-chip RAM left for the tensor arena."""
        return self.sram - self.ram_reserved

    @property
    def model_budget(self) -> int:
        """Bytes of flash left for the model's weights (the .tflite)."""
        return self.app_flash - self.code_reserved


BOARDS: dict[str, Board] = {
    board.name: board
    for board in (
        Board(
            name="esp32s3",
            env="esp32-s3-devkitc-1",
            description="Espressif ESP32-S3-DevKitC-1 (N8, Arduino-ESP32 3.x via pioarduino, TFLM with ESP-NN)",
            mcu="ESP32-S3 (dual Xtensa LX7, 240 MHz)",
            sram=512 * KIB,
            ram_reserved=192 * KIB,
            psram=0,
            app_flash=0x330000,  # default_8MB.csv app0
            code_reserved=640 * KIB,
            baud=921600,
            rx_buffer=16 * KIB,
        ),
        Board(
            name="esp32cam",
            env="esp32cam",
            description="AI-Thinker ESP32-CAM (OV2640, 4 MB PSRAM; camera mode: the board grabs and classifies frames)",
            mcu="ESP32 (dual Xtensa LX6, 240 MHz)",
            sram=520 * KIB,
            ram_reserved=320 * KIB,
            psram=4 * MIB - 256 * KIB,  # minus the camera frame buffers
            app_flash=0x300000,  # huge_app.csv app0 (no OTA)
            code_reserved=768 * KIB,
            baud=921600,
            rx_buffer=16 * KIB,
            camera="OV2640",
        ),
        Board(
            name="nano33ble",
            env="nano33ble",
            description="Arduino Nano 33 BLE (nRF52840, Mbed OS core, Chirale_TensorFlowLite)",
            mcu="nRF52840 (Cortex-M4F, 64 MHz)",
            sram=256 * KIB,
            ram_reserved=80 * KIB,
            psram=0,
            app_flash=1 * MIB - 64 * KIB,  # minus the Arduino bootloader
            code_reserved=320 * KIB,
            baud=921600,  # native USB CDC: the host may open any rate
            rx_buffer=0,
        ),
    )
}


def get_board(name: str) -> Board:
    """Look a board up by table name or PlatformIO environment name."""
    for board in BOARDS.values():
        if name in (board.name, board.env):
            return board
    raise UserError(f"unknown board {name!r}; choose one of: {', '.join(BOARDS)}")


@dataclass(frozen=True)
class Fit:
    """Whether a model fits a board: flatbuffer bytes in flash, arena (incl. margin) + frame buffers in RAM."""

    board: Board
    model_bytes: int
    arena_bytes: int
    buffer_bytes: int
    arena_in_psram: bool
    problems: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: verdict plus the numbers it rests on."""
        b = self.board
        if not self.fits:
            return f"{b.name}: does NOT fit: " + "; ".join(self.problems)
        numbers = (
            f"model {self.model_bytes / KIB:.1f} KiB of {b.model_budget / KIB:.0f} KiB flash, "
            f"arena {self.arena_bytes / KIB:.1f} KiB + frame buffers {self.buffer_bytes / KIB:.1f} KiB "
            f"of {b.arena_budget / KIB:.0f} KiB SRAM"
        )
        if self.arena_in_psram:
            return f"{b.name}: fits, arena in PSRAM (slower): {numbers} (+{b.psram / KIB:.0f} KiB PSRAM)"
        return f"{b.name}: fits: {numbers}"


def check_fit(board: Board, model_bytes: int, arena_bytes: int, input_bytes: int = 0) -> Fit:
    """Compare a model's flash and RAM needs with a board's budgets.

    input_bytes: one input tensor; the firmware holds FRAME_BUFFERS of them in internal RAM besides the arena,
    which may fall back to PSRAM on boards that have it.
    """
    buffers = FRAME_BUFFERS * input_bytes
    problems = []
    if model_bytes > board.model_budget:
        problems.append(
            f"model needs {model_bytes / KIB:.1f} KiB flash, {board.name} has "
            f"{board.model_budget / KIB:.0f} KiB after {board.code_reserved / KIB:.0f} KiB of firmware code"
        )
    in_sram = arena_bytes + buffers <= board.arena_budget
    in_psram = not in_sram and board.psram >= arena_bytes and buffers <= board.arena_budget
    if not in_sram and not in_psram:
        ram = f"{board.arena_budget / KIB:.0f} KiB SRAM"
        if board.psram:
            ram += f" and {board.psram / KIB:.0f} KiB PSRAM"
        problems.append(
            f"arena {arena_bytes / KIB:.1f} KiB + frame buffers {buffers / KIB:.1f} KiB need more RAM than "
            f"{board.name} has: {ram} free ({board.ram_reserved / KIB:.0f} KiB of its "
            f"{board.sram / KIB:.0f} KiB SRAM go to the firmware)"
        )
    return Fit(board, model_bytes, arena_bytes, buffers, in_psram and not problems, tuple(problems))
