"""What every image fine-tuning module shares: optimiser, schedule, protocol, test outputs.

Subclasses say only what differs by task kind: the loss, the validation metric, and how test
predictions are turned into the task's metrics.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from benchmark.errors import BenchError
from benchmark.models.heads import replace_head
from benchmark.tasks import Task

_USUAL_SIZE = 224  # what ImageNet backbones are trained at; fixed-size ones (ViT) need exactly it
_LARGEST_TRIED = 1024


def _forward_error(network: nn.Module, size: int, meta: bool = True) -> Exception | None:
    """The error of one forward pass of two ``size`` x ``size`` images, or ``None``.

    On the ``meta`` device only shapes are computed (no memory, no arithmetic) with stand-in
    parameters; the real pass (``meta=False``) uses the weights as they are and copies of the
    buffers. Either way the network's weights and BatchNorm statistics are untouched.
    """
    if meta:
        state = itertools.chain(network.named_parameters(), network.named_buffers())
        tensors = {name: torch.empty_like(t, device="meta") for name, t in state}
    else:
        tensors = {name: b.clone() for name, b in network.named_buffers()}
    device = "meta" if meta else next(network.parameters()).device
    images = torch.zeros(2, 3, size, size, device=device)
    try:
        with torch.no_grad():
            torch.func.functional_call(network, tensors, (images,))
    except Exception as err:  # any architecture's own complaint about the size
        return err
    return None


def _smallest_working_size(network: nn.Module, above: int) -> int | None:
    """Bisect for the smallest size that works (sizes shrink monotonically through conv nets);
    the usual 224 when bisection finds nothing (a ViT takes only its own size)."""
    low, high = above, _LARGEST_TRIED
    if _forward_error(network, high) is None:
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if _forward_error(network, mid) is None else (mid, high)
        return high
    return _USUAL_SIZE if _forward_error(network, _USUAL_SIZE) is None else None


def check_input_size(network: nn.Module, task: Task) -> None:
    """Refuse, before training, an input size the network cannot take (AlexNet at 32 px):
    otherwise the run fails after setup with a traceback and leaves a failed record."""
    size = task.input.image_size
    if _forward_error(network, size) is None:
        return
    err = _forward_error(network, size, meta=False)  # a missing meta kernel is no verdict
    if err is None:
        return
    fits = _smallest_working_size(network, size)
    flags = "input.image_size={n}" + (" --set input.resize_size={n}" if task.input.resize_size
                                      else "")  # fmt: skip
    hint = (f"the smallest size that works is {fits}: pass --set {flags.format(n=fits)} "
            f"(or {_USUAL_SIZE}, the size ImageNet backbones are trained at)"
            if fits else "it fails at every size tried up to "
            f"{_LARGEST_TRIED}")  # fmt: skip
    detail = " ".join(str(err).split())[:160]
    raise BenchError(
        f"task {task.name}: {type(network).__name__} cannot take {size}x{size} inputs "
        f"(input.image_size={size}; {type(err).__name__}: {detail}); {hint}."
    )


class FineTuneModule(pl.LightningModule):
    """A pretrained network with a new head, trained by the task's protocol.

    ``protocol: finetune`` trains every parameter; ``linear_sgd`` trains only the head with SGD
    and the task's augmentation, the backbone frozen and its BatchNorm statistics fixed (the
    VISSL/MMPretrain "linear eval"). ``linear``, the L-BFGS probe on cached features, trains no
    LightningModule (:mod:`benchmark.protocols.linear`).
    """

    def __init__(self, network: nn.Module, task: Task, class_names: list[str]) -> None:
        super().__init__()
        self.task = task
        self.class_names = class_names
        self.network = network
        self.head_name = replace_head(self.network, self.num_outputs())
        check_input_size(self.network, task)
        if task.protocol == "linear_sgd":
            for name, param in self.network.named_parameters():
                param.requires_grad = name.startswith(self.head_name + ".")
        self._test_chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.test_outputs: dict[str, torch.Tensor] = {}

    def num_outputs(self) -> int:
        return self.task.num_classes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """``linear_sgd`` keeps the backbone in eval mode (BatchNorm statistics fixed).

        Done per batch, not by overriding ``train()``: Lightning restores each submodule's
        mode after validation on its own, bypassing an override.
        """
        if self.task.protocol == "linear_sgd":
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
