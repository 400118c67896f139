"""Statistics the leaderboard uses to say whether blurred-pretrained backbones differ.

Two sources of noise matter when comparing a backbone pretrained on face-blurred ImageNet (``b``)
with the original (``a``):

* training noise, seen across seeds: :func:`seed_interval` gives a Student-t interval over seeds;
* test-set noise, seen across examples: the paired bootstrap functions resample test examples.

Paired bootstrap, pooled over seeds. Both backbones are evaluated on the same test examples, so
one replicate draws one index vector of ``N`` examples with replacement and applies it to both
backbones and to every seed. A backbone's replicate statistic is the mean over its seeds of the
metric on the resampled examples, and the replicate delta is ``stat_b - stat_a``. Pairing cancels
the per-example difficulty shared by both backbones, which makes the test far more sensitive than
comparing two independent intervals.

Shared random stream. All bootstrap functions draw their index vectors from one stream (exposed
as :func:`bootstrap_indices`) that depends only on ``(rng_seed, n)``: the same seed gives the
same replicates to :func:`paired_bootstrap_mean`, :func:`paired_bootstrap` and
:func:`paired_bootstrap_mean_columns`, so their results agree up to float error on the same
statistic, and the first ``k`` replicates do not depend on ``n_boot``.

Metric values are fractions in [0, 1] (accuracy, mAP); a difference is reported in points,
1 point = 0.01.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = [
    "MIN_TEST_EXAMPLES",
    "DeltaResult",
    "LinearJob",
    "SeedSummary",
    "bootstrap_indices",
    "common_denominator",
    "holm_adjust",
    "multiplicities",
    "paired_bootstrap",
    "paired_bootstrap_batched",
    "paired_bootstrap_batched_columns",
    "paired_bootstrap_mean",
    "paired_bootstrap_mean_columns",
    "paired_mean_columns_job",
    "paired_mean_job",
    "remember_t_quantiles",
    "reuse_replicates",
    "run_linear_jobs",
    "seed_delta_interval",
    "seed_interval",
    "summarise_linear_job",
    "t_quantiles",
    "verdict",
]

# Index elements per chunk: [rows, N] int64 indices plus the gathered values stay in L2 cache,
# and the chunk size depends on N only, so the random stream does not depend on n_boot.
_CHUNK_ELEMENTS = 1 << 17
# Multiplicity counts [rows, N] batched for one matrix product in the columns version (16 MiB).
_BATCH_ELEMENTS = 1 << 21
# Weights [N, W] of the linear jobs in one product (32 MiB), and the size up to which a
# mostly-zero job still runs as a dense product.
_JOB_WIDTH_ELEMENTS = 1 << 22
_DENSE_JOB_ELEMENTS = 1 << 16
# A bootstrap over fewer test examples gets a delta but no interval, p-value or verdict: with N = 1
# every replicate equals the full data (interval [d, d], p at its floor), and with a handful the
# few distinct resamples give intervals far narrower than the truth. Applied in _summarise, which
# every bootstrap here goes through, so no caller can get a test from fewer; the leaderboard uses
# the same bound for per-class columns (examples of that class).
MIN_TEST_EXAMPLES = 10
# Replicate deltas of float-valued metrics (mAP, balanced accuracy) within this of 0 are exact
# ties computed with rounding error: a metric in [0, 1] averaged over up to 10**6 terms carries
# less than 10**6 * 2**-53 ~ 1e-10 of it, while a real difference of 1e-9 is 1e-7 points, far
# below anything reported. They are snapped to 0.0 and so counted in both tails, which can only
# raise p (conservative), and no interval endpoint of +-1e-17 can exclude 0 by accident.
_TIE_TOLERANCE = 1e-9
# Per-example scores are read as exact fractions p / D with D up to this (0/1 correctness: D = 1;
# the mean of K 0/1 attributes: D = K), so their bootstrap can run in exact integer arithmetic.
_MAX_DENOMINATOR = 1 << 12
_SMALL_DENOMINATORS = np.arange(1, 65, dtype=np.float64)
# Integers below 2**53 are exact in float64, so BLAS and numpy sums of integer-valued float64
# arrays stay exact while every partial sum is below this: the fast path is also the exact one.
_EXACT_FLOAT_INT = float(1 << 53)
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


@dataclass(frozen=True)
class SeedSummary:
    """Mean over seeds with a Student-t interval; ``low``/``high`` are NaN when ``n == 1``."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class DeltaResult:
    """A paired-bootstrap comparison, ``delta = metric_b (blurred) - metric_a (original)``.

    ``delta`` is the point estimate on the full, un-resampled data; ``low``/``high`` are the
    percentile interval of the replicate deltas at ``confidence``; ``p_value`` is two-sided (see
    :func:`paired_bootstrap_mean`). ``n_boot`` counts the replicates actually used: replicates
    whose statistic is undefined (NaN, e.g. a class absent from the resample) are dropped.
    """

    delta: float
    low: float
    high: float
    p_value: float
    n_boot: int
    n_examples: int
    confidence: float = 0.95


# --------------------------------------------------------------------------- seeds


def seed_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> SeedSummary:
    """Student-t interval of the mean of a metric over training seeds.

    With one seed the interval is ``(nan, nan)``: the spread between seeds cannot be estimated
    from a single run, and reporting a zero-width interval would claim a precision we do not have.
    """
    _check_confidence(confidence)
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"seed_interval expects a 1-D sequence of values, got shape {x.shape}")
    if x.size == 0:
        raise ValueError("seed_interval needs at least one value (one per seed), got none")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"seed_interval got non-finite values: {x.tolist()}")
    n = int(x.size)
    mean = float(x.mean())
    if n == 1:
        return SeedSummary(mean=mean, low=math.nan, high=math.nan, n=1)
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = _t_quantile(0.5 + confidence / 2.0, n - 1) * sem
    return SeedSummary(mean=mean, low=mean - half, high=mean + half, n=n)


