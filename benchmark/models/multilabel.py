"""Multi-label classification (CelebA's 40 attributes): BCE with logits, per-attribute metrics.

Everything a fine-tuning run shares (optimiser, schedule, protocol, test gathering) is
:class:`FineTuneModule`'s; this module says only what differs: one independent sigmoid per
attribute, and metrics per attribute, averaged over attributes and over the task's attribute
groups (face regions), so a difference between two backbones can be read where it happens.

A prediction is positive when its logit is above 0 (probability 0.5). Balanced accuracy is the
mean of the recalls of the classes present in the test targets (scikit-learn's definition).
Average precision is scikit-learn's, on the raw logits (ranks only; no sigmoid, which would tie
confident logits). An attribute without positive test examples has no average precision: it is
``null`` in the record and left out of the means (on the full CelebA test set every attribute has
positives). The metrics are computed from the saved ``predictions.npz`` arrays, so scikit-learn
on that file gives back the record's numbers exactly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from torch import nn
from torchmetrics.classification import MultilabelAccuracy

from benchmark.data.classification import ClassificationDataModule
from benchmark.errors import BenchError, closest_names
from benchmark.kinds import (
    KindSpec,
    load_logit_predictions,
    logit_metric_inputs,
    logit_prediction_arrays,
    record_class_names,
    register_kind,
)
from benchmark.metrics import json_number, mean_of_defined, register_metric
from benchmark.models.finetune import FineTuneModule
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
from benchmark.tasks import Task


class MultiLabelModule(FineTuneModule):
    def __init__(self, network: nn.Module, task: Task, class_names: list[str]) -> None:
        if len(class_names) != task.num_classes:
            raise BenchError(
                f"task {task.name}: the data names {len(class_names)} attributes, the task "
                f"says num_classes {task.num_classes}."
            )
        check_groups(task.groups, class_names, task.name)
        super().__init__(network, task, class_names)
        self.criterion = nn.BCEWithLogitsLoss()
        self.val_accuracy = MultilabelAccuracy(num_labels=task.num_classes, average="macro")

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits, targets.float())

    def update_val_metric(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        # probabilities, not logits: torchmetrics applies a sigmoid only when a batch happens
        # to hold values outside [0, 1], which would make the threshold batch-dependent
        self.val_accuracy(logits.sigmoid(), targets)
        self.log("val_mean_attribute_accuracy", self.val_accuracy, prog_bar=True)


def check_groups(groups: dict[str, list[str]], class_names: list[str], task: str) -> None:
    """Group members must be attribute names; a typo would silently shrink a region."""
    known = set(class_names)
    for group, members in groups.items():
        unknown = [m for m in members if m not in known]
        if unknown:
            raise BenchError(
                f"task {task}: groups.{group} names {unknown[0]!r}, which is not an attribute."
                + closest_names(unknown[0], class_names)
            )


# --- metrics: predictions are logits [N, K], targets are 0/1 [N, K] ---
# numpy and scikit-learn only (no torch), on the arrays predictions.npz holds: this section can
# move to the analysis side as it is.


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


# --- per-example scores for the leaderboard's paired bootstrap (KindSpec.scores) ---


def multilabel_scores(run_dir: Path, record: dict[str, Any]) -> RunScores:
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
    metrics: dict[str, Scored] = {
        "mean_attribute_accuracy": ExampleScores(correct.mean(axis=1)),
        "per_attribute_accuracy": per_accuracy,
        "balanced_accuracy": ResampledMetric(lambda idx: nanmean_rows(per_balanced.compute(idx))),
        "per_attribute_balanced_accuracy": per_balanced,
        "mean_average_precision": ResampledMetric(lambda idx: nanmean_rows(per_ap.compute(idx))),
        "per_attribute_average_precision": per_ap,
    }
    task = (record.get("config") or {}).get("task") or {}
    groups = task.get("groups") or {}
    for group_name, source in (("per_group_accuracy", per_accuracy),
                               ("per_group_balanced_accuracy", per_balanced),
                               ("per_group_average_precision", per_ap)):
        grouped = group_metric(source, groups) if groups else None
        if grouped is not None:
            metrics[group_name] = grouped
    return RunScores(example_ids=saved["example_id"], metrics=metrics)


register_kind(
    "multilabel",
    KindSpec(
        datamodule=ClassificationDataModule,
        module=MultiLabelModule,
        prediction_arrays=logit_prediction_arrays,
        metric_inputs=logit_metric_inputs,
        scores=multilabel_scores,
    ),
)
