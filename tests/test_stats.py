"""Tests for benchmark.stats: the leaderboard's seed intervals and paired bootstraps."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats

from benchmark import stats
from benchmark.stats import (
    DeltaResult,
    SeedSummary,
    bootstrap_indices,
    holm_adjust,
    paired_bootstrap,
    paired_bootstrap_mean,
    paired_bootstrap_mean_columns,
    seed_interval,
    verdict,
)


def _correct(n: int, n_correct: int, rng: np.random.Generator) -> np.ndarray:
    scores = np.zeros(n)
    scores[rng.choice(n, size=n_correct, replace=False)] = 1.0
    return scores


def _seed_mean_stat(scores: np.ndarray):
    """A callable metric: the mean over seeds of the mean score on the resampled examples."""
    return lambda idx: float(np.mean(scores[:, idx].mean(axis=1)))


def _seed_nanmean_stat(scores: np.ndarray, column: int):
    """Per-column reference: nanmean over resampled examples per seed, then mean over seeds."""

    def stat(idx: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resample -> NaN, dropped
            return float(np.mean(np.nanmean(scores[:, idx, column], axis=1)))

    return stat


# --------------------------------------------------------------------------- seed_interval


def test_seed_interval_matches_scipy_t_on_hand_example() -> None:
    values = [0.712, 0.698, 0.705]
    mean = (0.712 + 0.698 + 0.705) / 3
    low, high = scipy.stats.t.interval(
        0.95, df=2, loc=mean, scale=scipy.stats.sem(np.array(values))
    )
    got = seed_interval(values)
    assert isinstance(got, SeedSummary)
    assert got.n == 3
    assert got.mean == pytest.approx(mean, abs=1e-15)
    assert got.low == pytest.approx(low, abs=1e-12)
    assert got.high == pytest.approx(high, abs=1e-12)
    # by hand: sd = 0.007, sem = 0.007 / sqrt(3), t_{0.975, 2} = 4.302653
    assert got.high - got.mean == pytest.approx(4.302653 * 0.007 / math.sqrt(3), rel=1e-6)


def test_seed_interval_other_confidence_matches_scipy() -> None:
    values = np.array([0.61, 0.64, 0.60, 0.66, 0.62])
    low, high = scipy.stats.t.interval(0.9, df=4, loc=values.mean(), scale=scipy.stats.sem(values))
    got = seed_interval(values, confidence=0.9)
    assert (got.low, got.high) == pytest.approx((low, high), abs=1e-12)


def test_seed_interval_single_seed_is_nan() -> None:
    got = seed_interval([0.73])
    assert got.mean == 0.73 and got.n == 1
    assert math.isnan(got.low) and math.isnan(got.high)


@pytest.mark.parametrize("bad", [[], [[0.1, 0.2]], [0.5, float("nan")]])
def test_seed_interval_rejects_bad_input(bad: list) -> None:
    with pytest.raises(ValueError):
        seed_interval(bad)


# --------------------------------------------------------------------------- paired_bootstrap_mean


def test_identical_predictions_give_zero_delta_and_p_one() -> None:
    rng = np.random.default_rng(0)
    scores = (rng.random((3, 1000)) < 0.7).astype(float)
    result = paired_bootstrap_mean(scores, scores.copy(), n_boot=500)
    assert isinstance(result, DeltaResult)
    assert result.delta == 0.0
    assert result.low <= 0.0 <= result.high
    assert result.p_value == 1.0
    assert (result.n_boot, result.n_examples) == (500, 1000)
    assert verdict(result, "top1") == "top1: no detectable difference"


@pytest.mark.parametrize("seeds", [1, 3])
def test_planted_difference_is_detected_exactly(seeds: int) -> None:
    rng = np.random.default_rng(1)
    n = 2000
    a = _correct(n, 1000, rng)
    b = a.copy()
    b[rng.choice(np.flatnonzero(a == 0), size=100, replace=False)] = 1.0  # +5% of N
    result = paired_bootstrap_mean(np.tile(a, (seeds, 1)), np.tile(b, (seeds, 1)))
    assert result.delta == 0.05
    assert 0.0 < result.low < 0.05 < result.high
    assert result.p_value < 0.01
    assert result.p_value == pytest.approx(2 / 2001)  # no replicate <= 0: the +1 floor
    assert verdict(result, "top1") == "top1: blurred higher by 5.0 points (p<0.001)"

    reverse = paired_bootstrap_mean(b, a)
    assert reverse.delta == -0.05
    assert reverse.high < 0
    assert verdict(reverse, "top1") == "top1: blurred lower by 5.0 points (p<0.001)"


def test_tiny_difference_on_small_n_is_not_detectable() -> None:
    rng = np.random.default_rng(2)
    a = _correct(60, 40, rng)
    b = a.copy()
    b[np.flatnonzero(a == 0)[0]] = 1.0  # one more correct example out of 60
    result = paired_bootstrap_mean(a, b)
    assert result.delta == pytest.approx(1 / 60)
    assert result.low <= 0.0 <= result.high
    assert result.p_value > 0.05
    assert verdict(result, "top1") == "top1: no detectable difference"


def test_seed_counts_may_differ_and_point_is_mean_over_seeds() -> None:
    rng = np.random.default_rng(3)
    a = rng.random((3, 400))
    b = rng.random((2, 400))
    result = paired_bootstrap_mean(a, b, n_boot=200)
    assert result.delta == pytest.approx(b.mean(axis=1).mean() - a.mean(axis=1).mean(), abs=1e-14)


def test_same_seed_is_reproducible_and_other_seed_differs() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.random((2, 300)), rng.random((2, 300))
    first = paired_bootstrap_mean(a, b, n_boot=300, rng_seed=7)
    assert paired_bootstrap_mean(a, b, n_boot=300, rng_seed=7) == first
    assert paired_bootstrap_mean(a, b, n_boot=300, rng_seed=8) != first


def test_replicate_deltas_match_explicit_index_draws() -> None:
    """The vectorised replicates are the resampled means, on bootstrap_indices' draws."""
    rng = np.random.default_rng(5)
    a, b = rng.random((3, 250)), rng.random((2, 250))
    idx = np.concatenate(list(bootstrap_indices(250, 400, rng_seed=3)))
    assert idx.shape == (400, 250)
    deltas = b[:, idx].mean(axis=2).mean(axis=0) - a[:, idx].mean(axis=2).mean(axis=0)
    result = paired_bootstrap_mean(a, b, n_boot=400, rng_seed=3)
    low, high = np.quantile(deltas, [0.025, 0.975])
    assert (result.low, result.high) == pytest.approx((low, high), abs=1e-12)


