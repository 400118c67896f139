"""``bench leaderboard``: run records -> tables, comparisons and plots (markdown, CSV, HTML).

Everything comes from the records under ``<results>/runs`` and the predictions saved beside
them; nothing is trained or downloaded. The steps:

1. :func:`collect` reads every record. Unreadable, malformed and failed ones become
   :class:`Problem` rows that the page lists: nothing is dropped silently.
2. Runs are grouped into *settings*: the same task, protocol, subset and every other config
   field except the backbone (a hash of them), so only like is compared with like.
3. Per backbone: the mean of each metric over seeds with a Student-t interval.
4. Pairs: each non-original backbone (``blurred``, ``overlayed``) with the original-data
   backbone of the same architecture, from the registry's pretraining-data field kept in the
   record; ``--pair A:B`` adds pairs (file checkpoints say nothing about their data).
5. Per pair and metric: a paired bootstrap over test examples, pooled over seeds, from the
   per-example scores the task kind derives from the saved predictions
   (:mod:`benchmark.analysis.kinds`),
   plus a Welch interval over seeds; per class / attribute / group: the same per column with
   Holm-adjusted p-values.

The kind-specific part (what a prediction file means) stays with the kind; this module only
sees :class:`benchmark.scores.RunScores`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.analysis.kinds import kind_analysis
from benchmark.errors import BenchError, closest_names
from benchmark.records import RECORD_FILE, RunStore
from benchmark.score_cache import ScoreArrayCache
from benchmark.scores import ExampleScores, ResampledMetric, RunScores, Scored
from benchmark.stats import (
    MIN_TEST_EXAMPLES,
    DeltaResult,
    SeedSummary,
    holm_adjust,
    paired_bootstrap_batched,
    paired_bootstrap_batched_columns,
    paired_bootstrap_mean,
    paired_bootstrap_mean_columns,
    reuse_replicates,
    seed_delta_interval,
    seed_interval,
    verdict,
)

DATA_ORDER = {"original": 0, "blurred": 1, "overlayed": 2, "none": 3}
COMPARED_DATA = ("blurred", "overlayed")
PAPER_REPO = "https://github.com/princetonvisualai/imagenet-face-obfuscation"

# The paper's ImageNet (ILSVRC-2012) validation top-1, in percent, of models trained on original
# vs face-blurred images (mean +- std over runs), as printed by analysis/overall_accuracy.py in
# the README of PAPER_REPO (Table 3 of Yang et al., ICML 2022). Reference only: not measured here.
PAPER_IMAGENET_TOP1: tuple[tuple[str, float, float | None, float, float | None], ...] = (
    ("alexnet", 56.043, 0.258, 55.834, 0.108),
    ("squeezenet1_0", 55.989, 0.179, 55.323, 0.039),
    ("shufflenet_v2_x1_0", 64.646, 0.178, 64.001, 0.068),
    ("vgg11", 68.905, 0.039, 68.209, 0.128),
    ("vgg13", 69.925, 0.058, 69.271, 0.103),
    ("vgg16", 71.657, 0.061, 70.839, 0.047),
    ("vgg19", 72.363, 0.023, 71.538, 0.032),
    ("mobilenet_v2", 65.378, 0.182, 64.367, 0.203),
    ("densenet121", 75.036, 0.055, 74.244, 0.064),
    ("densenet201", 76.984, 0.021, 76.551, 0.044),
    ("resnet18", 69.767, 0.171, 69.012, 0.174),
    ("resnet34", 73.083, 0.131, 72.307, 0.351),
    ("resnet50", 75.461, 0.198, 75.003, 0.074),
    ("resnet101", 77.254, 0.070, 76.735, 0.092),
    ("resnet152", 77.853, 0.117, 77.279, 0.091),
    ("average of the 15 models", 70.023, None, 69.368, None),
)


# --------------------------------------------------------------------------- data model


@dataclass
class Problem:
    """A record the leaderboard could not use (or used only in part), shown on the page."""

    what: str
    path: Path
    message: str
    task: str = ""


@dataclass
class Run:
    run_dir: Path
    record: dict[str, Any]
    task: str
    kind: str
    protocol: str
    subset: str
    setting: str
    backbone: str
    arch: str
    data: str
    sha256: str | None
    seed: int
    fixture: bool
    ended: str


@dataclass
class Row:
    """One backbone in one setting: its runs (one per seed) and the seed summaries."""

    name: str
    arch: str
    data: str
    sha256: str | None
    runs: list[Run] = field(default_factory=list)
    summaries: dict[str, SeedSummary | None] = field(default_factory=dict)
    label: str = ""

    @property
    def fixture(self) -> bool:
        return any(r.fixture for r in self.runs)

    def values(self, metric: str) -> list[float]:
        out = []
        for run in self.runs:
            value = run.record["metrics"].get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                out.append(float(value))
        return out


@dataclass
class Setting:
    """Runs that may be compared: same task, protocol, subset and config but the backbone."""

    task: str
    kind: str
    protocol: str
    subset: str
    setting: str
    primary: str
    scalar_metrics: list[str]
    column_metrics: list[str]
    rows: list[Row]

    @property
    def fixture(self) -> bool:
        return any(row.fixture for row in self.rows)

    @property
    def title(self) -> str:
        return f"{self.task} · {self.protocol} · subset {self.subset} · setting {self.setting}"

    @property
    def anchor(self) -> str:
        return f"{self.task}-{self.protocol}-{self.subset}-{self.setting}"


@dataclass
class MetricDelta:
    """One metric of one comparison. ``paired`` is the bootstrap over test examples (None when
    the predictions cannot be paired); ``seeds`` the Welch interval over training seeds."""

    metric: str
    mean_a: float
    mean_b: float
    paired: DeltaResult | None
    seeds: SeedSummary | None
    verdict: str

    @property
    def delta(self) -> float:
        return self.paired.delta if self.paired is not None else self.mean_b - self.mean_a


@dataclass
class ColumnDeltas:
    """Per-class / per-attribute / per-group deltas of one column metric, Holm-adjusted."""

    metric: str
    columns: list[str]
    results: list[DeltaResult]
    p_holm: np.ndarray
    plot_file: str = ""
    plot_png: bytes = b""
    untested: int = 0  # columns with too few examples for an interval (MIN_TEST_EXAMPLES)

    def most_affected(self, top: int) -> list[int]:
        finite = [j for j, r in enumerate(self.results) if math.isfinite(r.delta)]
        return sorted(finite, key=lambda j: (-abs(self.results[j].delta), self.columns[j]))[:top]

    def detected(self, alpha: float) -> int:
        return int(np.sum(np.nan_to_num(self.p_holm, nan=1.0) < alpha))


@dataclass
class Comparison:
    setting: Setting
    a: Row  # the reference (original data)
    b: Row  # the compared backbone (blurred, overlayed, or the right side of --pair)
    subject: str  # how the verdict names b
    explicit: bool
    metrics: list[MetricDelta] = field(default_factory=list)
    columns: list[ColumnDeltas] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_examples: int | None = None
    seeds_paired: tuple[int, int] = (0, 0)

    @property
    def anchor(self) -> str:
        return f"{self.setting.anchor}-{self.b.name}-vs-{self.a.name}"


@dataclass
class Leaderboard:
    results: Path
    generated: str
    settings: list[Setting]
    comparisons: list[Comparison]
    problems: list[Problem]
    records_read: int
    confidence: float
    n_boot: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    @property
    def runs(self) -> int:
        return sum(len(row.runs) for s in self.settings for row in s.rows)

    @property
    def fixture(self) -> bool:
        return any(s.fixture for s in self.settings)


# --------------------------------------------------------------------------- 1. records


def _record_problem(run_dir: Path, record: dict[str, Any] | None) -> Problem | None:
    """Why a record cannot be shown as a result, or None when it can."""
    if record is None:
        return Problem("unreadable record", run_dir, f"{RECORD_FILE} is missing, not JSON, "
                       f"or not an object")
    task = record.get("task") if isinstance(record.get("task"), str) else ""
    status = record.get("status")
    if status == "failed":
        return Problem("failed run", run_dir, str(record.get("error") or "no error message"), task)
    if status != "completed":
        return Problem("malformed record", run_dir, f"status is {status!r}, not 'completed'",
                       task)
    backbone = record.get("backbone")
    checks = {
        "task": isinstance(record.get("task"), str),
        "kind": isinstance(record.get("kind"), str),
        "protocol": isinstance(record.get("protocol"), str),
        "seed": isinstance(record.get("seed"), int),
        "backbone.name/arch": isinstance(backbone, dict)
        and isinstance(backbone.get("name"), str)
        and isinstance(backbone.get("arch"), str),
        "config": isinstance(record.get("config"), dict),
        "metrics": isinstance(record.get("metrics"), dict),
        "primary_metric": isinstance(record.get("primary_metric"), str),
    }
    missing = [name for name, ok in checks.items() if not ok]
    if missing:
        return Problem("malformed record", run_dir, f"missing or mistyped: {', '.join(missing)}",
                       task)
    return None


def _setting_id(config: dict[str, Any]) -> str:
    """A short hash of everything in the run config except the backbone."""
    rest = {k: v for k, v in config.items() if k != "backbone"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def collect(results: Path) -> tuple[list[Run], list[Problem], int]:
    """Every completed run, the problems, and how many record files were read."""
    runs: list[Run] = []
    problems: list[Problem] = []
    found = RunStore(results).records()
    for run_dir, record in found:
        problem = _record_problem(run_dir, record)
        if problem is not None:
            problems.append(problem)
            continue
        assert record is not None
        backbone = record["backbone"]
        data = record.get("data") if isinstance(record.get("data"), dict) else {}
        runs.append(
            Run(
                run_dir=run_dir,
                record=record,
                task=record["task"],
                kind=record["kind"],
                protocol=record["protocol"],
                subset=str(record.get("subset", "full")),
                setting=_setting_id(record["config"]),
                backbone=backbone["name"],
                arch=backbone["arch"],
                data=str(backbone.get("pretraining_data") or "unknown"),
                sha256=backbone.get("sha256"),
                seed=record["seed"],
                fixture=bool(data.get("fixture", False)),
                ended=str(record.get("ended", "")),
            )
        )
    problems += _unfinished(Path(results))
    return runs, problems, len(found)


def _unfinished(results: Path) -> list[Problem]:
    """Runs interrupted before their record (they resume when run again) and record writes
    cut short; not results, but listed so nothing on disk goes unmentioned."""
    out = []
    work = results / "runs" / ".work"
    if work.is_dir():
        for entry in sorted(work.iterdir()):
            # work folders are <task>-<hash12>-s<seed>, run folders .../seed<seed>-<hash12>
            task, digest, seed = ([""] * 3 + entry.name.rsplit("-", 2))[-3:]
            finished = list(results.glob(f"runs/{task}/*/*/seed{seed[1:]}-{digest}/{RECORD_FILE}"))
            if finished:  # killed between writing its record and removing its work folder
                out.append(Problem("leftover work folder", entry, f"its run finished "
                                   f"({finished[0].parent.name}); safe to delete", task))
                continue
            ckpt = entry / "checkpoints" / "last.ckpt"
            state = "resumes from its last checkpoint" if ckpt.is_file() else "starts over"
            out.append(Problem("unfinished run", entry, f"no record yet; running it again {state}",
                               task))
    staging = results / "runs" / ".staging"
    if staging.is_dir():
        for entry in sorted(staging.iterdir()):
            out.append(Problem("incomplete write", entry, "a run stopped while writing its "
                               "record; ignored (safe to delete when no run is writing)"))
    return out


# --------------------------------------------------------------------------- 2-3. settings


def _metric_kinds(runs: Sequence[Run]) -> tuple[str, list[str], list[str]]:
    """Primary metric, scalar metrics (primary first) and per-column metrics, by their values."""
    first = runs[0].record
    primary = first["primary_metric"]
    task_cfg = first["config"].get("task") if isinstance(first["config"].get("task"), dict) else {}
    listed = (task_cfg.get("metrics") or {}).get("others") or []
    names = [primary, *[m for m in listed if isinstance(m, str) and m != primary]]
    names += [m for m in first["metrics"] if m not in names]
    scalar, columns = [], []
    for name in names:
        values = [r.record["metrics"].get(name) for r in runs]
        if any(isinstance(v, dict) for v in values):
            columns.append(name)
        elif any(isinstance(v, (int, float)) for v in values):
            scalar.append(name)
    if primary not in scalar:
        scalar.insert(0, primary)
    return primary, scalar, columns


def group_settings(
    runs: Iterable[Run], problems: list[Problem], confidence: float = 0.95
) -> list[Setting]:
    """Runs grouped into settings, each backbone's metrics summarised over seeds at
    ``confidence`` (the level every interval of the leaderboard uses)."""
    groups: dict[tuple[str, str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.task, run.protocol, run.subset, run.setting), []).append(run)
    settings = []
    for (task, protocol, subset, setting), members in sorted(groups.items()):
        primary, scalar, columns = _metric_kinds(members)
        rows: dict[tuple[str, str | None], Row] = {}
        for run in sorted(members, key=lambda r: (r.backbone, r.seed, r.ended)):
            key = (run.backbone, run.sha256)
            rows.setdefault(key, Row(run.backbone, run.arch, run.data, run.sha256)).runs.append(run)
        for row in rows.values():
            row.runs = _dedupe_seeds(row.runs, problems)
            row.summaries = {m: _summary(row.values(m), confidence) for m in scalar}
        names = [row.name for row in rows.values()]
        for row in rows.values():
            ambiguous = names.count(row.name) > 1
            row.label = f"{row.name} ({(row.sha256 or 'no sha256')[:8]})" if ambiguous else row.name
        ordered = sorted(
            rows.values(), key=lambda r: (r.arch, DATA_ORDER.get(r.data, 9), r.name, r.label)
        )
        settings.append(Setting(task, members[0].kind, protocol, subset, setting, primary,
                                scalar, columns, ordered))
    return settings


def _dedupe_seeds(runs: list[Run], problems: list[Problem]) -> list[Run]:
    """One run per seed (the latest); a second copy (e.g. merged results folders) is listed."""
    by_seed: dict[int, Run] = {}
    for run in runs:
        kept = by_seed.get(run.seed)
        if kept is None or run.ended > kept.ended:
            if kept is not None:
                problems.append(_duplicate(kept, run))
            by_seed[run.seed] = run
        else:
            problems.append(_duplicate(run, kept))
    return [by_seed[s] for s in sorted(by_seed)]


def _duplicate(dropped: Run, kept: Run) -> Problem:
    return Problem("duplicate run", dropped.run_dir, f"same backbone, setting and seed as "
                   f"{kept.run_dir} (newer, used instead)", dropped.task)


def _summary(values: list[float], confidence: float) -> SeedSummary | None:
    return seed_interval(values, confidence) if values else None


# --------------------------------------------------------------------------- 4. pairs


def parse_pairs(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``["original_x:blurred_x"]`` -> ``[("original_x", "blurred_x")]`` (reference first)."""
    pairs = []
    for spec in specs:
        a, sep, b = spec.partition(":")
        if not sep or not a.strip() or not b.strip() or a.strip() == b.strip():
            raise BenchError(
                f"--pair {spec!r}: expected REFERENCE:COMPARED backbone names as the leaderboard "
                f"shows them, e.g. --pair original_r50:blurred_r50"
            )
        pairs.append((a.strip(), b.strip()))
    return pairs


