"""Per-example scores: what a run's saved predictions give the leaderboard's paired tests.

A task kind turns one run directory into a :class:`RunScores` (``KindAnalysis.scores``); the
leaderboard then compares two backbones example by example without knowing the kind. A metric
is offered in one of two forms:

* :class:`ExampleScores`: the metric is the mean over test examples of per-example scores
  (top-1: 1 if correct; per-attribute accuracy: one column per attribute). Bootstrapped by the
  fast linear routines of :mod:`benchmark.stats`.
* :class:`ResampledMetric`: anything else (mAP, mean per-class accuracy, balanced accuracy),
  recomputed on whole chunks of bootstrap replicates at once: ``compute(idx)`` takes an index
  matrix ``[R, N]`` (one resample of the test examples per row) and returns ``[R]`` values, or
  ``[R, K]`` for a per-class / per-attribute metric.

Metric names are the record's (``record["metrics"]``), so a score can be checked against the
number the run reported. The helpers below are vectorised over replicates because the
leaderboard runs thousands of replicates per comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark.stats import common_denominator, multiplicities

# Up to this many examples x classes, mean per-class accuracy also offers a linear form (dense
# [N, 2C] weights, built per job) so the leaderboard can batch it with the other comparisons
# over the same test set (benchmark.stats.LinearJob); beyond it, only its own two bincounts
# per chunk of replicates (the dense weights would not fit in memory).
_DENSE_CLASS_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class ExampleScores:
    """``values`` [N] or [N, K]; NaN: the example does not count for that column (per-class
    accuracy counts only the examples of that class). ``columns`` names the K columns."""

    values: np.ndarray
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        width = self.values.shape[1] if self.values.ndim == 2 else 0
        if self.values.ndim not in (1, 2) or len(self.columns) != width:
            raise ValueError(
                f"ExampleScores: values of shape {self.values.shape} need "
                f"{width} column names, got {len(self.columns)}"
            )

    def compute(self, idx: np.ndarray) -> np.ndarray:
        """The metric on each resample (rows of ``idx``), as :class:`ResampledMetric` would."""
        if self.values.ndim == 1:
            return self.values[idx].mean(axis=1)
        counts = multiplicities(idx, len(self.values))
        valid = ~np.isnan(self.values)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (counts @ np.where(valid, self.values, 0.0)) / (counts @ valid)


@dataclass(frozen=True)
class ResampledMetric:
    """A metric recomputed per resample: ``compute(idx [R, N]) -> [R]`` or ``[R, K]``.

    ``values``/``rebuild``/``merge_key`` (optional) let the leaderboard merge seeds before
    resampling: for a ratio whose denominators depend only on the test set (per-class accuracy
    counts each class's examples), the mean over runs of the metric equals the metric of the
    runs' mean per-example ``values``, so ``rebuild(mean values)`` resamples once instead of
    once per seed. Runs merge only when their ``merge_key`` (e.g. a hash of the targets) agree.
    """

    compute: Callable[[np.ndarray], np.ndarray]
    columns: tuple[str, ...] = ()
    values: np.ndarray | None = None
    rebuild: Callable[[np.ndarray], ResampledMetric] | None = None
    merge_key: str = ""
    # gives the same metric as ``finish(counts @ weights)`` with integer-valued ``weights
    # [N, W]`` (see benchmark.stats.LinearJob), or None: lets the leaderboard batch it with
    # other comparisons. A function, so the weights are built only for the metrics resampled
    # (a merged side's, not each of 10,000 runs').
    linear: Callable[[], tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]] | None] | None = (
        None
    )


class MadeExampleScores(ExampleScores):
    """:class:`ExampleScores` whose ``values`` ``make()`` builds on each use, not kept: per-class
    accuracy's [N, C] scores are NaN but for one column per row, 16 KB a run at 200 examples
    and 10 classes; kept for every run, a cold 10,000-run build held 160 MB of them, and
    touching that memory cost 40,000 page faults (0.2 s of system time) while reading the
    predictions. A comparison makes them when it stacks its runs' scores (once per run)."""

    def __init__(self, make: Callable[[], np.ndarray], shape: tuple[int, int],
                 columns: tuple[str, ...]) -> None:  # fmt: skip
        if len(shape) != 2 or len(columns) != shape[1]:
            raise ValueError(f"ExampleScores: values of shape {shape} need "
                             f"{shape[1] if len(shape) == 2 else 0} column names, "
                             f"got {len(columns)}")  # fmt: skip
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "make", make)

    @property
    def values(self) -> np.ndarray:  # type: ignore[override]
        return self.make()  # type: ignore[attr-defined, no-any-return]

    def compute(self, idx: np.ndarray) -> np.ndarray:
        return ExampleScores(self.values, self.columns).compute(idx)


