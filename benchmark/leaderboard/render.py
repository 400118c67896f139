"""The leaderboard's three faces: markdown, CSV (long format) and one self-contained HTML page.

The HTML page needs no network at view time: CSS is inline, plots are base64 PNGs, and a
Content-Security-Policy forbids loading anything else. Its one script (``templates/sort.js``,
sorting tables by a clicked column) runs because the policy names its sha256, computed here from
the exact text inlined, so no other inline script could run; the page reads the same without
it. All text goes through Jinja2 with autoescaping on, so a class or backbone name can never
become markup; links to records are URL-quoted relative paths. The page's template is a package
file, ``templates/index.html.j2``.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import io
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader

from benchmark.layout import RECORD_FILE
from benchmark.leaderboard import imagenet
from benchmark.leaderboard.formats import (
    interval,
    level_text,
    p_text,
    paired_fields,
    pts,
    signed,
    summary_text,
)
from benchmark.leaderboard.model import ColumnDeltas, Comparison, Leaderboard, MetricDelta, Setting
from benchmark.leaderboard.names import metric_name, setting_name
from benchmark.leaderboard.reference import PAPER_IMAGENET_TOP1, PAPER_REPO
from benchmark.stats import MIN_TEST_EXAMPLES, too_few_examples_text


def method_text(confidence: float) -> str:
    """The method paragraph, at the leaderboard's confidence level (alpha = 1 - confidence)."""
    level, alpha = level_text(confidence), f"{1.0 - confidence:.4g}"
    return (
        f"Per backbone, each metric is the mean over training seeds with a {level} Student-t "
        "interval (no interval from one seed). Each backbone pretrained on face-blurred (or "
        "overlayed) ImageNet is paired with the original-data backbone of the same architecture, "
        "from the pretraining data kept in every record (the backbone registry's field, or "
        "--backbone-data for a checkpoint file). The "
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


DATA_BADGE = {"original": "original", "blurred": "blurred", "overlayed": "overlayed"}


class RecordLinks:
    """Relative links from the leaderboard folder to run records and folders, so the page works
    wherever results and leaderboard are copied together. The results folder is resolved once
    (not once per run: a leaderboard of 10,000 runs would spend its time in ``resolve``)."""

    def __init__(self, results: Path, out: Path) -> None:
        self.results = Path(results)
        self.base = Path(os.path.relpath(self.results.resolve(), Path(out).resolve())).as_posix()
        # str(Path) is normalised, so a run inside the results folder starts with this prefix;
        # comparing strings is what relative_to does, without parsing 10,000s of paths again
        self._prefix = str(self.results).rstrip(os.sep) + os.sep
        # every run is linked from several places; keyed by the path's text, whose hash Python
        # keeps (a Path's hash parses its parts first: a fifth of the links' time)
        self._made: dict[tuple[str, bool], str] = {}

    def __call__(self, path: Path, record: bool = True) -> str:
        text = os.fspath(path)
        made = self._made.get((text, record))
        if made is None:
            made = self._made[(text, record)] = self._link(text, path, record)
        return made

    def _link(self, text: str, path: Path, record: bool) -> str:
        if text.startswith(self._prefix) and len(text) > len(self._prefix):
            inside = text[len(self._prefix):]
            if os.sep != "/":
                inside = inside.replace(os.sep, "/")
        else:
            try:
                inside = Path(path).relative_to(self.results).as_posix()
            except ValueError:
                return Path(path).as_posix()
        target = f"{inside}/{RECORD_FILE}" if record else inside
        return target if self.base == "." else f"{self.base}/{target}"


def _links(board: Leaderboard, out: Path, links: RecordLinks | None = None) -> RecordLinks:
    """``links`` when the caller has one (``write`` shares one between the markdown, the page
    and the CSVs, so each of 10,000 runs is linked once), else a new one."""
    return links if links is not None else RecordLinks(board.results, out)


def _metric_row(m: MetricDelta) -> dict[str, str]:
    ci, p = paired_fields(m.paired)
    return {
        "metric": m.metric,
        "name": metric_name(m.metric),
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
        f"{metric_name(view.metric)}: {view.detected(alpha)} of {tested} columns differ "
        f"(Holm-adjusted p < {alpha:g})"
    )
    if view.untested:
        caption += (f"; {view.untested} with fewer than {MIN_TEST_EXAMPLES} test examples "
                    f"not tested")
    return caption


def _reference_rows(run_archs: set[str]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The paper's rows for the architectures run here (shown), and the others (folded away).
    Their spread is a standard deviation over runs, written ``(s.d. x)``: on this page ``±``
    means only the half-width of an interval over seeds."""
    shown, folded = [], []
    for arch, orig, orig_sd, blur, blur_sd in PAPER_IMAGENET_TOP1:
        row = {
            "model": arch,
            "original": f"{orig:.3f}" + (f" (s.d. {orig_sd:.3f})" if orig_sd is not None else ""),
            "blurred": f"{blur:.3f}" + (f" (s.d. {blur_sd:.3f})" if blur_sd is not None else ""),
            "delta": f"{blur - orig:+.3f}",
        }
        (shown if arch in run_archs else folded).append(row)
    return shown, folded


def reference_fold_text(folded: list[dict[str, str]]) -> str:
    """The label of the fold that holds the reference rows of architectures not run here."""
    models = sum(1 for r in folded if not r["model"].startswith("average"))
    extra = " and their average" if len(folded) > models else ""
    return f"The paper's other {models} architectures{extra} (not run here)"


def _ranks(setting: Setting) -> list[str]:
    """Each row's rank by the primary metric's mean over seeds, highest first; equal means
    share a rank (1, 2, 2, 4) and a row without the metric has none."""
    means = []
    for row in setting.rows:
        summary = row.summaries.get(setting.primary)
        means.append(summary.mean if summary is not None and math.isfinite(summary.mean)
                     else None)
    ranked = [m for m in means if m is not None]
    return ["" if m is None else str(1 + sum(1 for other in ranked if other > m)) for m in means]


def _setting_context(board: Leaderboard, links: RecordLinks, top: int) -> list[dict[str, Any]]:
    """Everything a setting's section shows, as plain strings (shared by markdown and HTML)."""
    out = []
    names = _setting_names(board)
    by_setting: dict[int, list[Comparison]] = {}
    for comp in board.comparisons:
        by_setting.setdefault(id(comp.setting), []).append(comp)
    for setting in board.settings:
        rows = []
        for row, rank in zip(setting.rows, _ranks(setting), strict=True):
            rows.append({
                "rank": rank,
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
                        "name": metric_name(view.metric),
                        "caption": _view_caption(view, board.alpha),
                        "rows": list(_view_rows(view, top)),
                        "plot_file": view.plot_file,
                        "plot_note": view.plot_note,
                        "plot_b64": base64.b64encode(view.plot_png).decode() if view.plot_png
                        else "",
                    }
                    for view in comp.columns
                ],
                "notes": comp.notes,
            })
        out.append({
            "title": names[id(setting)],
            "setting_id": setting.setting,
            "small_print": setting_small_print(setting.task, setting.protocol, setting.subset,
                                               setting.setting),
            "anchor": setting.anchor,
            "task": setting.task,
            "kind": setting.kind,
            "fixture": setting.fixture,
            "metrics": setting.scalar_metrics,
            "metric_names": [metric_name(m) for m in setting.scalar_metrics],
            "primary": setting.primary,
            "primary_name": metric_name(setting.primary),
            "rows": rows,
            "comparisons": comps,
        })
    return out