def check_pair_names(
    explicit: Sequence[tuple[str, str]], settings: Sequence[Setting]
) -> None:
    """Refuse a --pair that names a backbone no record has: a typo would otherwise give a
    leaderboard without the asked-for comparison and the reason only in its problems list."""
    known = sorted({name for s in settings for row in s.rows for name in (row.name, row.label)})
    for a_name, b_name in explicit:
        unknown = [name for name in (a_name, b_name) if name not in known]
        if not unknown:
            continue
        hints = "".join(closest_names(name, known) for name in unknown)
        listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20
                                          else "")
        raise BenchError(
            f"--pair {a_name}:{b_name}: no record has a backbone named "
            f"{' or '.join(repr(n) for n in unknown)}.{hints} Known backbones: "
            f"{listed or 'none (no completed runs)'}."
        )


def find_pairs(
    settings: Sequence[Setting], explicit: Sequence[tuple[str, str]], problems: list[Problem]
) -> list[tuple[Setting, Row, Row, bool]]:
    """Automatic pairs (same architecture, original vs blurred/overlayed data) and explicit
    ones; notes where a backbone that should have a partner has none."""
    out: list[tuple[Setting, Row, Row, bool]] = []
    used_explicit: set[tuple[str, str]] = set()
    for setting in settings:
        seen: set[tuple[int, int]] = set()
        by_label = {row.label: row for row in setting.rows}
        by_name: dict[str, list[Row]] = {}
        for row in setting.rows:
            by_name.setdefault(row.name, []).append(row)
        for a_name, b_name in explicit:
            a_rows = [by_label[a_name]] if a_name in by_label else by_name.get(a_name, [])
            b_rows = [by_label[b_name]] if b_name in by_label else by_name.get(b_name, [])
            if len(a_rows) == 1 and len(b_rows) == 1:
                used_explicit.add((a_name, b_name))
                seen.add((id(a_rows[0]), id(b_rows[0])))
                out.append((setting, a_rows[0], b_rows[0], True))
        for arch in sorted({row.arch for row in setting.rows}):
            rows = [row for row in setting.rows if row.arch == arch]
            originals = [row for row in rows if row.data == "original"]
            for row in (r for r in rows if r.data in COMPARED_DATA):
                if any(id(row) == b for _, b in seen):
                    continue
                if len(originals) == 1:
                    seen.add((id(originals[0]), id(row)))
                    out.append((setting, originals[0], row, False))
                    continue
                why = ("no original-data backbone" if not originals
                       else f"{len(originals)} original-data backbones "
                            f"({', '.join(o.label for o in originals)})")
                problems.append(Problem(
                    "not compared", row.runs[0].run_dir.parent,
                    f"{row.label} ({row.data}) in {setting.title}: {why} of architecture {arch}; "
                    f"pick its partner with --pair ORIGINAL:{row.label}", setting.task))
    for a_name, b_name in explicit:
        if (a_name, b_name) not in used_explicit:
            problems.append(Problem(
                "not compared", Path("."), f"--pair {a_name}:{b_name}: no setting has exactly one "
                f"backbone of each name (names as in the backbone tables)"))
    return out


