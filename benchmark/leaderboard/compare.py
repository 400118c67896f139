"""Pairs -> statistics (step 5): paired bootstraps over test examples, Welch over seeds.

Per pair and metric: a paired bootstrap over test examples, pooled over seeds, from the
per-example scores the task kind derives from the saved predictions
(:mod:`benchmark.analysis.kinds`), plus a Welch interval over seeds; per class / attribute /
group: the same per column with Holm-adjusted p-values. What a prediction file means stays with
the kind; this module only sees :class:`benchmark.scores.RunScores`.

How many comparisons run together (:func:`compare_all`)::

    _compare_steps(comparison)          a generator per comparison: seed intervals, verdicts...
      -> _paired(metric)                 ...and per metric, either the result at once, or
           yield LinearJob               a bootstrap that is finish(counts @ weights)
    compare_all                          collects the waiting jobs (up to _HELD_JOB_BYTES),
      -> stats.run_linear_jobs(jobs)     runs them as wide products, one per test set and
                                         chunk of replicates (stats._JOB_WIDTH_ELEMENTS),
      -> generator.send((point, deltas)) and resumes each comparison with its own result.

The results are those of one comparison at a time, bit for bit (the weights are integers, so
the sums are exact in any order); tests check it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.analysis.kinds import ANALYSES, KindAnalysis, kind_analysis
from benchmark.analysis.npz import READ_ERRORS, is_shared
from benchmark.errors import BenchError
from benchmark.leaderboard.model import (
    COMPARED_DATA,
    ColumnDeltas,
    Comparison,
    MetricDelta,
    Problem,
    Row,
    Run,
    Setting,
)
from benchmark.leaderboard.workers import (
    ReadFailure,
    pool_size,
    read_error_text,
    read_score_arrays,
    workers_usable,
)
from benchmark.score_cache import Arrays, ScoreArrayCache, StatKey
from benchmark.scores import ExampleScores, ResampledMetric, RunScores, Scored
from benchmark.stats import (
    MIN_TEST_EXAMPLES,
    DeltaResult,
    LinearJob,
    SeedSummary,
    holm_adjust,
    paired_bootstrap_batched,
    paired_bootstrap_batched_columns,
    paired_bootstrap_mean,
    paired_bootstrap_mean_columns,
    paired_mean_columns_job,
    paired_mean_job,
    run_linear_jobs,
    seed_delta_interval,
    summarise_linear_job,
    verdict,
)


@dataclass
class _Side:
    """One backbone's runs that have usable per-example scores, aligned to the comparison's
    example order (``perms[i]`` maps comparison positions to run ``i``'s rows)."""

    runs: list[Run]
    scores: list[RunScores]
    perms: list[np.ndarray | None]


class RunScoreLoader:
    """Per-run scores, loaded once per leaderboard (a backbone can be in several pairs)."""

    def __init__(self, problems: list[Problem], disk: ScoreArrayCache | None = None) -> None:
        self.problems = problems
        self.disk = disk  # the on-disk cache of score arrays (None: --no-cache)
        self._scores: dict[Path, RunScores | None] = {}
        # example-id arrays already found unique, by dtype and bytes: the runs of a task share
        # their test set, so a 10,000-run build checks 20 sets, not 10,000 (26 us each)
        self._unique_ids: set[tuple[str, bytes]] = set()
        self._unique_arrays: dict[int, np.ndarray] = {}  # such sets' shared arrays, by id
        # the problems reading each run gave (the comparison cache stores them with its entry)
        self.run_problems: dict[Path, list[Problem]] = {}
        self._from_workers: _WorkerArrays | None = None  # while prefetch reads with workers

    def get(self, run: Run) -> RunScores | None:
        if run.run_dir not in self._scores:
            before = len(self.problems)
            self._scores[run.run_dir] = self._load(run)
            self.run_problems[run.run_dir] = self.problems[before:]
        return self._scores[run.run_dir]

    def prefetch(self, runs: Sequence[Run], workers: int = 0) -> int:
        """Load every run's predictions up front (timed apart from the bootstraps). Reading a
        file is mostly Python work that holds the GIL: threads measured three times slower
        than this loop with np.load, and with the struct/zlib reader two threads still took
        3.8-5.2 s wall for 10,000 files against 1.9-2.9 s for the loop. ``workers`` > 0:
        the files that the score cache does not serve are read by that many worker processes
        (:mod:`benchmark.leaderboard.workers`), and everything else is done here in the same
        order, so the scores, caches and problems are those of the loop. Returns how many
        workers read files (0: none, all in this process)."""
        pending = list({run.run_dir: run for run in runs if run.run_dir not in self._scores}
                       .values())  # fmt: skip
        if not workers_usable(workers, len(pending)):
            for run in pending:
                self.get(run)
            return 0
        looked_up: dict[Path, tuple[Arrays | None, StatKey | None]] = {}
        jobs: list[tuple[Path, str]] = []
        for run in pending:  # the cache's keys are taken before the workers read the files
            if _reads_arrays(ANALYSES.get(run.kind)):
                got = self.disk.get(run.run_dir, run.kind) if self.disk else (None, None)
                looked_up[run.run_dir] = got
                if got[0] is None:
                    jobs.append((run.run_dir, run.kind))
        # decided by the files to read, not the runs: a rebuild with a few changed runs reads
        # them here (the cache serves the rest) rather than forking a pool for them
        used = pool_size(len(jobs), workers) if workers_usable(workers, len(jobs)) else 0
        self._from_workers = _WorkerArrays(read_score_arrays(jobs, workers)) if used else None
        try:
            for run in pending:
                before = len(self.problems)
                self._scores[run.run_dir] = self._load(run, looked_up.get(run.run_dir))
                self.run_problems[run.run_dir] = self.problems[before:]
        finally:
            if self._from_workers is not None:
                self._from_workers.close()
                self._from_workers = None
        return used

    def _load(
        self, run: Run, looked_up: tuple[Arrays | None, StatKey | None] | None = None
    ) -> RunScores | None:
        """One run's scores. ``looked_up``: the score cache's answer for it, taken by prefetch
        before its workers read the files the cache did not serve."""
        try:
            spec = kind_analysis(run.kind)
        except KeyError:
            self.problems.append(Problem("not compared", run.run_dir, f"unknown task kind "
                                         f"{run.kind!r}: no per-example scores", run.task))
            return None
        if spec.scores is None:
            return None
        try:
            if _reads_arrays(spec) and (self.disk is not None or looked_up is not None):
                if looked_up is None:
                    looked_up = self.disk.get(run.run_dir, run.kind)  # type: ignore[union-attr]
                arrays, key = looked_up
                if arrays is None:
                    if self._from_workers is not None:
                        arrays = self._from_workers.get(run.run_dir)
                    else:
                        arrays = spec.score_arrays(run.run_dir)  # type: ignore[misc]
                    if self.disk is not None:
                        self.disk.put(run.run_dir, run.kind, key, arrays)
                scores = spec.scores_from_arrays(arrays, run.record)  # type: ignore[misc]
            else:
                scores = spec.scores(run.run_dir, run.record)
        except (*READ_ERRORS, BenchError, ReadFailure) as err:
            text = str(err) if isinstance(err, ReadFailure) else read_error_text(err)
            self.problems.append(Problem(
                "unreadable predictions", run.run_dir,
                f"{text}; left out of the paired tests", run.task))
            return None
        return self._checked(run, scores, [str(run.record.primary_metric)])

    def _checked(self, run: Run, scores: RunScores, metrics: Sequence[str]) -> RunScores | None:
        """Predictions must reproduce the record's own (primary) number, or they are not its
        predictions (a record edited by hand, predictions copied from another run)."""
        ids = scores.example_ids
        # the same read-only array as a run already checked (the runs of a task share theirs,
        # see read_npz's shared): known unique without copying and hashing its bytes (2.7 us)
        known = self._unique_arrays.get(id(ids))
        if known is None or known is not ids:
            seen = (ids.dtype.str, ids.tobytes()) if ids.ndim == 1 else None
            if seen not in self._unique_ids:
                if scores.n == 0 or len(set(ids.tolist())) != scores.n:
                    self.problems.append(Problem(
                        "unreadable predictions", run.run_dir, "no examples or repeated "
                        "example ids; left out of the paired tests", run.task))
                    return None
                if seen is not None:
                    self._unique_ids.add(seen)
            if seen is not None and is_shared(ids):
                self._unique_arrays[id(ids)] = ids  # kept: its id is not reused meanwhile
        for name in metrics:
            scored = scores.metrics.get(name)
            recorded = run.metrics.get(name)
            if scored is None or scored.columns or not isinstance(recorded, (int, float)):
                continue
            values = scored.values if isinstance(scored, ExampleScores) else None
            if values is not None and values.ndim == 1 and values.dtype == np.float64 \
                    and len(values):  # fmt: skip
                # top1: the mean as ndarray.mean computes it (the same pairwise sum, divided
                # by the count), without its Python wrapper and the errstate (5 -> 1.5 us)
                value = float(np.add.reduce(values)) / len(values)
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    if values is not None and values.ndim == 1:
                        value = float(values.mean())
                    else:
                        full = np.arange(scores.n)[None, :]
                        value = float(np.asarray(scored.compute(full),
                                                 np.float64).reshape(-1)[0])  # fmt: skip
            if not math.isclose(value, recorded, rel_tol=1e-5, abs_tol=1e-6):
                self.problems.append(Problem(
                    "predictions disagree with record", run.run_dir,
                    f"{name}: the record says {recorded:.6g}, its predictions give {value:.6g}; "
                    f"left out of the paired tests", run.task))
                return None
        return scores


def _reads_arrays(spec: KindAnalysis | None) -> bool:
    """Whether a kind's scores come from cacheable arrays (score_arrays, then
    scores_from_arrays) rather than straight from its files."""
    return (spec is not None and spec.scores is not None and spec.score_arrays is not None
            and spec.scores_from_arrays is not None)  # fmt: skip


class _WorkerArrays:
    """The workers' arrays, served by run folder: a run is asked for in prefetch's order, and
    the stream yields them in that order too; keyed all the same, so a run that asks for none
    (a kind without arrays) cannot shift the rest onto the wrong runs."""

    def __init__(self, stream: Generator[tuple[Path, Arrays | ReadFailure], None, None]) -> None:
        self._stream = stream
        self._waiting: dict[Path, Arrays | ReadFailure] = {}

    def get(self, run_dir: Path) -> Arrays:
        while run_dir not in self._waiting:
            try:
                folder, got = next(self._stream)
            except StopIteration:  # cannot happen while every job is asked for: a bug
                raise RuntimeError(f"the workers gave no arrays for {run_dir}") from None
            self._waiting[folder] = got
        got = self._waiting.pop(run_dir)
        if isinstance(got, ReadFailure):
            raise got
        return got

    def close(self) -> None:
        self._stream.close()


def _side(row: Row, setting: Setting, cache: RunScoreLoader) -> tuple[list[Run], list[RunScores]]:
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


def _merged(scored: list[Any], perms: list[np.ndarray | None]) -> ResampledMetric | None:
    """One metric for all seeds of a side when the metric allows it (see
    :class:`benchmark.scores.ResampledMetric`): the cost then does not grow with seeds."""
    if len(scored) < 2 or not all(isinstance(s, ResampledMetric) and s.rebuild is not None
                                  and s.values is not None for s in scored):
        return None
    if len({s.merge_key for s in scored}) != 1:
        return None
    if any(p is not None for p in perms):
        return None  # merge keys hash the run's own example order
    return scored[0].rebuild(np.mean([s.values for s in scored], axis=0))


LinearForm = tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]


