"""The offline demo: a tiny CIFAR-10 fixture, an untrained checkpoint in the paper's layout, one
real (tiny) fine-tuning run, and its record. Needs no network and no GPU."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmark.backbones import build_architecture
from benchmark.checkpoints import save_imagenet_example_checkpoint
from benchmark.data.cifar import write_cifar10_fixture
from benchmark.runner import RunOutcome, RunRequest, execute

DEMO_ARCH = "resnet18"


def run_demo(workdir: Path, results: Path | None = None) -> RunOutcome:
    """The outcome (record and run folder) of the tiny demo run; writes under ``workdir``."""
    workdir = Path(workdir)
    data_root = workdir / "data"
    write_cifar10_fixture(data_root)
    checkpoint = workdir / f"{DEMO_ARCH}_demo_untrained.pth"
    if not checkpoint.exists():
        torch.manual_seed(0)
        save_imagenet_example_checkpoint(
            checkpoint, DEMO_ARCH, build_architecture(DEMO_ARCH).state_dict(), epoch=0
        )
    print(
        f"DEMO: {checkpoint} holds UNTRAINED demo weights (random initialisation) in the paper's "
        f"checkpoint layout, and {data_root} holds a synthetic CIFAR-10 fixture. The numbers "
        f"below show the pipeline works; they say nothing about face blurring."
    )
    return execute(
        RunRequest(
            task="cifar10",
            backbone=str(checkpoint),
            subset="tiny",
            data_root=data_root,
            results=results or workdir / "results",
            max_steps=5,
            accelerator="cpu",
            devices="1",
            num_workers=0,
        )
    )
