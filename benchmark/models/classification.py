"""Single-label image classification: cross-entropy, top-1 on validation."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from benchmark.errors import BenchError
from benchmark.models.finetune import FineTuneModule
from benchmark.tasks import Task


class ClassificationModule(FineTuneModule):
    def __init__(self, network: nn.Module, task: Task, class_names: list[str]) -> None:
        if len(class_names) != task.num_classes:  # else a wrong-sized head fails after training
            raise BenchError(
                f"task {task.name}: the data has {len(class_names)} classes, the task says "
                f"num_classes {task.num_classes}; point --data-root at the complete dataset, or "
                f"--set num_classes={len(class_names)} if the smaller set is intended."
            )
        super().__init__(network, task, class_names)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=task.train.label_smoothing)
        self.val_top1 = MulticlassAccuracy(num_classes=task.num_classes, average="micro")

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits, targets)

    def update_val_metric(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.val_top1(logits, targets)
        self.log("val_top1", self.val_top1, prog_bar=True)
