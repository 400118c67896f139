"""The ImageNet task's comparison (the paper's Table 4 arithmetic): two evaluation runs of the
same images, original vs obfuscated pretraining, per category.

Every number is recomputed from the runs' ``predictions.npz`` (never taken from the records):
the categories whose top-1 drops most, the correlation of the per-category drop with the
fraction of images with faces (Pearson with a Fisher-z interval, Spearman with the
Bonett-Wright one), and supercategory means when a category -> supercategory table is given.
``bench imagenet-compare`` prints it for two runs; ``bench leaderboard`` shows it for every
pair of evaluation runs it finds (the section "ImageNet per-category comparison", below).
numpy, plus scipy imported lazily: no torch (tests/test_leaderboard_imports.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.analysis.imagenet import per_category
from benchmark.analysis.npz import READ_ERRORS, read_npz
from benchmark.errors import BenchError
from benchmark.layout import predictions_file
from benchmark.leaderboard.formats import level_text, pts, signed
from benchmark.leaderboard.model import Comparison, Problem, Row, Run, Setting
from benchmark.leaderboard.names import metric_name


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
    from benchmark.run_record import read_record  # pydantic: only when a record is read

    record = read_record(Path(run_dir))
    if record.protocol != "eval" or not record.completed:
        raise BenchError(f"{run_dir}: not a completed evaluation run (protocol eval).")
    return record, read_npz(predictions_file(Path(run_dir)))


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
                     "top1_drop": ra.top1 - rb.top1, "top5_original": ra.top5,
                     "top5_compared": rb.top5, "top5_drop": ra.top5 - rb.top5,
                     "ap_original": ra.ap, "ap_compared": rb.ap, "ap_drop": ap_drop})  # fmt: skip
    # a category without images in this evaluation (a --subset smaller than the number of
    # categories) has no accuracy: it would sort anywhere and turn every mean into NaN
    empty = [r for r in rows if not r["images"]]
    rows = [r for r in rows if r["images"]]
    rows.sort(key=lambda r: (-r["top1_drop"], r["category"]))
    out = ImageNetComparison(
        rec_a.backbone.name, rec_b.backbone.name,
        {k: (overall_a[k], overall_b[k]) for k in overall_a}, rows,
    )
    if empty:
        out.notes.append(f"{len(empty)} of {len(names)} categories have no image in these "
                         f"runs (evaluated on a subset): left out of every table and statistic.")
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
        unassigned = sum(r["category"] not in supercategories for r in rows)
        if unassigned:
            out.notes.append(f"{unassigned} of {len(rows)} categories are not in the "
                             f"supercategory mapping: shown as (unassigned).")
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            r["supercategory"] = supercategories.get(r["category"], "(unassigned)")
            groups.setdefault(r["supercategory"], []).append(r)
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


# --- The leaderboard's section "ImageNet per-category comparison" -------------------------
# Built by `bench leaderboard` from the pairs the leaderboard already made (benchmark.
# leaderboard.pairs: original vs blurred/overlayed of one architecture in one setting, or
# --pair), for every setting of protocol eval; each pair goes through compare_runs above, so
# the section and `bench imagenet-compare` are one computation.


@dataclass
class ImageNetPair:
    """One pair of evaluation runs in the section: which runs, and their comparison."""

    setting: Setting
    a: Row  # the original-data backbone
    b: Row  # the compared one
    run_a: Run
    run_b: Run
    seeds_text: str  # which seeds were taken, said on the page
    explicit: bool
    comparison: ImageNetComparison
    # each backbone on its own kind of images (the paper's Table 4): b's runs are in
    # ``setting_b``, of the images obfuscated with ``method``; None: both in ``setting``
    setting_b: Setting | None = None
    method: str = ""


def pick_runs(a: Row, b: Row) -> tuple[Run, Run, str]:
    """One run per side, deterministically: the lowest seed both sides have (an evaluation
    trains nothing, so seeds of one backbone differ only if its weights were re-evaluated),
    else each side's lowest seed. Rows keep their runs sorted by seed (one per seed)."""
    by_a, by_b = {r.seed: r for r in a.runs}, {r.seed: r for r in b.runs}
    common = sorted(set(by_a) & set(by_b))
    if common:
        seed = common[0]
        more = (f" ({len(common) - 1} other seed(s) both have are not shown)"
                if len(common) > 1 else "")  # fmt: skip
        return by_a[seed], by_b[seed], f"seed {seed} of both, the lowest they share{more}"
    ra, rb = a.runs[0], b.runs[0]
    return ra, rb, f"seed {ra.seed} vs seed {rb.seed} (no seed in common: each side's lowest)"