# --------------------------------------------------------------------------- 5. comparisons


@dataclass
class _Side:
    """One backbone's runs that have usable per-example scores, aligned to the comparison's
    example order (``perms[i]`` maps comparison positions to run ``i``'s rows)."""

    runs: list[Run]
    scores: list[RunScores]
    perms: list[np.ndarray | None]


class _ScoreCache:
    """Per-run scores, loaded once per leaderboard (a backbone can be in several pairs)."""

    def __init__(self, problems: list[Problem], disk: ScoreArrayCache | None = None) -> None:
        self.problems = problems
        self.disk = disk  # the on-disk cache of score arrays (None: --no-cache)
        self._scores: dict[Path, RunScores | None] = {}

    def get(self, run: Run) -> RunScores | None:
        if run.run_dir not in self._scores:
            self._scores[run.run_dir] = self._load(run)
        return self._scores[run.run_dir]

    def prefetch(self, runs: Sequence[Run]) -> None:
        """Load every run's predictions up front (timed apart from the bootstraps). In this
        process on purpose: np.load holds the GIL for most of its work, and threads measured
        three times slower than this loop."""
        for run in runs:
            self.get(run)

    def _load(self, run: Run) -> RunScores | None:
        try:
            spec = kind_analysis(run.kind)
        except KeyError:
            self.problems.append(Problem("not compared", run.run_dir, f"unknown task kind "
                                         f"{run.kind!r}: no per-example scores", run.task))
            return None
        if spec.scores is None:
            return None
        try:
            if self.disk is not None and spec.score_arrays and spec.scores_from_arrays:
                arrays, key = self.disk.get(run.run_dir, run.kind)
                if arrays is None:
                    arrays = spec.score_arrays(run.run_dir, run.record)
                    self.disk.put(run.run_dir, run.kind, key, arrays)
                scores = spec.scores_from_arrays(arrays, run.record)
            else:
                scores = spec.scores(run.run_dir, run.record)
        except (OSError, ValueError, KeyError, IndexError, BenchError, zipfile.BadZipFile) as err:
            self.problems.append(Problem(
                "unreadable predictions", run.run_dir,
                f"{type(err).__name__}: {err}; left out of the paired tests", run.task))
            return None
        return self._checked(run, scores, [run.record["primary_metric"]])

    def _checked(self, run: Run, scores: RunScores, metrics: Sequence[str]) -> RunScores | None:
        """Predictions must reproduce the record's own (primary) number, or they are not its
        predictions (a record edited by hand, predictions copied from another run)."""
        if scores.n == 0 or len(set(scores.example_ids.tolist())) != scores.n:
            self.problems.append(Problem("unreadable predictions", run.run_dir, "no examples or "
                                         "repeated example ids; left out of the paired tests",
                                         run.task))
            return None
        full = np.arange(scores.n)[None, :]
        for name in metrics:
            scored = scores.metrics.get(name)
            recorded = run.record["metrics"].get(name)
            if scored is None or scored.columns or not isinstance(recorded, (int, float)):
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                value = float(np.asarray(scored.compute(full), np.float64).reshape(-1)[0])
            if not math.isclose(value, recorded, rel_tol=1e-5, abs_tol=1e-6):
                self.problems.append(Problem(
                    "predictions disagree with record", run.run_dir,
                    f"{name}: the record says {recorded:.6g}, its predictions give {value:.6g}; "
                    f"left out of the paired tests", run.task))
                return None
        return scores