# --------------------------------------------------------------------------- paired_bootstrap


def test_callable_version_agrees_with_mean_version() -> None:
    rng = np.random.default_rng(6)
    n = 700
    a = rng.random((3, n))
    b = rng.random((2, n)) + 0.02
    fast = paired_bootstrap_mean(a, b, n_boot=600, confidence=0.9, rng_seed=11)
    slow = paired_bootstrap(
        _seed_mean_stat(a), _seed_mean_stat(b), n, n_boot=600, confidence=0.9, rng_seed=11
    )
    assert slow.delta == pytest.approx(fast.delta, abs=1e-12)
    assert slow.low == pytest.approx(fast.low, abs=1e-12)
    assert slow.high == pytest.approx(fast.high, abs=1e-12)
    assert slow.p_value == pytest.approx(fast.p_value, abs=1e-12)
    assert (slow.n_boot, slow.n_examples, slow.confidence) == (600, n, 0.9)


def test_callable_identical_metrics_give_p_one() -> None:
    rng = np.random.default_rng(7)
    scores = rng.random((2, 200))
    result = paired_bootstrap(_seed_mean_stat(scores), _seed_mean_stat(scores), 200, n_boot=100)
    assert (result.delta, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_p_value_formula_with_plus_one_correction() -> None:
    """3 replicates below 0 and 7 above: p = 2 * (3 + 1) / (10 + 1)."""
    values = iter([0.5] + [-1.0] * 3 + [1.0] * 7)  # full-data point, then the 10 replicates
    n = stats.MIN_TEST_EXAMPLES  # the smallest N that gets a p-value
    result = paired_bootstrap(lambda idx: 0.0, lambda idx: next(values), n, n_boot=10)
    assert result.delta == 0.5
    assert result.p_value == pytest.approx(8 / 11)
    assert (result.low, result.high) == pytest.approx(
        tuple(np.quantile([-1.0] * 3 + [1.0] * 7, [0.025, 0.975]))
    )


def test_callable_receives_resampled_indices_then_full_data() -> None:
    seen: list[np.ndarray] = []

    def stat(idx: np.ndarray) -> float:
        seen.append(idx)
        return 0.0

    paired_bootstrap(lambda idx: 0.0, stat, 40, n_boot=5, rng_seed=2)
    np.testing.assert_array_equal(seen[0], np.arange(40))
    np.testing.assert_array_equal(np.stack(seen[1:]), next(bootstrap_indices(40, 5, rng_seed=2)))


# --------------------------------------------------------------------------- columns


def _column_scores(
    rng: np.random.Generator, seeds: int, n: int, k: int, labels: np.ndarray
) -> np.ndarray:
    """Per-class style scores: column j counts only examples labelled j (NaN elsewhere)."""
    scores = rng.random((seeds, n, k))
    scores[:, labels[:, None] != np.arange(k)[None, :]] = np.nan
    return scores


def _assert_columns_match_loop(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> None:
    got = paired_bootstrap_mean_columns(a, b, n_boot=n_boot, rng_seed=seed)
    assert len(got) == a.shape[-1]
    for column, result in enumerate(got):
        want = paired_bootstrap(
            _seed_nanmean_stat(a, column),
            _seed_nanmean_stat(b, column),
            a.shape[1],
            n_boot=n_boot,
            rng_seed=seed,
        )
        assert result.n_boot == want.n_boot
        assert result.n_examples == want.n_examples
        for field in ("delta", "low", "high", "p_value"):
            assert getattr(result, field) == pytest.approx(
                getattr(want, field), abs=1e-12, nan_ok=True
            ), (column, field)


@pytest.mark.parametrize("k", [4, 12])  # 12 classes: sparse enough for the sparse product
def test_columns_with_shared_nan_mask_equal_per_column_loop(k: int) -> None:
    rng = np.random.default_rng(8)
    n = 150
    weights = np.r_[np.full(k - 1, 0.98 / (k - 1)), 0.02]  # last class: ~3 examples
    labels = rng.choice(k, size=n, p=weights)
    a = _column_scores(rng, 3, n, k, labels)
    b = _column_scores(rng, 2, n, k, labels)
    _assert_columns_match_loop(a, b, n_boot=300, seed=5)


def test_columns_per_class_with_differing_masks_equal_per_column_loop() -> None:
    rng = np.random.default_rng(12)
    n, k = 160, 10
    labels = rng.choice(k, size=n)
    a = _column_scores(rng, 2, n, k, labels)
    b = _column_scores(rng, 3, n, k, labels)
    b[1, :20] = np.nan  # seed 1 of b missed some examples: masks differ, general path
    _assert_columns_match_loop(a, b, n_boot=250, seed=4)


def test_columns_with_different_nan_masks_equal_per_column_loop() -> None:
    rng = np.random.default_rng(9)
    n, k = 120, 3
    a = rng.random((2, n, k))
    b = rng.random((3, n, k))
    a[rng.random(a.shape) < 0.3] = np.nan
    b[rng.random(b.shape) < 0.5] = np.nan
    b[:, :, 2] = np.where(rng.random(n) < 0.05, b[:, :, 2], np.nan)  # a rarely counted column
    _assert_columns_match_loop(a, b, n_boot=300, seed=6)


def test_columns_single_seed_2d_and_empty_column() -> None:
    rng = np.random.default_rng(10)
    a = rng.random((80, 3))
    b = a + 0.5
    a[:, 2] = np.nan
    b[:, 2] = np.nan
    first, second, empty = paired_bootstrap_mean_columns(a, b, n_boot=200)
    assert first.delta == pytest.approx(0.5) and second.delta == pytest.approx(0.5)
    assert first.low > 0 and first.p_value < 0.01
    assert math.isnan(empty.delta) and math.isnan(empty.p_value)
    assert verdict(empty, "acc[class 2]") == "acc[class 2]: not enough data for a comparison"


def test_columns_identical_give_p_one() -> None:
    rng = np.random.default_rng(11)
    labels = rng.choice(3, size=90)
    a = _column_scores(rng, 2, 90, 3, labels)
    for result in paired_bootstrap_mean_columns(a, a.copy(), n_boot=100):
        assert (result.delta, result.p_value) == (0.0, 1.0)
        assert result.low <= 0.0 <= result.high


# --------------------------------------------------------------------------- index stream


def test_bootstrap_indices_are_uniform_and_prefix_stable() -> None:
    chunks = list(bootstrap_indices(7, 30000, rng_seed=1))
    draws = np.concatenate(chunks)
    assert draws.shape == (30000, 7) and draws.dtype == np.int64
    assert draws.min() == 0 and draws.max() == 6
    frequencies = np.bincount(draws.ravel(), minlength=7) / draws.size
    np.testing.assert_allclose(frequencies, 1 / 7, atol=0.005)
    shorter = np.concatenate(list(bootstrap_indices(7, 100, rng_seed=1)))
    np.testing.assert_array_equal(shorter, draws[:100])


def test_lemire_rejection_redraws_biased_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """n = 3: 2**32 mod 3 = 1, so a word whose product has low half 0 must be redrawn."""
    queue = [
        np.array([0, 2**31, 0], dtype=np.uint32),  # positions 0 and 2 rejected
        np.array([0, 2**32 - 1], dtype=np.uint32),  # position 0 rejected again
        np.array([2**30], dtype=np.uint32),
    ]
    monkeypatch.setattr(stats, "_uint32_draws", lambda bits, size: queue.pop(0)[:size])
    (chunk,) = list(bootstrap_indices(3, 1))
    np.testing.assert_array_equal(chunk, [[0, 1, 2]])
    assert not queue


# --------------------------------------------------------------------------- holm, verdict


def test_holm_adjust_hand_example() -> None:
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> cummax 0.06
    got = holm_adjust([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02])


def test_holm_adjust_caps_at_one_and_skips_nan() -> None:
    got = holm_adjust([0.4, float("nan"), 0.3])
    np.testing.assert_allclose(got, [0.6, np.nan, 0.6])
    assert holm_adjust([]).shape == (0,)
    with pytest.raises(ValueError):
        holm_adjust([0.2, 1.5])


def _result(delta: float, low: float, high: float, p: float) -> DeltaResult:
    return DeltaResult(delta, low, high, p, n_boot=2000, n_examples=1000)


def test_verdict_wording() -> None:
    assert verdict(_result(0.008, 0.003, 0.013, 0.003), "top1") == (
        "top1: blurred higher by 0.8 points (p=0.003)"
    )
    assert verdict(_result(-0.0123, -0.02, -0.004, 0.0004), "mAP") == (
        "mAP: blurred lower by 1.2 points (p<0.001)"
    )
    # a called difference never prints as 0.0 points
    assert verdict(_result(0.0003, 0.0001, 0.0005, 0.001), "top1") == (
        "top1: blurred higher by 0.03 points (p=0.001)"
    )
    assert verdict(_result(0.01, -0.001, 0.02, 0.08), "top1") == "top1: no detectable difference"
    # interval excludes 0 but p is not below a stricter alpha
    assert verdict(_result(0.01, 0.001, 0.02, 0.03), "top1", alpha=0.01) == (
        "top1: no detectable difference"
    )


# --------------------------------------------------------------------------- validation


def test_mismatched_examples_name_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(3, 100\).*\(3, 99\)"):
        paired_bootstrap_mean(np.zeros((3, 100)), np.zeros((3, 99)))
    with pytest.raises(ValueError, match=r"\(2, 50, 4\).*\(2, 51, 4\)"):
        paired_bootstrap_mean_columns(np.zeros((2, 50, 4)), np.zeros((2, 51, 4)))
    with pytest.raises(ValueError, match=r"\(2, 50, 4\).*\(2, 50, 5\)"):
        paired_bootstrap_mean_columns(np.zeros((2, 50, 4)), np.zeros((2, 50, 5)))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (np.zeros((2, 3, 4)), np.zeros((2, 3, 4))),  # columns belong in the columns version
        (np.zeros((0, 10)), np.zeros((1, 10))),  # no seeds
        (np.zeros(0), np.zeros(0)),  # no examples
        (np.array([0.0, np.nan]), np.array([0.0, 1.0])),  # NaN is not a per-example score
    ],
)
def test_bad_mean_inputs_raise(a: np.ndarray, b: np.ndarray) -> None:
    with pytest.raises(ValueError):
        paired_bootstrap_mean(a, b)