def setting_small_print(task: str, protocol: str, subset: str, setting: str) -> str:
    """The identifiers behind a setting's name, for a tooltip or small print."""
    return f"setting {setting} (task {task}, protocol {protocol}, subset {subset})"


def _setting_names(board: Leaderboard) -> dict[int, str]:
    """Each setting's human name; the config hash joins it only where two settings (same task,
    protocol and subset, other options) would otherwise read the same."""
    plain = {id(s): setting_name(s.task, s.protocol, s.subset, s.engine) for s in board.settings}
    counts: dict[str, int] = {}
    for name in plain.values():
        counts[name] = counts.get(name, 0) + 1
    return {
        id(s): plain[id(s)] + (f" · setting {s.setting}" if counts[plain[id(s)]] > 1 else "")
        for s in board.settings
    }


def seeds_header(confidence: str) -> str:
    """What ``±`` means, said once in each table that uses it."""
    return f"mean ± half-width of the {confidence} interval over seeds"


def render_context(board: Leaderboard, out: Path, top: int,
                   links: RecordLinks | None = None) -> dict[str, Any]:
    """What the markdown and the page show, as plain strings: computed once per write (for
    10,000 runs it is seconds) and read by both."""
    links = _links(board, out, links)
    names = _setting_names(board)
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
            "setting": names[id(comp.setting)],
            "small_print": setting_small_print(comp.setting.task, comp.setting.protocol,
                                               comp.setting.subset, comp.setting.setting),
            "anchor": comp.anchor,
            "fixture": comp.a.fixture or comp.b.fixture,
            "a": comp.a.label,
            "b": comp.b.label,
            "a_value": row["a"],
            "b_value": row["b"],
        })
    shown, folded = _reference_rows({row.arch for s in board.settings for row in s.rows})
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
        "reference": shown,
        "reference_folded": folded,
        "paper_repo": PAPER_REPO,
        "method": method_text(board.confidence),
        "n_boot": board.n_boot,
        "confidence": level_text(board.confidence),
        "alpha": f"{board.alpha:.4g}",
        "min_examples": MIN_TEST_EXAMPLES,
        "seeds_header": seeds_header(level_text(board.confidence)),
        "overview_file": board.overview_file,
        "overview_b64": base64.b64encode(board.overview_png).decode() if board.overview_png
        else "",
        "overview_note": board.overview_note,
        **_group_context(board),
        **_imagenet_context(board, links, names, top),
    }


