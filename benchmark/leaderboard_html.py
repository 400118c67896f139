"""The leaderboard's three faces: markdown, CSV (long format) and one self-contained HTML page.

The HTML page needs no network at view time: CSS is inline, plots are base64 PNGs, there is no
script, and a Content-Security-Policy forbids loading anything else. All text goes through
Jinja2 with autoescaping on, so a class or backbone name can never become markup; links to
records are URL-quoted relative paths. Plots use matplotlib's object API (no pyplot global
state) with mathtext disabled for user text (a ``$`` in a class name stays a dollar sign).
"""

from __future__ import annotations

import base64
import csv
import io
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
from jinja2 import Environment

from benchmark.stats import MIN_TEST_EXAMPLES, DeltaResult, SeedSummary, too_few_examples_text

if TYPE_CHECKING:
    from benchmark.leaderboard import ColumnDeltas, Comparison, Leaderboard, MetricDelta

def method_text(confidence: float) -> str:
    """The method paragraph, at the leaderboard's confidence level (alpha = 1 - confidence)."""
    level, alpha = level_text(confidence), f"{1.0 - confidence:.4g}"
    return (
        f"Per backbone, each metric is the mean over training seeds with a {level} Student-t "
        "interval (no interval from one seed). Each backbone pretrained on face-blurred (or "
        "overlayed) ImageNet is paired with the original-data backbone of the same architecture, "
        "from the pretraining-data field of the backbone registry kept in every record. The "
        f"delta (compared minus original, in points) comes with a {level} paired bootstrap "
        "interval over test examples: each replicate resamples the test examples once, applies "
        "the same resample to both backbones and all their seeds, and recomputes the metric "
        "(means over seeds); the two-sided p-value is the bootstrap tail fraction with a +1 "
        "correction, a replicate delta of exactly 0 counting in both tails (computed in exact "
        "integer arithmetic for per-example counts). A difference is called only when the "
        f"interval excludes 0 and p < {alpha}; otherwise the verdict is 'no detectable "
        "difference', which is not proof of equality. Fewer than "
        f"{MIN_TEST_EXAMPLES} test examples (or examples of a class) get no interval, p-value "
        "or verdict. The bootstrap measures test-set noise; the 'seeds' interval (Welch, over "
        "training runs) measures training noise, and a called difference inside it is flagged. "
        "Per-class, per-attribute and per-region deltas use the same bootstrap per column, "
        "detection AP resamples images, and their p-values are Holm-adjusted within each "
        "comparison."
    )


def level_text(confidence: float) -> str:
    """``0.9 -> "90%"``: how every label names the interval level."""
    return f"{100.0 * confidence:g}%"

DATA_BADGE = {"original": "original", "blurred": "blurred", "overlayed": "overlayed"}


# --------------------------------------------------------------------------- number formats


