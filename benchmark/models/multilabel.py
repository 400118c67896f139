"""Multi-label classification (CelebA's 40 attributes): BCE with logits, per-attribute metrics.

Everything a fine-tuning run shares (optimiser, schedule, protocol, test gathering) is
:class:`FineTuneModule`'s; this module says only what differs: one independent sigmoid per
attribute, and metrics per attribute, averaged over attributes and over the task's attribute
groups (face regions), so a difference between two backbones can be read where it happens.

A prediction is positive when its logit is above 0 (probability 0.5). Balanced accuracy is the
mean of the recalls of the classes present in the test targets (scikit-learn's definition). An
attribute without positive test examples has no average precision: it is ``null`` in the record
and left out of the means (on the full CelebA test set every attribute has positives).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics.classification import MultilabelAccuracy
from torchmetrics.functional.classification import (
    multilabel_average_precision,
    multilabel_stat_scores,
)

from benchmark.data.classification import ClassificationDataModule
from benchmark.errors import BenchError, closest_names
from benchmark.kinds import (
    KindSpec,
    load_logit_predictions,
    record_class_names,
    register_kind,
    save_logit_predictions,
)
from benchmark.metrics import compute_metrics, json_number, register_metric
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

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self.test_outputs["groups"] = {g: list(m) for g, m in self.task.groups.items()}


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


def evaluate_multilabel(
    outputs: dict[str, Any], class_names: list[str], names: list[str]
) -> dict[str, Any]:
    return compute_metrics(
        "multilabel", names, outputs["logits"], outputs["targets"], class_names,
        groups=outputs.get("groups"),
    )  # fmt: skip


# --- metrics: predictions are logits [N, K], targets are 0/1 [N, K] ---


def _stat_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[K, 5] (tp, fp, tn, fn, support) per attribute. Predictions are binarised here
    (logit > 0) so torchmetrics never has to guess whether it was given logits."""
    preds = (logits > 0).long()
    return multilabel_stat_scores(
        preds, targets.long(), num_labels=targets.shape[1], average=None
    ).double()


def _per_attribute_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    tp, fp, tn, fn, _ = _stat_scores(logits, targets).unbind(1)
    return (tp + tn) / (tp + fp + tn + fn)


def _per_attribute_balanced_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    tp, fp, tn, fn, _ = _stat_scores(logits, targets).unbind(1)
    recalls = torch.stack([tp / (tp + fn), tn / (tn + fp)], dim=1)  # NaN for an absent class
    return recalls.nanmean(dim=1)


def _per_attribute_average_precision(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Exact (step-wise, uninterpolated) AP per attribute, NaN where there are no positives.
    Ranks only matter, so float64 keeps large logits from tying after torchmetrics' sigmoid."""
    with warnings.catch_warnings():  # "no positive samples": handled (NaN) just below
        warnings.filterwarnings("ignore", message="No positive samples", category=UserWarning)
        ap = multilabel_average_precision(
            logits.double(), targets.long(), num_labels=targets.shape[1], average=None
        ).double()
    return torch.where(targets.sum(0) > 0, ap, torch.full_like(ap, float("nan")))


def _by_name(values: torch.Tensor, class_names: list[str]) -> dict[str, float | None]:
    return {n: json_number(v) for n, v in zip(class_names, values.tolist(), strict=True)}


def _mean(values: torch.Tensor) -> float:
    defined = values[~torch.isnan(values)]
    return float(defined.mean()) if len(defined) else float("nan")


def _per_group(
    values: torch.Tensor, class_names: list[str], groups: dict[str, list[str]] | None, name: str
) -> dict[str, float | None]:
    if groups is None:
        raise ValueError(f"{name} needs the task's groups: compute_metrics(..., groups=...)")
    index = {n: i for i, n in enumerate(class_names)}
    return {
        group: json_number(_mean(values[[index[m] for m in members]]))
        for group, members in groups.items()
    }


@register_metric("multilabel", "mean_attribute_accuracy")
def mean_attribute_accuracy(logits: Any, targets: Any, class_names: list[str]) -> float:
    return _mean(_per_attribute_accuracy(logits, targets))


@register_metric("multilabel", "per_attribute_accuracy")
def per_attribute_accuracy(logits: Any, targets: Any, class_names: list[str]) -> dict:
    return _by_name(_per_attribute_accuracy(logits, targets), class_names)


@register_metric("multilabel", "balanced_accuracy")
def balanced_accuracy(logits: Any, targets: Any, class_names: list[str]) -> float:
    return _mean(_per_attribute_balanced_accuracy(logits, targets))


@register_metric("multilabel", "per_attribute_balanced_accuracy")
def per_attribute_balanced_accuracy(logits: Any, targets: Any, class_names: list[str]) -> dict:
    return _by_name(_per_attribute_balanced_accuracy(logits, targets), class_names)


@register_metric("multilabel", "mean_average_precision")
def mean_average_precision(logits: Any, targets: Any, class_names: list[str]) -> float:
    return _mean(_per_attribute_average_precision(logits, targets))


@register_metric("multilabel", "per_attribute_average_precision")
def per_attribute_average_precision(logits: Any, targets: Any, class_names: list[str]) -> dict:
    return _by_name(_per_attribute_average_precision(logits, targets), class_names)


@register_metric("multilabel", "per_attribute_positive_rate")
def per_attribute_positive_rate(logits: Any, targets: Any, class_names: list[str]) -> dict:
    """The share of positive test examples: how imbalanced each attribute is (data, not model),
    needed to read its accuracy (97.8% on Bald is what always answering "no" scores)."""
    return _by_name(targets.double().mean(0), class_names)


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
        save_predictions=save_logit_predictions,
        evaluate=evaluate_multilabel,
        scores=multilabel_scores,
    ),
)