def _group_context(board: Leaderboard) -> dict[str, Any]:
    """The task-group summary (:mod:`benchmark.leaderboard.groups`)."""
    from benchmark.leaderboard.groups import GROUP_HEADER, group_note, group_rows

    return {"groups": group_rows(board), "groups_header": GROUP_HEADER,
            "groups_note": group_note(level_text(board.confidence), board.alpha)}


def _imagenet_context(board: Leaderboard, links: RecordLinks, names: dict[int, str],
                      top: int) -> dict[str, Any]:  # fmt: skip
    """The section "ImageNet per-category comparison" (:mod:`benchmark.leaderboard.imagenet`)."""
    return {"imagenet": imagenet.section_context(board.imagenet, names, links, top,
                                                 board.confidence),
            "imagenet_title": imagenet.SECTION_TITLE, "imagenet_note": imagenet.SECTION_NOTE,
            "imagenet_super_hint": imagenet.SUPERCATEGORY_HINT}  # fmt: skip


def _imagenet_markdown(ctx: dict[str, Any]) -> list[str]:
    lines = [f"## {ctx['imagenet_title']}", "", md(ctx["imagenet_note"]), ""]
    for pair in ctx["imagenet"]:
        badge = " **[fixture]**" if pair["fixture"] else ""
        lines += [
            f"### {md(pair['title'])}{badge}", "",
            f"{pair['how']}; {md(pair['seeds'])}; {pair['images']} images in "
            f"{pair['categories']} categories; runs: {md_link(pair['a'], pair['run_a'])}, "
            f"{md_link(pair['b'], pair['run_b'])}", "",
        ]  # fmt: skip
        lines += _md_table(["metric", md(pair["a"]), md(pair["b"]), "drop (original − compared)"],
                           [[md(o["name"]), o["a"], o["b"], o["drop"]]
                            for o in pair["overall"]])  # fmt: skip
        if pair["correlations"]:
            lines += ["Correlation of the top-1 drop with the fraction of images with faces:", ""]
            lines += _md_table(
                ["method", "r", f"{pair['level']} interval", "interval method", "categories"],
                [[c["method"], c["value"], c["ci"], c["interval_method"], c["n"]]
                 for c in pair["correlations"]])  # fmt: skip
        for note in pair["notes"]:
            lines += [f"- note: {md(note)}", ""]
        lines += [f"Largest top-1 drops ({pair['shown']} of {pair['categories']} categories; "
                  f"points):", ""]  # fmt: skip
        lines += _md_table(
            ["category", "images", "with faces (%)", f"top-1 {md(pair['a'])}",
             f"top-1 {md(pair['b'])}", "top-1 drop", "top-5 drop", "AP drop"],
            [[md(d["category"]), d["images"], d["faces"], d["top1_a"], d["top1_b"],
              d["top1_drop"], d["top5_drop"], d["ap_drop"]] for d in pair["drops"]])  # fmt: skip
        if pair["supercategories"]:
            lines += ["Supercategory means (top-1, points):", ""]
            lines += _md_table(
                ["supercategory", "categories", md(pair["a"]), md(pair["b"]), "drop"],
                [[md(g["name"]), g["categories"], g["a"], g["b"], g["drop"]]
                 for g in pair["supercategories"]])  # fmt: skip
        else:
            lines += [md(ctx["imagenet_super_hint"]), ""]
    return lines