def pts(value: float | None) -> str:
    """A metric fraction as points (percent), two decimals; a dash when undefined."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{100.0 * value:.2f}"


def signed(value: float | None) -> str:
    """A difference in points with its sign; exactly ``0.00`` when it rounds to zero (no -0.00
    from float noise)."""
    if value is None or not math.isfinite(value):
        return "–"
    shown = round(100.0 * value, 2)
    return "0.00" if shown == 0 else f"{shown:+.2f}"


def interval(low: float | None, high: float | None) -> str:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "–"
    return f"[{signed(low)}, {signed(high)}]"


def p_text(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def summary_text(s: SeedSummary | None) -> str:
    """``mean ± half-width`` in points, or the mean and ``(1 seed)``."""
    if s is None:
        return "–"
    if not math.isfinite(s.low):
        return f"{pts(s.mean)} (1 seed)"
    return f"{pts(s.mean)} ± {100.0 * (s.high - s.mean):.2f}"


def _paired_fields(result: DeltaResult | None) -> tuple[str, str]:
    if result is None:
        return "–", "–"
    return interval(result.low, result.high), p_text(result.p_value)


# --------------------------------------------------------------------------- plots


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
        title=f"{comp.b.label} vs {comp.a.label}: {view.metric} ({comp.setting.task})",
        columns=[view.columns[j] for j in keep],
        delta=np.array([view.results[j].delta for j in keep]) * 100.0,
        low=np.array([view.results[j].low for j in keep]) * 100.0,
        high=np.array([view.results[j].high for j in keep]) * 100.0,
        significant=np.array([np.nan_to_num(view.p_holm[j], nan=1.0) < alpha for j in keep],
                             dtype=bool),
        level=level_text(confidence),
    )


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

    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(render_plot, items, chunksize=4))


# --------------------------------------------------------------------------- shared views


def _links(board: Leaderboard, out: Path) -> Any:
    from benchmark.leaderboard import RecordLinks

    return RecordLinks(board.results, out)


def _metric_row(m: MetricDelta) -> dict[str, str]:
    ci, p = _paired_fields(m.paired)
    return {
        "metric": m.metric,
        "a": pts(m.mean_a),
        "b": pts(m.mean_b),
        "delta": signed(m.delta),
        "ci": ci,
        "p": p,
        "seeds": interval(m.seeds.low, m.seeds.high) if m.seeds is not None else "–",
        "verdict": m.verdict,
    }


def _view_rows(view: ColumnDeltas, top: int) -> Iterator[dict[str, str]]:
    for j in view.most_affected(top):
        r = view.results[j]
        yield {
            "column": view.columns[j],
            "delta": signed(r.delta),
            "ci": interval(r.low, r.high),
            "p": p_text(r.p_value),
            "p_holm": p_text(float(view.p_holm[j])),
        }


def _view_caption(view: ColumnDeltas, alpha: float) -> str:
    tested = sum(1 for r in view.results if math.isfinite(r.p_value))
    caption = (
        f"{view.metric}: {view.detected(alpha)} of {tested} columns differ "
        f"(Holm-adjusted p < {alpha:g})"
    )
    if view.untested:
        caption += (f"; {view.untested} with fewer than {MIN_TEST_EXAMPLES} test examples "
                    f"not tested")
    return caption


def _reference_rows() -> Iterator[dict[str, str]]:
    from benchmark.leaderboard import PAPER_IMAGENET_TOP1

    for arch, orig, orig_sd, blur, blur_sd in PAPER_IMAGENET_TOP1:
        yield {
            "model": arch,
            "original": f"{orig:.3f}" + (f" ± {orig_sd:.3f}" if orig_sd is not None else ""),
            "blurred": f"{blur:.3f}" + (f" ± {blur_sd:.3f}" if blur_sd is not None else ""),
            "delta": f"{blur - orig:+.3f}",
        }


def _setting_context(board: Leaderboard, links: Any, top: int) -> list[dict[str, Any]]:
    """Everything a setting's section shows, as plain strings (shared by markdown and HTML)."""
    out = []
    by_setting: dict[int, list[Comparison]] = {}
    for comp in board.comparisons:
        by_setting.setdefault(id(comp.setting), []).append(comp)
    for setting in board.settings:
        rows = []
        for row in setting.rows:
            rows.append({
                "label": row.label,
                "arch": row.arch,
                "data": row.data,
                "fixture": row.fixture,
                "cells": [summary_text(row.summaries.get(m)) for m in setting.scalar_metrics],
                "seeds": len(row.runs),
                "runs": [(f"s{run.seed}", links(run.run_dir)) for run in row.runs],
            })
        comps = []
        for comp in by_setting.get(id(setting), []):
            comps.append({
                "anchor": comp.anchor,
                "title": f"{comp.b.label} vs {comp.a.label}",
                "a": comp.a.label,
                "b": comp.b.label,
                "explicit": comp.explicit,
                "fixture": comp.a.fixture or comp.b.fixture,
                "n_examples": comp.n_examples,
                "too_few": (too_few_examples_text() if comp.n_examples is not None
                            and comp.n_examples < MIN_TEST_EXAMPLES else ""),
                "seeds": comp.seeds_paired,
                "rows": [_metric_row(m) for m in comp.metrics],
                "views": [
                    {
                        "metric": view.metric,
                        "caption": _view_caption(view, board.alpha),
                        "rows": list(_view_rows(view, top)),
                        "plot_file": view.plot_file,
                        "plot_b64": base64.b64encode(view.plot_png).decode() if view.plot_png
                        else "",
                    }
                    for view in comp.columns
                ],
                "notes": comp.notes,
            })
        out.append({
            "title": setting.title,
            "anchor": setting.anchor,
            "task": setting.task,
            "kind": setting.kind,
            "fixture": setting.fixture,
            "metrics": setting.scalar_metrics,
            "primary": setting.primary,
            "rows": rows,
            "comparisons": comps,
        })
    return out