def _side(row: Row, setting: Setting, cache: _ScoreCache) -> tuple[list[Run], list[RunScores]]:
    runs, scores = [], []
    for run in row.runs:
        got = cache.get(run)
        if got is not None:
            runs.append(run)
            scores.append(got)
    return runs, scores


def _alignment(ids: np.ndarray, reference: np.ndarray) -> np.ndarray | None | bool:
    """None: same order; an index array: ``ids[perm] == reference``; False: other examples."""
    if len(ids) != len(reference):
        return False
    if np.array_equal(ids, reference):
        return None
    order = np.argsort(ids, kind="stable")
    pos = np.searchsorted(ids[order], reference)
    pos[pos >= len(ids)] = 0
    perm = order[pos]
    return perm if np.array_equal(ids[perm], reference) else False


def _aligned(values: np.ndarray, perm: np.ndarray | None) -> np.ndarray:
    return values if perm is None else values[perm]


def _resampler(scored: Scored, perm: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray]:
    if perm is None:
        return scored.compute
    return lambda idx: scored.compute(perm[idx])


def _merged(scored: list[Any], perms: list[np.ndarray | None]) -> list[Any] | None:
    """One resampler for all seeds of a side when the metric allows it (see
    :class:`benchmark.scores.ResampledMetric`): the cost then does not grow with seeds."""
    if len(scored) < 2 or not all(isinstance(s, ResampledMetric) and s.rebuild is not None
                                  and s.values is not None for s in scored):
        return None
    if len({s.merge_key for s in scored}) != 1:
        return None
    mean = np.mean([_aligned(s.values, p) for s, p in zip(scored, perms, strict=True)], axis=0)
    # merge keys hash the run's own example order; after alignment all share the first's
    return [_resampler(scored[0].rebuild(mean), None)] if all(p is None for p in perms) else None


