"""The leaderboard's statistics beyond benchmark.stats' original set: batched bootstraps, the
Welch seed interval, and the per-example scores each kind resamples (checked against the
metric registry on the full data and against a per-replicate loop)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from benchmark.metrics import compute_metrics
from benchmark.scores import (
    ExampleScores,
    average_precision_metric,
    group_metric,
    mean_per_class_accuracy_metric,
    memoized,
    per_class_accuracy_scores,
)
from benchmark.stats import (
    bootstrap_indices,
    paired_bootstrap,
    paired_bootstrap_batched,
    paired_bootstrap_batched_columns,
    paired_bootstrap_mean_columns,
    seed_delta_interval,
    verdict,
)


def _classification(n: int = 300, c: int = 7, seed: int = 0):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, c, n)
    target[:c] = np.arange(c)  # every class present
    logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[target] * (rng.random(n) < 0.6)[:, None]
    correct = (logits.argmax(1) == target).astype(float)
    return logits, target, correct


def test_batched_agrees_with_the_callable_version_on_the_same_replicates() -> None:
    _, target, ca = _classification(seed=0)
    _, _, cb = _classification(seed=1)
    c = 7
    fa = mean_per_class_accuracy_metric(ca, target, c).compute
    fb = mean_per_class_accuracy_metric(cb, target, c).compute
    batched = paired_bootstrap_batched(fa, fb, len(target), n_boot=300, rng_seed=4)
    looped = paired_bootstrap(lambda i: fa(i[None])[0], lambda i: fb(i[None])[0], len(target),
                              n_boot=300, rng_seed=4)  # fmt: skip
    assert batched == pytest.approx(looped)


def test_batched_columns_equal_the_mean_columns_version() -> None:
    _, target, ca = _classification(seed=2)
    _, _, cb = _classification(seed=3)
    a = ExampleScores(per_class_accuracy_scores(ca, target, 7), tuple("abcdefg"))
    b = ExampleScores(per_class_accuracy_scores(cb, target, 7), tuple("abcdefg"))
    batched = paired_bootstrap_batched_columns(a.compute, b.compute, len(target), n_boot=400)
    linear = paired_bootstrap_mean_columns(a.values, b.values, n_boot=400)
    for x, y in zip(batched, linear, strict=True):
        assert (x.delta, x.low, x.high, x.p_value, x.n_boot) == pytest.approx(
            (y.delta, y.low, y.high, y.p_value, y.n_boot)
        )


def test_batched_rejects_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\[R, K\]"):
        paired_bootstrap_batched_columns(lambda i: np.zeros(len(i)), lambda i: np.zeros(len(i)),
                                         10, n_boot=100)  # fmt: skip
    with pytest.raises(ValueError, match="one value per replicate"):
        paired_bootstrap_batched(lambda i: np.zeros((len(i), 2)), lambda i: np.zeros((len(i), 2)),
                                 10, n_boot=100)  # fmt: skip


def test_seed_delta_interval_is_welch() -> None:
    a, b = [0.70, 0.72, 0.71], [0.69, 0.70, 0.66, 0.68]
    got = seed_delta_interval(a, b)
    want = scipy.stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert (got.low, got.high) == pytest.approx((want.low, want.high))
    assert got.mean == pytest.approx(np.mean(b) - np.mean(a)) and got.n == 3
    one = seed_delta_interval([0.7], [0.6, 0.65])
    assert np.isnan(one.low) and one.mean == pytest.approx(-0.075)
    with pytest.raises(ValueError):
        seed_delta_interval([], [0.5])


def test_verdict_names_its_subject() -> None:
    from benchmark.stats import DeltaResult

    result = DeltaResult(-0.02, -0.03, -0.01, 0.001, 1000, 500)
    assert verdict(result, "top1", subject="overlayed") == (
        "top1: overlayed lower by 2.0 points (p=0.001)"
    )


def test_classification_scores_reproduce_the_registered_metrics() -> None:
    logits, target, correct = _classification()
    names = [f"c{i}" for i in range(7)]
    want = compute_metrics("classification", ["mean_per_class_accuracy", "per_class_accuracy"],
                           logits, target, names)  # fmt: skip
    full = np.arange(len(target))[None]
    got = mean_per_class_accuracy_metric(correct, target, 7).compute(full)[0]
    assert got == pytest.approx(want["mean_per_class_accuracy"])
    per_class = ExampleScores(per_class_accuracy_scores(correct, target, 7), tuple(names))
    assert per_class.compute(full)[0] == pytest.approx(list(want["per_class_accuracy"].values()))


def test_resampled_metrics_equal_a_loop_over_replicates() -> None:
    _, target, correct = _classification(n=120)
    metric = mean_per_class_accuracy_metric(correct, target, 7)
    (idx,) = list(bootstrap_indices(120, 50, rng_seed=1))
    for row, value in zip(idx, metric.compute(idx), strict=True):
        acc = [correct[row][target[row] == c].mean() for c in range(7) if (target[row] == c).any()]
        assert value == pytest.approx(np.mean(acc))


def test_average_precision_matches_torchmetrics_and_resamples_correctly() -> None:
    from torchmetrics.functional.classification import multilabel_average_precision

    rng = np.random.default_rng(0)
    n, k = 200, 5
    positive = rng.random((n, k)) < 0.3
    scores = np.round(rng.normal(size=(n, k)) + positive, 1)  # rounding makes ties
    metric = average_precision_metric(scores, positive, [f"a{j}" for j in range(k)])
    want = multilabel_average_precision(torch.from_numpy(scores), torch.from_numpy(positive).long(),
                                        num_labels=k, average=None)  # fmt: skip
    full = np.arange(n)[None]
    assert metric.compute(full)[0] == pytest.approx(want.numpy(), abs=1e-6)
    (idx,) = list(bootstrap_indices(n, 3, rng_seed=2))
    for row, values in zip(idx, metric.compute(idx), strict=True):
        # a resample is the data with repeated rows: AP of the duplicated data
        again = multilabel_average_precision(torch.from_numpy(scores[row]),
                                             torch.from_numpy(positive[row]).long(),
                                             num_labels=k, average=None)  # fmt: skip
        assert values == pytest.approx(again.numpy(), abs=1e-6)


def test_groups_average_their_members() -> None:
    rng = np.random.default_rng(0)
    values = (rng.random((50, 4)) < 0.5).astype(float)
    scored = ExampleScores(values, ("a", "b", "c", "d"))
    grouped = group_metric(scored, {"ab": ["a", "b"], "cd": ["c", "d"]})
    assert isinstance(grouped, ExampleScores) and grouped.columns == ("ab", "cd")
    full = np.arange(50)[None]
    per_column = scored.compute(full)[0]
    assert grouped.compute(full)[0] == pytest.approx([per_column[:2].mean(), per_column[2:].mean()])
    with_nan = ExampleScores(np.where(values > 0, values, np.nan), ("a", "b", "c", "d"))
    resampled = group_metric(with_nan, {"ab": ["a", "b"]})
    assert resampled is not None and resampled.compute(full)[0] == pytest.approx([1.0])
    assert group_metric(scored, {"x": ["nope"]}) is None


def test_memoized_evaluates_each_chunk_once() -> None:
    calls = []

    def compute(idx: np.ndarray) -> np.ndarray:
        calls.append(1)
        return idx.sum(axis=1).astype(float)

    cached = memoized(compute)
    (idx,) = list(bootstrap_indices(30, 10))
    first = cached(idx)
    again = cached(np.array(idx))  # equal content, another array
    assert np.array_equal(first, again) and len(calls) == 1
    cached(idx[:5])
    assert len(calls) == 2


def test_merged_seeds_equal_the_mean_over_seeds() -> None:
    """Per-class accuracy denominators are the targets', so the leaderboard may resample the
    seed-averaged correctness once instead of each seed."""
    _, target, c0 = _classification(seed=5)
    _, _, c1 = _classification(seed=6)
    seeds = [mean_per_class_accuracy_metric(c, target, 7) for c in (c0, c1)]
    assert seeds[0].merge_key == seeds[1].merge_key
    merged = seeds[0].rebuild((c0 + c1) / 2)
    (idx,) = list(bootstrap_indices(len(target), 40, rng_seed=3))
    want = np.mean([s.compute(idx) for s in seeds], axis=0)
    assert merged.compute(idx) == pytest.approx(want)


def test_merged_mean_per_class_accuracy_is_exact_and_order_free() -> None:
    """Seed means k / 3 are summed as integer numerators: each class's accuracy is the correctly
    rounded fraction, so the value does not depend on the order of the examples (a float sum of
    thirds would), and equals the exact rational computation."""
    from fractions import Fraction

    rng = np.random.default_rng(11)
    n, c = 240, 6
    target = rng.integers(0, c, n)
    runs = (rng.random((3, n)) < 0.55).astype(float)
    mean = runs.mean(axis=0)
    metric = mean_per_class_accuracy_metric(runs[0], target, c).rebuild(mean)
    (idx,) = list(bootstrap_indices(n, 60, rng_seed=5))
    got = metric.compute(idx)
    order = rng.permutation(n)  # the same examples, stored in another order
    shuffled = mean_per_class_accuracy_metric(runs[0][order], target[order], c).rebuild(
        mean[order])
    position = np.argsort(order)  # example i now sits at position[i]
    assert shuffled.compute(position[idx]).tolist() == got.tolist()
    hits = runs.sum(axis=0).astype(int)
    for row, value in zip(idx, got, strict=True):
        accs = [float(Fraction(int(hits[row][target[row] == k].sum()),
                               3 * int((target[row] == k).sum())))
                for k in range(c) if (target[row] == k).any()]  # fmt: skip
        assert value == np.sum(accs) / len(accs)


def test_batched_comparisons_equal_one_at_a_time(tmp_path, monkeypatch) -> None:
    """compare_all (every linear bootstrap of many comparisons in shared products, in rounds
    bounded by memory) gives each comparison exactly what compare gives it alone: two tasks of
    different test-set sizes, 3 seeds (means k / 3), one backbone with a run's examples in
    another order (its seeds are not merged, so mean per-class accuracy takes the callable
    route), and a damaged predictions file on one run."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_records import logits_with_correct, write_classification_run

    from benchmark.leaderboard import compare as compare_module
    from benchmark.leaderboard.collect import collect, group_settings
    from benchmark.leaderboard.pairs import find_pairs
    from benchmark.stats import reuse_replicates

    rng = np.random.default_rng(2)
    names = [f"c{i}" for i in range(5)]
    for task, n in (("cifar10", 60), ("sun397", 85)):
        target = np.arange(n) % 5
        for data, rate in (("original", 0.7), ("blurred", 0.6)):
            for arch in ("resnet18", "resnet50"):
                for seed in range(3):
                    logits = logits_with_correct(target, rng.random(n) < rate, 5, rng)
                    ids = [f"test/{i}" for i in range(n)]
                    order = np.arange(n)
                    if arch == "resnet50" and data == "blurred" and seed == 1:
                        order = rng.permutation(n)  # same examples, another order
                    write_classification_run(
                        tmp_path, f"{data}_{arch}", arch, data, seed, logits[order],
                        target[order], names, task=task, example_ids=[ids[i] for i in order])
    damaged = next(tmp_path.glob("runs/sun397/*/original_resnet18/seed2*"))
    (damaged / "predictions.npz").write_bytes(b"PK\x03\x04 not an archive")
    runs, problems, _ = collect(tmp_path)
    settings = group_settings(runs, problems)
    found = find_pairs(settings, [], problems)
    assert len(found) == 4

    def statistics(comparisons: list) -> str:
        return repr([(c.metrics, c.columns, c.notes, c.n_examples, c.seeds_paired)
                     for c in comparisons])  # fmt: skip

    with reuse_replicates():
        alone = [compare_module.compare(*item, compare_module.RunScoreLoader([]), 400, 0.95, 1)
                 for item in found]  # fmt: skip
    with reuse_replicates():
        together = compare_module.compare_all(found, compare_module.RunScoreLoader([]), 400,
                                              0.95, 1)  # fmt: skip
    monkeypatch.setattr(compare_module, "_HELD_JOB_BYTES", 1)  # a round per job
    small_rounds = compare_module.compare_all(found, compare_module.RunScoreLoader([]), 400,
                                              0.95, 1)  # fmt: skip
    assert statistics(together) == statistics(alone) == statistics(small_rounds)
    assert any(m.metric == "mean_per_class_accuracy" and m.paired is not None
               for c in together for m in c.metrics)  # fmt: skip


