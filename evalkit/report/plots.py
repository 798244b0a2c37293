"""Plots of `evalkit report` as inline SVG (matplotlib, no network, no JavaScript library).

Every value is drawn with its 95% interval (error bars, or a band around a curve), and every
axis includes zero: a difference of a point between two runs is drawn as the small difference
it is, never zoomed until seed noise looks like a trade-off. An axis whose values are all zero
runs from 0 to 1, not over a range of rounding noise around zero.

Artists carry SVG ids (``<salt>-xerr-<i>``, ``<salt>-yerr-<i>``, ``<salt>-band-<i>``, ``<salt>-bar-<panel>-<i>``)
so that a reader of the page, and the tests, can find each run's intervals in the SVG.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def color(index: int) -> str:
    """The colour of the run at this position of the report (the same in every plot)."""
    return _COLORS[index % len(_COLORS)]


@dataclass(frozen=True)
class Estimate:
    """A value with the half width of its 95% interval (None: the run recorded no standard error)."""

    value: float
    half_width: float | None = None

    @property
    def low(self) -> float:
        return self.value - (self.half_width or 0.0)

    @property
    def high(self) -> float:
        return self.value + (self.half_width or 0.0)


@dataclass(frozen=True)
class Series:
    """One run's curve: value (with interval) against k."""

    label: str
    color_index: int
    ks: list[int]
    points: list[Estimate]


@dataclass(frozen=True)
class Point:
    """One run in a diversity-vs-quality plot."""

    label: str
    color_index: int
    x: Estimate
    y: Estimate


@dataclass(frozen=True)
class Bars:
    """One metric of a task: one bar per run."""

    metric: str
    title: str
    values: list[tuple[str, int, Estimate]]  # (run, colour index, estimate)


def axis_range(estimates: Sequence[Estimate]) -> tuple[float, float]:
    """A range that holds every interval and zero, padded by 5% of its span; (0, 1) when all are 0."""
    lows = [e.low for e in estimates if math.isfinite(e.low)]
    highs = [e.high for e in estimates if math.isfinite(e.high)]
    lo, hi = min([0.0, *lows]), max([0.0, *highs])
    if hi - lo <= 1e-12:
        return 0.0, 1.0
    pad = 0.05 * (hi - lo)
    return (lo - pad if lo < 0 else 0.0), (hi + pad if hi > 0 else 0.0)


def _pyplot():
    import matplotlib  # heavy: only when a report draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy, as above

    return plt


def _svg(fig, salt: str) -> str:
    """The figure as an <svg> element. A per-figure hash salt keeps the clip-path ids of several
    figures in one page distinct (and the output deterministic)."""
    import matplotlib  # heavy, as above; imported already by the figure

    plt = _pyplot()
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _errors(estimates: Sequence[Estimate]) -> list[float] | None:
    widths = [e.half_width for e in estimates]
    return None if all(w is None for w in widths) else [w or 0.0 for w in widths]


def curve_svg(title: str, ylabel: str, series: Sequence[Series], salt: str) -> str:
    """A metric against k (log2 axis), one line per run with its 95% band: test-time scaling curves."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for i, s in enumerate(series):
        values = [p.value for p in s.points]
        ax.plot(s.ks, values, marker="o", color=color(s.color_index), label=s.label, gid=f"{salt}-line-{i}")
        if _errors(s.points) is not None:
            band = ax.fill_between(
                s.ks, [p.low for p in s.points], [p.high for p in s.points], color=color(s.color_index), alpha=0.18
            )
            band.set_gid(f"{salt}-band-{i}")
    ax.set_xscale("log", base=2)
    ks = sorted({k for s in series for k in s.ks})
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_ylim(*axis_range([p for s in series for p in s.points]))
    ax.set_xlabel("k (samples)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _svg(fig, salt)


def scatter_svg(title: str, xlabel: str, ylabel: str, points: Sequence[Point], salt: str) -> str:
    """One point per run (named in the legend), diversity (x) against quality (y), with 95% intervals on both axes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for i, p in enumerate(points):
        xerr, yerr = _errors([p.x]), _errors([p.y])
        drawn = ax.errorbar(
            [p.x.value],
            [p.y.value],
            xerr=xerr,
            yerr=yerr,
            fmt="o",
            color=color(p.color_index),
            capsize=3,
            zorder=3,
            label=p.label,
        )
        drawn.lines[0].set_gid(f"{salt}-point-{i}")
        bar_groups = iter(drawn.lines[2])  # x errors first, then y errors (matplotlib's order)
        for axis, err in (("xerr", xerr), ("yerr", yerr)):
            if err is not None:
                next(bar_groups).set_gid(f"{salt}-{axis}-{i}")
    ax.set_xlim(*axis_range([p.x for p in points]))
    ax.set_ylim(*axis_range([p.y for p in points]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return _svg(fig, salt)


def bars_svg(panels: Sequence[Bars], salt: str) -> str:
    """One small panel per metric, one bar per run with its 95% interval; each panel its own scale."""
    plt = _pyplot()
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.3 * rows), squeeze=False)
    for i, (ax, panel) in enumerate(zip(axes.flat, panels)):
        labels = [run for run, _, _ in panel.values]
        estimates = [e for _, _, e in panel.values]
        drawn = ax.bar(
            range(len(labels)),
            [e.value for e in estimates],
            yerr=_errors(estimates),
            color=[color(c) for _, c, _ in panel.values],
            capsize=3,
            ecolor="#333333",
        )
        for j, bar in enumerate(drawn.patches):
            bar.set_gid(f"{salt}-bar-{i}-{j}")
        if drawn.errorbar is not None:
            drawn.errorbar.lines[2][0].set_gid(f"{salt}-yerr-{i}")
        rotated = len(labels) > 2
        ax.set_xticks(range(len(labels)), labels, rotation=30 if rotated else 0, ha="right" if rotated else "center")
        ax.tick_params(axis="x", labelsize=7)
        ax.set_ylim(*axis_range(estimates))
        ax.set_title(panel.title, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3, axis="y")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return _svg(fig, salt)
