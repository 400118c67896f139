"""Multi-label classification (CelebA's 40 attributes), analysis side: the metrics and the
per-example scores of the leaderboard's paired bootstrap, from the saved logits.

A prediction is positive when its logit is above 0 (probability 0.5). Balanced accuracy is the
mean of the recalls of the classes present in the test targets (scikit-learn's definition).
Average precision is scikit-learn's, on the raw logits (ranks only; no sigmoid, which would tie
confident logits). An attribute without positive test examples has no average precision: it is
``null`` in the record and left out of the means (on the full CelebA test set every attribute has
positives). The metrics are computed from the saved ``predictions.npz`` arrays, so scikit-learn
on that file gives back the record's numbers exactly. numpy and scikit-learn only (no torch):
the runner records these numbers and the leaderboard recomputes them with the same code.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.analysis.classification import load_logit_predictions, record_class_names
from benchmark.metrics import json_number, mean_of_defined, register_metric
from benchmark.scores import (
    ExampleScores,
    ResampledMetric,
    RunScores,
    Scored,
    average_precision_metric,
    group_metric,
    memoized,
    multiplicities,
    nanmean_rows,
)

if TYPE_CHECKING:  # the type only: pydantic (through run_record) costs a warm leaderboard,
    # which reads no record, 0.1 s of start-up
    from benchmark.run_record import RunRecord

# --- metrics: predictions are logits [N, K], targets are 0/1 [N, K] ---


def _binary_counts(logits: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Integer [K] counts per attribute: tp, fp, tn, fn (prediction: logit > 0). Counted by hand
    for all attributes in one pass; the ratios of these integers are scikit-learn's
    ``accuracy_score`` / ``balanced_accuracy_score`` per column exactly (tested)."""
    predicted = np.asarray(logits) > 0
    positive = np.asarray(targets) > 0
    return {
        "tp": (predicted & positive).sum(axis=0),
        "fp": (predicted & ~positive).sum(axis=0),
        "tn": (~predicted & ~positive).sum(axis=0),
        "fn": (~predicted & positive).sum(axis=0),
    }