def _context(board: Leaderboard, out: Path, top: int) -> dict[str, Any]:
    links = _links(board, out)
    problems = [
        {"what": p.what, "task": p.task, "path": links(p.path, record=False), "message": p.message}
        for p in board.problems
    ]
    failed = sum(1 for p in board.problems if p.what in ("failed run",))
    unreadable = sum(
        1 for p in board.problems if p.what in ("unreadable record", "malformed record")
    )
    summary = []
    for comp in board.comparisons:
        primary = next((m for m in comp.metrics if m.metric == comp.setting.primary), None)
        if primary is None:
            continue
        row = _metric_row(primary)
        summary.append({
            **row,
            "task": comp.setting.task,
            "setting": comp.setting.title,
            "anchor": comp.anchor,
            "fixture": comp.a.fixture or comp.b.fixture,
            "a": comp.a.label,
            "b": comp.b.label,
            "a_value": row["a"],
            "b_value": row["b"],
        })
    return {
        "generated": board.generated,
        "results": str(board.results),
        "records": board.records_read,
        "runs": board.runs,
        "failed": failed,
        "unreadable": unreadable,
        "fixture": board.fixture,
        "settings": _setting_context(board, links, top),
        "summary": summary,
        "problems": problems,
        "reference": list(_reference_rows()),
        "paper_repo": "https://github.com/princetonvisualai/imagenet-face-obfuscation",
        "method": method_text(board.confidence),
        "n_boot": board.n_boot,
        "confidence": level_text(board.confidence),
    }


# --------------------------------------------------------------------------- markdown


_MD_SPECIAL = re.compile(r"([\\`*\[\]|]|<(?=[A-Za-z/!?]))")


