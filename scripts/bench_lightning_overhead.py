"""Time a fine-tuning step through blurbench's LightningModule + Trainer against a plain PyTorch
loop on the same model, data, batch size and precision.

The Lightning side uses the runner's own Trainer configuration (`make_trainer`: CSV logger,
progress bar, loss history), so the figure is the overhead a real `bench run` pays.
Timing window: from the start of step `--warmup` to the end of the last step, with one device
synchronisation at each end, so steps overlap as they do in real training.

    python scripts/bench_lightning_overhead.py                         # CPU defaults
    python scripts/bench_lightning_overhead.py --arch resnet50 --batch-size 128 --image-size 224 \
        --precision bf16 --channels-last --steps 60                    # GPU
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torchvision
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader, Dataset

from benchmark.models.classification import ClassificationModule
from benchmark.runner import LossHistory, RunRequest, make_trainer
from benchmark.tasks import apply_overrides, get_task


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PrebuiltBatches(Dataset):
    """Ready batches already on the device, so both loops time the training step itself and
    neither is starved by collation (the input pipeline is the same code for both anyway)."""

    def __init__(self, batches: list[tuple[torch.Tensor, ...]], length: int) -> None:
        self.batches, self.length = batches, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return self.batches[i % len(self.batches)]


class WindowTimer(Callback):
    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device = warmup, device
        self.start = self.end = 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        if trainer.global_step == self.warmup:
            _sync(self.device)
            self.start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, *_: Any) -> None:
        _sync(self.device)
        self.end = time.perf_counter()


class _ChannelsLast(ClassificationModule):
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        images, targets, positions = batch
        return images.contiguous(memory_format=torch.channels_last), targets, positions


def time_lightning(network, task, loader, args, device) -> float:
    module_cls = _ChannelsLast if args.channels_last else ClassificationModule
    module = module_cls(copy.deepcopy(network), task, [str(i) for i in range(task.num_classes)])
    if args.channels_last:
        module = module.to(memory_format=torch.channels_last)
    timer = WindowTimer(args.warmup, device)
    request = RunRequest(
        task=task.name, backbone="-", accelerator="gpu" if device.type == "cuda" else "cpu",
        devices="1", precision="bf16-mixed" if args.precision == "bf16" else "32-true",
        max_steps=args.steps,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as workdir:
        callbacks = [LossHistory(print_every=10**9), timer]
        trainer = make_trainer(request, task.train.epochs, Path(workdir), callbacks)
        trainer.fit(module, train_dataloaders=loader)
    return (timer.end - timer.start) / (args.steps - args.warmup)


def time_plain(network, task, loader, args, device) -> float:
    from benchmark.models.heads import replace_head

    model = copy.deepcopy(network)
    replace_head(model, task.num_classes)
    model = model.to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    spec = task.optim
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum,
                                nesterov=spec.nesterov, weight_decay=spec.weight_decay)  # fmt: skip
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    criterion = torch.nn.CrossEntropyLoss()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    step, start = 0, 0.0
    while step < args.steps:
        for images, targets, _ in loader:
            if step == args.warmup:
                _sync(device)
                start = time.perf_counter()
            images = images.to(device, non_blocking=True)
            if args.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            targets = targets.to(device, non_blocking=True)
            with autocast:
                loss = criterion(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step == args.steps:
                break
    _sync(device)
    return (time.perf_counter() - start) / (args.steps - args.warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternating plain/Lightning rounds")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    task = apply_overrides(get_task("cifar10"), {"train.batch_size": args.batch_size})
    torch.manual_seed(0)
    network = torchvision.models.get_model(args.arch, weights=None)
    batches = [
        (
            torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device),
            torch.randint(0, task.num_classes, (args.batch_size,), device=device),
            torch.arange(args.batch_size, device=device),
        )
        for _ in range(4)
    ]
    loader = DataLoader(PrebuiltBatches(batches, args.steps), batch_size=None)

    plain, lightning = [], []
    for _ in range(args.rounds):
        plain.append(time_plain(network, task, loader, args, device))
        lightning.append(time_lightning(network, task, loader, args, device))
    p, lt = statistics.median(plain), statistics.median(lightning)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; torch {torch.__version__}; {args.arch}, batch {args.batch_size}, "
          f"{args.image_size}px, precision {args.precision}, channels_last {args.channels_last}, "
          f"{args.steps - args.warmup} timed steps x {args.rounds} rounds")  # fmt: skip
    print(f"plain PyTorch : {1000 * p:8.1f} ms/step  {args.batch_size / p:9.1f} images/s  "
          f"(rounds: {', '.join(f'{1000 * v:.1f}' for v in plain)})")
    print(f"Lightning     : {1000 * lt:8.1f} ms/step  {args.batch_size / lt:9.1f} images/s  "
          f"(rounds: {', '.join(f'{1000 * v:.1f}' for v in lightning)})")
    print(f"ratio Lightning / plain = {lt / p:.3f}")


if __name__ == "__main__":
    main()