def test_mean_per_class_accuracy_keeps_no_dense_weights() -> None:
    """The dense [N, 2C] weights of the linear form are built for the job that asks and not
    kept by the metric, which lives as long as the build (found by review: 10 MB per run at
    Flowers-102 size)."""
    _, target, correct = _classification(n=300, c=7)
    metric = mean_per_class_accuracy_metric(correct, target, 7)
    assert metric.linear is not None
    first, second = metric.linear(), metric.linear()
    assert first is not None and second is not None
    assert first[0] is not second[0] and first[0].shape == (300, 14)
    cells = [c.cell_contents for c in metric.compute.__closure__ or ()]
    cells += [v for c in cells if isinstance(c, dict) for v in c.values()]
    assert not any(isinstance(v, np.ndarray) and v.ndim == 2 for v in cells)


def test_mean_per_class_accuracy_both_routes_equal_scikit_learns_balanced_accuracy() -> None:
    """On resampled test sets, the bincount route (compute) and the linear-job route
    (finish(counts @ weights), what the leaderboard batches) both give scikit-learn's
    balanced_accuracy_score of the resampled labels and predictions (the mean recall over the
    classes present)."""
    from sklearn.metrics import balanced_accuracy_score

    from benchmark.stats import multiplicities

    logits, target, correct = _classification(n=240, c=7, seed=4)
    predicted = logits.argmax(1)
    metric = mean_per_class_accuracy_metric(correct, target, 7)
    linear = metric.linear()
    assert linear is not None
    weights, finish = linear
    (idx,) = list(bootstrap_indices(len(target), 40, rng_seed=9))
    by_bincount = metric.compute(idx)
    by_product = finish(multiplicities(idx, len(target)) @ weights)
    want = [balanced_accuracy_score(target[row], predicted[row]) for row in idx]
    np.testing.assert_allclose(by_bincount, want, rtol=0, atol=1e-12)
    assert by_product.tolist() == by_bincount.tolist()