def _paired(
    metric: str, a: _Side, b: _Side, n: int, n_boot: int, confidence: float, rng_seed: int
) -> DeltaResult | list[DeltaResult] | None:
    """The paired bootstrap of one metric, by the fastest route its scores allow."""
    scored_a = [s.metrics.get(metric) for s in a.scores]
    scored_b = [s.metrics.get(metric) for s in b.scores]
    everything = [*scored_a, *scored_b]
    if any(s is None for s in everything):
        return None
    columns = everything[0].columns  # type: ignore[union-attr]
    if any(s.columns != columns for s in everything):  # type: ignore[union-attr]
        return None
    kw = {"n_boot": n_boot, "confidence": confidence, "rng_seed": rng_seed}
    if all(isinstance(s, ExampleScores) for s in everything):
        stack_a = np.stack([_aligned(s.values, p) for s, p in zip(scored_a, a.perms, strict=True)])
        stack_b = np.stack([_aligned(s.values, p) for s, p in zip(scored_b, b.perms, strict=True)])
        if columns:
            return paired_bootstrap_mean_columns(stack_a, stack_b, **kw)
        return paired_bootstrap_mean(stack_a, stack_b, **kw)
    fa = _merged(scored_a, a.perms) or [_resampler(s, p) for s, p in zip(scored_a, a.perms,
                                                                        strict=True)]
    fb = _merged(scored_b, b.perms) or [_resampler(s, p) for s, p in zip(scored_b, b.perms,
                                                                        strict=True)]

    def mean_a(idx: np.ndarray) -> np.ndarray:
        return np.mean([f(idx) for f in fa], axis=0)

    def mean_b(idx: np.ndarray) -> np.ndarray:
        return np.mean([f(idx) for f in fb], axis=0)

    if columns:
        return paired_bootstrap_batched_columns(mean_a, mean_b, n, **kw)
    return paired_bootstrap_batched(mean_a, mean_b, n, **kw)


