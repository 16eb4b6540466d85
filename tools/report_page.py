"""The report as a page: accuracy/cost plots with Pareto frontiers and board limits, a verdict, Markdown and HTML.

``write_report(rows, out_dir)`` writes four PNGs (matplotlib, Agg backend: no display needed), ``report.md`` and
a self-contained ``report.html`` (the PNGs embedded as base64, so the one file can be mailed or attached to CI).

What a figure was measured on is part of the figure: each plot's caption names the split, the image count and
the number of models, and the tables list every model's artifact hash. Rows whose figures do not share one basis
(another split or image count than most rows, figures recorded for an older .tflite) are drawn as grey crosses,
kept out of the frontiers and the verdict, and listed under the plots with the reason, so a stale figure is never
silently mixed with fresh ones.
"""

from __future__ import annotations

import base64
import html
import math
import textwrap
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tools.board_fit import FAMILIES, best_fits, flash_margin, format_choices, ram_margin
from tools.boards import BOARDS, FRAME_BUFFERS, Board, Fit

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tools.report import Row

KIB = 1024
FAMILY_STYLE = {"mobilenet_v1": ("MobileNet V1", "tab:blue", "o"), "mobilenet_v2": ("MobileNet V2", "tab:orange", "s")}
BOARD_COLOURS = ("tab:red", "tab:green", "tab:purple", "tab:brown")
PLOT_DPI = 110
CAPTION_MARGIN = 0.01  # figure fraction kept free around the caption


@dataclass(frozen=True)
class Axis:
    """One cost axis: how to read it from a row, its label, and the board budget to draw (None: no limit)."""

    key: str
    label: str
    value: Callable[[Row], float | None]
    limit: Callable[[Board], int] | None = None
    log: bool = False


def _tflm_ram(row: Row) -> float | None:
    from tools.export import arena_with_margin

    return None if row.tflm_arena is None else arena_with_margin(row.tflm_arena) + FRAME_BUFFERS * row.input_bytes


def _engine_ram(row: Row) -> float | None:
    return None if row.engine_ram is None else row.engine_ram + FRAME_BUFFERS * row.input_bytes


PLOTS: dict[str, tuple[str, tuple[Axis, ...]]] = {
    "acc_vs_macs": (
        "int8 accuracy vs MACs per inference",
        (Axis("macs", "MACs per inference (millions)", lambda r: None if r.macs is None else r.macs / 1e6, log=True),),
    ),
    "acc_vs_ram": (
        "int8 accuracy vs peak RAM (arena + frame buffers)",
        (
            Axis("engine_ram", "engine RAM (KiB)", lambda r: _kib(_engine_ram(r)), lambda b: b.arena_budget),
            Axis("tflm_ram", "TFLM arena + margin (KiB)", lambda r: _kib(_tflm_ram(r)), lambda b: b.arena_budget),
        ),
    ),
    "acc_vs_flash": (
        "int8 accuracy vs flash",
        (
            Axis(
                "engine_flash",
                "engine firmware text+data (KiB)",
                lambda r: _kib(r.engine_flash),
                lambda b: b.model_budget,
            ),
            Axis("tflite", "TFLM: .tflite flatbuffer (KiB)", lambda r: _kib(r.tflite_bytes), lambda b: b.model_budget),
        ),
    ),
    "acc_vs_instructions": (
        "int8 accuracy vs Cortex-M4 instructions per inference (engine on QEMU mps2-an386)",
        (
            Axis(
                "instructions",
                "instructions per inference (millions)",
                lambda r: None if r.instructions is None else r.instructions / 1e6,
                log=True,
            ),
        ),
    ),
}


def _kib(value: float | None) -> float | None:
    return None if value is None else value / KIB


# ---- basis: which rows may share a figure -----------------------------------------------------------------------
@dataclass(frozen=True)
class Basis:
    """The split and image count most rows were evaluated on, and the rows set aside (name -> reason)."""

    split: str | None
    images: int | None
    excluded: dict[str, str]

    def caption(self, shown: int) -> str:
        where = "no evaluated model" if self.split is None else f"{self.split} split, {self.images:,} images each"
        text = f"int8 accuracy: LiteRT reference kernels, {where}; {shown} models, labelled by model id (sha256 of the .tflite)"
        if self.excluded:
            text += f"; {len(self.excluded)} set aside (grey x: different basis or stale)"
        return text


