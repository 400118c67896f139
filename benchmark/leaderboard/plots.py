"""Per-column delta plots (PNG bytes), drawn with matplotlib's object API.

No pyplot global state, and mathtext disabled for user text (a ``$`` in a class name stays a
dollar sign). Many plots are drawn in worker processes.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass

import numpy as np

from benchmark.leaderboard.formats import level_text
from benchmark.leaderboard.model import ColumnDeltas, Comparison
from benchmark.leaderboard.names import metric_name, task_name
from benchmark.stats import MIN_TEST_EXAMPLES


def _plain(text: str) -> str:
    """Text for matplotlib with mathtext off: escape the dollar signs it would parse."""
    return text.replace("$", r"\$")


@dataclass(frozen=True)
class PlotData:
    """What one delta plot shows, as plain data (so plots can be drawn in worker processes)."""

    title: str
    columns: list[str]  # sorted by delta
    delta: np.ndarray  # points
    low: np.ndarray
    high: np.ndarray
    significant: np.ndarray  # Holm-adjusted p < alpha
    level: str  # the confidence level of the intervals, e.g. "95%"


def plot_data(comp: Comparison, view: ColumnDeltas, confidence: float) -> PlotData:
    """Columns with an interval, sorted by delta; significant at alpha = 1 - confidence."""
    alpha = 1.0 - confidence
    keep = [
        j for j, r in enumerate(view.results)
        if math.isfinite(r.delta) and math.isfinite(r.low) and math.isfinite(r.high)
    ]  # fmt: skip
    keep.sort(key=lambda j: (view.results[j].delta, view.columns[j]))
    return PlotData(
        title=f"{comp.b.label} vs {comp.a.label}: {metric_name(view.metric)} "
              f"({task_name(comp.setting.task)})",
        columns=[view.columns[j] for j in keep],
        delta=np.array([view.results[j].delta for j in keep]) * 100.0,
        low=np.array([view.results[j].low for j in keep]) * 100.0,
        high=np.array([view.results[j].high for j in keep]) * 100.0,
        significant=np.array([np.nan_to_num(view.p_holm[j], nan=1.0) < alpha for j in keep],
                             dtype=bool),
        level=level_text(confidence),
    )


def empty_plot_note(view: ColumnDeltas) -> str:
    """Why a view has no plot (its :func:`plot_data` has no column): none has an interval."""
    if view.untested and view.untested == sum(1 for r in view.results if math.isfinite(r.delta)):
        return (f"No plot: every column has fewer than {MIN_TEST_EXAMPLES} test examples, so "
                f"none has an interval to draw.")
    return "No plot: no column has a delta with a finite interval to draw."


def render_plot(data: PlotData) -> bytes:
    """Per-column deltas with their intervals, sorted; Holm-significant ones in orange.

    Margins are set from the label lengths instead of ``tight_layout``, which measures every
    label twice and was half of the drawing time.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(data.columns)
    labelled = k <= 60
    height = max(2.4, 1.3 + 0.17 * k) if labelled else 3.6
    width = 7.5
    fig = Figure(figsize=(width, height), dpi=80)
    FigureCanvasAgg(fig)
    label_inches = 0.06 * min(40, max((len(c) for c in data.columns), default=4)) + 0.25
    left = min(0.5, label_inches / width) if labelled else 0.09
    fig.subplots_adjust(left=left, right=0.97, bottom=0.55 / height + 0.02,
                        top=1 - 0.35 / height)  # fmt: skip
    ax = fig.add_subplot()
    position = np.arange(k)
    err = np.vstack([data.delta - data.low, data.high - data.delta]) if k else np.zeros((2, 0))
    for color, sel in (("#1b6ca8", ~data.significant), ("#d95f02", data.significant)):
        if not sel.any():
            continue
        if labelled:
            ax.errorbar(data.delta[sel], position[sel], xerr=err[:, sel], fmt="o", color=color,
                        markersize=3.5, capsize=2, linewidth=1)
        else:
            ax.errorbar(position[sel], data.delta[sel], yerr=err[:, sel], fmt="o", color=color,
                        markersize=2, elinewidth=0.6, linewidth=0)
    if labelled:
        ax.set_yticks(position, [_plain(c) for c in data.columns], fontsize=7)
        ax.axvline(0.0, color="#555555", linewidth=0.8)
        ax.set_xlabel(f"difference in points (compared − original), {data.level} paired "
                      "bootstrap interval", fontsize=8)
        ax.set_ylim(-0.7, max(k - 0.3, 0.3))
    else:
        ax.axhline(0.0, color="#555555", linewidth=0.8)
        ax.set_ylabel(f"difference in points, {data.level} interval", fontsize=8)
        ax.set_xlabel(f"{k} columns sorted by difference; the 3 largest each way named",
                      fontsize=8)
        for rank in [*range(min(3, k)), *range(max(3, k - 3), k)]:
            ax.annotate(_plain(data.columns[rank]), (rank, data.delta[rank]), fontsize=6,
                        xytext=(3, 0), textcoords="offset points")
    ax.set_title(_plain(data.title), fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.25, linewidth=0.5)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def render_plots(items: list[PlotData]) -> list[bytes]:
    """All plots; many of them are drawn in worker processes (matplotlib is single-threaded
    and a leaderboard of hundreds of comparisons has hundreds of plots)."""
    workers = min(len(items) // 8, os.cpu_count() or 1)
    if workers < 2:
        return [render_plot(item) for item in items]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: a caller (a notebook, a training process) may hold threads (BLAS, torch)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(render_plot, items, chunksize=4))