def test_bad_parameters_raise() -> None:
    scores = np.zeros((1, 10))
    with pytest.raises(ValueError):
        paired_bootstrap_mean(scores, scores, n_boot=0)
    with pytest.raises(ValueError):
        paired_bootstrap_mean(scores, scores, confidence=1.0)
    with pytest.raises(ValueError):
        paired_bootstrap(lambda idx: 0.0, lambda idx: 0.0, 0)
    with pytest.raises(ValueError):
        paired_bootstrap_mean_columns(np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError):
        paired_bootstrap_mean_columns(np.full((5, 2), np.inf), np.zeros((5, 2)))
    with pytest.raises(ValueError):
        bootstrap_indices(10, -1)


# ----------------------------------------------------------------- shared replicate counts


def _summary_fields(result: stats.DeltaResult) -> tuple:
    return tuple(repr(getattr(result, f)) for f in ("delta", "low", "high", "p_value", "n_boot",
                                                    "n_examples", "confidence"))  # fmt: skip


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("n", [200, 5])
def test_column_summaries_equal_the_one_column_summary_bit_for_bit(exact: bool, n: int) -> None:
    """The vectorised per-column summary is the 1-D one, to the last bit, for every column kind:
    finite, with undefined (NaN) replicates, a NaN point, near-zero ties, N below the minimum."""
    rng = np.random.default_rng(7)
    deltas = rng.integers(-40, 40, size=(2000, 9)) / 37.0
    deltas[:, 1] *= 1e-10  # ties within the tolerance (snapped when not exact)
    deltas[::7, 2] = np.nan
    deltas[:, 3] = 0.0
    points = rng.normal(size=9) / 10
    points[4] = np.nan
    points[5] = 3e-10
    for confidence in (0.95, 0.9):
        got = stats._summarise_columns(points, deltas, confidence, n, exact=exact)
        want = [stats._summarise(float(points[j]), deltas[:, j].copy(), confidence, n,
                                 exact=exact) for j in range(9)]  # fmt: skip
        assert [_summary_fields(r) for r in got] == [_summary_fields(r) for r in want]


