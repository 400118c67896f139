"""Bootstrap p-values against an exact reference: every replicate delta recomputed here with
fractions.Fraction (independently of benchmark.stats), on the very replicates ours uses.

A replicate whose delta is 0 in exact arithmetic must count in both tails; floating point turns
seed means in steps of 1/3 into +-1e-17 and so biased p low. These tests fail on that code.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest

from benchmark import stats
from benchmark.stats import (
    bootstrap_indices,
    paired_bootstrap,
    paired_bootstrap_batched,
    paired_bootstrap_mean,
    paired_bootstrap_mean_columns,
    verdict,
)

# --------------------------------------------------------------------------- exact reference


def _exact_example_deltas(a: np.ndarray, b: np.ndarray) -> list[Fraction]:
    """Per example ``mean_s(b) - mean_s(a)`` as Fractions of the 0/1 (or integer) scores."""
    sa, sb = a.shape[0], b.shape[0]
    return [
        Fraction(int(sum(int(v) for v in b[:, i])), sb)
        - Fraction(int(sum(int(v) for v in a[:, i])), sa)
        for i in range(a.shape[1])
    ]


def _exact_tails(per_example: list[Fraction], rows: np.ndarray) -> tuple[int, int, int]:
    """(replicates with delta <= 0, with delta >= 0, exact zeros), delta = mean over the row."""
    distinct = sorted(set(per_example))
    label = np.array([distinct.index(d) for d in per_example])
    below = above = zeros = 0
    for row in rows:
        counts = np.bincount(label[row], minlength=len(distinct))
        delta = sum((d * int(c) for d, c in zip(distinct, counts, strict=True)), Fraction(0))
        below += delta <= 0
        above += delta >= 0
        zeros += delta == 0
    return below, above, zeros


def _exact_p(below: int, above: int, replicates: int) -> float:
    """The documented two-sided +1-corrected p, in exact arithmetic."""
    return float(min(Fraction(1), 2 * Fraction(min(below, above) + 1, replicates + 1)))


def _all_resamples(n: int) -> np.ndarray:
    """All n**n index vectors: the complete bootstrap distribution of n examples."""
    return np.array(list(itertools.product(range(n), repeat=n)), dtype=np.int64)


@pytest.fixture
def replicates(monkeypatch: pytest.MonkeyPatch):
    """Make every bootstrap use the given index rows (chunked like the real stream), and lift
    the minimum-N rule so that n = 4..6 can be enumerated completely."""

    def use(rows: np.ndarray) -> None:
        def chunks(n: int, n_boot: int, rng_seed: int) -> Iterator[np.ndarray]:
            assert (n, n_boot) == (rows.shape[1], rows.shape[0])
            step = stats._chunk_rows(n)
            for start in range(0, n_boot, step):
                yield rows[start : start + step]

        monkeypatch.setattr(stats, "_index_chunks", chunks)
        monkeypatch.setattr(stats, "MIN_TEST_EXAMPLES", 1)

    return use


# 3 vs 2 seeds on 5 examples: of the 3125 resamples, 823 have delta <= 0 exactly, but the float
# deltas put 129 exact ties above 0 only (694 <= 0): p 0.4447 instead of the exact 0.5272.
_THIRDS_VS_HALVES = (
    np.array([[0, 1, 1, 1, 0], [0, 0, 0, 0, 0], [0, 1, 0, 1, 0]], float),
    np.array([[1, 0, 0, 1, 1], [1, 1, 0, 0, 0]], float),
)


def _float_deltas(a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The float computation the old code did: resampled mean of mean_s(b) - mean_s(a)."""
    return (b.mean(0) - a.mean(0))[rows].sum(axis=1) / rows.shape[1]


# --------------------------------------------------------------------------- enumeration


