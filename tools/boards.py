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
    """Whether a model (flatbuffer bytes + arena bytes incl. margin) fits a board, and why not."""

    board: Board
    model_bytes: int
    arena_bytes: int
    arena_in_psram: bool
    problems: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: verdict plus the numbers it rests on."""
        b = self.board
        numbers = (f"model {self.model_bytes / KIB:.1f} KiB of {b.model_budget / KIB:.0f} KiB flash, "
                   f"arena {self.arena_bytes / KIB:.1f} KiB of {b.arena_budget / KIB:.0f} KiB SRAM")
        if b.psram:
            numbers += f" (+{b.psram / KIB:.0f} KiB PSRAM)"
        if not self.fits:
            return f"{b.name}: does NOT fit: " + "; ".join(self.problems)
        where = " (arena in PSRAM: slower)" if self.arena_in_psram else ""
        return f"{b.name}: fits{where}: {numbers}"


def check_fit(board: Board, model_bytes: int, arena_bytes: int) -> Fit:
    """Compare a model's flash and arena needs with a board's budgets."""
    problems = []
    if model_bytes > board.model_budget:
        problems.append(f"model needs {model_bytes / KIB:.1f} KiB flash, {board.name} has "
                        f"{board.model_budget / KIB:.0f} KiB after {board.code_reserved / KIB:.0f} KiB of firmware code")
    in_psram = arena_bytes > board.arena_budget
    if in_psram and arena_bytes > board.psram:
        ram = f"{board.arena_budget / KIB:.0f} KiB SRAM"
        if board.psram:
            ram += f" and {board.psram / KIB:.0f} KiB PSRAM"
        problems.append(f"arena needs {arena_bytes / KIB:.1f} KiB RAM, {board.name} has {ram} free "
                        f"({board.ram_reserved / KIB:.0f} KiB of its {board.sram / KIB:.0f} KiB SRAM go to the firmware)")
    return Fit(board, model_bytes, arena_bytes, in_psram and not problems, tuple(problems))
