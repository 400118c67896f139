"""Multi-label metrics equal scikit-learn's on fixed predictions, including the awkward cases
(an attribute with no positives, one with no negatives, logits that all lie in [0, 1])."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    precision_recall_curve,
)

from benchmark.errors import BenchError
from benchmark.metrics import compute_metrics, metric_names

ATTRS = ["Bald", "Smiling", "Male", "No_Beard", "Young", "Eyeglasses"]
GROUPS = {"hair": ["Bald"], "mouth": ["Smiling"], "whole": ["Male", "Young"],
          "rest": ["No_Beard", "Eyeglasses"]}  # fmt: skip
ALL = [
    "mean_attribute_accuracy", "per_attribute_accuracy", "balanced_accuracy",
    "per_attribute_balanced_accuracy", "mean_average_precision",
    "per_attribute_average_precision", "per_attribute_positive_rate", "per_group_accuracy",
    "per_group_balanced_accuracy", "per_group_average_precision",
]  # fmt: skip


@pytest.fixture(scope="module")
def fixed() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 60
    targets = (rng.random((n, len(ATTRS))) < [0.0, 0.5, 0.4, 1.0, 0.7, 0.1]).astype(np.int64)
    # informative but imperfect scores, with ties (rounded) and some exact zeros
    logits = np.round(rng.normal(0, 1.5, targets.shape) + 1.2 * (targets * 2 - 1), 1)
    logits[:5, 1] = 0.0
    return logits.astype(np.float32), targets


def _sklearn(logits: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    y, s = targets, logits
    pred = (s > 0).astype(np.int64)
    k = y.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on single-class columns
        bal = [balanced_accuracy_score(y[:, j], pred[:, j]) for j in range(k)]
    ap = [average_precision_score(y[:, j], s[:, j]) if y[:, j].any() else np.nan for j in range(k)]
    return {
        "acc": np.array([accuracy_score(y[:, j], pred[:, j]) for j in range(k)]),
        "bal": np.array(bal),
        "ap": np.array(ap),
    }


def _mean_defined(values: np.ndarray) -> float | None:
    defined = [v for v in values.tolist() if not np.isnan(v)]
    return float(np.mean(defined)) if defined else None


def test_every_multilabel_metric_is_registered() -> None:
    assert set(ALL) <= set(metric_names("multilabel"))


def test_metrics_equal_scikit_learn_exactly(fixed) -> None:
    """Not approximately: the record is meant to be recomputed by anyone with scikit-learn."""
    logits, targets = fixed
    got = compute_metrics("multilabel", ALL, logits, targets, ATTRS, groups=GROUPS)
    ref = _sklearn(logits, targets)
    nan_to_none = [None if np.isnan(v) else v for v in ref["ap"].tolist()]

    assert got["per_attribute_accuracy"] == dict(zip(ATTRS, ref["acc"].tolist(), strict=True))
    assert got["mean_attribute_accuracy"] == np.mean(ref["acc"])
    assert got["per_attribute_balanced_accuracy"] == dict(zip(ATTRS, ref["bal"].tolist(),
                                                              strict=True))  # fmt: skip
    assert got["balanced_accuracy"] == np.mean(ref["bal"])
    # Bald has no positive: AP undefined -> null, and left out of the mean
    assert got["per_attribute_average_precision"] == dict(zip(ATTRS, nan_to_none, strict=True))
    assert got["per_attribute_average_precision"]["Bald"] is None
    assert got["mean_average_precision"] == _mean_defined(ref["ap"])
    # the all-positive attribute (No_Beard) has AP 1
    assert got["per_attribute_average_precision"]["No_Beard"] == 1.0
    rates = [int(c) / len(targets) for c in targets.sum(axis=0)]
    assert got["per_attribute_positive_rate"] == dict(zip(ATTRS, rates, strict=True))

    index = {a: j for j, a in enumerate(ATTRS)}
    for metric, key in (("per_group_accuracy", "acc"), ("per_group_balanced_accuracy", "bal"),
                        ("per_group_average_precision", "ap")):  # fmt: skip
        expected = {g: _mean_defined(ref[key][[index[m] for m in members]])
                    for g, members in GROUPS.items()}  # fmt: skip
        assert got[metric] == expected


def test_average_precision_takes_raw_logits_without_saturating() -> None:
    """A sigmoid rounds logits above ~37 to exactly 1.0 even in float64, tying 40 with 50: AP
    must rank the logits themselves, as scikit-learn on the raw scores does."""
    logits = np.array([[40.0, 40.0], [50.0, 50.0], [-1.0, -1.0]], dtype=np.float32)
    targets = np.array([[0, 0], [1, 1], [0, 0]])
    got = compute_metrics("multilabel", ["per_attribute_average_precision"], logits, targets,
                          ["a", "b"])["per_attribute_average_precision"]  # fmt: skip
    assert average_precision_score(targets[:, 0], logits[:, 0]) == 1.0
    assert got == {"a": 1.0, "b": 1.0}  # the sigmoid path gave 0.5


def test_average_precision_equals_scikit_learn_on_confident_logits() -> None:
    """Random logits in the +-60 range (a confident, overfit head), float32 as saved."""
    rng = np.random.default_rng(3)
    targets = (rng.random((200, 5)) < 0.4).astype(np.int64)
    logits = np.clip(rng.normal(0, 25, targets.shape) + 20 * (2 * targets - 1), -60, 60)
    logits = logits.astype(np.float32)
    assert (np.abs(logits) > 37).mean() > 0.2  # many would saturate a sigmoid
    names = list("abcde")
    got = compute_metrics("multilabel", ["per_attribute_average_precision",
                                         "mean_average_precision"], logits, targets, names)
    ref = [average_precision_score(targets[:, j], logits[:, j]) for j in range(5)]
    assert got["per_attribute_average_precision"] == dict(zip(names, ref, strict=True))
    assert got["mean_average_precision"] == np.mean(ref)


def test_logits_inside_zero_one_are_still_logits() -> None:
    """torchmetrics treats floats in [0, 1] as probabilities; a logit of 0.3 must still count
    as positive (probability 0.57), as scikit-learn on ``logits > 0`` says."""
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    logits = np.array([[0.3, 0.2], [0.1, 0.9], [0.4, 0.6], [0.05, 0.01]], dtype=np.float32)
    got = compute_metrics("multilabel", ["per_attribute_accuracy"], logits, targets, ["a", "b"])
    ref = _sklearn(logits, targets)
    assert list(got["per_attribute_accuracy"].values()) == ref["acc"].tolist()
    # every prediction is positive; thresholding these as probabilities would give b = 1.0
    assert got["per_attribute_accuracy"] == {"a": 0.5, "b": 0.5}


def test_group_metrics_need_groups(fixed) -> None:
    logits, targets = fixed
    with pytest.raises(ValueError, match="needs the task's groups"):
        compute_metrics("multilabel", ["per_group_accuracy"], logits, targets, ATTRS)


def test_module_loss_is_bce_with_logits_and_groups_are_checked() -> None:
    import torchvision

    from benchmark.models.multilabel import MultiLabelModule
    from benchmark.tasks import apply_overrides, get_task

    task = get_task("celeba")
    names = [a for members in task.groups.values() for a in members]
    module = MultiLabelModule(torchvision.models.resnet18(), task, names)
    logits = torch.randn(4, 40)
    targets = (torch.rand(4, 40) > 0.5).long()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets.float())
    assert module.loss(logits, targets) == pytest.approx(float(expected))

    bad = apply_overrides(task, {"groups.eyes": ["Arched_Eyebrow"]})
    with pytest.raises(BenchError, match="groups.eyes names 'Arched_Eyebrow'.*Arched_Eyebrows"):
        MultiLabelModule(torchvision.models.resnet18(), bad, names)


def _sklearn_eleven_point(positive: np.ndarray, scores: np.ndarray) -> float:
    """VOC07's 11-point AP from scikit-learn's precision-recall curve: at each recall level of
    the devkit's loop (``np.arange(0., 1.1, 0.1)``, as py-faster-rcnn's ``voc_ap``), the
    highest precision at a recall at least that level (0 where none is)."""
    precision, recall, _ = precision_recall_curve(positive, scores)
    precision, recall = precision[:-1], recall[:-1]  # the appended (recall 0, precision 1)
    return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                          for t in np.arange(0.0, 1.1, 0.1)]))  # fmt: skip


def test_eleven_point_ap_equals_scikit_learn_curve_with_the_devkit_rule() -> None:
    """`map_voc07_11point` (VOC 2007 classification) against scikit-learn's precision-recall
    curve, unweighted and with bootstrap multiplicities (= repeated examples); a class without
    positives is NaN and left out of the mean."""
    from benchmark.analysis.multilabel import eleven_point_ap

    rng = np.random.default_rng(11)
    n, k = 80, 5
    positive = (rng.random((n, k)) < [0.1, 0.3, 0.5, 0.7, 0.0]).astype(np.int64)
    scores = rng.normal(0, 1, (n, k)) + 1.5 * positive  # continuous: no ties
    ours = eleven_point_ap(scores, positive)[0]
    expected = [_sklearn_eleven_point(positive[:, j], scores[:, j]) for j in range(k - 1)]
    assert np.allclose(ours[:-1], expected, rtol=0, atol=1e-12) and np.isnan(ours[-1])
    names = [f"c{j}" for j in range(k)]
    result = compute_metrics("multilabel", ["map_voc07_11point"], torch.tensor(scores),
                             torch.tensor(positive), names)  # fmt: skip
    assert result["map_voc07_11point"] == pytest.approx(np.mean(expected), abs=1e-12)
    weights = rng.integers(0, 3, (3, n))  # three bootstrap-like multiplicity rows
    weighted = eleven_point_ap(scores, positive, weights)
    for row, w in zip(weighted, weights, strict=True):
        for j in range(k - 1):
            y, s = np.repeat(positive[:, j], w), np.repeat(scores[:, j], w)
            if y.any():
                assert row[j] == pytest.approx(_sklearn_eleven_point(y, s), abs=1e-12)