@pytest.mark.parametrize(
    ("n", "sa", "sb", "seed"), [(4, 3, 2, 0), (5, 3, 2, 1), (5, 3, 3, 2), (6, 3, 2, 3)]
)
def test_mean_p_equals_full_enumeration(replicates, n: int, sa: int, sb: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = (rng.random((sa, n)) < 0.5).astype(float)
    b = (rng.random((sb, n)) < 0.5).astype(float)
    rows = _all_resamples(n)
    below, above, zeros = _exact_tails(_exact_example_deltas(a, b), rows)
    replicates(rows)
    result = paired_bootstrap_mean(a, b, n_boot=len(rows))
    assert result.p_value == _exact_p(below, above, len(rows))
    assert result.n_boot == n**n
    assert zeros > 0  # ties exist, so counting them in one tail only would change p


def test_enumeration_case_where_floats_misplace_ties(replicates) -> None:
    """3 vs 2 seeds: seed means in thirds and halves. The float deltas of exact ties are not
    all 0.0 here (the case the old code got wrong); ours still matches the exact tails."""
    a, b = _THIRDS_VS_HALVES
    rows = _all_resamples(5)
    per_example = _exact_example_deltas(a, b)
    below, above, zeros = _exact_tails(per_example, rows)
    floats = _float_deltas(a, b, rows)
    exact_zero = np.array([sum(per_example[i] for i in row) == 0 for row in rows])
    assert zeros == exact_zero.sum() > 0 and np.any(floats[exact_zero] != 0.0)
    assert (below, above) == (823, 2432) and np.sum(floats <= 0) == 694
    replicates(rows)
    result = paired_bootstrap_mean(a, b, n_boot=len(rows))
    assert result.p_value == _exact_p(below, above, len(rows))


@pytest.mark.parametrize("n", [4, 5])
def test_columns_p_equal_full_enumeration(replicates, n: int) -> None:
    """Per-class columns (NaN where an example is another class), 3 vs 2 seeds: a column's
    delta is defined on the resamples that hold one of its examples."""
    rng = np.random.default_rng(n)
    target = np.arange(n) % 2
    k = 2
    correct_a = (rng.random((3, n)) < 0.5).astype(float)
    correct_b = (rng.random((2, n)) < 0.5).astype(float)

    def columns(correct: np.ndarray) -> np.ndarray:
        out = np.full((*correct.shape, k), np.nan)
        out[:, np.arange(n), target] = correct
        return out

    rows = _all_resamples(n)
    replicates(rows)
    results = paired_bootstrap_mean_columns(columns(correct_a), columns(correct_b),
                                            n_boot=len(rows))  # fmt: skip
    per_example = _exact_example_deltas(correct_a, correct_b)
    for c in range(k):
        below = above = used = 0
        for row in rows:
            kept = [i for i in row if target[i] == c]
            if not kept:
                continue  # undefined for this column: dropped
            delta = sum((per_example[i] for i in kept), Fraction(0)) / len(kept)
            used += 1
            below += delta <= 0
            above += delta >= 0
        assert results[c].n_boot == used
        assert results[c].p_value == _exact_p(below, above, used)


def test_callable_tolerance_counts_float_ties_like_exact(replicates) -> None:
    """The callable path has no integers to work with: its tolerance must give the exact tails
    on the same ties the float noise misplaces."""
    a, b = _THIRDS_VS_HALVES
    rows = _all_resamples(5)
    below, above, _ = _exact_tails(_exact_example_deltas(a, b), rows)
    replicates(rows)

    def seed_mean(x: np.ndarray):
        return lambda idx: float(np.mean(x[:, idx].mean(axis=1)))

    def seed_mean_rows(x: np.ndarray):
        return lambda idx: x[:, idx].mean(axis=2).mean(axis=0)

    slow = paired_bootstrap(seed_mean(a), seed_mean(b), 5, n_boot=len(rows))
    fast = paired_bootstrap_batched(seed_mean_rows(a), seed_mean_rows(b), 5, n_boot=len(rows))
    assert slow.p_value == fast.p_value == _exact_p(below, above, len(rows))


# --------------------------------------------------------------------------- the real stream


def _seeds_of(rng: np.random.Generator, n: int, sa: int, sb: int) -> tuple[np.ndarray, ...]:
    """Two backbones that agree on most examples, each seed flipping about 10% of them."""
    base = rng.random(n) < 0.7
    a = np.array([base ^ (rng.random(n) < 0.1) for _ in range(sa)], float)
    b = np.array([base ^ (rng.random(n) < 0.1) for _ in range(sb)], float)
    return a, b


def test_three_vs_two_seeds_on_the_leaderboard_stream() -> None:
    """N = 200, 3 vs 2 seeds, 3000 replicates of the public stream: p is the exact one."""
    a, b = _seeds_of(np.random.default_rng(1), 200, 3, 2)
    rows = np.concatenate(list(bootstrap_indices(200, 3000, rng_seed=0)))
    below, above, zeros = _exact_tails(_exact_example_deltas(a, b), rows)
    result = paired_bootstrap_mean(a, b, n_boot=3000, rng_seed=0)
    assert zeros > 0
    assert result.p_value == _exact_p(below, above, 3000)


def test_not_below_the_exact_p_over_synthetic_datasets() -> None:
    """Over several datasets (3 seeds a side, N = 200), ours equals the exact p every time, so
    the mean difference is 0: not systematically below it."""
    rows = np.concatenate(list(bootstrap_indices(200, 1000, rng_seed=0)))
    gaps = []
    for dataset in range(6):
        a, b = _seeds_of(np.random.default_rng(100 + dataset), 200, 3, 3)
        below, above, _ = _exact_tails(_exact_example_deltas(a, b), rows)
        gaps.append(paired_bootstrap_mean(a, b, n_boot=1000).p_value - _exact_p(below, above, 1000))
    assert gaps == [0.0] * 6


def test_fractional_scores_are_exact_too() -> None:
    """Attribute accuracy over 3 attributes (scores in thirds) takes the exact path as well:
    backbones whose per-example seed means are equal, in another seed order, tie everywhere."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, size=(3, 300)) / 3.0
    b = rng.permuted(a, axis=0)  # same per-example values, seeds shuffled per example
    assert np.any(b.mean(0) - a.mean(0) != 0.0)  # floats alone would not see the ties
    result = paired_bootstrap_mean(a, b, n_boot=500)
    assert (result.delta, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_float_ties_are_snapped_to_zero_in_the_callable_path() -> None:
    """Exactly equal metrics computed in another order: +-1e-17 replicates, which must neither
    lower p nor give an interval that excludes 0."""
    rng = np.random.default_rng(6)
    a = (rng.random((3, 300)) < 0.6).astype(float)
    b = rng.permuted(a, axis=0)

    def seed_mean(x: np.ndarray):
        return lambda idx: float(np.mean(x[:, idx].mean(axis=1)))

    idx = np.concatenate(list(bootstrap_indices(300, 400)))
    raw = b[:, idx].mean(axis=2).mean(axis=0) - a[:, idx].mean(axis=2).mean(axis=0)
    assert np.any(raw != 0.0)  # the noise is there to be handled
    result = paired_bootstrap(seed_mean(a), seed_mean(b), 300, n_boot=400)
    assert (result.delta, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert verdict(result, "top1") == "top1: no detectable difference"


# --------------------------------------------------------------------------- too few examples


@pytest.mark.parametrize("n", [1, stats.MIN_TEST_EXAMPLES - 1])
def test_too_few_examples_get_no_interval_p_or_verdict(n: int) -> None:
    a = np.zeros((2, n))
    b = np.ones((2, n))
    result = paired_bootstrap_mean(a, b, n_boot=200)
    assert result.delta == 1.0 and result.n_examples == n and result.n_boot == 0
    assert np.isnan([result.low, result.high, result.p_value]).all()
    assert verdict(result, "top1") == (
        f"top1: too few test examples to test (N < {stats.MIN_TEST_EXAMPLES})"
    )
    (column,) = paired_bootstrap_mean_columns(a[..., None], b[..., None], n_boot=200)
    assert np.isnan(column.p_value) and column.delta == 1.0


def test_enough_examples_get_a_verdict() -> None:
    n = stats.MIN_TEST_EXAMPLES
    result = paired_bootstrap_mean(np.zeros((2, n)), np.ones((2, n)), n_boot=200)
    assert (result.low, result.high) == (1.0, 1.0) and result.p_value == 2 / 201
    assert verdict(result, "top1") == "top1: blurred higher by 100.0 points (p=0.010)"