def test_shared_counts_are_the_bincount_and_change_no_result() -> None:
    """Inside reuse_replicates a kept replicate chunk's counts are computed once and shared;
    they equal a fresh bincount, and every bootstrap gives the same bits with and without."""
    rng = np.random.default_rng(3)
    n = 150
    a = (rng.random((3, n)) < 0.7).astype(float)
    b = (rng.random((2, n)) < 0.6).astype(float)
    cont_a, cont_b = rng.normal(size=(3, n)), rng.normal(size=(2, n))
    cols_a = np.where(rng.random((3, n, 4)) < 0.3, np.nan, a[:, :, None])
    cols_b = np.where(np.isnan(cols_a[:2]), np.nan, b[:, :, None])

    def everything() -> list:
        return [stats.paired_bootstrap_mean(a, b, n_boot=700, rng_seed=2),
                stats.paired_bootstrap_mean(cont_a, cont_b, n_boot=700, rng_seed=2),
                stats.paired_bootstrap_mean_columns(cols_a, cols_b, n_boot=700, rng_seed=2)]

    plain = everything()
    with stats.reuse_replicates():
        chunks = list(stats._index_chunks(n, 700, 2))
        first = stats.multiplicities(chunks[0], n)
        assert stats.multiplicities(chunks[0], n) is first  # computed once
        assert not first.flags.writeable
        np.testing.assert_array_equal(first, stats._bincount_rows(chunks[0], n))
        assert stats.multiplicities(chunks[0].copy(), n) is not first  # only kept chunks
        shared = everything()
    assert repr(shared) == repr(plain)