def compare(
    setting: Setting,
    a: Row,
    b: Row,
    explicit: bool,
    cache: _ScoreCache,
    n_boot: int,
    confidence: float,
    rng_seed: int,
) -> Comparison:
    subject = b.data if (b.data in COMPARED_DATA and not explicit) else b.label
    comp = Comparison(setting, a, b, subject, explicit)
    alpha = 1.0 - confidence
    runs_a, scores_a = _side(a, setting, cache)
    runs_b, scores_b = _side(b, setting, cache)
    side_a = side_b = None
    if scores_a and scores_b:
        reference = scores_a[0].example_ids
        sides = []
        for runs, scores in ((runs_a, scores_a), (runs_b, scores_b)):
            kept = _Side([], [], [])
            for run, sc in zip(runs, scores, strict=True):
                perm = _alignment(sc.example_ids, reference)
                if perm is False:
                    comp.notes.append(f"{run.run_dir.name} of {run.backbone} was tested on other "
                                      f"examples than {runs_a[0].run_dir.name}: left out")
                    continue
                kept.runs.append(run)
                kept.scores.append(sc)
                kept.perms.append(perm)  # type: ignore[arg-type]
            sides.append(kept)
        if sides[0].runs and sides[1].runs:
            side_a, side_b = sides
            comp.n_examples = len(reference)
            comp.seeds_paired = (len(side_a.runs), len(side_b.runs))
    if side_a is None:
        comp.notes.append("no paired test: predictions are missing or unreadable on one side, "
                          "so only the seed-level interval is shown")

    for metric in setting.scalar_metrics:
        values_a, values_b = a.values(metric), b.values(metric)
        if not values_a or not values_b:
            continue
        paired = None
        if side_a is not None and side_b is not None and comp.n_examples:
            got = _paired(metric, side_a, side_b, comp.n_examples, n_boot, confidence, rng_seed)
            paired = got if isinstance(got, DeltaResult) else None
        seeds = seed_delta_interval(values_a, values_b, confidence)
        comp.metrics.append(MetricDelta(metric, float(np.mean(values_a)), float(np.mean(values_b)),
                                        paired, seeds, _verdict(metric, paired, seeds, subject,
                                                                alpha)))
    if side_a is not None and side_b is not None and comp.n_examples:
        for metric in setting.column_metrics:
            got = _paired(metric, side_a, side_b, comp.n_examples, n_boot, confidence, rng_seed)
            if isinstance(got, list) and got:
                scored = side_a.scores[0].metrics[metric]
                got, untested = _untested_small_columns(got, scored)
                p = holm_adjust([r.p_value for r in got])
                comp.columns.append(ColumnDeltas(metric, list(scored.columns), got, p,
                                                 untested=untested))
    return comp


