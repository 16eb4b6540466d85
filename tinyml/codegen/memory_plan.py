"""The static activation arena: liveness, aliases, in-place groups, greedy placement."""

from __future__ import annotations

from dataclasses import dataclass, field

from tinyml.codegen.layer import Layer, nbytes
from tinyml.codegen.ops import ALIAS_OPS
from tinyml.tflite_graph import Graph, Operator

ARENA_ALIGN = 8


@dataclass
class Plan:
    offsets: dict[int, int] = field(default_factory=dict)  # arena tensor -> byte offset
    aliases: dict[int, str] = field(default_factory=dict)  # tensor -> "input" / "output" (caller buffers)
    arena_bytes: int = 0  # activations only
    internal: dict[int, int] = field(default_factory=dict)  # layer index -> offset of its internal buffers
    live: list[int] = field(default_factory=list)  # per layer: arena bytes in use while it runs (address union)


def align(n: int) -> int:
    return (n + ARENA_ALIGN - 1) // ARENA_ALIGN * ARENA_ALIGN


def live_operators(graph: Graph) -> list[Operator]:
    """Operators that contribute to the outputs; shape arithmetic feeding RESHAPE's shape input is dropped."""
    needed = set(graph.outputs)
    live: list[Operator] = []
    for op in reversed(graph.operators):
        if not any(o in needed for o in op.outputs):
            continue
        live.append(op)
        data_inputs = op.inputs[:1] if op.name in ALIAS_OPS else op.inputs
        needed.update(i for i in data_inputs if i >= 0)
    return list(reversed(live))


def plan_memory(graph: Graph, layers: list[Layer]) -> Plan:
    """Static arena plan.

    Each tensor lives from its producing layer to its last consumer. Tensors that share memory form a group
    with fixed offsets relative to each other: an alias (RESHAPE) sits exactly on its input; an in-place
    output (each Layer names the inputs it may overwrite) starts at its input's offset, or, when it is
    larger (a 1x1 convolution widening the channels), ends where its input ends, so pixels written in
    ascending order never reach input pixels not yet read. Groups are placed greedily (largest first,
    lowest offset where no member overlaps a live tensor), the way TFLM's greedy planner places tensors.
    """
    g_in, g_out = set(graph.inputs), set(graph.outputs)
    plan = Plan()
    for layer in layers:
        layer.in_place = False  # decided below, for this list of layers
    for t in g_in:
        plan.aliases[t] = "input"
    for t in g_out:
        plan.aliases[t] = "output"
    size: dict[int, int] = {}
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, layer in enumerate(layers):
        for t in layer.outputs:
            first.setdefault(t, i)
            size[t] = nbytes(graph.tensors[t])
        for t in layer.inputs:
            last[t] = i
        if layer.internal_bytes:  # a chain's row buffers: a tensor of its own, alive while the layer runs
            t = internal_tensor(i)
            size[t], first[t], last[t] = layer.internal_bytes, i, i
    group: dict[int, int] = {}  # tensor -> group id (the first member)
    rel: dict[int, int] = {}  # tensor -> offset relative to its group

    def join(src: int, dst: int, offset: int) -> None:
        group[dst], rel[dst] = group.setdefault(src, src), rel.setdefault(src, 0) + offset

    def group_end(t: int) -> int:
        gid = group.get(t, t)
        return max(last.get(m, first.get(m, -1)) for m in size if group.get(m, m) == gid)

    for i, layer in enumerate(layers):
        src, dst = layer.inputs[0], layer.outputs[0]
        if layer.alias:
            if dst in g_out:
                continue  # a real copy into the caller's output buffer
            if src in plan.aliases:
                plan.aliases[dst] = plan.aliases[src]
            else:
                join(src, dst, 0)
            continue
        if dst in plan.aliases:
            continue
        for cand in layer.in_place_candidates():
            # The output may take over an input's buffer when nothing reads that input afterwards.
            if cand in plan.aliases or group_end(cand) != i:
                continue
            join(cand, dst, min(0, size[cand] - size[dst]))
            layer.in_place = True
            break

    members: dict[int, list[int]] = {}
    for t in size:
        if t not in plan.aliases:
            members.setdefault(group.get(t, t), []).append(t)
            rel.setdefault(t, 0)
    spans = []
    for gid, ts in members.items():
        low = min(rel[t] for t in ts)
        extent = max(rel[t] + size[t] for t in ts) - low
        spans.append((extent, min(first.get(t, -1) for t in ts), gid, [(t, rel[t] - low) for t in ts]))
    placed: list[tuple[int, int, int, int]] = []  # address, size, first, last of every placed tensor

    def conflict(base: int, parts: list[tuple[int, int]]) -> int | None:
        """End address of a placed tensor clashing with the group at base, else None."""
        for t, offset in parts:
            a0, a1 = base + offset, base + offset + size[t]
            t0, t1 = first.get(t, -1), last.get(t, first.get(t, -1))
            for addr, n, p0, p1 in placed:
                if p0 <= t1 and t0 <= p1 and addr < a1 and a0 < addr + n:
                    return addr + n - offset
        return None

    for extent, _, _gid, parts in sorted(spans, key=lambda s: (-s[0], s[1])):
        base = 0
        while (clash := conflict(base, parts)) is not None:
            base = align(max(clash, base + 1))
        for t, offset in parts:
            plan.offsets[t] = base + offset
            placed.append((base + offset, size[t], first.get(t, -1), last.get(t, first.get(t, -1))))
        plan.arena_bytes = max(plan.arena_bytes, base + extent)
    plan.arena_bytes = align(plan.arena_bytes)
    plan.internal = {
        i: plan.offsets[internal_tensor(i)] for i in range(len(layers)) if internal_tensor(i) in plan.offsets
    }
    plan.live = [union_bytes([(a, a + n) for a, n, p0, p1 in placed if p0 <= i <= p1]) for i in range(len(layers))]
    return plan


def internal_tensor(layer_index: int) -> int:
    """The planner's key for a layer's internal buffers (negative: no graph tensor has it)."""
    return -2 - layer_index


def union_bytes(spans: list[tuple[int, int]]) -> int:
    """Bytes covered by a set of [start, end) address ranges (in-place tensors overlap)."""
    total, reach = 0, 0
    for a, b in sorted(spans):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total