@dataclass(frozen=True)
class OverviewPanel:
    """One task's panel of the overview figure: the primary metric's delta per comparison."""

    task: str
    metric: str
    labels: list[str]
    delta: np.ndarray  # points, compared minus original
    low: np.ndarray  # NaN where there is no paired interval
    high: np.ndarray


def overview_data(comparisons: list[Comparison]) -> list[OverviewPanel]:
    """Per task, each comparison's primary-metric delta and paired interval, in points: the
    numbers of the comparison summary table, so figure and table cannot disagree."""
    by_task: dict[str, list[Comparison]] = {}
    for comp in comparisons:
        by_task.setdefault(comp.setting.task, []).append(comp)
    panels = []
    for task, comps in by_task.items():
        several = len({id(c.setting) for c in comps}) > 1
        labels, delta, low, high = [], [], [], []
        metric = comps[0].setting.primary
        for comp in comps:
            m = next((m for m in comp.metrics if m.metric == comp.setting.primary), None)
            if m is None:
                continue
            label = f"{comp.b.arch} ({comp.b.data})"
            if comp.explicit or comp.b.arch != comp.a.arch:
                label = f"{comp.b.label} vs {comp.a.label}"
            if several:
                label += f" · {comp.setting.protocol} · {comp.setting.subset}"
            labels.append(label)
            delta.append(m.delta * 100.0)
            low.append(m.paired.low * 100.0 if m.paired is not None else math.nan)
            high.append(m.paired.high * 100.0 if m.paired is not None else math.nan)
        if labels:
            panels.append(OverviewPanel(task, metric, labels, np.array(delta), np.array(low),
                                        np.array(high)))
    return panels


def render_overview(panels: list[OverviewPanel], level: str) -> bytes:
    """A forest plot, one panel per task: delta and interval per comparison, a line at zero."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heights = [0.9 + 0.28 * len(p.labels) for p in panels]
    fig = Figure(figsize=(7.5, sum(heights) + 0.6), dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})
    width = max(len(label) for p in panels for label in p.labels)
    fig.subplots_adjust(left=min(0.5, (0.06 * min(width, 40) + 0.25) / 7.5), right=0.97,
                        hspace=0.9, top=1 - 0.35 / fig.get_figheight(),
                        bottom=0.5 / fig.get_figheight())  # fmt: skip
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        position = np.arange(len(panel.labels))[::-1]
        ok = np.isfinite(panel.low) & np.isfinite(panel.high)
        err = np.vstack([panel.delta - panel.low, panel.high - panel.delta])
        ax.errorbar(panel.delta[ok], position[ok], xerr=err[:, ok], fmt="o", color="#1b6ca8",
                    markersize=4, capsize=3, linewidth=1)
        ax.plot(panel.delta[~ok], position[~ok], "o", color="#888888", markersize=4)
        ax.axvline(0.0, color="#555555", linewidth=0.8)
        ax.set_yticks(position, [_plain(label) for label in panel.labels], fontsize=7)
        ax.set_ylim(-0.7, len(panel.labels) - 0.3)
        ax.set_title(_plain(f"{task_name(panel.task)}: {metric_name(panel.metric)}"), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(True, axis="x", alpha=0.25, linewidth=0.5)
    axes[-1, 0].set_xlabel(f"difference in points (compared − original), {level} paired "
                           "bootstrap interval; grey: no interval", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