def _untested_small_columns(
    results: list[DeltaResult], scored: Scored
) -> tuple[list[DeltaResult], int]:
    """Drop the interval and p-value of columns counted on fewer than MIN_TEST_EXAMPLES test
    examples, the bound the whole test set has (known for per-example scores: a per-class
    column counts its class's examples); they keep their delta and stay out of the Holm family.
    """
    if not isinstance(scored, ExampleScores) or scored.values.ndim != 2:
        return results, 0
    counts = np.sum(~np.isnan(scored.values), axis=0)
    out, untested = [], 0
    for result, count in zip(results, counts, strict=True):
        if count < MIN_TEST_EXAMPLES and math.isfinite(result.p_value):
            result = DeltaResult(result.delta, math.nan, math.nan, math.nan, 0,
                                 result.n_examples, result.confidence)
            untested += 1
        out.append(result)
    return out, untested


def _verdict(
    metric: str, paired: DeltaResult | None, seeds: SeedSummary | None, subject: str, alpha: float
) -> str:
    if paired is None:
        if seeds is not None and math.isfinite(seeds.low):
            called = seeds.low > 0 or seeds.high < 0
            word = "differs" if called else "no detectable difference"
            return f"{metric}: {word} across seeds (no paired test: predictions unavailable)"
        return (f"{metric}: not enough data for a comparison (no paired test: predictions "
                f"unavailable; fewer than two seeds on a side)")
    text = verdict(paired, metric, alpha=alpha, subject=subject)
    called = (math.isfinite(paired.delta) and math.isfinite(paired.p_value)
              and "no detectable difference" not in text)
    if called and seeds is not None and math.isfinite(seeds.low) and seeds.low <= 0 <= seeds.high:
        text += "; within seed-to-seed variation"
    return text


# --------------------------------------------------------------------------- build


