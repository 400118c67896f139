"""Shared test fixtures: tiny datasets in their real formats and checkpoints in real layouts.

Session-scoped so the suite writes each once; tests that modify data copy it first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from benchmark.checkpoints import save_imagenet_example_checkpoint
from benchmark.data.cifar import write_cifar10_fixture


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar-data")
    write_cifar10_fixture(root)
    return root


@pytest.fixture(scope="session")
def paper_resnet18(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised ResNet-18 saved exactly as the paper released its weights."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "resnet18_blurred_ILSVRC.pth"
    save_imagenet_example_checkpoint(path, "resnet18", torchvision.models.resnet18().state_dict())
    return path


@pytest.fixture(scope="session")
def voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small VOC2007 (+ VOC2012 trainval) in the real VOCdevkit layout."""
    from benchmark.data.voc import write_voc_fixture

    root = tmp_path_factory.mktemp("voc-data")
    write_voc_fixture(root)
    return root


@pytest.fixture(autouse=True)
def private_weight_caches(tmp_path_factory: pytest.TempPathFactory,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights are cached where torch.hub and huggingface_hub keep them (the user's
    ~/.cache); tests use a throwaway pair instead, so they neither read nor fill the real ones."""
    base = tmp_path_factory.getbasetemp() / "weight-caches"
    monkeypatch.setenv("TORCH_HOME", str(base / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(base / "hf-hub"))
    monkeypatch.delenv("BENCH_CACHE_DIR", raising=False)


@pytest.fixture(autouse=True)
def private_user_registry(tmp_path_factory: pytest.TempPathFactory,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`bench pretrain` registers backbones in a user registry (~/.config/blurbench): tests
    get an empty one of their own, so a user's backbones never change what a test sees."""
    path = tmp_path_factory.mktemp("user-registry") / "backbones.yaml"
    monkeypatch.setenv("BENCH_USER_BACKBONES_FILE", str(path))