# pretraining data -> the `bench obfuscate` method that makes its kind of images
METHOD_OF_DATA = {"blurred": "blur", "overlayed": "overlay"}


def _is_eval(setting: Setting) -> bool:
    return setting.protocol == "eval" and setting.kind == "classification"


def _obfuscation(setting: Setting) -> str:
    """What the setting's images were obfuscated with (``data.obfuscation`` of its records,
    written by :func:`benchmark.evaluate.obfuscation_of`; older records: ``none``)."""
    return str(setting.rows[0].runs[0].record.data.get("obfuscation") or "none")


def _family(setting: Setting) -> str:
    """Settings that differ only in their images (and annotations file): the same task,
    subset and evaluation, on an original folder and its obfuscated copies."""
    config = setting.rows[0].runs[0].record.config
    rest = {k: v for k, v in config.items() if k not in ("backbone", "data", "annotations")}
    return json.dumps([setting.task, setting.subset, rest], sort_keys=True, default=str)


def own_images_pairs(
    settings: Sequence[Setting], problems: list[Problem]
) -> list[tuple[Setting, Row, Setting, Row]]:
    """The paper's Table 4 pairing: the original-data backbone evaluated on original images
    (a setting whose images no ``bench obfuscate`` wrote) with the blurred (overlayed) backbone
    of the same architecture evaluated on a blurred (overlayed) copy of them. Those runs are
    in two settings (their data identities differ), so the per-setting pairing never sees
    them; compare_runs still checks that the image names and categories match."""
    families: dict[str, list[Setting]] = {}
    for setting in settings:
        if _is_eval(setting) and setting.rows and setting.rows[0].runs:
            families.setdefault(_family(setting), []).append(setting)
    out = []
    for members in families.values():
        plain = [s for s in members if _obfuscation(s) == "none"]
        for obfuscated in (s for s in members if _obfuscation(s) != "none"):
            method = _obfuscation(obfuscated)
            for row in obfuscated.rows:
                if METHOD_OF_DATA.get(row.data) != method:
                    continue
                originals = [(s, r) for s in plain for r in s.rows
                             if r.data == "original" and r.arch == row.arch]  # fmt: skip
                if len(originals) == 1:
                    out.append((originals[0][0], originals[0][1], obfuscated, row))
                elif len(originals) > 1:
                    problems.append(Problem(
                        "not compared", row.runs[0].run_dir.parent,
                        f"ImageNet per-category comparison of {row.label} ({method} images): "
                        f"{len(originals)} original-data {row.arch} backbones evaluated on "
                        f"original images; compare one with bench imagenet-compare",
                        obfuscated.task))  # fmt: skip
    return out