def build(
    results: Path,
    pairs: Sequence[str] = (),
    n_boot: int = 2000,
    confidence: float = 0.95,
    rng_seed: int = 0,
    plots: bool = True,
    cache: bool = True,
) -> Leaderboard:
    """Read the records under ``results`` and compute every table, comparison and plot.
    ``cache``: read and update ``<results>/.cache`` (:mod:`benchmark.score_cache`), so a
    rebuild does not open the predictions of unchanged runs again."""
    if not 0.5 <= confidence < 1.0:
        raise BenchError(f"--confidence {confidence}: use a level in [0.5, 1), e.g. 0.95.")
    if n_boot < 100:
        raise BenchError(f"--n-boot {n_boot}: use at least 100 bootstrap replicates.")
    explicit = parse_pairs(pairs)
    results = Path(results)
    if not (results / "runs").is_dir():
        raise BenchError(f"{results} holds no runs/ folder: pass the --results folder that "
                         f"`bench run` or `bench sweep` wrote to.")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    runs, problems, n_records = collect(results)
    timings["read records"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    settings = group_settings(runs, problems, confidence)
    check_pair_names(explicit, settings)
    found = find_pairs(settings, explicit, problems)
    timings["group and seed intervals"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    disk = ScoreArrayCache(results) if cache else None
    scores = _ScoreCache(problems, disk)
    scores.prefetch([run for _, a, b, _ in found for run in (*a.runs, *b.runs)])
    timings["read predictions"] = time.perf_counter() - t0
    if disk is not None:
        t0 = time.perf_counter()
        if disk.save():
            timings["write score cache"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with reuse_replicates():  # every comparison of a task resamples the same test set
        comparisons = [
            compare(setting, a, b, is_explicit, scores, n_boot, confidence, rng_seed)
            for setting, a, b, is_explicit in found
        ]
    timings["paired bootstraps"] = time.perf_counter() - t0
    problems.sort(key=lambda p: (p.task, p.what, str(p.path)))

    t0 = time.perf_counter()
    if plots:
        from benchmark.leaderboard_html import plot_data, render_plots

        views = [(comp, view) for comp in comparisons for view in comp.columns]
        pngs = render_plots([plot_data(comp, view, confidence) for comp, view in views])
        for (comp, view), png in zip(views, pngs, strict=True):
            view.plot_file = f"plots/{_file_slug(comp.anchor)}-{_file_slug(view.metric)}.png"
            view.plot_png = png
    timings["plots"] = time.perf_counter() - t0
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    return Leaderboard(results, generated, settings, comparisons, problems, n_records, confidence,
                       n_boot, timings)


def _file_slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    return cleaned.strip("-.")[:120] or "plot"


def write(board: Leaderboard, out: Path, top: int = 10) -> dict[str, Path]:
    """Write ``leaderboard.md``, ``leaderboard.csv``, ``index.html`` and ``plots/`` into
    ``out`` (each file atomically); links to records are relative to ``out``."""
    from benchmark.atomic import atomic_write_bytes, atomic_write_text
    from benchmark.leaderboard_html import render_csv, render_html, render_markdown

    out = Path(out)
    if out.resolve() == (board.results / "runs").resolve() or (
        out.resolve().is_relative_to((board.results / "runs").resolve())
    ):
        raise BenchError(f"--out {out} is inside the runs folder: pick another folder.")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for comp in board.comparisons:
        for view in comp.columns:
            if view.plot_png:
                atomic_write_bytes(out / view.plot_file, view.plot_png)
    written = {
        "markdown": atomic_write_text(out / "leaderboard.md", render_markdown(board, out, top)),
        "csv": atomic_write_text(out / "leaderboard.csv", render_csv(board, out)),
        "html": atomic_write_text(out / "index.html", render_html(board, out, top)),
    }
    board.timings["write files"] = time.perf_counter() - t0
    return written


class RecordLinks:
    """Relative links from the leaderboard folder to run records and folders, so the page works
    wherever results and leaderboard are copied together. The results folder is resolved once
    (not once per run: a leaderboard of 10,000 runs would spend its time in ``resolve``)."""

    def __init__(self, results: Path, out: Path) -> None:
        self.results = Path(results)
        self.base = Path(os.path.relpath(self.results.resolve(), Path(out).resolve())).as_posix()

    def __call__(self, path: Path, record: bool = True) -> str:
        path = Path(path)
        try:
            inside = path.relative_to(self.results).as_posix()
        except ValueError:
            return path.as_posix()
        target = f"{inside}/{RECORD_FILE}" if record else inside
        return target if self.base == "." else f"{self.base}/{target}"