def _per_attribute_accuracy(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    c = _binary_counts(logits, targets)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (c["tp"] + c["tn"]) / (c["tp"] + c["fp"] + c["tn"] + c["fn"])


def _per_attribute_balanced_accuracy(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean of the recalls of the classes (negative, positive) present in the targets."""
    c = _binary_counts(logits, targets)
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN for a class without examples
        recalls = np.stack([c["tn"] / (c["tn"] + c["fp"]), c["tp"] / (c["tp"] + c["fn"])], axis=1)
    return np.array([mean_of_defined(row) for row in recalls], dtype=np.float64)


def _per_attribute_average_precision(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """scikit-learn's step-wise (uninterpolated) AP per attribute on the raw logits, NaN where
    there are no positives. AP depends on ranks only; a sigmoid first would round logits above
    ~37 to exactly 1.0 and tie them (logits [40, 50, -1], labels [0, 1, 0]: AP 0.5, not 1)."""
    from sklearn.metrics import average_precision_score  # only this metric needs scikit-learn

    scores, positive = np.asarray(logits), np.asarray(targets) > 0
    return np.array(
        [
            average_precision_score(positive[:, j], scores[:, j]) if positive[:, j].any()
            else math.nan
            for j in range(positive.shape[1])
        ],
        dtype=np.float64,
    )  # fmt: skip


def _by_name(values: np.ndarray, class_names: list[str]) -> dict[str, float | None]:
    return {n: json_number(v) for n, v in zip(class_names, values.tolist(), strict=True)}


def _per_group(
    values: np.ndarray, class_names: list[str], groups: dict[str, list[str]] | None, name: str
) -> dict[str, float | None]:
    if groups is None:
        raise ValueError(f"{name} needs the task's groups: compute_metrics(..., groups=...)")
    index = {n: i for i, n in enumerate(class_names)}
    return {
        group: json_number(mean_of_defined(values[[index[m] for m in members]]))
        for group, members in groups.items()
    }


@register_metric("multilabel", "mean_attribute_accuracy")
def mean_attribute_accuracy(logits: Any, targets: Any, class_names: list[str]) -> float | None:
    return json_number(mean_of_defined(_per_attribute_accuracy(logits, targets)))


@register_metric("multilabel", "per_attribute_accuracy")
def per_attribute_accuracy(logits: Any, targets: Any, class_names: list[str]) -> dict:
    return _by_name(_per_attribute_accuracy(logits, targets), class_names)


@register_metric("multilabel", "balanced_accuracy")
def balanced_accuracy(logits: Any, targets: Any, class_names: list[str]) -> float | None:
    return json_number(mean_of_defined(_per_attribute_balanced_accuracy(logits, targets)))


@register_metric("multilabel", "per_attribute_balanced_accuracy")
def per_attribute_balanced_accuracy(logits: Any, targets: Any, class_names: list[str]) -> dict:
    return _by_name(_per_attribute_balanced_accuracy(logits, targets), class_names)


@register_metric("multilabel", "mean_average_precision")
def mean_average_precision(logits: Any, targets: Any, class_names: list[str]) -> float | None:
    return json_number(mean_of_defined(_per_attribute_average_precision(logits, targets)))


@register_metric("multilabel", "per_attribute_average_precision")
def per_attribute_average_precision(logits: Any, targets: Any, class_names: list[str]) -> dict:
    return _by_name(_per_attribute_average_precision(logits, targets), class_names)


def eleven_point_ap(scores: np.ndarray, positive: np.ndarray,
                    weights: np.ndarray | None = None) -> np.ndarray:
    """PASCAL VOC2007's 11-point interpolated AP per column ``[R, K]`` (R weightings of the
    examples, e.g. bootstrap multiplicities; one unweighted row by default), NaN for a column
    without positives.

    The VOC07 devkit's rule (``VOCevalcls.m``): the mean over recall levels 0, 0.1, ..., 1 of
    the highest precision at a recall at least that level (the detection evaluator's thresholds,
    floating-point warts included). Tied scores are one threshold (as in
    scikit-learn's AP), where the devkit would order them arbitrarily. Written by hand because
    neither scikit-learn nor torchmetrics has the 11-point variant; checked against
    scikit-learn's precision-recall curve under the devkit's rule
    (tests/test_multilabel_metrics.py).
    """
    scores, pos = np.asarray(scores, dtype=np.float64), np.asarray(positive) > 0
    n, k = pos.shape
    w = np.ones((1, n)) if weights is None else np.asarray(weights, dtype=np.float64)
    out = np.full((w.shape[0], k), np.nan)
    from benchmark.detection.voc_eval import VOC07_RECALL_THRESHOLDS as levels  # one table

    for j in range(k):
        order = np.argsort(-scores[:, j], kind="stable")
        sorted_scores = scores[order, j]
        ends = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
        ww = w[:, order]
        tp = np.cumsum(ww * pos[order, j], axis=1)[:, ends]
        seen = np.cumsum(ww, axis=1)[:, ends]
        total = tp[:, -1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(seen > 0, tp / seen, 0.0)
            recall = tp / total
            reached = [np.where(recall >= t, precision, 0.0).max(axis=1) for t in levels]
        out[:, j] = np.where(total[:, 0] > 0, np.mean(reached, axis=0), np.nan)
    return out


@register_metric("multilabel", "map_voc07_11point")
def map_voc07_11point(logits: Any, targets: Any, class_names: list[str]) -> float | None:
    """VOC2007 classification's mAP: the mean over classes of the 11-point AP of the logits."""
    return json_number(mean_of_defined(eleven_point_ap(logits, targets)[0]))


@register_metric("multilabel", "per_class_ap_voc07_11point")
def per_class_ap_voc07_11point(logits: Any, targets: Any, class_names: list[str]) -> dict:
    return _by_name(eleven_point_ap(logits, targets)[0], class_names)


@register_metric("multilabel", "per_attribute_positive_rate")
def per_attribute_positive_rate(logits: Any, targets: Any, class_names: list[str]) -> dict:
    """The share of positive test examples: how imbalanced each attribute is (data, not model),
    needed to read its accuracy (97.8% on Bald is what always answering "no" scores)."""
    positive = np.asarray(targets) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return _by_name(positive.sum(axis=0) / len(positive), class_names)


@register_metric("multilabel", "per_group_accuracy")
def per_group_accuracy(
    logits: Any, targets: Any, class_names: list[str], groups: dict | None = None
) -> dict:
    values = _per_attribute_accuracy(logits, targets)
    return _per_group(values, class_names, groups, "per_group_accuracy")


@register_metric("multilabel", "per_group_balanced_accuracy")
def per_group_balanced_accuracy(
    logits: Any, targets: Any, class_names: list[str], groups: dict | None = None
) -> dict:
    values = _per_attribute_balanced_accuracy(logits, targets)
    return _per_group(values, class_names, groups, "per_group_balanced_accuracy")


@register_metric("multilabel", "per_group_average_precision")
def per_group_average_precision(
    logits: Any, targets: Any, class_names: list[str], groups: dict | None = None
) -> dict:
    values = _per_attribute_average_precision(logits, targets)
    return _per_group(values, class_names, groups, "per_group_average_precision")


# --- per-example scores for the leaderboard's paired bootstrap (benchmark.analysis.kinds) ---


def multilabel_scores(run_dir: Path, record: RunRecord) -> RunScores:
    """The record's multi-label metrics, resampleable: accuracies as per-example 0/1 scores,
    balanced accuracy and AP recomputed per resample, per-group views from the task's groups
    (the mean of the members' values, as ``per_group_*`` are)."""
    saved = load_logit_predictions(run_dir)
    logits, positive = saved["logits"].astype(np.float64), saved["target"] > 0
    names = tuple(record_class_names(record, logits.shape[1]))
    correct = ((logits > 0) == positive).astype(np.float64)
    n = len(correct)
    # sums over resampled examples: correct positives, positives, correct negatives, negatives
    parts = np.concatenate([correct * positive, positive, correct * ~positive, ~positive], axis=1)

    def balanced(idx: np.ndarray) -> np.ndarray:
        k = len(names)
        sums = multiplicities(idx, n) @ parts
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls = np.stack([sums[:, :k] / sums[:, k : 2 * k],
                                sums[:, 2 * k : 3 * k] / sums[:, 3 * k :]], axis=2)
        return nanmean_rows(recalls)

    per_balanced = ResampledMetric(memoized(balanced), names)
    ap = average_precision_metric(logits, positive, names)
    per_ap = ResampledMetric(memoized(ap.compute), names)
    per_accuracy = ExampleScores(correct, names)
    per_ap11 = ResampledMetric(
        memoized(lambda idx: eleven_point_ap(logits, positive, multiplicities(idx, n))), names
    )
    metrics: dict[str, Scored] = {
        "map_voc07_11point": ResampledMetric(lambda idx: nanmean_rows(per_ap11.compute(idx))),
        "per_class_ap_voc07_11point": per_ap11,
        "mean_attribute_accuracy": ExampleScores(correct.mean(axis=1)),
        "per_attribute_accuracy": per_accuracy,
        "balanced_accuracy": ResampledMetric(lambda idx: nanmean_rows(per_balanced.compute(idx))),
        "per_attribute_balanced_accuracy": per_balanced,
        "mean_average_precision": ResampledMetric(lambda idx: nanmean_rows(per_ap.compute(idx))),
        "per_attribute_average_precision": per_ap,
    }
    task = record.config.get("task") or {}
    groups = task.get("groups") or {}
    for group_name, source in (("per_group_accuracy", per_accuracy),
                               ("per_group_balanced_accuracy", per_balanced),
                               ("per_group_average_precision", per_ap)):
        grouped = group_metric(source, groups) if groups else None
        if grouped is not None:
            metrics[group_name] = grouped
    return RunScores(example_ids=saved["example_id"], metrics=metrics)