def imagenet_pairs(
    comparisons: Sequence[Comparison], problems: list[Problem],
    supercategories: dict[str, str] | None = None, confidence: float = 0.95,
    settings: Sequence[Setting] = (),
) -> list[ImageNetPair]:  # fmt: skip
    """The section's pairs: every comparison of a protocol-eval classification setting (both
    backbones on the same images), then each backbone on its own kind of images
    (:func:`own_images_pairs`, from ``settings``). A pair whose runs cannot be compared per
    category (other images, other categories, unreadable predictions) becomes a problem row
    instead, so nothing is dropped silently."""
    candidates: list[tuple[Setting, Row, Setting | None, Row, bool]] = [
        (comp.setting, comp.a, None, comp.b, comp.explicit)
        for comp in comparisons if _is_eval(comp.setting)]  # fmt: skip
    candidates += [(sa, a, sb, b, False) for sa, a, sb, b in own_images_pairs(settings, problems)]
    out = []
    for setting, a, setting_b, b, explicit in candidates:
        run_a, run_b, seeds_text = pick_runs(a, b)
        try:
            result = compare_runs(run_a.run_dir, run_b.run_dir, supercategories, confidence)
        except (*READ_ERRORS, BenchError) as err:
            problems.append(Problem(
                "not compared", run_b.run_dir, f"ImageNet per-category comparison of "
                f"{b.label} with {a.label}: {err}", setting.task))  # fmt: skip
            continue
        method = _obfuscation(setting_b) if setting_b is not None else ""
        out.append(ImageNetPair(setting, a, b, run_a, run_b, seeds_text, explicit, result,
                                setting_b, method))  # fmt: skip
    return out


def section_context(
    pairs: Sequence[ImageNetPair], names: dict[int, str], links: Callable[[Path], str],
    top: int, confidence: float,
) -> list[dict[str, Any]]:  # fmt: skip
    """What the section shows, as plain strings (markdown and HTML escape them)."""
    out = []
    level = level_text(confidence)
    for pair in pairs:
        c = pair.comparison
        overall = []
        for metric, (a, b) in c.overall.items():
            overall.append({"metric": metric, "name": metric_name(metric), "a": pts(a),
                            "b": pts(b), "drop": signed(a - b)})  # fmt: skip
        correlations = [{
            "method": "Pearson" if corr.method == "pearson" else "Spearman",
            "interval_method": "Fisher z" if corr.method == "pearson" else
            "Fisher z, Bonett-Wright standard error",
            "value": f"{corr.value:+.3f}",
            "ci": f"[{_f(corr.low)}, {_f(corr.high)}]" if math.isfinite(corr.low)
            else "– (needs 4 categories)",
            "n": str(corr.n)} for corr in c.correlations]  # fmt: skip
        drops = [{
            "category": r["category"], "images": str(r["images"]), "faces": pts(r["faces"]),
            "top1_a": pts(r["top1_original"]), "top1_b": pts(r["top1_compared"]),
            "top1_drop": signed(r["top1_drop"]), "top5_drop": signed(r["top5_drop"]),
            "ap_drop": signed(r["ap_drop"])} for r in c.rows[:top]]  # fmt: skip
        supers = [{
            "name": s["supercategory"], "categories": str(s["categories"]),
            "a": pts(s["top1_original"]), "b": pts(s["top1_compared"]),
            "drop": signed(s["top1_drop"])} for s in c.supercategories]  # fmt: skip
        how = "explicit pair" if pair.explicit else "paired by architecture"
        own = ""
        if pair.setting_b is not None:
            how += (f"; each on its own images (the paper's Table 4): {pair.a.label} on the "
                    f"original images, {pair.b.label} on their {pair.method} copy (setting "
                    f"{pair.setting.setting} vs {pair.setting_b.setting})")  # fmt: skip
            own = f" ({pair.b.data} on {pair.method} images)"
        out.append({
            "anchor": f"imagenet-{pair.setting.anchor}-{pair.b.name}-vs-{pair.a.name}"
                      + (f"-{pair.setting_b.setting}" if pair.setting_b is not None else ""),
            "title": f"{names[id(pair.setting)]}: {pair.b.label}{own} vs {pair.a.label}",
            "a": pair.a.label, "b": pair.b.label, "b_data": pair.b.data,
            "how": how,
            "seeds": pair.seeds_text, "fixture": pair.a.fixture or pair.b.fixture,
            "run_a": links(pair.run_a.run_dir), "run_b": links(pair.run_b.run_dir),
            "images": str(sum(r["images"] for r in c.rows)), "categories": str(len(c.rows)),
            "overall": overall, "correlations": correlations, "level": level,
            "notes": list(c.notes), "drops": drops, "shown": str(len(drops)),
            "supercategories": supers,
        })  # fmt: skip
    return out