# (q, df) -> scipy.special.stdtrit(df, q): filled as quantiles are computed, and by
# remember_t_quantiles from a previous build's values (the leaderboard's cache)
_T_QUANTILES: dict[tuple[float, float], float] = {}


def _t_quantile(q: float, df: float) -> float:
    """Student-t quantile, the value ``scipy.stats.t.ppf(q, df)`` returns (it calls this same
    ``scipy.special.stdtrit``), imported here rather than at module level: importing
    ``scipy.stats`` took about a second, most of a `bench leaderboard --no-plots` start-up, and
    ``scipy.special`` alone still takes a quarter of one. Memoised: a leaderboard asks for the
    same few (level, seed count) quantiles thousands of times, and a rebuild that was given them
    (:func:`remember_t_quantiles`) does not import scipy.special at all."""
    key = (float(q), float(df))
    value = _T_QUANTILES.get(key)
    if value is None:
        from scipy.special import stdtrit

        value = _T_QUANTILES[key] = float(stdtrit(key[1], key[0]))
    return value


def t_quantiles() -> list[tuple[float, float, float]]:
    """Every ``(q, df, quantile)`` computed (or remembered) in this process."""
    return [(q, df, value) for (q, df), value in _T_QUANTILES.items()]


def remember_t_quantiles(values: Iterable[tuple[float, float, float]]) -> None:
    """Take ``(q, df, quantile)`` triples that ``scipy.special.stdtrit`` of the installed scipy
    gave before (:func:`t_quantiles` of an earlier process), so they are not computed again."""
    for q, df, value in values:
        _T_QUANTILES[(float(q), float(df))] = float(value)


def seed_delta_interval(
    values_a: Sequence[float] | np.ndarray,
    values_b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
) -> SeedSummary:
    """Welch interval of ``mean(b) - mean(a)`` over training seeds (independent runs).

    The paired bootstrap resamples test examples, so its interval says how much the delta would
    move on another test set of the same size, not on another training run. This is the other
    half: the spread of the delta between seeds, with Welch-Satterthwaite degrees of freedom
    (the two backbones' seed variances need not be equal). ``n`` is the smaller seed count; the
    interval is NaN unless both sides have at least two seeds.
    """
    _check_confidence(confidence)
    a = np.asarray(values_a, dtype=np.float64)
    b = np.asarray(values_b, dtype=np.float64)
    for name, x in (("values_a", a), ("values_b", b)):
        if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError(f"{name} must be a non-empty 1-D sequence of finite values")
    delta = float(b.mean() - a.mean())
    n = int(min(a.size, b.size))
    if n < 2:
        return SeedSummary(mean=delta, low=math.nan, high=math.nan, n=n)
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    se = math.sqrt(va + vb)
    if se == 0.0:
        return SeedSummary(mean=delta, low=delta, high=delta, n=n)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = _t_quantile(0.5 + confidence / 2.0, df) * se
    return SeedSummary(mean=delta, low=delta - half, high=delta + half, n=n)


# --------------------------------------------------------------------------- random stream


def bootstrap_indices(n: int, n_boot: int, rng_seed: int = 0) -> Iterator[np.ndarray]:
    """Yield int64 index matrices ``[rows, n]``, ``n_boot`` rows in all, one row per replicate.

    Each row holds ``n`` indices drawn uniformly from ``range(n)`` with replacement. These are
    exactly the replicates every bootstrap function here uses for the same ``(n, rng_seed)``,
    exposed so callers can reproduce or extend an analysis. The stream depends only on
    ``(rng_seed, n)``, so the first replicates do not depend on ``n_boot``.
    """
    _check_n_examples(n)
    _check_n_boot(n_boot)
    return (chunk.copy() for chunk in _index_chunks(int(n), int(n_boot), rng_seed))