_MD_SPECIAL = re.compile(r"([\\`*\[\]|]|<(?=[A-Za-z/!?]))")


def md(text: Any) -> str:
    """Text safe inside a markdown table cell: no pipes, brackets, tags or line breaks."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ").replace("\r", " ")


def md_link(label: str, href: str) -> str:
    return f"[{_md_label(label)}]({url_quote(href, '/.-_~')})"


_NEEDS_NO_QUOTE = re.compile(r"[A-Za-z0-9_.~/-]*")  # what quote() leaves as is, whatever safe


def url_quote(href: str, safe: str) -> str:
    """``urllib.parse.quote(href, safe=safe)`` for a ``safe`` that holds ``/``: a link made of
    unreserved characters and slashes (a run folder's, almost always) is returned without the
    call, a tenth of the cost of the 20,000 quotes of a 10,000-run page and markdown."""
    return href if _NEEDS_NO_QUOTE.fullmatch(href) else quote(href, safe=safe)


@functools.lru_cache(maxsize=4096)
def _md_label(label: str) -> str:
    """:func:`md` of a link label: the same few (``s0``, ``s1`` ...) label 10,000 run links."""
    return md(label)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines + [""]


def render_markdown(board: Leaderboard, out: Path, top: int = 10,
                    ctx: dict[str, Any] | None = None) -> str:
    """``ctx``: :func:`render_context` of the same arguments, when the caller has it."""
    ctx = ctx if ctx is not None else render_context(board, out, top)
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
    lines += ["## Overview", ""]
    if ctx["overview_file"]:
        lines += [f"![Delta (compared − original) of the primary metric per task, with "
                  f"{ctx['confidence']} paired bootstrap intervals]"
                  f"({quote(ctx['overview_file'])})", ""]
    else:
        lines += [ctx["overview_note"], ""]
    lines += ["## Comparisons (primary metric)", ""]
    if ctx["summary"]:
        lines += _md_table(
            ["setting", "original backbone", "compared backbone", "metric", "original", "compared",
             "delta", f"{ctx['confidence']} interval (test examples)", "p",
             f"{ctx['confidence']} interval (seeds)", "verdict"],
            [
                [md(s["setting"]) + (" **[fixture]**" if s["fixture"] else ""), md(s["a"]),
                 md(s["b"]), md(s["name"]), s["a_value"], s["b_value"], s["delta"], s["ci"],
                 s["p"], s["seeds"], md(s["verdict"])]
                for s in ctx["summary"]
            ],
        )
    else:
        lines += ["No comparison: no setting holds both an original-data backbone and its "
                  "blurred counterpart (see the problems list, or pair with `--pair`).", ""]
    if ctx["groups"]:
        lines += ["## Task groups", "", ctx["groups_note"], ""]
        lines += _md_table(ctx["groups_header"], [
            [md(g["group"]) + (" **[fixture]**" if g["fixture"] else ""), md(g["setting"]),
             md(g["a"]), md(g["b"]), g["tasks"], g["mean"], g["interval"], g["differ"],
             md(g["missing"])] for g in ctx["groups"]])  # fmt: skip
    if ctx["imagenet"]:
        lines += _imagenet_markdown(ctx)
    for setting in ctx["settings"]:
        badge = " **[fixture]**" if setting["fixture"] else ""
        lines += [f"## {md(setting['title'])}{badge}", "", f"*{md(setting['small_print'])}*", ""]
        lines += _md_table(
            ["backbone", "arch", "pretraining data",
             *[md(m) + (f" ({ctx['seeds_header']})" if i == 0 else "")
               for i, m in enumerate(setting["metric_names"])],
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
                [[md(r["name"]), r["a"], r["b"], r["delta"], r["ci"], r["p"], r["seeds"],
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
                    lines += [f"![{md(view['name'])} deltas]({quote(view['plot_file'])})", ""]
                elif view["plot_note"]:
                    lines += [md(view["plot_note"]), ""]
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
        "images, mean (standard deviation) over runs. **Reference rows, not results of this "
        "benchmark.**",
        "",
    ]
    header = ["model (reference; mean (s.d.) over runs)", "original", "blurred",
              "delta (blurred − original)"]

    def reference_table(rows: list[dict[str, str]]) -> list[str]:
        return _md_table(header, [[md(r["model"]), r["original"], r["blurred"], r["delta"]]
                                  for r in rows])

    if ctx["reference"]:
        lines += reference_table(ctx["reference"])
    else:
        lines += ["None of the paper's architectures was run here.", ""]
    if ctx["reference_folded"]:
        # GitHub and most markdown viewers fold a <details> block; the table needs blank lines
        lines += ["<details>", f"<summary>{reference_fold_text(ctx['reference_folded'])}"
                  "</summary>", ""]
        lines += reference_table(ctx["reference_folded"])
        lines += ["</details>", ""]
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


CSV_FIELDS = [
    "section", "task", "protocol", "subset", "setting", "kind", "backbone", "pretraining_data",
    "arch", "compared_with", "metric", "column", "value", "low", "high", "seeds_low",
    "seeds_high", "confidence", "n_seeds", "n_examples", "p_value", "p_holm", "verdict",
    "fixture", "links",
]  # fmt: skip
CSV_COLUMN = {name: i for i, name in enumerate(CSV_FIELDS)}


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


def render_csv(board: Leaderboard, out: Path, links: RecordLinks | None = None) -> str:
    links = _links(board, out, links)
    buf = io.StringIO()
    # a plain writer of lists in CSV_FIELDS order: what DictWriter writes, without its per-row
    # key checks (a third of the CSV's time at 10,000 runs)
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)

    blank = [""] * len(CSV_FIELDS)  # what an absent field (None) is written as

    def cells(start: list[str], row: dict[str, Any]) -> list[str]:
        """``start`` with the fields of ``row`` filled in: the fields a setting, comparison or
        backbone shares are converted once (``start``), not once per line (3,200 lines)."""
        out = start.copy()
        for name, value in row.items():
            out[CSV_COLUMN[name]] = _csv_cell(value)
        return out

    def put(base: list[str] = blank, **row: Any) -> None:
        if row.get("low") is not None or row.get("seeds_low") is not None:
            row.setdefault("confidence", board.confidence)  # the level of low/high/seeds_*
        writer.writerow(cells(base, row))

    for s in board.settings:
        where = {"task": s.task, "protocol": s.protocol, "subset": s.subset,
                 "setting": s.setting, "kind": s.kind}
        for row in s.rows:
            base = cells(blank, {**where, "section": "backbone", "backbone": row.label,
                                 "pretraining_data": row.data, "arch": row.arch,
                                 "fixture": row.fixture,
                                 "links": " ".join(links(r.run_dir) for r in row.runs)})
            for metric in s.scalar_metrics:
                summ = row.summaries.get(metric)
                if summ is None:
                    continue
                put(base, metric=metric, value=summ.mean, low=summ.low, high=summ.high,
                    n_seeds=summ.n)
    for comp in board.comparisons:
        s = comp.setting
        shared = {"task": s.task, "protocol": s.protocol, "subset": s.subset,
                  "setting": s.setting, "kind": s.kind, "backbone": comp.b.label,
                  "pretraining_data": comp.b.data, "arch": comp.b.arch,
                  "compared_with": comp.a.label, "fixture": comp.a.fixture or comp.b.fixture,
                  "n_examples": comp.n_examples}
        base = cells(blank, {**shared, "section": "comparison"})
        for m in comp.metrics:
            paired = m.paired
            put(base, metric=m.metric, value=m.delta,
                low=paired.low if paired else None, high=paired.high if paired else None,
                seeds_low=m.seeds.low if m.seeds else None,
                seeds_high=m.seeds.high if m.seeds else None,
                n_seeds=f"{len(comp.a.runs)}+{len(comp.b.runs)}",
                p_value=paired.p_value if paired else None, verdict=m.verdict)
        base = cells(blank, {**shared, "section": "column"})
        for view in comp.columns:
            for j, name in enumerate(view.columns):
                r = view.results[j]
                put(base, metric=view.metric, column=name, value=r.delta, low=r.low,
                    high=r.high, p_value=r.p_value, p_holm=float(view.p_holm[j]))
    for arch, orig, _, blur, _ in PAPER_IMAGENET_TOP1:
        for data, value in (("original", orig), ("blurred", blur)):
            put(section="reference", task="imagenet (paper)", backbone=arch,
                pretraining_data=data, arch=arch, metric="top1", value=value / 100.0,
                verdict=f"reference from {PAPER_REPO} README, not measured here")
    for p in board.problems:
        put(section="problem", task=p.task, metric=p.what, verdict=p.message,
            links=links(p.path, record=False))
    return buf.getvalue()


def render_imagenet_csv(board: Leaderboard, out: Path, links: RecordLinks | None = None) -> str:
    """``leaderboard_imagenet.csv``: the ImageNet section's numbers for every category (a file
    of its own: its rows carry images, faces fraction and supercategory, columns the long CSV
    does not have, and up to 3,000 rows per pair)."""
    links = _links(board, out, links)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=imagenet.CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in imagenet.csv_rows(board.imagenet, links, board.confidence):
        writer.writerow({k: _csv_cell(row.get(k)) for k in imagenet.CSV_FIELDS})
    return buf.getvalue()


WIDE_FIELDS = ["task", "protocol", "subset", "setting", "backbone", "arch", "pretraining_data"]


def render_wide_csv(board: Leaderboard) -> str:
    """One row per backbone in a setting, one column per scalar metric: the seed mean in points
    (x100), the shape of timm's results CSVs, for a
    spreadsheet or ``pandas.read_csv`` without a pivot. Intervals stay in the long CSV."""
    metrics: list[str] = []
    for s in board.settings:
        metrics += [m for m in s.scalar_metrics if m not in metrics]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*WIDE_FIELDS, *metrics, "seeds", "fixture"])
    for s in board.settings:
        for row in s.rows:
            values = []
            for metric in metrics:
                summ = row.summaries.get(metric)
                values.append(round(100.0 * summ.mean, 10) if summ is not None else None)
            cells = [s.task, s.protocol, s.subset, s.setting, row.label, row.arch, row.data,
                     *values, len(row.runs), row.fixture]
            writer.writerow([_csv_cell(c) for c in cells])
    return buf.getvalue()


class _PageEnvironment(Environment):
    """Jinja's environment, with ``row.name`` on the context's dicts read as the item at once.
    Jinja tries the attribute first and falls back to the item, so every ``row.name`` on a dict
    raised and caught an AttributeError: 25,000 of them, a quarter of the page's rendering at
    10,000 runs. A key that is also a dict attribute (``items``) still gets the attribute, as
    with Jinja's own lookup, so the page is the same."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute in obj and not hasattr(dict, attribute):
            return obj[attribute]
        return super().getattr(obj, attribute)