def test_shared_counts_respect_the_memory_bound() -> None:
    with stats.reuse_replicates(max_bytes=200 * 100 * 8 * 3):
        for n in (100, 101, 102):  # three streams of 200 x n indices: counts push the first out
            for idx in stats._index_chunks(n, 200, 0):
                stats.multiplicities(idx, n)
        cache = stats._REUSE
        assert cache is not None
        used = sum(c.nbytes for v in cache.chunks.values() for c in v)
        used += sum(c.nbytes for _, c in cache.counts.values())
        assert used <= cache.max_bytes
        assert (100, 200, 0) not in cache.chunks


def _slow_common_denominator(values: np.ndarray) -> int | None:
    """The definition: lcm of each distinct value's best fraction (denominator <= 4096)."""
    from fractions import Fraction

    d = 1
    for v in np.unique(values).tolist():
        d = math.lcm(d, Fraction(v).limit_denominator(4096).denominator)
        if d > 4096:
            return None
    scaled = np.unique(values) * d
    return d if np.max(np.abs(scaled - np.rint(scaled))) < 1e-9 else None


@pytest.mark.parametrize("seed", range(6))
def test_common_denominator_fast_path_equals_the_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for denominator in (1, 2, 3, 7, 25, 48, 64, 65, 97, 1000, 4096):
        values = rng.integers(0, 3 * denominator, size=50) / denominator
        assert stats.common_denominator(values) == _slow_common_denominator(values)
    measured = rng.normal(size=50)
    assert stats.common_denominator(measured) is None is _slow_common_denominator(measured)