SECTION_TITLE = "ImageNet per-category comparison"

SECTION_NOTE = (
    "Evaluation runs (protocol eval, e.g. tasks/imagenet.yaml), paired like every setting: "
    "the original-data backbone with the blurred or overlayed one of the same architecture "
    "(or --pair), on the same images; and, as in the paper's Table 4, each on its own kind of "
    "images: the original backbone on the original images with the blurred (overlayed) one on "
    "their bench blur (overlay) copy, same image names. Every number is recomputed from the "
    "two runs' predictions.npz, as bench imagenet-compare does (the paper's Table 4 arithmetic). "
    "Drop = original − compared, in points (positive: the compared backbone is worse). "
    "Correlation of the per-category top-1 drop with the fraction of the category's images "
    "that have faces (face annotations of the run): Pearson with a Fisher-z interval, Spearman "
    "with the Fisher-z interval of Bonett and Wright's standard error. All categories, with "
    "top-5 and AP, are in leaderboard_imagenet.csv."
)

SUPERCATEGORY_HINT = (
    "No supercategory means: pass bench leaderboard --supercategories FILE.json (a JSON "
    "object category -> supercategory)."
)

CSV_FIELDS = [
    "section", "task", "protocol", "subset", "setting", "arch", "original", "compared",
    "pretraining_data", "original_seed", "compared_seed", "metric", "category",
    "supercategory", "images", "faces", "original_value", "compared_value", "drop", "value",
    "low", "high", "n", "confidence", "fixture", "original_run", "compared_run",
]  # fmt: skip


def csv_rows(
    pairs: Sequence[ImageNetPair], links: Callable[[Path], str], confidence: float
) -> Iterator[dict[str, Any]]:
    """``leaderboard_imagenet.csv``, long format, values as fractions (the long CSV's units):
    per pair ``overall`` (top1, top5), ``correlation`` (pearson, spearman: r in ``value``, its
    interval in ``low``/``high``, ``n`` categories), ``category`` (every
    category x top1/top5/ap, with images and faces fraction: the table to redo Table 4 from)
    and ``supercategory`` rows."""
    for pair in pairs:
        c, s = pair.comparison, pair.setting
        setting = s.setting if pair.setting_b is None else \
            f"{s.setting}/{pair.setting_b.setting}"  # original's / compared's images
        base = {"task": s.task, "protocol": s.protocol, "subset": s.subset,
                "setting": setting, "arch": pair.b.arch, "original": pair.a.label,
                "compared": pair.b.label, "pretraining_data": pair.b.data,
                "original_seed": pair.run_a.seed, "compared_seed": pair.run_b.seed,
                "fixture": pair.a.fixture or pair.b.fixture,
                "original_run": links(pair.run_a.run_dir),
                "compared_run": links(pair.run_b.run_dir)}  # fmt: skip
        for metric, (a, b) in c.overall.items():
            yield {**base, "section": "overall", "metric": metric, "original_value": a,
                   "compared_value": b, "drop": a - b,
                   "images": sum(r["images"] for r in c.rows)}  # fmt: skip
        for corr in c.correlations:
            yield {**base, "section": "correlation", "metric": corr.method,
                   "value": corr.value, "low": corr.low, "high": corr.high, "n": corr.n,
                   "confidence": confidence,
                   "category": "top1_drop vs faces"}  # fmt: skip
        for r in c.rows:
            for metric in ("top1", "top5", "ap"):
                yield {**base, "section": "category", "metric": metric,
                       "category": r["category"], "supercategory": r.get("supercategory"),
                       "images": r["images"], "faces": r["faces"],
                       "original_value": r[f"{metric}_original"],
                       "compared_value": r[f"{metric}_compared"], "drop": r[f"{metric}_drop"]}
        for g in c.supercategories:
            yield {**base, "section": "supercategory", "metric": "top1",
                   "supercategory": g["supercategory"], "n": g["categories"],
                   "original_value": g["top1_original"], "compared_value": g["top1_compared"],
                   "drop": g["top1_drop"]}  # fmt: skip
