"""Multi-label classification (CelebA's 40 attributes): BCE with logits, one sigmoid per attribute.

Everything a fine-tuning run shares (optimiser, schedule, protocol, test gathering) is
:class:`FineTuneModule`'s; this module says only what differs: one independent sigmoid per
attribute. The metrics (per attribute, averaged over attributes and over the task's attribute
groups, i.e. face regions) are the analysis side's, :mod:`benchmark.analysis.multilabel`, so the
leaderboard recomputes them without torch.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import MultilabelAccuracy

from benchmark.data.classification import ClassificationDataModule
from benchmark.errors import BenchError, closest_names
from benchmark.kinds import KindSpec, logit_prediction_arrays, register_kind
from benchmark.models.finetune import FineTuneModule
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


register_kind(
    "multilabel",
    KindSpec(
        datamodule=ClassificationDataModule,
        module=MultiLabelModule,
        prediction_arrays=logit_prediction_arrays,
    ),
)