Scored = ExampleScores | ResampledMetric


@dataclass(frozen=True)
class RunScores:
    """One run's test set, ready for paired comparisons.

    ``example_ids`` [N] pairs two runs example by example (same ids, any order). ``metrics``
    maps record metric names to their scores; metrics a kind cannot resample are absent and the
    leaderboard compares them by their seed means only.
    """

    example_ids: np.ndarray
    metrics: dict[str, Scored] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.example_ids)


# --------------------------------------------------------------------------- helpers


def nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN, NaN (no warning) where a row is all NaN."""
    valid = ~np.isnan(values)
    count = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid, values, 0.0).sum(axis=-1) / np.where(count > 0, count, np.nan)


def per_class_accuracy_scores(
    correct: np.ndarray, target: np.ndarray, num_classes: int
) -> np.ndarray:
    """``[N, C]``: the example's 0/1 correctness in its own class's column, NaN elsewhere, so
    the per-column mean is per-class accuracy (recall) over the resampled examples."""
    out = np.full((len(target), num_classes), np.nan)
    out[np.arange(len(target)), target] = correct
    return out


def array_key(values: np.ndarray) -> str:
    """A content hash, for :attr:`ResampledMetric.merge_key`."""
    import hashlib

    data = np.ascontiguousarray(values)
    return hashlib.blake2b(data.view(np.uint8), digest_size=16).hexdigest() + str(data.shape)


def mean_per_class_accuracy_metric(
    correct: np.ndarray, target: np.ndarray, num_classes: int, merge_key: str | None = None
) -> ResampledMetric:
    """Mean over the classes present in a resample of their accuracy, for a chunk of resamples
    with two ``bincount`` calls (keyed by replicate x class), or as a linear job batched with
    the other comparisons over the same test set (:attr:`ResampledMetric.linear`). Seeds
    merge (the class counts are the targets').

    ``correct`` is 0/1 for one run, and the mean over seeds (``k / S``) once merged. When it is
    a fraction with a small common denominator ``D`` the hits are summed as integer numerators
    (exact in float64), so each class's accuracy is the correctly rounded ``hits / (seen * D)``
    whatever the order of the sum."""
    n = len(target)
    kept: dict[str, Any] = {}

    def prepared() -> dict[str, Any]:
        """Numerators and denominator, on first use (a run's own metric is often only merged)."""
        if not kept:
            denominator = common_denominator(correct)
            kept["exact"] = denominator is not None
            kept["numerators"] = np.rint(correct * denominator) if denominator else correct
            kept["denominator"] = denominator or 1
        return kept

    def finish(sums: np.ndarray) -> np.ndarray:
        """Sums of ``[hits | examples]`` per class -> the mean of the present classes' accuracy."""
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = sums[:, :num_classes] / (sums[:, num_classes:] * prepared()["denominator"])
        return nanmean_rows(acc)

    def compute(idx: np.ndarray) -> np.ndarray:
        rows = idx.shape[0]
        keys = (target[idx] + (np.arange(rows) * num_classes)[:, None]).ravel()
        size = rows * num_classes
        hits = np.bincount(keys, weights=prepared()["numerators"][idx].ravel(), minlength=size)
        seen = np.bincount(keys, minlength=size).astype(np.float64)
        return finish(np.concatenate([hits.reshape(rows, num_classes),
                                      seen.reshape(rows, num_classes)], axis=1))  # fmt: skip

    def linear() -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]] | None:
        """Dense weights ``[N, 2C]``, built for the job that asks and not kept (the metric
        lives as long as the build; the weights as long as the job). None beyond
        ``_DENSE_CLASS_ELEMENTS`` (1,000 classes over 50,000 images: 800 MB)."""
        if n * num_classes > _DENSE_CLASS_ELEMENTS or not prepared()["exact"]:
            return None
        weights = np.zeros((n, 2 * num_classes))
        weights[np.arange(n), target] = prepared()["numerators"]
        weights[np.arange(n), num_classes + target] = 1.0
        return weights, finish

    key = array_key(target) if merge_key is None else merge_key
    return ResampledMetric(
        compute,
        values=correct,
        rebuild=lambda mean: mean_per_class_accuracy_metric(mean, target, num_classes, key),
        merge_key=key,
        linear=linear,
    )