class _ReplicateCache:
    """Index chunks kept while :func:`reuse_replicates` is active, least recently used first
    out once ``max_bytes`` is exceeded, and each kept chunk's multiplicity counts (see
    :func:`multiplicities`), counted in the same budget."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.chunks: OrderedDict[tuple[int, int, int], list[np.ndarray]] = OrderedDict()
        # id(kept index chunk) -> (that chunk, its counts): the chunk is held, so its id is not
        # reused while the entry exists
        self.counts: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, key: tuple[int, int, int]) -> list[np.ndarray] | None:
        if key in self.chunks:
            self.chunks.move_to_end(key)
            return self.chunks[key]
        return None

    def put(self, key: tuple[int, int, int], chunks: list[np.ndarray]) -> None:
        self.chunks[key] = chunks
        self._evict()

    def chunk_counts(self, idx: np.ndarray, n: int) -> np.ndarray | None:
        """The counts of a kept index chunk (computed once), or None for any other array, and
        for a stream whose indices and counts together would not fit in ``max_bytes`` (kept,
        its counts would push out the stream itself, drawn again by every bootstrap)."""
        entry = self.counts.get(id(idx))
        if entry is not None and entry[0] is idx:
            return entry[1]
        stream = next((v for v in self.chunks.values() if any(c is idx for c in v)), None)
        if stream is None or 2 * sum(c.nbytes for c in stream) > self.max_bytes:
            return None
        counts = _bincount_rows(idx, n)
        counts.flags.writeable = False
        self.counts[id(idx)] = (idx, counts)
        self._evict()
        return counts

    def _evict(self) -> None:
        def used() -> int:
            kept = sum(c.nbytes for v in self.chunks.values() for c in v)
            return kept + sum(c.nbytes for _, c in self.counts.values())

        while self.chunks and used() > self.max_bytes:
            _, dropped = self.chunks.popitem(last=False)
            for chunk in dropped:
                self.counts.pop(id(chunk), None)


_REUSE: _ReplicateCache | None = None


@contextmanager
def reuse_replicates(max_bytes: int = 128 << 20) -> Iterator[None]:
    """Within this block, every bootstrap with the same ``(n, n_boot, rng_seed)`` reuses the
    index chunks drawn the first time instead of drawing the same stream again.

    A leaderboard runs one bootstrap per metric, class view and comparison, all over the same
    test set; the replicates are identical by design (one stream per ``(rng_seed, n)``), so
    drawing them once saves most of the random-number work. Streams larger than ``max_bytes``
    are drawn as usual. Results are bit-identical with and without this block.
    """
    global _REUSE
    previous, _REUSE = _REUSE, _ReplicateCache(max_bytes)
    try:
        yield
    finally:
        _REUSE = previous


def _index_chunks(n: int, n_boot: int, rng_seed: int) -> Iterator[np.ndarray]:
    """The replicate stream (from the :func:`reuse_replicates` cache when one is active)."""
    cache = _REUSE
    if cache is None or n * n_boot * 8 > cache.max_bytes:
        yield from _draw_index_chunks(n, n_boot, rng_seed)
        return
    key = (n, n_boot, rng_seed)
    kept = cache.get(key)
    if kept is None:
        kept = []
        for chunk in _draw_index_chunks(n, n_boot, rng_seed):
            copy = chunk.copy()
            copy.flags.writeable = False
            kept.append(copy)
        cache.put(key, kept)
    yield from kept


def _draw_index_chunks(n: int, n_boot: int, rng_seed: int) -> Iterator[np.ndarray]:
    """The replicate stream, as read-only views of one reused buffer (valid until the next one).

    Indices come from vectorised Lemire multiply-shift on 32-bit draws of
    ``np.random.default_rng(rng_seed)``'s PCG64: ``index = (word * n) >> 32``, rejecting and
    redrawing the rare words whose low half is below ``2**32 mod n``, so the indices are exactly
    uniform. This and the reused buffers (no page faults from fresh allocations) make it several
    times faster than ``Generator.integers``, which is what keeps the leaderboard's bootstraps
    cheap. Chunks hold about ``_CHUNK_ELEMENTS`` indices, so they stay in cache.
    """
    bits = np.random.default_rng(rng_seed).bit_generator
    threshold = (1 << 32) % n  # low halves below this would over-represent small indices
    rows = _chunk_rows(n)
    words_buf = np.empty(rows * n, dtype=np.uint64)
    low_buf = np.empty(rows * n, dtype=np.uint64)
    done = 0
    while done < n_boot:
        count = min(rows, n_boot - done)
        size = count * n
        words = words_buf[:size]
        np.multiply(_uint32_draws(bits, size), np.uint64(n), out=words)
        if threshold:
            low = np.bitwise_and(words, _LOW32, out=low_buf[:size])
            if low.min() < threshold:
                bad = np.flatnonzero(low < threshold)
                while bad.size:
                    redraw = _uint32_draws(bits, bad.size).astype(np.uint64) * np.uint64(n)
                    words[bad] = redraw
                    bad = bad[(redraw & _LOW32) < threshold]
        np.right_shift(words, _SHIFT32, out=words)
        chunk = words.view(np.int64).reshape(count, n)
        chunk.flags.writeable = False
        yield chunk
        chunk.flags.writeable = True
        done += count


def _chunk_rows(n: int) -> int:
    """Replicates per chunk: a function of ``n`` alone, so the stream ignores ``n_boot``."""
    return max(1, _CHUNK_ELEMENTS // n)


def _uint32_draws(bits: np.random.BitGenerator, size: int) -> np.ndarray:
    """``size`` uniform 32-bit words: both halves of ``ceil(size / 2)`` 64-bit raw draws."""
    return bits.random_raw((size + 1) // 2).view(np.uint32)[:size]


def multiplicities(idx: np.ndarray, n: int) -> np.ndarray:
    """``[R, N]`` float counts: how often each example occurs in each resample row.

    Metrics that are sums over examples become one matrix product ``counts @ X`` for a whole
    chunk of replicates, instead of a gather per replicate. Inside :func:`reuse_replicates` the
    counts of a kept replicate chunk are computed once (read-only) and shared by every metric,
    comparison and backbone resampled over the same test set.
    """
    cache = _REUSE
    kept = cache.chunk_counts(idx, n) if cache is not None else None
    return kept if kept is not None else _bincount_rows(idx, n)


def _bincount_rows(idx: np.ndarray, n: int) -> np.ndarray:
    rows = idx.shape[0]
    flat = (idx + (np.arange(rows) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


@dataclass(frozen=True)
class LinearJob:
    """A paired bootstrap whose replicate deltas are ``finish(counts @ weights)``, ``counts``
    being the replicates' multiplicities ``[R, N]`` (:func:`multiplicities`).

    Mean scores, per-class columns and mean per-class accuracy are all such functions of
    resampled sums. :func:`run_linear_jobs` runs every job over the same test set (``N``,
    ``n_boot``, ``rng_seed``) as one matrix product per chunk of replicates: a leaderboard's
    hundreds of comparisons then cost a few wide products instead of hundreds of thin ones,
    which is where a cold build spent its bootstrap time. ``weights`` must be integer-valued
    (exact fractions scaled to integers), so every sum is exact below 2**53 and the deltas do
    not depend on how the product is blocked or batched. ``finish`` maps ``[R, W]`` sums to
    ``[R]`` deltas (or ``[R, K]``, one column each); ``exact``: a zero delta is an exact tie.
    """

    weights: np.ndarray
    finish: Callable[[np.ndarray], np.ndarray]
    n_boot: int
    rng_seed: int
    exact: bool


def run_linear_jobs(jobs: Sequence[LinearJob]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(point, deltas)`` of each job: ``finish`` on the full data (``[1]`` or ``[1, K]``) and
    on each of the ``n_boot`` replicates, the replicates of every job over the same
    ``(N, n_boot, rng_seed)`` sharing the products (at most ``_JOB_WIDTH_ELEMENTS`` weights and
    ``_BATCH_ELEMENTS`` sums in one)."""
    out: list[tuple[np.ndarray, np.ndarray]] = [None] * len(jobs)  # type: ignore[list-item]
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, job in enumerate(jobs):
        key = (job.weights.shape[0], job.n_boot, job.rng_seed)
        groups.setdefault(key, []).append(i)
    for (n, n_boot, rng_seed), members in groups.items():
        width = max(1, min(_JOB_WIDTH_ELEMENTS // n, _BATCH_ELEMENTS // _chunk_rows(n)))
        batch: list[int] = []
        used = 0
        for i in [*members, -1]:
            w = jobs[i].weights.shape[1] if i >= 0 else 0
            if batch and (i < 0 or used + w > width):
                for j, got in zip(batch, _run_batch([jobs[j] for j in batch], n, n_boot,
                                                    rng_seed), strict=True):  # fmt: skip
                    out[j] = got
                batch, used = [], 0
            if i >= 0:
                batch.append(i)
                used += w
    return out


def _run_batch(
    jobs: list[LinearJob], n: int, n_boot: int, rng_seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    weights = np.concatenate([job.weights for job in jobs], axis=1)
    edges = np.cumsum([0, *(job.weights.shape[1] for job in jobs)]).tolist()
    spans = list(zip(edges[:-1], edges[1:], strict=True))
    parts: list[list[np.ndarray]] = [[] for _ in jobs]
    with np.errstate(invalid="ignore", divide="ignore"):
        totals = weights.sum(axis=0, keepdims=True)  # the full data: every count 1
        for idx in _index_chunks(n, n_boot, rng_seed):
            sums = multiplicities(idx, n) @ weights
            for part, job, (lo, hi) in zip(parts, jobs, spans, strict=True):
                part.append(job.finish(sums[:, lo:hi]))
        return [(job.finish(totals[:, lo:hi]), np.concatenate(part))
                for job, (lo, hi), part in zip(jobs, spans, parts, strict=True)]  # fmt: skip


def summarise_linear_job(
    job: LinearJob, point: np.ndarray, deltas: np.ndarray, confidence: float
) -> DeltaResult | list[DeltaResult]:
    """The :class:`DeltaResult` (one per column for ``[R, K]`` deltas) of a job's output."""
    n = job.weights.shape[0]
    if deltas.ndim == 1:
        return _summarise(float(point[0]), deltas, confidence, n, exact=job.exact)
    return _summarise_columns(point[0], deltas, confidence, n, exact=job.exact)


# --------------------------------------------------------------------------- bootstraps


def paired_bootstrap_mean(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    n_boot: int = 2000,
    confidence: float = 0.95,
    rng_seed: int = 0,
) -> DeltaResult:
    """Paired bootstrap of a metric that is the mean of per-example scores.

    ``scores_a`` (original) and ``scores_b`` (blurred) are ``[seeds, N]`` or ``[N]`` arrays of
    per-example scores over the same ``N`` test examples, in the same order (e.g. 0/1 top-1
    correctness); the seed counts may differ. Because the metric is linear, the replicate delta
    equals the resampled mean of ``d = mean_seeds(b) - mean_seeds(a)``, so the work is one gather
    per replicate and example whatever the number of seeds, chunked to bound memory.

    The interval is the percentile interval of the replicate deltas. The p-value is two-sided:
    ``p = min(1, 2 * min(P(delta* <= 0), P(delta* >= 0)))`` where each tail fraction is
    ``(count + 1) / (n_boot + 1)``; the +1 keeps p above zero (the smallest attainable p is
    ``2 / (n_boot + 1)``), as a finite number of replicates cannot show p = 0.

    Exact ties. A replicate whose delta is 0 counts in both tails, so the tails must see exact
    zeros: seed means in steps of 1/3 give +-1e-17 in floating point, which put such a replicate
    in one tail only and biased p low. When the scores are fractions with a small common
    denominator (0/1 correctness, attribute accuracy over K attributes), the replicate delta
    times ``n * Sa * Sb * D`` is the integer ``sum_i (Sa * sum_s b_si - Sb * sum_s a_si) * D``
    over the resampled ``i``; it is computed as integer-valued float64 (exact below 2**53, and
    as fast as the float path), so its sign and its zeros are exact. Other scores fall back to
    floats with ties within a tolerance (see ``_summarise``).
    """
    a = _as_seed_matrix(scores_a, "scores_a")
    b = _as_seed_matrix(scores_b, "scores_b")
    _check_same_examples(a, b, scores_a, scores_b)
    _check_confidence(confidence)
    _check_n_boot(n_boot)
    job = _mean_job(a, b, n_boot, rng_seed)
    if job is not None:
        return summarise_linear_job(job, *run_linear_jobs([job])[0], confidence)
    n = a.shape[1]
    diff = b.mean(axis=0) - a.mean(axis=0)
    deltas = np.empty(n_boot)
    gathered = np.empty((_chunk_rows(n), n))
    done = 0
    for idx in _index_chunks(n, n_boot, rng_seed):
        count = idx.shape[0]
        values = np.take(diff, idx, out=gathered[:count], mode="clip")  # clip: unbuffered out
        deltas[done : done + count] = values.sum(axis=1) / n
        done += count
    return _summarise(float(diff.sum()) / n, deltas, confidence, n)


def paired_mean_job(
    scores_a: np.ndarray, scores_b: np.ndarray, n_boot: int = 2000, rng_seed: int = 0
) -> LinearJob | None:
    """:func:`paired_bootstrap_mean` as a :class:`LinearJob` when its scores are exact
    fractions (its fast, exact path), else None (call the function)."""
    a = _as_seed_matrix(scores_a, "scores_a")
    b = _as_seed_matrix(scores_b, "scores_b")
    _check_same_examples(a, b, scores_a, scores_b)
    _check_n_boot(n_boot)
    return _mean_job(a, b, n_boot, rng_seed)


def _mean_job(a: np.ndarray, b: np.ndarray, n_boot: int, rng_seed: int) -> LinearJob | None:
    exact = _exact_seed_differences(a, b)
    if exact is None:
        return None
    diff, scale = exact
    divisor = a.shape[1] * scale

    def finish(sums: np.ndarray) -> np.ndarray:
        return sums[:, 0] / divisor

    return LinearJob(diff[:, None], finish, n_boot, rng_seed, exact=True)


def paired_bootstrap(
    stat_a: Callable[[np.ndarray], float],
    stat_b: Callable[[np.ndarray], float],
    n: int,
    n_boot: int = 1000,
    confidence: float = 0.95,
    rng_seed: int = 0,
) -> DeltaResult:
    """Paired bootstrap of any metric (mAP, mean per-class accuracy) given as callables.

    ``stat_a``/``stat_b`` take an int array of resampled example indices (read-only; the full
    data is ``np.arange(n)``) and return the metric, already averaged over seeds. The replicates
    are the same as :func:`paired_bootstrap_mean`'s for the same ``rng_seed`` and ``n``, and the
    interval and p-value are computed the same way. A Python loop over replicates, so keep
    ``n_boot`` modest for expensive metrics.
    """
    _check_confidence(confidence)
    _check_n_boot(n_boot)
    _check_n_examples(n)
    n = int(n)
    full = np.arange(n)
    full.flags.writeable = False
    point = float(stat_b(full)) - float(stat_a(full))
    deltas = np.empty(n_boot)
    done = 0
    for idx in _index_chunks(n, n_boot, rng_seed):
        for row in idx.copy():  # the callables may keep their index arrays
            deltas[done] = float(stat_b(row)) - float(stat_a(row))
            done += 1
    return _summarise(point, deltas, confidence, n)


def paired_bootstrap_mean_columns(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    n_boot: int = 2000,
    confidence: float = 0.95,
    rng_seed: int = 0,
) -> list[DeltaResult]:
    """Per-column paired bootstrap (per class, per attribute), one :class:`DeltaResult` each.

    ``scores_a``/``scores_b`` are ``[seeds, N, K]`` (or ``[N, K]`` for one seed). NaN marks an
    example that does not count for column ``k`` (per-class accuracy counts only that class's
    examples). For each replicate, column and seed the metric is the mean over the resampled
    examples that are not NaN (nanmean), then averaged over seeds, exactly as a per-column loop
    with :func:`paired_bootstrap` would compute it, on the same replicates. A replicate where a
    column has no counted example is undefined for that column and dropped from its interval.

    Vectorised over columns and replicates: a replicate's multiplicity counts ``[rows, N]``
    multiply the zero-filled scores and the validity masks in one matrix product. When the NaN
    pattern is the same for every seed and both backbones (the usual case) the seeds are merged
    first, so the cost does not grow with the number of seeds; there, as in
    :func:`paired_bootstrap_mean`, scores that are small-denominator fractions are summed as
    exact integers (a column's delta is an integer numerator over a positive integer count, so
    the numerator's sign decides the tail). Test the columns together with :func:`holm_adjust`
    on the p-values.
    """
    a = _as_column_tensor(scores_a, "scores_a")
    b = _as_column_tensor(scores_b, "scores_b")
    _check_same_examples(a, b, scores_a, scores_b)
    if a.shape[2] != b.shape[2]:
        raise ValueError(
            f"scores_a has shape {np.shape(scores_a)} and scores_b has shape "
            f"{np.shape(scores_b)}: they must have the same number of columns"
        )
    _check_confidence(confidence)
    _check_n_boot(n_boot)
    job = _columns_job(a, b, n_boot, rng_seed)
    if job is not None:
        return summarise_linear_job(job, *run_linear_jobs([job])[0], confidence)
    n, k = a.shape[1], a.shape[2]
    valid_a, valid_b = ~np.isnan(a), ~np.isnan(b)
    shared_mask = bool(np.all(valid_a == valid_a[0]) and np.all(valid_b == valid_a[0]))
    exact = None

    with np.errstate(invalid="ignore", divide="ignore"):
        if shared_mask:
            # mean_s(sum_i c_i x_sik / m_k) = sum_i c_i mean_s(x_sik) / m_k with m_k shared
            exact = _exact_seed_differences(np.nan_to_num(a), np.nan_to_num(b))
            diff, scale = exact if exact is not None else (
                np.nan_to_num(b).mean(0) - np.nan_to_num(a).mean(0), 1.0
            )
            diff = np.where(valid_a[0], diff, 0.0)
            sums = np.concatenate([diff, valid_a[0].astype(np.float64)], axis=1)  # [N, 2K]

            def column_deltas(sum_cols: np.ndarray) -> np.ndarray:
                return sum_cols[:, :k] / (sum_cols[:, k:] * scale)

        else:
            sa, sb = a.shape[0], b.shape[0]
            cols = [np.nan_to_num(x).transpose(1, 0, 2).reshape(n, -1) for x in (a, b)]
            masks = [
                v.transpose(1, 0, 2).reshape(n, -1).astype(np.float64) for v in (valid_a, valid_b)
            ]
            sums = np.concatenate(cols + masks, axis=1)  # [N, 2 (Sa + Sb) K]

            def column_deltas(sum_cols: np.ndarray) -> np.ndarray:
                rows = sum_cols.shape[0]
                num_a, num_b, den_a, den_b = np.split(
                    sum_cols, np.cumsum([sa * k, sb * k, sa * k]), axis=1
                )
                stat_a = (num_a / den_a).reshape(rows, sa, k).mean(axis=1)
                stat_b = (num_b / den_b).reshape(rows, sb, k).mean(axis=1)
                return stat_b - stat_a

        point = column_deltas(sums.sum(axis=0, keepdims=True))[0]
        resampled_sums = _multiplicity_product(sums)
        deltas = np.empty((n_boot, k))
        rows = _chunk_rows(n)
        counts = np.empty((min(n_boot, max(1, _BATCH_ELEMENTS // (rows * n)) * rows), n))
        done = filled = 0
        for idx in _index_chunks(n, n_boot, rng_seed):
            count = idx.shape[0]
            counts[filled : filled + count] = multiplicities(idx, n)
            filled += count
            if filled + rows > counts.shape[0] or done + filled == n_boot:
                deltas[done : done + filled] = column_deltas(resampled_sums(counts[:filled]))
                done += filled
                filled = 0
    return _summarise_columns(point, deltas, confidence, n, exact=exact is not None)


def paired_mean_columns_job(
    scores_a: np.ndarray, scores_b: np.ndarray, n_boot: int = 2000, rng_seed: int = 0
) -> LinearJob | None:
    """:func:`paired_bootstrap_mean_columns` as a :class:`LinearJob` on its exact path (the
    same examples count for a column in every run, the scores are exact fractions) when its
    weights are small or dense enough for a dense product, else None (call the function)."""
    a = _as_column_tensor(scores_a, "scores_a")
    b = _as_column_tensor(scores_b, "scores_b")
    _check_same_examples(a, b, scores_a, scores_b)
    if a.shape[2] != b.shape[2]:
        return None  # the function says what is wrong
    _check_n_boot(n_boot)
    return _columns_job(a, b, n_boot, rng_seed)


def _columns_job(a: np.ndarray, b: np.ndarray, n_boot: int, rng_seed: int) -> LinearJob | None:
    valid = ~np.isnan(a[0])
    k = a.shape[2]
    if valid.size * 2 > _DENSE_JOB_ELEMENTS and np.count_nonzero(valid) <= 0.2 * valid.size:
        return None  # weights at most 20% filled (1,000 classes): the sparse product is cheaper,
        # and this is known from the mask before anything is built (it bounds the non-zeros
        # by twice the valid entries, so a few classes with mostly zero deltas stay dense)
    if not (np.array_equal(np.isnan(a), np.broadcast_to(~valid, a.shape))
            and np.array_equal(np.isnan(b), np.broadcast_to(~valid, b.shape))):  # fmt: skip
        return None
    exact = _exact_seed_differences(np.nan_to_num(a), np.nan_to_num(b))
    if exact is None:
        return None
    diff, scale = exact
    weights = np.concatenate([np.where(valid, diff, 0.0), valid.astype(np.float64)], axis=1)

    def finish(sums: np.ndarray) -> np.ndarray:
        return sums[:, :k] / (sums[:, k:] * scale)

    return LinearJob(weights, finish, n_boot, rng_seed, exact=True)


def paired_bootstrap_batched(
    stat_a: Callable[[np.ndarray], np.ndarray],
    stat_b: Callable[[np.ndarray], np.ndarray],
    n: int,
    n_boot: int = 2000,
    confidence: float = 0.95,
    rng_seed: int = 0,
) -> DeltaResult:
    """:func:`paired_bootstrap` for metrics that can evaluate many replicates in one call.

    ``stat_a``/``stat_b`` take a read-only int index matrix ``[R, n]`` (one replicate per row;
    the full data is ``np.arange(n)[None]``) and return ``[R]`` metric values, already averaged
    over seeds. Same replicates, interval and p-value as :func:`paired_bootstrap`; vectorising
    over replicates (a per-class accuracy is one ``bincount`` for a whole chunk) is what makes
    non-linear metrics such as mean per-class accuracy affordable for a leaderboard of hundreds
    of comparisons.
    """
    point, deltas = _batched_deltas(stat_a, stat_b, n, n_boot, confidence, rng_seed)
    if point.shape != (1,) or deltas.ndim != 1:
        raise ValueError(
            f"stat_a/stat_b must return one value per replicate ([R]), got shape "
            f"{point.shape} on the full data (use paired_bootstrap_batched_columns for [R, K])"
        )
    return _summarise(float(point[0]), deltas, confidence, int(n))


def paired_bootstrap_batched_columns(
    stat_a: Callable[[np.ndarray], np.ndarray],
    stat_b: Callable[[np.ndarray], np.ndarray],
    n: int,
    n_boot: int = 2000,
    confidence: float = 0.95,
    rng_seed: int = 0,
) -> list[DeltaResult]:
    """Per-column version of :func:`paired_bootstrap_batched` (per-class AP over images).

    The stats return ``[R, K]``: one row of K column metrics per replicate, NaN where a column
    is undefined in that replicate (dropped from that column's interval, as in
    :func:`paired_bootstrap_mean_columns`). One evaluation per replicate serves every column,
    which matters when evaluating is the expensive part (VOC AP needs a sort per class).
    """
    point, deltas = _batched_deltas(stat_a, stat_b, n, n_boot, confidence, rng_seed)
    if point.ndim != 2 or point.shape[0] != 1 or deltas.ndim != 2:
        raise ValueError(
            f"stat_a/stat_b must return [R, K] column values, got shape {point.shape} on the "
            f"full data"
        )
    return _summarise_columns(point[0], deltas, confidence, int(n))


def _batched_deltas(
    stat_a: Callable[[np.ndarray], np.ndarray],
    stat_b: Callable[[np.ndarray], np.ndarray],
    n: int,
    n_boot: int,
    confidence: float,
    rng_seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Point delta on the full data and the replicate deltas, stacked along the first axis."""
    _check_confidence(confidence)
    _check_n_boot(n_boot)
    _check_n_examples(n)
    full = np.arange(int(n))[None, :]
    full.flags.writeable = False
    with np.errstate(invalid="ignore", divide="ignore"):
        point = np.asarray(stat_b(full), np.float64) - np.asarray(stat_a(full), np.float64)
        parts = []
        for idx in _index_chunks(int(n), n_boot, rng_seed):
            delta = np.asarray(stat_b(idx), np.float64) - np.asarray(stat_a(idx), np.float64)
            if delta.shape[:1] != idx.shape[:1]:
                raise ValueError(
                    f"stat_a/stat_b returned {delta.shape[0] if delta.ndim else 1} values for "
                    f"{idx.shape[0]} replicates: they must return one row per replicate"
                )
            parts.append(delta)
    return point, np.concatenate(parts)


def _multiplicity_product(sums: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``counts [R, N] -> counts @ sums [R, W]``, sparse when most entries are zero.

    Per-class columns are mostly NaN (zero-filled here): each example counts for one class, so a
    sparse product costs ``R x nonzeros`` instead of ``R x N x W``, hundreds of times less for
    many classes. Dense attribute columns use BLAS.
    """
    if np.count_nonzero(sums) > 0.2 * sums.size:
        return lambda counts: counts @ sums
    # imported here: scipy.sparse costs a quarter of a second of every `bench leaderboard`
    # start-up, and a rebuild from the comparison cache runs no bootstrap
    from scipy import sparse

    transposed = sparse.csr_array(sums.T)
    return lambda counts: (transposed @ counts.T).T


# --------------------------------------------------------------------------- reporting


def holm_adjust(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, for many per-class or per-attribute deltas at once.

    Testing 100 classes at alpha = 0.05 flags about 5 by chance alone; compare the adjusted
    values with alpha to control the family-wise error rate. Holm is uniformly more powerful
    than plain Bonferroni and needs no independence assumption. NaN entries (undefined columns)
    stay NaN and do not count towards the number of tests.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"holm_adjust expects a 1-D array of p-values, got shape {p.shape}")
    present = ~np.isnan(p)
    if np.any((p[present] < 0) | (p[present] > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    out = np.full(p.shape, np.nan)
    where = np.flatnonzero(present)
    m = where.size
    if m == 0:
        return out
    order = np.argsort(p[where], kind="stable")
    scaled = (m - np.arange(m)) * p[where][order]
    out[where[order]] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def verdict(
    result: DeltaResult, metric_name: str, alpha: float | None = None, subject: str = "blurred"
) -> str:
    """Plain-words reading of a comparison, e.g. ``"top1: blurred higher by 0.8 points (p=0.003)"``.

    A difference is called only when the interval excludes 0 *and* ``p < alpha``; otherwise the
    verdict is "no detectable difference" (which is not evidence of equality). ``alpha``
    defaults to ``1 - result.confidence``, so the two criteria agree at any confidence. Fewer
    than :data:`MIN_TEST_EXAMPLES` test examples give no verdict at all. Differences are in
    points (metric fractions x 100), to one decimal place, or two significant digits below 0.05
    points, so a called difference never prints as 0.0.
    ``subject`` names the ``b`` side (``"overlayed"``, or a backbone name for explicit pairs).
    """
    if result.n_examples < MIN_TEST_EXAMPLES:
        return f"{metric_name}: {too_few_examples_text()}"
    if not (math.isfinite(result.delta) and math.isfinite(result.p_value)):
        return f"{metric_name}: not enough data for a comparison"
    if alpha is None:
        alpha = 1.0 - result.confidence
    excludes_zero = result.low > 0 or result.high < 0
    if not (excludes_zero and result.p_value < alpha):
        return f"{metric_name}: no detectable difference"
    points = abs(result.delta) * 100.0
    amount = f"{points:.1f}" if points >= 0.05 else f"{points:.2g}"
    direction = "higher" if result.delta > 0 else "lower"
    p_text = "p<0.001" if result.p_value < 0.001 else f"p={result.p_value:.3f}"
    return f"{metric_name}: {subject} {direction} by {amount} points ({p_text})"


def too_few_examples_text() -> str:
    """What every output says instead of an interval when N < MIN_TEST_EXAMPLES."""
    return f"too few test examples to test (N < {MIN_TEST_EXAMPLES})"


# --------------------------------------------------------------------------- helpers


def _summarise(
    point: float, deltas: np.ndarray, confidence: float, n: int, exact: bool = False
) -> DeltaResult:
    """Percentile interval and two-sided +1-corrected bootstrap p-value of replicate deltas.

    ``exact``: the deltas come from exact integer numerators, so a zero is an exact tie. When
    not, deltas within ``_TIE_TOLERANCE`` of 0 (and the point) are snapped to 0.0: ties in both
    tails, which can only raise p. Below ``MIN_TEST_EXAMPLES`` examples: the delta only.
    """
    if not exact and abs(point) < _TIE_TOLERANCE:
        point = 0.0
    if n < MIN_TEST_EXAMPLES:
        return DeltaResult(point, math.nan, math.nan, math.nan, 0, n, confidence)
    used = deltas[np.isfinite(deltas)]
    if not exact:
        used[np.abs(used) < _TIE_TOLERANCE] = 0.0
    b = int(used.size)
    if b == 0 or not math.isfinite(point):
        return DeltaResult(point, math.nan, math.nan, math.nan, b, n, confidence)
    low, high, p_value = _interval_and_p(used, confidence)
    return DeltaResult(point, float(low), float(high), float(p_value), b, n, confidence)


def _interval_and_p(
    used: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile interval and two-sided +1-corrected p-value of finite replicate deltas
    ``[B]`` (or ``[B, K]``, per column): the one formula of :func:`_summarise` and
    :func:`_summarise_columns`."""
    b = used.shape[0]
    low, high = _percentile_interval(used, confidence)
    below = (np.count_nonzero(used <= 0, axis=0) + 1) / (b + 1)
    above = (np.count_nonzero(used >= 0, axis=0) + 1) / (b + 1)
    return low, high, np.minimum(1.0, 2.0 * np.minimum(below, above))


def _percentile_interval(used: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """``np.quantile(used, [tail, 1 - tail], axis=0)`` (its default "linear" method), bit for
    bit, from one sort: numpy partitions around six positions per call, which made the
    quantiles the largest cost of summarising 200 comparisons (1.2 ms for [2000, 10] against
    0.4 ms to sort it). The same virtual index, gamma and two-sided lerp as numpy's
    ``_quantile`` / ``_lerp``; tests compare the two on many arrays. ``used`` has no NaN. One
    difference: where 0.0 and -0.0 both occur, sorting and partitioning may order them
    differently, so a bound of zero may differ in its sign; the deltas here are never -0.0
    (exact sums of integers give +0.0, and float deltas near zero are snapped to +0.0)."""
    tail = (1.0 - confidence) / 2.0
    ordered = np.sort(used, axis=0)
    count = ordered.shape[0]
    virtual = (count - 1) * np.asarray([tail, 1.0 - tail])
    lower = np.floor(virtual).astype(np.intp)
    upper = lower + 1
    top = virtual >= count - 1
    lower[top] = upper[top] = -1
    bottom = virtual < 0
    lower[bottom] = upper[bottom] = 0
    gamma = (virtual - lower).reshape((2,) + (1,) * (ordered.ndim - 1))
    a, b = ordered[lower], ordered[upper]
    step = b - a
    out = np.where(gamma >= 0.5, b - step * (1 - gamma), a + step * gamma)
    return out[0], out[1]


def _summarise_columns(
    points: np.ndarray, deltas: np.ndarray, confidence: float, n: int, exact: bool = False
) -> list[DeltaResult]:
    """:func:`_summarise` of every column of ``deltas [n_boot, K]`` at once: one quantile call
    for the columns whose replicates are all finite (``np.quantile`` along an axis gives each
    column exactly its 1-D result; tests check it), column by column for the rest. A leaderboard
    summarises ten per-class columns per comparison."""
    points = np.asarray(points, np.float64)
    out: list[DeltaResult | None] = [None] * points.shape[0]
    whole = np.flatnonzero(np.all(np.isfinite(deltas), axis=0) & np.isfinite(points))
    if n >= MIN_TEST_EXAMPLES and whole.size > 1:
        used = deltas[:, whole]  # a copy (fancy indexing): snapped below without touching deltas
        chosen = points[whole]
        if not exact:
            used[np.abs(used) < _TIE_TOLERANCE] = 0.0
            chosen = np.where(np.abs(chosen) < _TIE_TOLERANCE, 0.0, chosen)
        low, high, p_values = _interval_and_p(used, confidence)
        for i, j in enumerate(whole.tolist()):
            out[j] = DeltaResult(float(chosen[i]), float(low[i]), float(high[i]),
                                 float(p_values[i]), used.shape[0], n, confidence)  # fmt: skip
    return [
        got if got is not None else _summarise(float(points[j]), deltas[:, j], confidence, n,
                                               exact=exact)  # fmt: skip
        for j, got in enumerate(out)
    ]


def _exact_seed_differences(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float] | None:
    """``(num, scale)`` with ``num`` integer-valued and ``mean_s(b) - mean_s(a) == num / scale``
    exactly, for ``[Sa, N, ...]`` / ``[Sb, N, ...]`` scores that are fractions ``p / D``; None
    when they are not, or when a resampled sum of ``num`` could pass 2**53 (no longer exact)."""
    denominator = common_denominator(a, b)
    if denominator is None:
        return None
    sa, sb = a.shape[0], b.shape[0]
    largest = max(float(np.max(np.abs(x), initial=0.0)) for x in (a, b))
    if 2.0 * a.shape[1] * sa * sb * denominator * (largest + 1.0) >= _EXACT_FLOAT_INT:
        return None
    num = sa * np.rint(b * denominator).sum(axis=0) - sb * np.rint(a * denominator).sum(axis=0)
    return num, float(sa * sb * denominator)


def common_denominator(*arrays: np.ndarray) -> int | None:
    """The smallest ``D <= _MAX_DENOMINATOR`` with every value a multiple of ``1 / D``, or None.

    Float rounding of ``p / D`` is undone by rounding ``x * D`` to the nearest integer; values
    that are not within 1e-9 of such a multiple (measured, continuous scores) give None.
    """
    values = np.concatenate([np.ravel(x) for x in arrays])
    if np.array_equal(values, np.rint(values)):
        return 1
    distinct = np.unique(values)
    # seed means k / S first, all small denominators at once: a value p / D that is not a
    # multiple of 1 / d (d <= 64) is at least 1 / 4096 from one, far beyond the 1e-9 tolerance,
    # so the first d that fits every value is the smallest common denominator
    scaled = distinct[:, None] * _SMALL_DENOMINATORS[None, :]
    fits = np.all(np.abs(scaled - np.rint(scaled)) < 1e-9, axis=0)
    if fits.any():
        return int(_SMALL_DENOMINATORS[np.argmax(fits)])
    denominator = 1
    for value in distinct.tolist():
        found = Fraction(value).limit_denominator(_MAX_DENOMINATOR).denominator
        denominator = math.lcm(denominator, found)
        if denominator > _MAX_DENOMINATOR:
            return None
    scaled = distinct * denominator
    return denominator if float(np.max(np.abs(scaled - np.rint(scaled)))) < 1e-9 else None


def _check_n_examples(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or not 1 <= n < 2**32:
        raise ValueError(f"n (the number of test examples) must be an int in [1, 2**32), got {n!r}")


def _check_n_boot(n_boot: int) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")


def _as_seed_matrix(scores: np.ndarray, name: str) -> np.ndarray:
    """``[N]`` or ``[seeds, N]`` finite scores as a float64 ``[seeds, N]`` matrix."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"{name} must be [seeds, N] or [N] with at least one seed and example, got shape "
            f"{np.shape(scores)} (use paired_bootstrap_mean_columns for [seeds, N, K])"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{name} has NaN or infinite scores; per-example scores must be finite "
            "(use paired_bootstrap_mean_columns where NaN marks examples that do not count)"
        )
    return x


def _as_column_tensor(scores: np.ndarray, name: str) -> np.ndarray:
    """``[N, K]`` or ``[seeds, N, K]`` scores (NaN allowed) as float64 ``[seeds, N, K]``."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(
            f"{name} must be [seeds, N, K] or [N, K] with no empty axis, got shape "
            f"{np.shape(scores)}"
        )
    if np.any(np.isinf(x)):
        raise ValueError(f"{name} has infinite scores; only NaN (not counted) is allowed")
    return x


def _check_same_examples(a: np.ndarray, b: np.ndarray, raw_a: object, raw_b: object) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"scores_a has shape {np.shape(raw_a)} and scores_b has shape {np.shape(raw_b)}: "
            f"a paired bootstrap needs both backbones scored on the same N test examples "
            f"(got N={a.shape[1]} and N={b.shape[1]})"
        )
