"""A fused chain of convolution-type layers run row by row (eng_chain_run, firmware/lib/engine/engine_chain.h).

The members keep their own lowering (kernel choice, constants, scratch); the chain only adds the row buffers
between them and one eng_chain_run call in place of the members' calls. ``row_geometry`` and ``simulate`` mirror
the C driver exactly, so the code generator knows each row buffer's capacity, how many kernel calls and how many
copied bytes a chain costs (tinyml/codegen/schedule.py turns those into instructions).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyml.codegen.ctext import c_struct
from tinyml.codegen.kernel_abi import constant
from tinyml.codegen.layer import Layer
from tinyml.tflite_graph import Graph

# The kernel entry point a depthwise member's layer-by-layer call uses -> the eng_stage_kind that calls it; a
# CONV_2D member is ENG_STAGE_CONV with its kernel (whichever the op chose) as the stage's function pointer.
STAGE_KINDS = {
    "eng_dwconv2d_s8": "ENG_STAGE_DW",
    "eng_dwconv2d_s8_wide": "ENG_STAGE_DW_WIDE",
    "eng_dwconv2d_s8_3x3": "ENG_STAGE_DW3X3",
}
BUF_ALIGN = 8
EXTRA_ROWS = 2  # row buffer capacity beyond the consumer's window (engine_chain.h: 2/3 row copied per row)


@dataclass(frozen=True)
class Rows:
    """A layer's row geometry, as engine_chain.c's rows_t."""

    in_h: int
    in_row: int  # bytes per input row
    out_h: int
    out_row: int  # bytes per output row
    out_c: int
    k_h: int
    stride: int
    pad: int
    dil: int

    @property
    def window(self) -> int:
        return (self.k_h - 1) * self.dil + 1


def stage_kind(layer: Layer) -> str | None:
    """The eng_stage_kind for a layer the chain driver can run, else None."""
    if layer.op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D") or len(layer.tensor(layer.inputs[0]).shape) != 4:
        return None
    if layer.op.name == "CONV_2D":
        return "ENG_STAGE_CONV"
    return STAGE_KINDS.get(kernel_function(layer))


def kernel_function(layer: Layer) -> str:
    """The kernel entry point the layer's own call names."""
    return layer.call.split("(", 1)[0]


def row_geometry(layer: Layer) -> Rows:
    x, y = layer.tensor(layer.inputs[0]), layer.tensor(layer.outputs[0])
    w = layer.tensor(layer.op.inputs[1])
    _, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
    geom = layer.window_geometry(x, y, w.shape[1], w.shape[2])  # type: ignore[attr-defined]
    return Rows(
        in_h, in_w * in_c, out_h, out_w * out_c, out_c, w.shape[1], geom["stride_h"], geom["pad_top"], geom["dil_h"]
    )


def buffer_rows(producer: Rows, consumer: Rows) -> int:
    """Capacity of the row buffer between two stages: the consumer's window, plus EXTRA_ROWS when windows
    overlap (the rows kept are moved to the front when it fills; more rows, fewer moves)."""
    rows = consumer.window + (EXTRA_ROWS if consumer.window > consumer.stride else 0)
    return min(rows, producer.out_h)


@dataclass(frozen=True)
class Simulation:
    calls: tuple[int, ...]  # kernel calls (= rows computed) per stage
    copied: int  # bytes moved inside row buffers


def simulate(geoms: list[Rows], rows: list[int]) -> Simulation:
    """Run engine_chain.c's schedule without computing anything: the calls and copies it makes."""
    n = len(geoms)
    nxt, base, keep, calls = [0] * n, [0] * n, [0] * n, [0] * n
    copied = 0

    def produce(i: int) -> None:
        nonlocal copied
        g, j = geoms[i], nxt[i]
        y0 = j * g.stride - g.pad
        lo, hi = max(y0, 0), min(y0 + g.window - 1, g.in_h - 1)
        if i > 0:
            if nxt[i - 1] < lo:
                nxt[i - 1] = base[i - 1] = lo
            keep[i - 1] = lo
            while nxt[i - 1] <= hi:
                produce(i - 1)
        if i < n - 1 and j - base[i] == rows[i]:
            if j - keep[i] > rows[i]:
                raise AssertionError("row buffer smaller than the consumer's window")
            copied += (j - keep[i]) * g.out_row
            base[i] = keep[i]
        calls[i] += 1
        nxt[i] = j + 1

    for _ in range(geoms[-1].out_h):
        produce(n - 1)
    return Simulation(tuple(calls), copied)


class FusedChain(Layer):
    """Members run as one eng_chain_run; the graph sees one layer from the first input to the last output."""

    kernel = "chain"

    def __init__(self, graph: Graph, members: list[Layer]):
        if not 2 <= len(members) <= constant("ENG_CHAIN_MAX_STAGES"):
            raise ValueError(f"a chain has 2..ENG_CHAIN_MAX_STAGES members, not {len(members)}")
        self.g = graph
        self.members = members
        self.op = members[-1].op
        self.name = f"C{members[0].op.index}"
        self.inputs = [members[0].inputs[0]]
        self.outputs = [members[-1].outputs[0]]
        self.geoms = [row_geometry(m) for m in members]
        self.rows = [buffer_rows(p, c) for p, c in zip(self.geoms, self.geoms[1:])]
        self.offsets: list[int] = []
        total = 0
        for g, r in zip(self.geoms, self.rows):
            self.offsets.append(total)
            total += -(-g.out_row * r // BUF_ALIGN) * BUF_ALIGN
        self.internal_bytes = total
        self.weight_bytes = sum(m.weight_bytes for m in members)
        self.in_place = False
        self.scratch = None  # the members' needs: scratch_needs / scratch_bytes
        self.call = (
            f"eng_chain_run(&{self.name}, (const int8_t *){{in0}}, (int8_t *){{out0}}, (int8_t *){{bufs}}, "
            f"{{scratch}});"
        )
        self.decls = ""

    def lower(self) -> None:  # pragma: no cover - members are lowered already
        raise NotImplementedError

    @property
    def label(self) -> str:
        return f"ops #{self.members[0].op.index}-#{self.op.index} fused ({' > '.join(m.op.name for m in self.members)})"

    def scratch_needs(self) -> list[tuple[str, tuple[int, ...]]]:
        return [s for m in self.members for s in m.scratch_needs()]

    @property
    def scratch_bytes(self) -> int:
        return max(m.scratch_bytes for m in self.members)

    def simulation(self) -> Simulation:
        return simulate(self.geoms, self.rows)

    def declarations(self) -> str:
        stages = []
        for m, off, rows in zip(self.members, [*self.offsets, 0], [*self.rows, 0]):
            kind = stage_kind(m)
            conv = f".conv = {kernel_function(m)}, " if kind == "ENG_STAGE_CONV" else ""
            stages.append(f"{{.kind = {kind}, .layer = &{m.name}, {conv}.buf_offset = {off}u, .rows = {rows}}}")
        body = ",\n  ".join(stages)
        for m in self.members:
            m.in_place = False  # rows go between separate buffers (the driver clears it in its views too)
        return (
            "".join(m.declarations() for m in self.members)
            + f"static const eng_stage_t {self.name}_stages[{len(stages)}] = {{\n  {body}\n}};\n"
            + c_struct("eng_chain_t", self.name, dict(n=len(stages), stages=f"{self.name}_stages"))
        )