def _one_metric(scored: list[Any], perms: list[np.ndarray | None]) -> Scored | None:
    """The side's one metric: its only run's (in the comparison's example order), or its
    seeds merged (:func:`_merged`); None when the runs must be resampled one by one."""
    return scored[0] if len(scored) == 1 and perms[0] is None else _merged(scored, perms)


def _linear_form(one: Scored | None) -> LinearForm | None:
    """The linear form (:attr:`ResampledMetric.linear`) of a side's one metric, if any."""
    if not isinstance(one, ResampledMetric) or one.linear is None:
        return None
    return one.linear()


def _pair_job(a: LinearForm, b: LinearForm, n_boot: int, rng_seed: int) -> LinearJob:
    """``metric_b - metric_a`` as one job: both sides' weights side by side."""
    (weights_a, finish_a), (weights_b, finish_b) = a, b
    split = weights_a.shape[1]

    def finish(sums: np.ndarray) -> np.ndarray:
        return (np.asarray(finish_b(sums[:, split:]), np.float64)
                - np.asarray(finish_a(sums[:, :split]), np.float64))  # fmt: skip

    return LinearJob(np.concatenate([weights_a, weights_b], axis=1), finish, n_boot, rng_seed,
                     exact=False)  # fmt: skip


def _mean_scores(
    scored_a: list[Any], scored_b: list[Any], a: _Side, b: _Side, columns: bool, n_boot: int,
    confidence: float, rng_seed: int,
) -> LinearJob | DeltaResult | list[DeltaResult]:
    """Mean-of-example-scores metrics: the linear job of their exact path, or the result."""
    stack_a = np.stack([_aligned(s.values, p) for s, p in zip(scored_a, a.perms, strict=True)])
    stack_b = np.stack([_aligned(s.values, p) for s, p in zip(scored_b, b.perms, strict=True)])
    job = (paired_mean_columns_job if columns else paired_mean_job)(stack_a, stack_b, n_boot,
                                                                     rng_seed)  # fmt: skip
    if job is not None:
        return job
    kw = {"n_boot": n_boot, "confidence": confidence, "rng_seed": rng_seed}
    if columns:
        return paired_bootstrap_mean_columns(stack_a, stack_b, **kw)
    return paired_bootstrap_mean(stack_a, stack_b, **kw)