PAGE_OPTIONS: dict[str, Any] = {"autoescape": True, "trim_blocks": True, "lstrip_blocks": True}


def _environment() -> Environment:
    """Templates are package files (``templates/``) read through the import system, so they load
    the same from the source tree and from an installed wheel (as package data). Compiled
    on every build (about 75 ms): Jinja's bytecode caches would save that by loading code
    objects from a file in the user's cache, and a leaderboard does not run code from files."""
    env = _PageEnvironment(loader=PackageLoader("benchmark.leaderboard", "templates"),
                           **PAGE_OPTIONS)
    env.filters["urlquote"] = lambda href: url_quote(str(href), "/.-_~#")
    return env


def script_hash(script: str) -> str:
    """The Content-Security-Policy source that lets exactly this inline script run."""
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def render_html(board: Leaderboard, out: Path, top: int = 10,
                ctx: dict[str, Any] | None = None) -> str:
    """``ctx``: :func:`render_context` of the same arguments, when the caller has it."""
    env = _environment()
    ctx = dict(ctx if ctx is not None else render_context(board, out, top))
    ctx["badges"] = DATA_BADGE
    assert env.loader is not None
    script = env.loader.get_source(env, "sort.js")[0]  # inlined as is, so its hash holds
    ctx["sort_script"], ctx["script_hash"] = script, script_hash(script)
    ctx["reference_fold"] = reference_fold_text(ctx["reference_folded"])
    return env.get_template("index.html.j2").render(**ctx)
