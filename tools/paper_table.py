"""``report --paper``: the MobileNet papers' configurations rebuilt with our builders, beside the published figures.

The figures a reader can check us against are the ones the papers' authors published with their checkpoints: the
TF-Slim tables (tensorflow/models, research/slim/nets/mobilenet_v1.md and research/slim/nets/mobilenet/README.md),
which give parameters to three significant digits and MACs in whole millions, for 1001 classes (ImageNet plus a
background class). The papers themselves print two digits (V1, arXiv:1704.04861 Tables 6/7: 1.0-224 4.2 M
parameters, 569 M mult-adds; V2, arXiv:1801.04381 Table 4: 3.4 M, 300 M) and are shown as a second source.

A printed figure is a rounded one, so each published value is read as the interval it stands for: the V1 table
rounds to the nearest unit, the V2 table truncates (each of its 18 MobileNet V2 rows equals floor(our MACs);
docs/benchmarks.md lists them), the papers round. The deviation we report is the distance from our count to that interval,
relative to the printed value; the plain relative difference is printed beside it. Only trainable parameters are
compared (BatchNorm moving statistics are not parameters in the papers' sense).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SLIM_V1 = "slim-v1"
SLIM_V2 = "slim-v2"
PAPER_V1 = "paper-v1"
PAPER_V2 = "paper-v2"
SOURCES = {
    SLIM_V1: "TF-Slim checkpoint table, github.com/tensorflow/models research/slim/nets/mobilenet_v1.md",
    SLIM_V2: "TF-Slim checkpoint table, github.com/tensorflow/models research/slim/nets/mobilenet/README.md",
    PAPER_V1: "Howard et al. 2017, MobileNets, arXiv:1704.04861, Tables 6 and 7",
    PAPER_V2: "Sandler et al. 2018, MobileNetV2, arXiv:1801.04381, Table 4",
}
TOLERANCE = 0.02  # the bound: within 2 % of every published figure


@dataclass(frozen=True)
class Published:
    """One published row: a configuration and its printed parameter and MAC counts (millions)."""

    architecture: str
    width: float
    resolution: int
    classes: int
    params_m: float
    params_step: float  # the printed precision, e.g. 0.01 for "4.24"
    macs_m: float
    macs_step: float
    rounding: str  # "nearest" or "floor": how the source turned its exact MAC count into the printed one
    source: str

    @property
    def label(self) -> str:
        family = "V1" if self.architecture == "mobilenet_v1" else "V2"
        return f"{family} {self.width}-{self.resolution}"


PUBLISHED: tuple[Published, ...] = (
    Published("mobilenet_v1", 1.0, 224, 1001, 4.24, 0.01, 569, 1, "nearest", SLIM_V1),
    Published("mobilenet_v1", 0.5, 128, 1001, 1.34, 0.01, 49, 1, "nearest", SLIM_V1),
    Published("mobilenet_v1", 0.25, 128, 1001, 0.47, 0.01, 14, 1, "nearest", SLIM_V1),
    Published("mobilenet_v2", 1.0, 224, 1001, 3.47, 0.01, 300, 1, "floor", SLIM_V2),
    Published("mobilenet_v2", 0.5, 96, 1001, 1.95, 0.01, 18, 1, "floor", SLIM_V2),
    Published("mobilenet_v2", 0.35, 96, 1001, 1.66, 0.01, 11, 1, "floor", SLIM_V2),
    Published("mobilenet_v1", 1.0, 224, 1000, 4.2, 0.1, 569, 1, "nearest", PAPER_V1),
    Published("mobilenet_v2", 1.0, 224, 1000, 3.4, 0.1, 300, 1, "nearest", PAPER_V2),
)


def interval(value: float, step: float, rounding: str) -> tuple[float, float]:
    """The exact values a printed ``value`` (at precision ``step``) stands for under ``rounding``."""
    if rounding == "floor":
        return value, value + step
    return value - step / 2, value + step / 2


def deviation(ours: float, value: float, step: float, rounding: str) -> float:
    """Distance from ``ours`` to the interval ``value`` stands for, relative to ``value`` (0 = consistent)."""
    lo, hi = interval(value, step, rounding)
    return 0.0 if lo <= ours < hi else min(abs(ours - lo), abs(ours - hi)) / value


@dataclass(frozen=True)
class Comparison:
    """Our count of one published configuration and how far it is from the printed figures."""

    row: Published
    params_m: float
    macs_m: float

    @property
    def params_diff(self) -> float:
        return self.params_m / self.row.params_m - 1

    @property
    def macs_diff(self) -> float:
        return self.macs_m / self.row.macs_m - 1

    @property
    def params_dev(self) -> float:
        return deviation(self.params_m, self.row.params_m, self.row.params_step, "nearest")

    @property
    def macs_dev(self) -> float:
        return deviation(self.macs_m, self.row.macs_m, self.row.macs_step, self.row.rounding)

    @property
    def within(self) -> bool:
        return max(self.params_dev, self.macs_dev) <= TOLERANCE


def reproduce(rows: tuple[Published, ...] = PUBLISHED) -> list[Comparison]:
    """Build every published configuration (224x224x3 etc., random weights) and count it with count_cost."""
    from models.mobilenet import build_model, count_cost

    out = []
    for row in rows:
        model = build_model(row.architecture, row.width, row.resolution, channels=3, classes=row.classes)
        cost = count_cost(model)
        out.append(Comparison(row, cost.trainable / 1e6, cost.macs / 1e6))
    return out


def _digits(step: float) -> int:
    return max(0, -math.floor(math.log10(step)))


def format_paper(comparisons: list[Comparison]) -> str:
    """Markdown: configuration, ours vs published params and MACs, plain difference and deviation, source."""
    lines = [
        "| configuration | classes | params ours (M) | params published (M) | diff | deviation "
        "| MACs ours (M) | MACs published (M) | diff | deviation | within 2 % | source |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in comparisons:
        r = c.row
        lines.append(
            f"| {r.label} | {r.classes} | {c.params_m:.3f} | {r.params_m:.{_digits(r.params_step)}f} "
            f"| {100 * c.params_diff:+.2f} % | {100 * c.params_dev:.2f} % | {c.macs_m:.2f} "
            f"| {r.macs_m:.{_digits(r.macs_step)}f} ({r.rounding}) | {100 * c.macs_diff:+.2f} % "
            f"| {100 * c.macs_dev:.2f} % | {'yes' if c.within else 'NO'} | {r.source} |"
        )
    used = dict.fromkeys(c.row.source for c in comparisons)
    lines += [
        "",
        "Ours: models.mobilenet.build_model + count_cost, trainable parameters, RGB input. diff = ours / "
        "published - 1; deviation = distance from ours to the interval the printed (rounded) figure stands "
        "for, relative to it. Sources:",
    ]
    lines += [f"- {key}: {SOURCES[key]}" for key in used]
    return "\n".join(lines)
