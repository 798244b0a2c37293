"""Plots of `evalkit report` as inline SVG (matplotlib, no network, no JavaScript library)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class Series:
    label: str
    xs: list[float]
    ys: list[float]


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


def curve_svg(title: str, ylabel: str, series: Sequence[Series], salt: str) -> str:
    """A metric against k (log2 axis), one line per run: test-time scaling curves."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for i, s in enumerate(series):
        ax.plot(s.xs, s.ys, marker="o", color=_COLORS[i % len(_COLORS)], label=s.label)
    ax.set_xscale("log", base=2)
    ks = sorted({x for s in series for x in s.xs})
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.set_xlabel("k (samples)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _svg(fig, salt)


def scatter_svg(title: str, xlabel: str, ylabel: str, points: Sequence[tuple[str, float, float]], salt: str) -> str:
    """One labelled point per run: diversity (x) against quality (y)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for i, (label, x, y) in enumerate(points):
        ax.scatter([x], [y], s=50, color=_COLORS[i % len(_COLORS)], label=label, zorder=3)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(0.2)
    return _svg(fig, salt)