def test_per_class_accuracy_made_on_use_equals_scikit_learns_recall_per_class() -> None:
    """The leaderboard's per-class accuracy of a run (built from its score arrays, its [N, C]
    scores made when a comparison uses them) on resampled test sets: scikit-learn's
    recall_score per class of the resampled labels and predictions, NaN for a class the
    resample lacks."""
    from sklearn.metrics import recall_score

    from benchmark.analysis.classification import classification_scores_from_arrays
    from benchmark.scores import MadeExampleScores

    logits, target, _ = _classification(n=120, c=7, seed=5)
    target[target == 6] = 5
    target[0] = 6  # one example of class 6: missing from about a third of the resamples
    predicted = logits.argmax(1)
    arrays = {"example_id": np.arange(len(target)), "target": target.astype(np.int64),
              "correct": predicted == target, "num_classes": np.asarray(7, np.int64)}  # fmt: skip
    record = type("Record", (), {"class_names": list("abcdefg"), "metrics": {}})()
    scored = classification_scores_from_arrays(arrays, record).metrics["per_class_accuracy"]
    assert isinstance(scored, MadeExampleScores)
    (idx,) = list(bootstrap_indices(len(target), 30, rng_seed=3))
    got = scored.compute(idx)
    for row, values in zip(idx, got, strict=True):
        want = recall_score(target[row], predicted[row], labels=list(range(7)), average=None,
                            zero_division=np.nan)  # fmt: skip
        np.testing.assert_allclose(values, want, rtol=0, atol=1e-12)
    assert np.isnan(got[:, 6]).any() and not np.isnan(got[:, 6]).all()