def md(text: Any) -> str:
    """Text safe inside a markdown table cell: no pipes, brackets, tags or line breaks."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ").replace("\r", " ")


def md_link(label: str, href: str) -> str:
    return f"[{md(label)}]({quote(href, safe='/.-_~')})"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines + [""]


def render_markdown(board: Leaderboard, out: Path, top: int = 10) -> str:
    ctx = _context(board, out, top)
    lines = [
        "# blurbench leaderboard: original vs face-blurred ImageNet pretraining",
        "",
        f"Generated {ctx['generated']} from `{md(ctx['results'])}`: {ctx['records']} records, "
        f"{ctx['runs']} completed runs shown, {ctx['failed']} failed, {ctx['unreadable']} "
        f"unreadable or malformed (listed under *Failed, unreadable or unused records*). "
        f"Values are in points (percent); intervals are {ctx['confidence']}; "
        f"{ctx['n_boot']} bootstrap replicates.",
        "",
    ]
    if ctx["fixture"]:
        lines += [
            "> **FIXTURE DATA**: runs marked **[fixture]** used the tiny synthetic datasets of "
            "`bench data fixture`. They test the pipeline; their numbers say nothing about the "
            "backbones.",
            "",
        ]
    lines += ["## Comparisons (primary metric)", ""]
    if ctx["summary"]:
        lines += _md_table(
            ["task", "original backbone", "compared backbone", "metric", "original", "compared",
             "delta", f"{ctx['confidence']} interval (test examples)", "p",
             f"{ctx['confidence']} interval (seeds)", "verdict"],
            [
                [md(s["task"]) + (" **[fixture]**" if s["fixture"] else ""), md(s["a"]),
                 md(s["b"]), md(s["metric"]), s["a_value"], s["b_value"], s["delta"], s["ci"],
                 s["p"], s["seeds"], md(s["verdict"])]
                for s in ctx["summary"]
            ],
        )
    else:
        lines += ["No comparison: no setting holds both an original-data backbone and its "
                  "blurred counterpart (see the problems list, or pair with `--pair`).", ""]
    for setting in ctx["settings"]:
        badge = " **[fixture]**" if setting["fixture"] else ""
        lines += [f"## {md(setting['title'])}{badge}", ""]
        lines += _md_table(
            ["backbone", "arch", "pretraining data", *[md(m) for m in setting["metrics"]],
             "seeds", "runs (records)"],
            [
                [md(r["label"]) + (" **[fixture]**" if r["fixture"] else ""), md(r["arch"]),
                 md(r["data"]), *r["cells"], str(r["seeds"]),
                 " ".join(md_link(label, href) for label, href in r["runs"])]
                for r in setting["rows"]
            ],
        )
        for comp in setting["comparisons"]:
            how = "explicit pair" if comp["explicit"] else "paired by architecture"
            n = comp["n_examples"]
            lines += [
                f"### {md(comp['title'])}{' **[fixture]**' if comp['fixture'] else ''}",
                "",
                f"{how}; " + (f"{n} test examples, {comp['seeds'][0]} + {comp['seeds'][1]} "
                              f"seeds in the paired test" if n else "no paired test")
                + (f"; {comp['too_few']}" if comp["too_few"] else ""),
                "",
            ]
            lines += _md_table(
                ["metric", md(comp["a"]), md(comp["b"]), "delta",
                 f"{ctx['confidence']} interval (examples)", "p",
                 f"{ctx['confidence']} interval (seeds)", "verdict"],
                [[md(r["metric"]), r["a"], r["b"], r["delta"], r["ci"], r["p"], r["seeds"],
                  md(r["verdict"])] for r in comp["rows"]],
            )
            for view in comp["views"]:
                lines += [f"Most affected, {md(view['caption'])}:", ""]
                lines += _md_table(
                    ["column", "delta", f"{ctx['confidence']} interval", "p", "p (Holm)"],
                    [[md(v["column"]), v["delta"], v["ci"], v["p"], v["p_holm"]]
                     for v in view["rows"]],
                )
                if view["plot_file"]:
                    lines += [f"![{md(view['metric'])} deltas]({quote(view['plot_file'])})", ""]
            for note in comp["notes"]:
                lines += [f"- note: {md(note)}"]
            if comp["notes"]:
                lines += [""]
    lines += [
        "## Reference: the paper's ImageNet top-1 (not measured here)",
        "",
        "From the README of the paper's repository "
        f"({ctx['paper_repo']}, `analysis/overall_accuracy.py`, Table 3 of Yang et al., ICML "
        "2022): ImageNet validation top-1 (%) of models trained on original vs face-blurred "
        "images, mean ± std over runs. **Reference rows, not results of this benchmark.**",
        "",
    ]
    lines += _md_table(
        ["model (reference)", "original", "blurred", "delta (blurred − original)"],
        [[md(r["model"]), r["original"], r["blurred"], r["delta"]] for r in ctx["reference"]],
    )
    lines += ["## Failed, unreadable or unused records", ""]
    if ctx["problems"]:
        lines += _md_table(
            ["problem", "task", "where", "details"],
            [[md(p["what"]), md(p["task"]), md_link(p["path"], p["path"]), md(p["message"])]
             for p in ctx["problems"]],
        )
    else:
        lines += ["None.", ""]
    lines += ["## Method", "", md(ctx["method"]).replace("\\", ""), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CSV

CSV_FIELDS = [
    "section", "task", "protocol", "subset", "setting", "kind", "backbone", "pretraining_data",
    "arch", "compared_with", "metric", "column", "value", "low", "high", "seeds_low",
    "seeds_high", "confidence", "n_seeds", "n_examples", "p_value", "p_holm", "verdict",
    "fixture", "links",
]  # fmt: skip


def _csv_cell(value: Any) -> Any:
    """Numbers as they are (full precision, metric units: fractions); text that a spreadsheet
    would run as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def render_csv(board: Leaderboard, out: Path) -> str:
    links = _links(board, out)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()

    def put(**row: Any) -> None:
        if row.get("low") is not None or row.get("seeds_low") is not None:
            row.setdefault("confidence", board.confidence)  # the level of low/high/seeds_*
        writer.writerow({k: _csv_cell(row.get(k)) for k in CSV_FIELDS})

    for s in board.settings:
        base = {"task": s.task, "protocol": s.protocol, "subset": s.subset, "setting": s.setting,
                "kind": s.kind}
        for row in s.rows:
            for metric in s.scalar_metrics:
                summ = row.summaries.get(metric)
                if summ is None:
                    continue
                put(section="backbone", **base, backbone=row.label, pretraining_data=row.data,
                    arch=row.arch, metric=metric, value=summ.mean, low=summ.low, high=summ.high,
                    n_seeds=summ.n, fixture=row.fixture,
                    links=" ".join(links(r.run_dir) for r in row.runs))
    for comp in board.comparisons:
        s = comp.setting
        base = {"task": s.task, "protocol": s.protocol, "subset": s.subset, "setting": s.setting,
                "kind": s.kind, "backbone": comp.b.label, "pretraining_data": comp.b.data,
                "arch": comp.b.arch, "compared_with": comp.a.label,
                "fixture": comp.a.fixture or comp.b.fixture, "n_examples": comp.n_examples}
        for m in comp.metrics:
            paired = m.paired
            put(section="comparison", **base, metric=m.metric, value=m.delta,
                low=paired.low if paired else None, high=paired.high if paired else None,
                seeds_low=m.seeds.low if m.seeds else None,
                seeds_high=m.seeds.high if m.seeds else None,
                n_seeds=f"{len(comp.a.runs)}+{len(comp.b.runs)}",
                p_value=paired.p_value if paired else None, verdict=m.verdict)
        for view in comp.columns:
            for j, name in enumerate(view.columns):
                r = view.results[j]
                put(section="column", **base, metric=view.metric, column=name, value=r.delta,
                    low=r.low, high=r.high, p_value=r.p_value, p_holm=float(view.p_holm[j]))
    from benchmark.leaderboard import PAPER_IMAGENET_TOP1, PAPER_REPO

    for arch, orig, _, blur, _ in PAPER_IMAGENET_TOP1:
        for data, value in (("original", orig), ("blurred", blur)):
            put(section="reference", task="imagenet (paper)", backbone=arch,
                pretraining_data=data, arch=arch, metric="top1", value=value / 100.0,
                verdict=f"reference from {PAPER_REPO} README, not measured here")
    for p in board.problems:
        put(section="problem", task=p.task, metric=p.what, verdict=p.message,
            links=links(p.path, record=False))
    return buf.getvalue()


