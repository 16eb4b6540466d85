"""``report --board NAME`` (or ``--ram``/``--flash``): the most accurate V1 and V2 that fit, per backend, with margins.

Two backends hold a model differently, so each has its own fit:

* **TFLM**: the .tflite flatbuffer in flash, the measured TFLM arena plus export's margin (tools.export
  ``arena_with_margin``) and the firmware's frame buffers in RAM; the board table's ``code_reserved`` already
  counts the interpreter and its kernels.
* **engine** (the project's generated C): the firmware image's text + data in flash as built for the Cortex-M4
  (``report --measure-qemu`` records it; it includes the engine kernels, the protocol and the app loop, so it is an
  upper bound for the model's share), the static arena the code generator planned plus the frame buffers in RAM.

Both go through tools.boards.check_fit, the one fit rule the export step also applies. A model whose figures are
not recorded for a backend is not a candidate for it (and is named, so the user knows which step to run).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.errors import UserError
from tools.boards import Board, Fit, check_fit, get_board

if TYPE_CHECKING:
    from tools.report import Row

BACKENDS = ("tflm", "engine")
FAMILIES = ("mobilenet_v1", "mobilenet_v2")
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}


def parse_bytes(text: str, option: str) -> int:
    """'256K', '1M', '262144', '512 KiB' -> bytes (binary units); a bad value is a one-line UserError."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS or float(match.group(1)) <= 0:
        raise UserError(f"{option} {text!r} is not a size; write bytes or a number with K/M, e.g. {option} 256K")
    return int(float(match.group(1)) * _UNITS[unit])


def custom_board(ram: int, flash: int) -> Board:
    """A board given by the RAM and flash left for the model (nothing reserved: the user's numbers are budgets)."""
    return Board(
        name="custom",
        env="",
        description=f"{ram // 1024} KiB RAM, {flash // 1024} KiB flash for the model",
        mcu="",
        sram=ram,
        ram_reserved=0,
        psram=0,
        app_flash=flash,
        code_reserved=0,
        baud=0,
        rx_buffer=0,
    )


def resolve_board(name: str | None, ram: str | None, flash: str | None) -> Board:
    """The board of ``--board NAME``, or a custom one from ``--ram`` and ``--flash`` (both needed)."""
    if name is not None:
        if ram is not None or flash is not None:
            raise UserError("give either --board NAME or --ram and --flash, not both")
        return get_board(name)
    if ram is None or flash is None:
        raise UserError("--ram and --flash go together (e.g. --ram 256K --flash 1M), or name a board with --board")
    return custom_board(parse_bytes(ram, "--ram"), parse_bytes(flash, "--flash"))


def backend_fit(row: Row, board: Board, backend: str) -> Fit | None:
    """The fit of ``row`` on ``board`` for ``backend``; None when the figures it needs are not recorded."""
    from tools.export import arena_with_margin

    if backend == "tflm":
        if row.tflite_bytes is None or row.tflm_arena is None:
            return None
        return check_fit(board, row.tflite_bytes, arena_with_margin(row.tflm_arena), row.input_bytes)
    if row.engine_flash is None or row.engine_ram is None:
        return None
    return check_fit(board, row.engine_flash, row.engine_ram, row.input_bytes)


@dataclass(frozen=True)
class Choice:
    """The most accurate model of one family that fits one backend on the board, with its margins in bytes."""

    family: str
    backend: str
    row: Row | None
    fit: Fit | None
    candidates: int  # models of the family with the figures this backend needs
    fitting: int  # of those, how many fit
    unmeasured: tuple[str, ...]  # models of the family missing them

    @property
    def flash_margin(self) -> int | None:
        return None if self.fit is None else flash_margin(self.fit)

    @property
    def ram_margin(self) -> int | None:
        return None if self.fit is None else ram_margin(self.fit)


def flash_margin(fit: Fit) -> int:
    """Flash bytes left on the board after the model."""
    return fit.board.model_budget - fit.model_bytes


def ram_margin(fit: Fit) -> int:
    """RAM bytes left after arena and frame buffers (PSRAM when the arena goes there)."""
    if fit.arena_in_psram:
        return fit.board.psram - fit.arena_bytes
    return fit.board.arena_budget - fit.arena_bytes - fit.buffer_bytes


def best_fits(rows: list[Row], board: Board) -> list[Choice]:
    """For each family and backend: the highest int8 accuracy among the rows that fit ``board``."""
    choices = []
    for family in FAMILIES:
        members = [r for r in rows if r.architecture == family and r.int8_acc is not None]
        for backend in BACKENDS:
            fits = [(r, backend_fit(r, board, backend)) for r in members]
            measured = [(r, f) for r, f in fits if f is not None]
            fitting = [(r, f) for r, f in measured if f.fits]
            best = max(fitting, key=lambda rf: (rf[0].accuracy, -rf[1].model_bytes), default=(None, None))
            choices.append(
                Choice(
                    family,
                    backend,
                    best[0],
                    best[1],
                    len(measured),
                    len(fitting),
                    tuple(r.name for r, f in fits if f is None),
                )
            )
    return choices


def format_choices(choices: list[Choice], board: Board, aside: Mapping[str, str] | None = None) -> str:
    """Markdown: one row per family x backend, the chosen model, its accuracy, usage and margins.

    ``aside`` names the models left out of ``choices`` (stale or measured on another basis, see
    tools.report_page.basis), so a missing candidate is explained rather than silently dropped.
    """
    kib = 1024
    lines = [
        f"Board: {board.name} ({board.description}): {board.model_budget / kib:.0f} KiB flash and "
        f"{board.arena_budget / kib:.0f} KiB RAM for the model"
        + (f", {board.psram / kib:.0f} KiB PSRAM" if board.psram else ""),
        "",
        "| family | backend | most accurate that fits | int8 acc | flash used | flash margin | RAM used "
        "| RAM margin | fitting / measured |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in choices:
        family = "MobileNet V1" if c.family == "mobilenet_v1" else "MobileNet V2"
        if c.row is None or c.fit is None:
            lines.append(f"| {family} | {c.backend} | none fits | - | - | - | - | - | 0 / {c.candidates} |")
            continue
        ram_used = c.fit.arena_bytes + c.fit.buffer_bytes
        where = " (arena in PSRAM)" if c.fit.arena_in_psram else ""
        lines.append(
            f"| {family} | {c.backend} | {c.row.name} ({c.row.model}, {c.row.input}) "
            f"| {100 * c.row.accuracy:.2f}% | {c.fit.model_bytes / kib:.1f} KiB "
            f"| {flash_margin(c.fit) / kib:.1f} KiB | {ram_used / kib:.1f} KiB{where} "
            f"| {ram_margin(c.fit) / kib:.1f} KiB | {c.fitting} / {c.candidates} |"
        )
    if aside:
        lines.append("")
        lines.append(
            "Not considered (figures stale or measured on another basis): "
            + "; ".join(f"{name}: {why}" for name, why in aside.items())
        )
    missing = sorted({name for c in choices for name in c.unmeasured})
    if missing:
        lines.append("")
        lines.append(
            "Not considered for every backend (figures not recorded): "
            + ", ".join(missing)
            + "; run evaluate, codegen and report --measure-qemu on them."
        )
    return "\n".join(lines)