# A computation that may hand :class:`LinearJob` s to its driver, which sends back their
# ``(point, deltas)`` (see :func:`compare_all`), and returns its result.
Steps = Generator[LinearJob, tuple[np.ndarray, np.ndarray], Any]


def _awaited(job: LinearJob, confidence: float) -> Steps:
    """A job handed to the driver, and its result once the driver sends its output back. The
    caller's frame holds nothing big meanwhile (the score stacks stayed in _mean_scores)."""
    point, deltas = yield job
    return summarise_linear_job(job, point, deltas, confidence)


def _paired(
    metric: str, a: _Side, b: _Side, n: int, n_boot: int, confidence: float, rng_seed: int
) -> Steps:
    """The paired bootstrap of one metric, by the fastest route its scores allow; a linear one
    is handed to the driver, to share its products with the other comparisons of the test
    set. Returns a DeltaResult, a list of them (per column), or None."""
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
        got = _mean_scores(scored_a, scored_b, a, b, bool(columns), **kw)
        if not isinstance(got, LinearJob):
            return got
        return (yield from _awaited(got, confidence))
    one_a, one_b = _one_metric(scored_a, a.perms), _one_metric(scored_b, b.perms)
    linear_a = None if columns else _linear_form(one_a)
    linear_b = None if linear_a is None else _linear_form(one_b)
    if linear_a is not None and linear_b is not None:
        return (yield from _awaited(_pair_job(linear_a, linear_b, n_boot, rng_seed), confidence))
    fa = [one_a.compute] if one_a is not None else [
        _resampler(s, p) for s, p in zip(scored_a, a.perms, strict=True)]
    fb = [one_b.compute] if one_b is not None else [
        _resampler(s, p) for s, p in zip(scored_b, b.perms, strict=True)]

    def mean_a(idx: np.ndarray) -> np.ndarray:
        return np.mean([f(idx) for f in fa], axis=0)

    def mean_b(idx: np.ndarray) -> np.ndarray:
        return np.mean([f(idx) for f in fb], axis=0)

    if columns:
        return paired_bootstrap_batched_columns(mean_a, mean_b, n, **kw)
    return paired_bootstrap_batched(mean_a, mean_b, n, **kw)


