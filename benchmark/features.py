"""Penultimate-layer features of a frozen backbone, for the linear probe.

The backbone runs in eval mode (BatchNorm statistics as pretrained, dropout off) on the task's
test-time transform, with its classifier head replaced by the identity, so what comes out is
the input of the head: the pooled 2,048 values of a ResNet-50. Features are float32 whatever
the compute precision, and go through :class:`benchmark.feature_cache.FeatureCache`.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from benchmark.checkpoints import head_module_name
from benchmark.errors import BenchError

# Bump when what extract() computes changes (layer, pooling, order): old entries then miss.
EXTRACTOR_VERSION = 1

_AUTOCAST = {"32": None, "32-true": None, "bf16-mixed": torch.bfloat16, "bf16": torch.bfloat16,
             "16-mixed": torch.float16, "16": torch.float16}  # fmt: skip


def feature_network(model: nn.Module) -> tuple[nn.Module, str]:
    """``model`` with its classifier head replaced by the identity, frozen and in eval mode,
    and the name of the layer whose input the features are."""
    name = head_module_name(model)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, nn.Identity())
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model, f"input of {name}"


def resolve_device(accelerator: str) -> torch.device:
    """``--accelerator`` for extraction: ``auto`` takes a GPU when there is one."""
    choice = accelerator.lower()
    if choice == "cpu":
        return torch.device("cpu")
    if choice in ("auto", "gpu", "cuda"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if choice == "auto":
            return torch.device("cpu")
    if choice in ("auto", "gpu", "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    raise BenchError(f"--accelerator {accelerator}: no such device here for feature extraction "
                     f"(use cpu, gpu or auto).")  # fmt: skip


def autocast_dtype(precision: str) -> torch.dtype | None:
    if precision not in _AUTOCAST:
        raise BenchError(f"--precision {precision}: the linear probe extracts features in one of "
                         f"{', '.join(_AUTOCAST)}.")  # fmt: skip
    return _AUTOCAST[precision]


def extract(
    network: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    precision: str,
    label: str,
) -> dict[str, np.ndarray]:
    """Features [N, D] float32 and targets of every example of ``dataset`` (items ``(image,
    target, position)``), in the dataset's order, with a progress bar on a terminal."""
    from tqdm import tqdm

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    network = network.to(device).eval()
    dtype = autocast_dtype(precision)
    feats, targets, positions = [], [], []
    print(f"extracting features: {label} ({len(dataset)} images) on {device}", flush=True)
    cast = (torch.autocast(device.type, dtype=dtype) if dtype is not None
            else contextlib.nullcontext())  # fmt: skip
    with torch.inference_mode(), cast:
        for images, target, position in tqdm(loader, desc=label, unit="batch",
                                             disable=None, file=sys.stderr):  # fmt: skip
            out = network(images.to(device, non_blocking=True))
            feats.append(out.flatten(1).float().cpu())
            targets.append(torch.as_tensor(target))
            positions.append(torch.as_tensor(position))
    order = torch.cat(positions)
    if not torch.equal(order, torch.arange(len(order))):
        raise RuntimeError("feature extraction returned the examples out of order")
    return {
        "features": torch.cat(feats).numpy().astype(np.float32, copy=False),
        "targets": torch.cat(targets).numpy().astype(np.int64),
    }


def key_parts(
    *,
    backbone_sha256: str,
    arch: str,
    task: str,
    split: str,
    subset: str,
    data_identity: dict[str, Any],
    transform: Any,
    layer: str,
    precision: str,
) -> dict[str, Any]:
    """Everything that decides one split's features: the feature cache's key."""
    return {
        "backbone_sha256": backbone_sha256,
        "arch": arch,
        "task": task,
        "split": split,
        "subset": subset,
        "data": data_identity,
        "transform": repr(transform),
        "layer": layer,
        "dtype": "float32",
        "precision": precision,
        "extractor_version": EXTRACTOR_VERSION,
    }