def test_percentile_interval_is_numpys_quantile_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    for trial in range(400):
        rows = int(rng.integers(1, 60)) if trial % 4 == 0 else int(rng.integers(100, 2500))
        shape = (rows,) if trial % 2 else (rows, int(rng.integers(1, 12)))
        values = rng.integers(-30, 30, size=shape) / float(rng.integers(1, 50))  # many ties
        if trial % 3 == 0:
            values = rng.normal(size=shape)
        for confidence in (0.95, 0.9, 0.99, 0.5, 0.999):
            low, high = stats._percentile_interval(values, confidence)
            tail = (1.0 - confidence) / 2.0
            want = np.quantile(values, [tail, 1.0 - tail], axis=0)
            assert repr(np.asarray(low).tolist()) == repr(want[0].tolist())
            assert repr(np.asarray(high).tolist()) == repr(want[1].tolist())


def test_a_stream_too_large_to_keep_with_its_counts_is_drawn_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Indices that fit the budget but not with their counts: the counts are not kept, so they
    never push out the stream they belong to (found by review: at Flowers-102's 6,149 test
    examples every bootstrap drew the stream again)."""
    draws: list[int] = []
    real = stats._draw_index_chunks

    def drawing(n: int, n_boot: int, rng_seed: int):  # type: ignore[no-untyped-def]
        draws.append(n)
        return real(n, n_boot, rng_seed)

    monkeypatch.setattr(stats, "_draw_index_chunks", drawing)
    n = 300
    a = (np.random.default_rng(0).random((2, n)) < 0.7).astype(float)
    with stats.reuse_replicates(max_bytes=400 * n * 8 + 1000):  # indices fit, not twice over
        for _ in range(4):
            stats.paired_bootstrap_mean(a, a[::-1], n_boot=400)
    assert draws == [n]
