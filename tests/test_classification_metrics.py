"""Single-label metrics are exact ratios of counts, equal to scikit-learn's (not float32)."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score

from benchmark.metrics import compute_metrics

METRICS = ["top1", "mean_per_class_accuracy", "per_class_accuracy"]


def test_two_of_twenty_correct_is_exactly_a_tenth() -> None:
    targets = np.arange(20) % 10
    logits = np.zeros((20, 10), dtype=np.float32)
    logits[np.arange(20), (targets + 1) % 10] = 1.0  # all wrong...
    logits[[0, 1], targets[[0, 1]]] = 2.0  # ...but two
    got = compute_metrics("classification", METRICS, logits, targets, list("abcdefghij"))
    assert got["top1"] == 0.1  # torchmetrics' float32 result was 0.10000000149011612
    assert got["per_class_accuracy"]["a"] == 0.5 and got["per_class_accuracy"]["c"] == 0.0
    assert got["mean_per_class_accuracy"] == 0.1


def test_metrics_equal_scikit_learn_exactly() -> None:
    rng = np.random.default_rng(5)
    c, n = 7, 311
    targets = rng.integers(0, c - 1, n)  # the last class has no test example
    logits = (rng.normal(size=(n, c)) + 1.3 * np.eye(c)[targets]).astype(np.float32)
    names = [f"c{i}" for i in range(c)]
    got = compute_metrics("classification", METRICS, logits, targets, names)
    predicted = logits.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the class without examples
        recall = recall_score(targets, predicted, labels=range(c), average=None,
                              zero_division=np.nan)  # fmt: skip
        balanced = balanced_accuracy_score(targets, predicted)
    assert got["top1"] == accuracy_score(targets, predicted)
    assert got["per_class_accuracy"] == {
        name: None if np.isnan(r) else r for name, r in zip(names, recall.tolist(), strict=True)
    }
    assert got["per_class_accuracy"]["c6"] is None  # no examples: undefined, not 0
    assert got["mean_per_class_accuracy"] == balanced


def test_metric_registry_imports_no_torch() -> None:
    """What reads records (leaderboard, statistics) computes metrics without torch."""
    import subprocess
    import sys

    code = ("import sys, benchmark.metrics; "
            "print(sorted(m for m in ('torch', 'torchmetrics') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
