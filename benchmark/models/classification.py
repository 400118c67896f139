"""Single-label image classification: cross-entropy, top-1 on validation."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from benchmark.models.finetune import FineTuneModule
from benchmark.tasks import Task


class ClassificationModule(FineTuneModule):
    def __init__(self, network: nn.Module, task: Task, class_names: list[str]) -> None:
        super().__init__(network, task, class_names)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=task.train.label_smoothing)
        self.val_top1 = MulticlassAccuracy(num_classes=task.num_classes, average="micro")

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits, targets)

    def update_val_metric(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.val_top1(logits, targets)
        self.log("val_top1", self.val_top1, prog_bar=True)