def new_comparison(setting: Setting, a: Row, b: Row, explicit: bool) -> Comparison:
    """The comparison of ``b`` with ``a`` before any statistics (filled by :func:`compare`, or
    from the comparison cache)."""
    subject = b.data if (b.data in COMPARED_DATA and not explicit) else b.label
    return Comparison(setting, a, b, subject, explicit)


def compare(
    setting: Setting,
    a: Row,
    b: Row,
    explicit: bool,
    cache: RunScoreLoader,
    n_boot: int,
    confidence: float,
    rng_seed: int,
) -> Comparison:
    """The statistics of one comparison (:func:`compare_all` for many)."""
    return compare_all([(setting, a, b, explicit)], cache, n_boot, confidence, rng_seed)[0]


def compare_all(
    items: Sequence[tuple[Setting, Row, Row, bool]],
    cache: RunScoreLoader,
    n_boot: int,
    confidence: float,
    rng_seed: int,
) -> list[Comparison]:
    """The statistics of many comparisons ``(setting, a, b, explicit)``. Each runs as
    :func:`_compare_steps`, up to its next linear bootstrap; the bootstraps of all of them are
    then run together (:func:`benchmark.stats.run_linear_jobs`: one product per test set and
    chunk of replicates), and each resumes with its results, until every one has finished."""
    steps = [_compare_steps(*item, cache, n_boot, confidence, rng_seed) for item in items]
    results: list[Comparison | None] = [None] * len(steps)
    ready: deque[tuple[int, tuple[np.ndarray, np.ndarray] | None]] = deque(
        (i, None) for i in range(len(steps)))
    waiting: list[tuple[int, LinearJob]] = []
    held = 0
    while ready or waiting:
        if ready:
            i, reply = ready.popleft()
            try:
                job = steps[i].send(reply)  # type: ignore[arg-type]
            except StopIteration as done:
                results[i] = done.value
            else:
                waiting.append((i, job))
                held += job.weights.nbytes
        if waiting and (not ready or held > _HELD_JOB_BYTES):
            outputs = run_linear_jobs([job for _, job in waiting])
            # resumed before any new comparison starts, so few are ever half done
            ready.extendleft(reversed([(i, out) for (i, _), out in zip(waiting, outputs,
                                                                     strict=True)]))  # fmt: skip
            waiting, held = [], 0
    return results  # type: ignore[return-value]


# Weights of the waiting jobs run together (the products' inputs); the comparisons of a
# synthetic 10,000-run leaderboard (200 test examples) fit in one round.
_HELD_JOB_BYTES = 64 << 20


def _compare_steps(
    setting: Setting,
    a: Row,
    b: Row,
    explicit: bool,
    cache: RunScoreLoader,
    n_boot: int,
    confidence: float,
    rng_seed: int,
) -> Steps:
    comp = new_comparison(setting, a, b, explicit)
    subject = comp.subject
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
            got = yield from _paired(metric, side_a, side_b, comp.n_examples, n_boot, confidence,
                                     rng_seed)  # fmt: skip
            paired = got if isinstance(got, DeltaResult) else None
        seeds = seed_delta_interval(values_a, values_b, confidence)
        comp.metrics.append(MetricDelta(metric, float(np.mean(values_a)), float(np.mean(values_b)),
                                        paired, seeds, _verdict(metric, paired, seeds, subject,
                                                                alpha)))
    if side_a is not None and side_b is not None and comp.n_examples:
        for metric in setting.column_metrics:
            got = yield from _paired(metric, side_a, side_b, comp.n_examples, n_boot, confidence,
                                     rng_seed)  # fmt: skip
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
