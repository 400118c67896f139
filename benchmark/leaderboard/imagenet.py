"""The ImageNet task's comparison (the paper's Table 4 arithmetic): two evaluation runs of the
same images, original vs obfuscated pretraining, per category.

Every number is recomputed from the runs' ``predictions.npz`` (never taken from the records):
the categories whose top-1 drops most, the correlation of the per-category drop with the
fraction of images with faces (Pearson with a Fisher-z interval, Spearman with the
Bonett-Wright one), and supercategory means when a category -> supercategory table is given.
numpy, plus scipy imported lazily: no torch (tests/test_leaderboard_imports.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.analysis.imagenet import per_category
from benchmark.errors import BenchError
from benchmark.layout import predictions_file
from benchmark.run_record import read_record


@dataclass(frozen=True)
class Correlation:
    method: str
    value: float
    low: float
    high: float
    n: int


@dataclass
class ImageNetComparison:
    original: str  # backbone names
    compared: str
    overall: dict[str, tuple[float, float]]  # metric -> (original, compared)
    rows: list[dict[str, Any]]  # per category, sorted by top-1 drop, largest first
    correlations: list[Correlation] = field(default_factory=list)
    supercategories: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _load(run_dir: Path) -> tuple[Any, dict[str, np.ndarray]]:
    record = read_record(Path(run_dir))
    if record.protocol != "eval" or not record.completed:
        raise BenchError(f"{run_dir}: not a completed evaluation run (protocol eval).")
    with np.load(predictions_file(Path(run_dir)), allow_pickle=False) as data:
        return record, {k: data[k] for k in data.files}


def interval(r: float, n: int, confidence: float, spearman: bool) -> tuple[float, float]:
    """Fisher-z interval of a correlation; for Spearman's rho with Bonett & Wright's (2000)
    standard error sqrt((1 + rho^2 / 2) / (n - 3)). NaN below 4 categories."""
    from scipy.stats import norm

    if n < 4 or not math.isfinite(r):
        return float("nan"), float("nan")
    z = math.atanh(max(min(r, 0.999999), -0.999999))
    se = math.sqrt((1 + r * r / 2) / (n - 3)) if spearman else 1 / math.sqrt(n - 3)
    q = float(norm.ppf(0.5 + confidence / 2))
    return math.tanh(z - q * se), math.tanh(z + q * se)


def compare_runs(
    original_dir: Path, compared_dir: Path, supercategories: dict[str, str] | None = None,
    confidence: float = 0.95,
) -> ImageNetComparison:  # fmt: skip
    """Per-category drop (original minus compared) of top-1, top-5 and AP on the same images."""
    from scipy.stats import pearsonr, spearmanr

    rec_a, a = _load(original_dir)
    rec_b, b = _load(compared_dir)
    if rec_a.class_names != rec_b.class_names:
        raise BenchError("the two runs have different categories: not comparable.")
    if not np.array_equal(a["example_id"], b["example_id"]):
        raise BenchError("the two runs evaluated different images (example ids differ): "
                         "evaluate both on the same validation folder or its blurred copy.")
    names = list(rec_a.class_names or [])
    faces = a.get("has_face", b.get("has_face"))
    overall_a, rows_a = per_category(a["logits"], a["target"], names, faces)
    overall_b, rows_b = per_category(b["logits"], b["target"], names, faces)
    rows = []
    for ra, rb in zip(rows_a, rows_b, strict=True):
        ap_drop = None if ra.ap is None or rb.ap is None else ra.ap - rb.ap
        rows.append({"category": ra.category, "images": ra.images, "faces": ra.faces,
                     "top1_original": ra.top1, "top1_compared": rb.top1,
                     "top1_drop": ra.top1 - rb.top1, "top5_drop": ra.top5 - rb.top5,
                     "ap_original": ra.ap, "ap_compared": rb.ap, "ap_drop": ap_drop})  # fmt: skip
    rows.sort(key=lambda r: (-r["top1_drop"], r["category"]))
    out = ImageNetComparison(
        rec_a.backbone.name, rec_b.backbone.name,
        {k: (overall_a[k], overall_b[k]) for k in overall_a}, rows,
    )
    with_faces = [r for r in rows if r["faces"] is not None]
    if faces is None:
        out.notes.append("no face annotations in either run: no correlation with faces.")
    elif len(with_faces) < 3 or len({r["faces"] for r in with_faces}) < 2 or \
            len({r["top1_drop"] for r in with_faces}) < 2:  # fmt: skip
        out.notes.append("too few categories (or no variation) for a correlation with faces.")
    else:
        x = np.array([r["faces"] for r in with_faces])
        y = np.array([r["top1_drop"] for r in with_faces])
        for method, fn, is_rank in (("pearson", pearsonr, False), ("spearman", spearmanr, True)):
            value = float(fn(x, y)[0])
            low, high = interval(value, len(x), confidence, is_rank)
            out.correlations.append(Correlation(method, value, low, high, len(x)))
    if supercategories:
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(supercategories.get(r["category"], "(unassigned)"), []).append(r)
        for name, members in sorted(groups.items()):
            out.supercategories.append({
                "supercategory": name, "categories": len(members),
                "top1_original": float(np.mean([m["top1_original"] for m in members])),
                "top1_compared": float(np.mean([m["top1_compared"] for m in members])),
                "top1_drop": float(np.mean([m["top1_drop"] for m in members])),
            })  # fmt: skip
    return out


def read_supercategories(path: Path) -> dict[str, str]:
    """A JSON object category -> supercategory (e.g. the paper's 'clothing', 'musical
    instrument' groups of WordNet ids)."""
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise BenchError(f"--supercategories {path}: unreadable ({type(err).__name__}).") \
            from None  # fmt: skip
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise BenchError(f"--supercategories {path}: expected a JSON object category -> name.")
    return table


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def render_markdown(c: ImageNetComparison, top: int = 10) -> str:
    lines = [f"## ImageNet per category: {c.original} (original) vs {c.compared}", ""]
    for metric, (a, b) in c.overall.items():
        lines.append(f"- overall {metric}: {a:.4f} -> {b:.4f} (drop {a - b:+.4f})")
    for corr in c.correlations:
        lines.append(f"- {corr.method} correlation of the top-1 drop with the fraction of "
                     f"images with faces: {corr.value:+.3f} [{_f(corr.low)}, {_f(corr.high)}] "
                     f"over {corr.n} categories")  # fmt: skip
    lines += [f"- note: {n}" for n in c.notes]
    lines += ["", f"Largest top-1 drops (of {len(c.rows)} categories):", "",
              "| category | images | with faces | top1 original | top1 compared | top1 drop | "
              "top5 drop | AP drop |", "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in c.rows[:top]:
        faces = "-" if r["faces"] is None else f"{r['faces']:.2f}"
        lines.append(f"| {r['category']} | {r['images']} | {faces} | {r['top1_original']:.3f} | "
                     f"{r['top1_compared']:.3f} | {_f(r['top1_drop'])} | {_f(r['top5_drop'])} | "
                     f"{_f(r['ap_drop'])} |")  # fmt: skip
    if c.supercategories:
        lines += ["", "| supercategory | categories | top1 original | top1 compared | drop |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        for s in c.supercategories:
            lines.append(f"| {s['supercategory']} | {s['categories']} | {s['top1_original']:.3f} "
                         f"| {s['top1_compared']:.3f} | {_f(s['top1_drop'])} |")  # fmt: skip
    return "\n".join(lines)