def basis(rows: list[Row]) -> Basis:
    """Group rows by what their accuracy was measured on; set aside the minority and any stale row."""
    excluded = {r.name: r.stale for r in rows if r.stale}
    keyed = Counter((r.split, r.images) for r in rows if r.int8_acc is not None and r.name not in excluded)
    if not keyed:
        return Basis(None, None, excluded)
    (split, images), _ = keyed.most_common(1)[0]
    for r in rows:
        if r.name in excluded or r.int8_acc is None:
            continue
        if (r.split, r.images) != (split, images):
            excluded[r.name] = (
                f"evaluated on {r.images} {r.split} images, the others on {images} {split} images; "
                f"re-run: python -m tools evaluate {r.path} --split {split}"
            )
    return Basis(split, images, excluded)


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, accuracy) points no cheaper-or-equal point beats in accuracy, sorted by cost."""
    front: list[tuple[float, float]] = []
    for cost, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or acc > front[-1][1]:
            front.append((cost, acc))
    return front


# ---- plots ----------------------------------------------------------------------------------------------------
def plot(rows: list[Row], name: str, out_dir: Path, fit_basis: Basis, boards: dict[str, Board]) -> Path:
    """Write one plot (see :func:`figure`) as ``out_dir/<name>.png``."""
    import matplotlib.pyplot as plt

    fig = figure(rows, name, fit_basis, boards)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=PLOT_DPI)
    plt.close(fig)
    return path


def figure(rows: list[Row], name: str, fit_basis: Basis, boards: dict[str, Board]) -> Figure:
    """One plot: both families, their Pareto frontiers, board budgets as vertical lines, the basis as caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title, axes_spec = PLOTS[name]
    fig, axes = plt.subplots(1, len(axes_spec), figsize=(6.4 * len(axes_spec), 4.6), squeeze=False, dpi=PLOT_DPI)
    for ax, axis in zip(axes[0], axes_spec, strict=True):
        for family in FAMILIES:
            label, colour, marker = FAMILY_STYLE[family]
            pts = [
                p
                for r in rows
                if r.architecture == family and r.name not in fit_basis.excluded and (p := _point(axis, r)) is not None
            ]
            if not pts:
                continue
            ax.scatter(*zip(*pts, strict=True), color=colour, marker=marker, label=label, zorder=3)
            for r in rows:
                x = axis.value(r) if r.architecture == family and r.name not in fit_basis.excluded else None
                if x is not None and r.int8_acc is not None and r.model_id:
                    ax.annotate(
                        r.model_id[:6],
                        (x, r.int8_acc * 100),
                        fontsize=6,
                        alpha=0.7,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
            front = pareto(pts)
            ax.step(
                *zip(*front, strict=True),
                where="post",
                color=colour,
                alpha=0.6,
                linewidth=1.5,
                label=f"{label} frontier",
            )
        aside = [p for r in rows if r.name in fit_basis.excluded and (p := _point(axis, r)) is not None]
        if aside:
            ax.scatter(*zip(*aside, strict=True), color="grey", marker="x", label="set aside", zorder=2)
        if axis.limit is not None:
            for (bname, board), colour in zip(boards.items(), BOARD_COLOURS, strict=False):  # at most 4 boards drawn
                ax.axvline(axis.limit(board) / KIB, color=colour, linestyle="--", linewidth=1)
                ax.annotate(
                    f"{bname} budget",
                    (axis.limit(board) / KIB, 0.98),
                    xycoords=("data", "axes fraction"),
                    rotation=90,
                    color=colour,
                    fontsize=8,
                    ha="right",
                    va="top",
                )
        if axis.log:
            ax.set_xscale("log")
        ax.set_xlabel(axis.label)
        ax.set_ylabel("int8 accuracy (%)")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # an axis with no figure recorded (no codegen yet) has nothing to label
            ax.legend(fontsize=8, loc="best")
    fig.suptitle(title)
    shown = sum(1 for r in rows if r.name not in fit_basis.excluded and r.int8_acc is not None)
    caption_height = _caption(fig, fit_basis.caption(shown))
    fig.tight_layout(rect=(0, caption_height, 1, 1))
    return fig


def _caption(fig: Figure, text: str) -> float:
    """Put ``text`` at the bottom left of ``fig``, wrapped so every line fits inside the figure's width (one line
    of a caption with a stale row is wider than a one-plot figure, and savefig clipped it at the right edge);
    return the height it takes, as a figure fraction, for tight_layout to keep free."""
    room = fig.bbox.width * (1 - 2 * CAPTION_MARGIN)
    caption = fig.text(CAPTION_MARGIN, CAPTION_MARGIN, text, fontsize=8, va="bottom")
    for width in range(len(text), 10, -4):  # the widest wrap that fits, measured by the renderer that draws it
        caption.set_text(textwrap.fill(text, width))
        if caption.get_window_extent().width <= room:
            break
    return caption.get_window_extent().height / fig.bbox.height + 2 * CAPTION_MARGIN


def _point(axis: Axis, row: Row) -> tuple[float, float] | None:
    """(cost on ``axis``, int8 accuracy in %) of ``row``, None when either is unknown."""
    x = axis.value(row)
    return None if x is None or row.int8_acc is None else (x, row.int8_acc * 100)


# ---- verdict --------------------------------------------------------------------------------------------------
def verdict(rows: list[Row], fit_basis: Basis, boards: dict[str, Board]) -> list[str]:
    """A few sentences written from the numbers: overall best per family, cost at equal accuracy, board answers."""
    usable = [r for r in rows if r.int8_acc is not None and r.name not in fit_basis.excluded]
    if not usable:
        return ["No evaluated model to compare yet: run python -m tools evaluate on the bundles."]
    out = []
    best = {
        f: max((r for r in usable if r.architecture == f), key=lambda r: r.accuracy, default=None) for f in FAMILIES
    }
    for family, row in best.items():
        if row is not None:
            out.append(
                f"Most accurate {FAMILY_STYLE[family][0]}: {row.name} ({row.model}, {row.input}) at "
                f"{100 * row.accuracy:.2f}% int8, {_m(row.macs)} MACs, {_m(row.instructions)} instructions."
            )
    v1, v2 = best["mobilenet_v1"], best["mobilenet_v2"]
    if v1 is not None and v2 is not None:
        lead, other = (v2, v1) if v2.accuracy > v1.accuracy else (v1, v2)
        out.append(
            f"{FAMILY_STYLE[lead.architecture][0]} leads by {100 * (lead.accuracy - other.accuracy):.2f} points "
            f"at its best{_significance(lead, other)}, with {_ratio(lead.macs, other.macs)} the MACs, {_ratio(lead.tflite_bytes, other.tflite_bytes)} "
            f"the flash and {_ratio(lead.instructions, other.instructions)} the instructions of the best "
            f"{FAMILY_STYLE[other.architecture][0]}."
        )
    for bname, board in boards.items():
        per_family: dict[str, Fitting] = {}
        for c in best_fits(usable, board):
            if c.row is not None and c.fit is not None:
                candidate = Fitting(c.family, c.backend, c.row, c.fit)
                if c.family not in per_family or _rank(candidate) > _rank(per_family[c.family]):
                    per_family[c.family] = candidate
        if not per_family:
            out.append(f"{bname}: none of these models fits.")
            continue
        ranked = sorted(per_family.values(), key=lambda f: -f.row.accuracy)
        top = ranked[0]
        text = (
            f"{bname}: {FAMILY_STYLE[top.family][0]} {top.row.name} ({100 * top.row.accuracy:.2f}%, {top.backend}: "
            f"{flash_margin(top.fit) / KIB:.0f} KiB flash and {ram_margin(top.fit) / KIB:.0f} KiB RAM to spare)"
        )
        if len(ranked) > 1:
            second = ranked[1]
            text += (
                f" over {FAMILY_STYLE[second.family][0]} {second.row.name} ({100 * second.row.accuracy:.2f}%, "
                f"{second.backend}), {100 * (top.row.accuracy - second.row.accuracy):.2f} points"
                f"{_significance(top.row, second.row)}"
            )
        else:
            missing = next(f for f in FAMILIES if f not in per_family)
            text += f"; no {FAMILY_STYLE[missing][0]} in this comparison fits"
        out.append(text + ".")
    return [s for s in out if s]


def noise_points(a: Row, b: Row) -> float | None:
    """Half-width, in points, of the 95 % interval of the accuracy difference a - b (None: image counts unknown).

    Binomial standard errors of the two accuracies, added in quadrature (normal approximation). Both models are
    usually scored on the same images, for which this is conservative; a per-image (paired) test would need the
    answers, which evaluate does not keep. A lead below this is what the test images cannot tell apart.
    """
    if not a.images or not b.images or a.int8_acc is None or b.int8_acc is None:
        return None
    variance = a.int8_acc * (1 - a.int8_acc) / a.images + b.int8_acc * (1 - b.int8_acc) / b.images
    return 100 * 1.96 * math.sqrt(variance)


def _significance(lead: Row, other: Row) -> str:
    """' (within the +-X-point noise of N test images)' or ' (beyond ...)', for a verdict sentence."""
    noise = noise_points(lead, other)
    if noise is None:
        return ""
    side = "within" if 100 * (lead.accuracy - other.accuracy) <= noise else "beyond"
    counts = f"{lead.images:,}" if lead.images == other.images else f"{lead.images:,} and {other.images:,}"
    return f" ({side} the +-{noise:.2f}-point 95 % noise of {counts} test images)"


@dataclass(frozen=True)
class Fitting:
    """A board-fit Choice known to have a model that fits (its row and fit are set)."""

    family: str
    backend: str
    row: Row
    fit: Fit


def _rank(choice: Fitting) -> tuple[float, int]:
    """Accuracy first; at equal accuracy the backend that leaves the board more flash and RAM."""
    return choice.row.accuracy, flash_margin(choice.fit) + ram_margin(choice.fit)


def _m(value: float | None) -> str:
    return "?" if value is None else f"{value / 1e6:.2f} M"


def _ratio(a: float | None, b: float | None) -> str:
    return "?" if not a or not b else f"{a / b:.2f}x"


# ---- page -----------------------------------------------------------------------------------------------------
def markdown_to_html_table(md: str) -> str:
    """The pipe tables this report prints, as HTML (other lines become paragraphs)."""
    out: list[str] = []
    rows: list[list[str]] = []

    def flush() -> None:
        if rows:
            head, body = rows[0], [r for r in rows[1:] if not set("".join(r)) <= set("-: ")]
            out.append(
                "<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr></thead>"
                "<tbody>"
                + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
                + "</tbody></table>"
            )
            rows.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        flush()
        if line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "\n".join(out)


def write_report(
    rows: list[Row], table_md: str, out_dir: str | Path, boards: dict[str, Board] | None = None
) -> dict[str, Path]:
    """Write the PNGs, report.md and report.html into ``out_dir``; returns their paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    boards = dict(BOARDS) if boards is None else boards
    fit_basis = basis(rows)
    paths = {name: plot(rows, name, out, fit_basis, boards) for name in PLOTS}
    sentences = verdict(rows, fit_basis, boards)
    fits_md = "\n\n".join(
        format_choices(best_fits([r for r in rows if r.name not in fit_basis.excluded], b), b) for b in boards.values()
    )
    aside = [f"- {name}: {why}" for name, why in fit_basis.excluded.items()]
    md = [
        "# MobileNet V1 or V2: report",
        "",
        "## Verdict",
        "",
        *[f"- {s}" for s in sentences],
        "",
        "## Models",
        "",
        table_md,
        "",
        "## Board fit",
        "",
        fits_md,
        "",
        "## Plots",
        "",
    ]
    md += [f"![{PLOTS[n][0]}]({p.name})" for n, p in paths.items()]
    md += ["", fit_basis.caption(len(rows) - len(fit_basis.excluded))]
    if aside:
        md += ["", "### Set aside", "", *aside]
    (out / "report.md").write_text("\n".join(md) + "\n")
    images = "\n".join(
        f'<figure><img alt="{html.escape(PLOTS[n][0])}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{html.escape(PLOTS[n][0])}: '
        f"{html.escape(fit_basis.caption(len(rows) - len(fit_basis.excluded)))}</figcaption></figure>"
        for n, p in paths.items()
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>MobileNet V1 or V2: report</title><style>"
        "body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
        "th{background:#eee}img{max-width:100%}figure{margin:1em 0}</style></head><body>"
        "<h1>MobileNet V1 or V2: report</h1><h2>Verdict</h2><ul>"
        + "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
        + "</ul><h2>Models</h2>"
        + markdown_to_html_table(table_md)
        + "<h2>Board fit</h2>"
        + markdown_to_html_table(fits_md)
        + "<h2>Plots</h2>"
        + images
        + (
            "<h3>Set aside</h3><ul>" + "".join(f"<li>{html.escape(a[2:])}</li>" for a in aside) + "</ul>"
            if aside
            else ""
        )
        + "</body></html>\n"
    )
    (out / "report.html").write_text(page)
    return {**paths, "markdown": out / "report.md", "html": out / "report.html"}