# --------------------------------------------------------------------------- HTML

_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>blurbench leaderboard</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #1d1d1f; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
th, td { border: 1px solid #d0d0d7; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f2f2f6; }
td.num { text-align: right; white-space: nowrap; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 11px;
         font-weight: 600; margin-left: 4px; }
.fixture { background: #ffd8a8; color: #7a3b00; }
.reference { background: #dde6ff; color: #1f3a93; }
.original { background: #e7f5e7; } .blurred { background: #f3e8ff; }
.overlayed { background: #fff4d6; }
.banner { border: 2px solid #e8590c; background: #fff4e6; padding: 0.6em 1em; margin: 1em 0; }
.note { color: #555; font-size: 12px; }
section.setting { border-top: 2px solid #ccd; margin-top: 2em; }
img.plot { max-width: 100%; border: 1px solid #e0e0e6; }
details { margin: 0.3em 0 1em; }
</style>
</head>
<body>
<h1>blurbench leaderboard: original vs face-blurred ImageNet pretraining</h1>
<p>Generated {{ generated }} from <code>{{ results }}</code>: {{ records }} records,
{{ runs }} completed runs shown, {{ failed }} failed, {{ unreadable }} unreadable or malformed
(see <a href="#problems">failed, unreadable or unused records</a>). Values are in points
(percent); intervals are {{ confidence }}; {{ n_boot }} bootstrap replicates.</p>
{% if fixture %}
<div class="banner" id="fixture-banner"><strong>Fixture data.</strong> Runs marked
<span class="badge fixture">FIXTURE</span> used the tiny synthetic datasets of
<code>bench data fixture</code>. They test the pipeline; their numbers say nothing about the
backbones.</div>
{% endif %}

<h2 id="comparisons">Comparisons (primary metric)</h2>
{% if summary %}
<div class="scroll"><table id="comparison-summary">
<tr><th>task</th><th>original backbone</th><th>compared backbone</th><th>metric</th>
<th>original</th><th>compared</th><th>delta</th><th>{{ confidence }} interval (test examples)</th>
<th>p</th><th>{{ confidence }} interval (seeds)</th><th>verdict</th></tr>
{% for s in summary %}
<tr><td><a href="#{{ s.anchor }}">{{ s.task }}</a>{% if s.fixture %}<span
class="badge fixture">FIXTURE</span>{% endif %}</td><td>{{ s.a }}</td><td>{{ s.b }}</td>
<td>{{ s.metric }}</td><td class="num">{{ s.a_value }}</td><td class="num">{{ s.b_value }}</td>
<td class="num">{{ s.delta }}</td><td class="num">{{ s.ci }}</td><td class="num">{{ s.p }}</td>
<td class="num">{{ s.seeds }}</td><td>{{ s.verdict }}</td></tr>
{% endfor %}
</table></div>
{% else %}
<p>No comparison: no setting holds both an original-data backbone and its blurred counterpart
(see the problems list, or pair backbones with <code>--pair</code>).</p>
{% endif %}

{% for st in settings %}
<section class="setting" id="{{ st.anchor }}">
<h2>{{ st.title }}{% if st.fixture %}<span class="badge fixture">FIXTURE DATA</span>{% endif %}</h2>
<div class="scroll"><table class="backbones">
<tr><th>backbone</th><th>arch</th><th>pretraining data</th>
{% for m in st.metrics %}<th>{{ m }}{% if m == st.primary %} (primary){% endif %}</th>{% endfor %}
<th>seeds</th><th>runs (records)</th></tr>
{% for r in st.rows %}
<tr><td>{{ r.label }}{% if r.fixture %}<span class="badge fixture">FIXTURE</span>{% endif %}</td>
<td>{{ r.arch }}</td><td><span class="badge {{ r.data if r.data in badges else '' }}">{{ r.data
}}</span></td>
{% for c in r.cells %}<td class="num">{{ c }}</td>{% endfor %}
<td class="num">{{ r.seeds }}</td>
<td>{% for label, href in r.runs %}<a href="{{ href | urlquote }}">{{ label }}</a>
{% endfor %}</td></tr>
{% endfor %}
</table></div>
{% for c in st.comparisons %}
<h3 id="{{ c.anchor }}">{{ c.title }}{% if c.fixture
%}<span class="badge fixture">FIXTURE</span>{% endif %}</h3>
<p class="note">{% if c.explicit %}explicit pair{% else %}paired by architecture{% endif %};
{% if c.n_examples %}{{ c.n_examples }} test examples, {{ c.seeds[0] }} + {{ c.seeds[1] }} seeds
in the paired test{% else %}no paired test{% endif %}{% if c.too_few %}; {{ c.too_few }}{% endif
%}</p>
<div class="scroll"><table class="comparison">
<tr><th>metric</th><th>{{ c.a }}</th><th>{{ c.b }}</th><th>delta</th>
<th>{{ confidence }} interval (examples)</th><th>p</th><th>{{ confidence }} interval (seeds)</th>
<th>verdict</th></tr>
{% for r in c.rows %}
<tr><td>{{ r.metric }}</td><td class="num">{{ r.a }}</td><td class="num">{{ r.b }}</td>
<td class="num">{{ r.delta }}</td><td class="num">{{ r.ci }}</td><td class="num">{{ r.p }}</td>
<td class="num">{{ r.seeds }}</td><td>{{ r.verdict }}</td></tr>
{% endfor %}
</table></div>
{% for v in c.views %}
<details{% if loop.first %} open{% endif %}>
<summary>Most affected: {{ v.caption }}; orange in the plot</summary>
<div class="scroll"><table class="affected">
<tr><th>column</th><th>delta</th><th>{{ confidence }} interval</th><th>p</th><th>p (Holm)</th>
</tr>
{% for r in v.rows %}
<tr><td>{{ r.column }}</td><td class="num">{{ r.delta }}</td><td class="num">{{ r.ci }}</td>
<td class="num">{{ r.p }}</td><td class="num">{{ r.p_holm }}</td></tr>
{% endfor %}
</table></div>
{% if v.plot_b64 %}<img class="plot" alt="{{ v.metric }} deltas with intervals"
src="data:image/png;base64,{{ v.plot_b64 }}">{% endif %}
</details>
{% endfor %}
{% for note in c.notes %}<p class="note">note: {{ note }}</p>{% endfor %}
{% endfor %}
</section>
{% endfor %}

<section id="reference">
<h2>Reference: the paper's ImageNet top-1 <span class="badge reference">REFERENCE</span></h2>
<p>From the README of the paper's repository (<a href="{{ paper_repo }}">{{ paper_repo }}</a>,
<code>analysis/overall_accuracy.py</code>; Table 3 of Yang et al., ICML 2022): ImageNet
validation top-1 (%) of models trained on original vs face-blurred images, mean ± std over runs.
<strong>Reference rows, not results of this benchmark.</strong></p>
<div class="scroll"><table id="reference-table">
<tr><th>model (reference)</th><th>original</th><th>blurred</th>
<th>delta (blurred − original)</th></tr>
{% for r in reference %}
<tr class="reference-row"><td>{{ r.model }}<span class="badge reference">REFERENCE</span></td>
<td class="num">{{ r.original }}</td><td class="num">{{ r.blurred }}</td>
<td class="num">{{ r.delta }}</td></tr>
{% endfor %}
</table></div>
</section>

<section id="problems">
<h2>Failed, unreadable or unused records</h2>
{% if problems %}
<div class="scroll"><table id="problem-table">
<tr><th>problem</th><th>task</th><th>where</th><th>details</th></tr>
{% for p in problems %}
<tr><td>{{ p.what }}</td><td>{{ p.task }}</td><td><a href="{{ p.path | urlquote }}">{{ p.path
}}</a></td><td>{{ p.message }}</td></tr>
{% endfor %}
</table></div>
{% else %}<p>None.</p>{% endif %}
</section>

<section id="method">
<h2>Method</h2>
<p>{{ method }}</p>
</section>
</body>
</html>
"""


def _environment() -> Environment:
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["urlquote"] = lambda href: quote(str(href), safe="/.-_~#")
    return env


def render_html(board: Leaderboard, out: Path, top: int = 10) -> str:
    ctx = _context(board, out, top)
    ctx["badges"] = DATA_BADGE
    return _environment().from_string(_HTML).render(**ctx)
