"""What every image fine-tuning module shares: optimiser, schedule, protocol, test outputs.

Subclasses say only what differs by task kind: the loss, the validation metric, and how test
predictions are turned into the task's metrics.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from benchmark.models.heads import replace_head
from benchmark.tasks import Task


class FineTuneModule(pl.LightningModule):
    """A pretrained network with a new head, trained by the task's protocol.

    ``protocol: finetune`` trains every parameter; ``linear`` trains only the head, with the
    backbone frozen and its BatchNorm statistics fixed (a linear probe).
    """

    def __init__(self, network: nn.Module, task: Task, class_names: list[str]) -> None:
        super().__init__()
        self.task = task
        self.class_names = class_names
        self.network = network
        self.head_name = replace_head(self.network, self.num_outputs())
        if task.protocol == "linear":
            for name, param in self.network.named_parameters():
                param.requires_grad = name.startswith(self.head_name + ".")
        self._test_chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.test_outputs: dict[str, torch.Tensor] = {}

    def num_outputs(self) -> int:
        return self.task.num_classes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """A linear probe keeps the backbone in eval mode (BatchNorm statistics fixed).

        Done per batch, not by overriding ``train()``: Lightning restores each submodule's
        mode after validation on its own, bypassing an override.
        """
        if self.task.protocol == "linear":
            for name, module in self.network.named_modules():
                if name and not name.startswith(self.head_name):
                    module.eval()

    # --- to be specialised by kind ---
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update_val_metric(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        raise NotImplementedError

    # --- Lightning hooks ---
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, targets, _ = batch
        loss = self.loss(self(images), targets)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, targets, _ = batch
        logits = self(images)
        self.log("val_loss", self.loss(logits, targets), prog_bar=True, sync_dist=True)
        self.update_val_metric(logits, targets)

    def on_test_epoch_start(self) -> None:
        self._test_chunks = []

    def test_step(self, batch: Any, batch_idx: int) -> None:
        images, targets, positions = batch
        logits = self(images).float()
        self._test_chunks.append((positions, logits.detach(), targets))

    def on_test_epoch_end(self) -> None:
        """Gather predictions from every process and drop the padding DistributedSampler adds,
        keyed by example position, so the saved predictions cover each test example once."""
        chunks = zip(*self._test_chunks, strict=True)
        positions, logits, targets = (torch.cat(parts) for parts in chunks)
        if self.trainer.world_size > 1:
            positions, logits, targets = (
                t.flatten(0, 1) for t in self.all_gather((positions, logits, targets))
            )
        order = torch.argsort(positions, stable=True)
        positions, logits, targets = positions[order], logits[order], targets[order]
        keep = torch.ones_like(positions, dtype=torch.bool)
        keep[1:] = positions[1:] != positions[:-1]
        self.test_outputs = {
            "positions": positions[keep].cpu(),
            "logits": logits[keep].cpu(),
            "targets": targets[keep].cpu(),
        }

    def configure_optimizers(self) -> Any:
        spec = self.task.optim
        params = [p for p in self.parameters() if p.requires_grad]
        if spec.name == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params,
                lr=spec.lr,
                momentum=spec.momentum,
                nesterov=spec.nesterov and spec.momentum > 0,
                weight_decay=spec.weight_decay,
            )
        else:
            optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_factor(total))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _lr_factor(self, total_steps: int) -> Any:
        """The schedule as a multiplier of the base lr per optimiser step.

        Epoch-based settings (warmup, step milestones) are converted with the task's epoch
        count, so a run shortened by ``--max-steps`` keeps the schedule's shape.
        """
        sched = self.task.schedule
        epochs = self.task.train.epochs
        warmup = round(total_steps * sched.warmup_epochs / epochs)
        milestones = [round(total_steps * e / epochs) for e in sched.step_epochs]

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if sched.name == "cosine":
                progress = (step - warmup) / max(1, total_steps - warmup)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
            if sched.name == "step":
                return sched.gamma ** sum(step >= m for m in milestones)
            return 1.0

        return factor