def average_precision_metric(
    scores: np.ndarray, positive: np.ndarray, columns: Sequence[str]
) -> ResampledMetric:
    """Per-column average precision ``[R, K]`` under resampling (multi-label attributes).

    The step-wise (uninterpolated) AP of scikit-learn and torchmetrics: precision at each
    distinct score threshold, weighted by the recall gained there. Each column's examples are
    sorted once; a resample only re-weights them by their multiplicities, so a replicate is a
    cumulative sum, not a sort. NaN where a resample has no positive.
    """
    n, k = positive.shape
    orders, ends = [], []
    for j in range(k):
        order = np.argsort(-scores[:, j], kind="stable")
        sorted_scores = scores[order, j]
        last_of_tie = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
        orders.append(order)
        ends.append(last_of_tie)
    pos = positive.astype(np.float64)

    def compute(idx: np.ndarray) -> np.ndarray:
        counts = multiplicities(idx, n)
        out = np.empty((idx.shape[0], k))
        for j in range(k):
            w = counts[:, orders[j]]
            tp = np.cumsum(w * pos[orders[j], j], axis=1)[:, ends[j]]
            seen = np.cumsum(w, axis=1)[:, ends[j]]
            total_pos = tp[:, -1:]
            with np.errstate(invalid="ignore", divide="ignore"):
                precision = tp / seen
                recall_gain = np.diff(tp, axis=1, prepend=0.0) / total_pos
                out[:, j] = np.sum(np.where(recall_gain > 0, recall_gain * precision, 0.0), axis=1)
            out[total_pos[:, 0] == 0, j] = np.nan
        return out

    return ResampledMetric(compute, tuple(columns))


def group_metric(scored: Scored, groups: Mapping[str, Sequence[str]]) -> Scored | None:
    """A per-group view of a per-column metric (attributes by face region): each group's
    value is the mean of its members' column metrics, as the record's ``per_group_*`` are.

    Without NaN the per-example mean over a group's columns has exactly that mean, so the fast
    linear form is kept; otherwise the columns are recomputed per resample and averaged.
    Returns None when a group names a column the metric does not have.
    """
    names = list(groups)
    try:
        members = [[scored.columns.index(m) for m in groups[g]] for g in names]
    except ValueError:
        return None
    if not names or any(not m for m in members):
        return None
    if isinstance(scored, ExampleScores) and not np.isnan(scored.values).any():
        values = np.stack([scored.values[:, m].mean(axis=1) for m in members], axis=1)
        return ExampleScores(values, tuple(names))
    inner = scored.compute

    def compute(idx: np.ndarray) -> np.ndarray:
        per_column = inner(idx)
        return np.stack([nanmean_rows(per_column[:, m]) for m in members], axis=1)

    return ResampledMetric(compute, tuple(names))


def memoized(compute: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Cache ``compute`` by the content of its index matrix.

    Every bootstrap of a comparison draws the same replicates (:mod:`benchmark.stats` uses one
    random stream per ``(seed, n)``), so metrics derived from one expensive evaluation (mAP and
    per-class AP, per-attribute and per-region AP) evaluate each chunk once. The cache holds
    only the results (``n_boot x K`` numbers), keyed by a hash of the indices.
    """
    import hashlib

    cache: dict[bytes, np.ndarray] = {}

    def cached(idx: np.ndarray) -> np.ndarray:
        key = hashlib.blake2b(np.ascontiguousarray(idx).view(np.uint8), digest_size=16)
        key.update(repr(idx.shape).encode())
        digest = key.digest()
        if digest not in cache:
            cache[digest] = compute(idx)
        return cache[digest]

    return cached
