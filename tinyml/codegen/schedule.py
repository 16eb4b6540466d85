"""Which layers run fused (row by row, tinyml/codegen/ops/chain.py) and which layer by layer.

A layer-by-layer plan holds each layer's whole input and output at once, so MobileNet V2's wide expand outputs
(48x48x48 at 96x96) set its RAM. A fused chain holds only the rows a depthwise window still needs, at the price
of one kernel call per row instead of one per layer and a few row moves. The planner chooses, per run of
fusable layers (consecutive CONV_2D / DEPTHWISE_CONV_2D where each reads only the previous one's output),
a partition into fused chains and single layers:

* with a RAM budget (activations + scratch, bytes): the fewest estimated extra instructions among partitions
  whose every step fits; none fits: a one-line error with the smallest schedule's size and its peak layer;
* without one: the smallest arena reachable, and among partitions reaching it the fewest extra instructions.

Memory per step is estimated as the sum of the tensors alive (a fused step: the chain's input, output and row
buffers plus whatever else is alive across it; a single layer: the layer-by-layer plan's figure); the final
plan (memory_plan.plan_memory) is checked against the budget and the target tightened while placement loses
bytes to fragmentation.

Extra instructions of a chain (COST_* below, calibrated on QEMU mps2-an386 with -icount shift=0 by
bench/engine_memory.py --calibrate): every kernel call beyond a layer's first costs a fixed part (the call,
the row view, the kernel's per-call set-up) plus a part per output channel (per-call requantisation-mode and
constants set-up), and every byte moved inside a row buffer about one instruction (newlib memcpy).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import UserError
from tinyml.codegen.kernel_abi import constant
from tinyml.codegen.layer import Layer, nbytes
from tinyml.codegen.memory_plan import Plan, align, plan_memory
from tinyml.codegen.ops.chain import FusedChain, stage_kind
from tinyml.tflite_graph import Graph

COST_CALL = 146.0  # instructions per extra kernel call (fixed part)
COST_CHANNEL = 15.5  # instructions per extra kernel call and output channel
COST_COPY = 1.15  # instructions per byte moved inside a row buffer (newlib memcpy)
COST_STAGE = 50.0  # the driver's set-up per stage (below the fit's resolution; makes a useless chain cost something)
REFINE_STEPS = 8  # tighter targets tried when placement exceeds the estimate
LAYER_BY_LAYER = 1 << 31  # a RAM budget every model fits: the fastest schedule, no fused chain


@dataclass
class Schedule:
    layers: list[Layer]  # execution order; FusedChain where fused
    plan: Plan
    scratch_bytes: int
    overhead: float  # estimated extra instructions against layer by layer
    budget: int | None

    @property
    def arena_bytes(self) -> int:
        return self.plan.arena_bytes + self.scratch_bytes

    @property
    def op_count(self) -> int:
        return sum(len(layer.members) if isinstance(layer, FusedChain) else 1 for layer in self.layers)

    @property
    def chains(self) -> list[FusedChain]:
        return [layer for layer in self.layers if isinstance(layer, FusedChain)]

    def peak_label(self) -> str:
        i = max(range(len(self.layers)), key=lambda k: self.plan.live[k])
        return self.layers[i].label


def chain_overhead(chain: FusedChain) -> float:
    sim = chain.simulation()
    calls = sum((n - 1) * (COST_CALL + COST_CHANNEL * g.out_c) for n, g in zip(sim.calls, chain.geoms))
    return calls + COST_COPY * sim.copied + COST_STAGE * len(chain.members)


def fusable_runs(graph: Graph, layers: list[Layer]) -> list[tuple[int, int]]:
    """[start, end] of every maximal run of layers that can form chains."""
    readers: dict[int, int] = {}
    for layer in layers:
        for t in layer.inputs:
            readers[t] = readers.get(t, 0) + 1
    runs: list[tuple[int, int]] = []
    start = None
    for i, layer in enumerate(layers):
        linked = (
            start is not None
            and stage_kind(layer) is not None
            and layer.inputs[0] == layers[i - 1].outputs[0]
            and readers.get(layer.inputs[0]) == 1
            and layer.inputs[0] not in graph.outputs
        )
        if linked:
            continue
        if start is not None and i - 1 > start:
            runs.append((start, i - 1))
        start = i if stage_kind(layer) is not None else None
    if start is not None and len(layers) - 1 > start:
        runs.append((start, len(layers) - 1))
    return runs


class Planner:
    """The layer-by-layer plan's liveness and figures, and the chain candidates' memory and cost."""

    def __init__(self, graph: Graph, layers: list[Layer]):
        self.graph, self.layers = graph, layers
        self.base = plan_memory(graph, layers)
        self.scratch = align(max(layer.scratch_bytes for layer in layers))
        self.runs = fusable_runs(graph, layers)
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        for i, layer in enumerate(layers):
            for t in layer.outputs:
                self.first.setdefault(t, i)
            for t in layer.inputs:
                self.last[t] = i
        self._chains: dict[tuple[int, int], FusedChain] = {}
        self._costs: dict[tuple[int, int], float] = {}
        self.max_stages = constant("ENG_CHAIN_MAX_STAGES")

    def arena_size(self, t: int) -> int:
        return 0 if t in self.base.aliases else nbytes(self.graph.tensors[t])

    def chain(self, a: int, c: int) -> FusedChain:
        if (a, c) not in self._chains:
            self._chains[(a, c)] = FusedChain(self.graph, self.layers[a : c + 1])
        return self._chains[(a, c)]

    def step_bytes(self, a: int, c: int) -> int:
        """Estimated activation bytes while layers a..c run (one layer: the layer-by-layer plan's figure)."""
        if a == c:
            return self.base.live[a]
        chain = self.chain(a, c)
        across = sum(self.arena_size(t) for t, f in self.first.items() if f < a and self.last.get(t, f) > c)
        return across + self.arena_size(chain.inputs[0]) + self.arena_size(chain.outputs[0]) + chain.internal_bytes

    def segments(self, start: int, end: int) -> list[tuple[int, int]]:
        return [(a, c) for c in range(start, end + 1) for a in range(max(start, c - self.max_stages + 1), c + 1)]

    def cost(self, a: int, c: int) -> float:
        if a == c:
            return 0.0
        if (a, c) not in self._costs:
            self._costs[(a, c)] = chain_overhead(self.chain(a, c))
        return self._costs[(a, c)]

    def smallest_peak(self, start: int, end: int) -> int:
        """The lowest estimated peak over partitions of one run (minimax over its segments)."""
        best = {start: 0}
        for k in range(start + 1, end + 2):
            best[k] = min(max(best[a], self.step_bytes(a, k - 1)) for a in range(max(start, k - self.max_stages), k))
        return best[end + 1]

    def cheapest(self, start: int, end: int, target: int) -> tuple[float, list[tuple[int, int]]] | None:
        """Fewest extra instructions over partitions of one run whose every step fits target, or None."""
        best: dict[int, tuple[float, list[tuple[int, int]]] | None] = {start: (0.0, [])}
        for k in range(start + 1, end + 2):
            options = []
            for a in range(max(start, k - self.max_stages), k):
                prev = best[a]
                if prev is not None and self.step_bytes(a, k - 1) <= target:
                    options.append((prev[0] + self.cost(a, k - 1), [*prev[1], (a, k - 1)]))
            best[k] = min(options, key=lambda o: o[0]) if options else None
        return best[end + 1]

    def build(self, target: int) -> tuple[list[Layer], float] | None:
        """The cheapest schedule whose estimated steps all fit target activation bytes, or None."""
        in_run = {i for s, e in self.runs for i in range(s, e + 1)}
        if any(self.base.live[i] > target for i in range(len(self.layers)) if i not in in_run):
            return None
        fused: dict[int, tuple[int, int]] = {}
        overhead = 0.0
        for s, e in self.runs:
            found = self.cheapest(s, e, target)
            if found is None:
                return None
            overhead += found[0]
            fused.update({a: (a, c) for a, c in found[1] if c > a})
        out: list[Layer] = []
        i = 0
        while i < len(self.layers):
            if i in fused:
                out.append(self.chain(*fused[i]))
                i = fused[i][1] + 1
            else:
                out.append(self.layers[i])
                i += 1
        return out, overhead

    def schedule(self, target: int, budget: int | None) -> Schedule:
        built = self.build(target)
        if built is None:  # only below smallest_target
            raise ValueError(f"no schedule fits {target} activation bytes")
        return Schedule(built[0], plan_memory(self.graph, built[0]), self.scratch, built[1], budget)

    def smallest_target(self) -> int:
        in_run = {i for s, e in self.runs for i in range(s, e + 1)}
        fixed = [self.base.live[i] for i in range(len(self.layers)) if i not in in_run]
        return max([*fixed, *(self.smallest_peak(s, e) for s, e in self.runs)], default=0)


def choose_schedule(graph: Graph, layers: list[Layer], budget: int | None = None) -> Schedule:
    """The schedule for a RAM budget (bytes of activations + scratch), or the smallest one without a budget."""
    planner = Planner(graph, layers)
    floor = planner.smallest_target()
    smallest = planner.schedule(floor, budget)
    if budget is None:
        return smallest
    target = budget - planner.scratch
    for _ in range(REFINE_STEPS):
        if target < floor:
            break
        schedule = planner.schedule(target, budget)
        if schedule.arena_bytes <= budget:
            return schedule
        target -= schedule.arena_bytes - budget  # placement lost bytes to fragmentation: aim lower
    if smallest.arena_bytes <= budget:
        return smallest
    raise UserError(
        f"no schedule fits --ram-budget {budget} B: the smallest needs {smallest.arena_bytes} B, "
        f"{smallest.arena_bytes - budget} B more, its peak at {smallest.peak_label()}; raise the budget "
        f"or use a smaller model (width or input size)"
    )
