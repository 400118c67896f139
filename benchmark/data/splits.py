"""From a task's split declaration to the exact examples a run trains, validates and tests on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from benchmark.data import SplitData, get_adapter
from benchmark.data.selection import carve, take_subset
from benchmark.errors import BenchError
from benchmark.tasks import CarvedSplit, Task

SPLIT_NAMES = ("train", "val", "test")


def parse_subset(value: str) -> str | int:
    """``tiny`` | ``full`` | a positive number of examples per split."""
    if value in ("tiny", "full"):
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise BenchError(f"--subset {value!r}: use 'tiny', 'full' or a positive number per split.")


def subset_sizes(task: Task, subset: str | int) -> dict[str, int | None]:
    if subset == "tiny":
        return {s: getattr(task.smoke, s) for s in SPLIT_NAMES}
    if subset == "full":
        return dict.fromkeys(SPLIT_NAMES)
    return dict.fromkeys(SPLIT_NAMES, int(subset))


@dataclass
class SelectedSplit:
    """The examples of one split that a run uses: positions into the loaded split."""

    data: SplitData
    positions: np.ndarray

    @property
    def example_ids(self) -> list[str]:
        return [self.data.example_ids[i] for i in self.positions]

    def labels(self) -> np.ndarray | None:
        return None if self.data.labels is None else self.data.labels[self.positions]

    def __len__(self) -> int:
        return len(self.positions)


def load_split(task: Task, root: Path, split: str, download: bool) -> SplitData:
    """One split through the task's data source: torchvision's loader or Hugging Face."""
    if task.data.source == "hf":
        from benchmark.data.hf import load_hf_split

        return load_hf_split(task, split)
    return get_adapter(task.data.adapter).load_split(root, split, download, **task.data.args)


def resolve_splits(
    task: Task, root: Path, subset: str | int, download: bool = False
) -> dict[str, SelectedSplit]:
    """Load the task's splits, carve validation if needed, then take the subset of each."""
    loaded: dict[str, SplitData] = {}

    def loaded_split(name: str) -> SplitData:
        if name not in loaded:
            loaded[name] = load_split(task, root, name, download)
        return loaded[name]

    chosen: dict[str, SelectedSplit] = {}
    val = task.splits.val
    train_data = loaded_split(task.splits.train)
    if isinstance(val, CarvedSplit):
        source = loaded_split(val.from_split)
        kept, carved = carve(source.labels, len(source.example_ids), val.fraction, val.seed)
        chosen["val"] = SelectedSplit(source, carved)
        if val.from_split == task.splits.train:
            chosen["train"] = SelectedSplit(train_data, kept)
    else:
        val_data = loaded_split(val)
        chosen["val"] = SelectedSplit(val_data, np.arange(len(val_data.example_ids)))
    if "train" not in chosen:
        chosen["train"] = SelectedSplit(train_data, np.arange(len(train_data.example_ids)))
    test_data = loaded_split(task.splits.test)
    chosen["test"] = SelectedSplit(test_data, np.arange(len(test_data.example_ids)))

    sizes = subset_sizes(task, subset)
    for name, sel in chosen.items():
        if len(sel) == 0:
            raise BenchError(f"task {task.name}: split {name!r} has no examples.")
        labels = sel.labels()
        picked = take_subset(labels, len(sel), sizes[name], seed=0)
        chosen[name] = SelectedSplit(sel.data, sel.positions[picked])
    return chosen


class TransformedSplit(Dataset):
    """Items ``(image, target, position)``: the position maps a prediction back to its id."""

    def __init__(self, split: SelectedSplit, transform: Any) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, position: int) -> tuple[Any, Any, int]:
        image, target = self.split.data.dataset[int(self.split.positions[position])]
        if self.transform is not None:
            image = self.transform(image)
        if not isinstance(target, torch.Tensor):
            target = torch.as_tensor(target)
        return image, target, position


def splits_identity(task: Task, root: Path, splits: dict[str, SelectedSplit]) -> dict[str, Any]:
    """The data identity of the run key (:mod:`benchmark.data.identity`) of these splits."""
    from benchmark.data.identity import data_identity

    loaded = list({id(sel.data): sel.data for sel in splits.values()}.values())
    adapter = get_adapter(task.data.adapter)
    version = getattr(adapter, "version", 1)
    if task.data.source == "hf":
        from benchmark.data.hf import HF_SOURCE_VERSION

        version = HF_SOURCE_VERSION
    selected = {}
    for name, sel in splits.items():
        labels = sel.labels()
        selected[name] = (sel.example_ids, labels)
    return data_identity(
        adapter=task.data.adapter,
        adapter_version=version,
        source=task.data.source,
        fixture=any(d.is_fixture for d in loaded),
        splits=selected,
        files=[f for d in loaded for f in d.files],
        root=root,
        extra={"content": [d.content_id for d in loaded if d.content_id is not None],
               "source": [d.source for d in loaded]},
    )


def describe(task: Task, root: Path, splits: dict[str, SelectedSplit]) -> dict[str, Any]:
    """What the run record says about its data (beyond the identity in its config)."""
    any_split = next(iter(splits.values())).data
    return {
        "adapter": task.data.adapter,
        "source": task.data.source,
        "root": str(root),
        "fixture": any(s.data.is_fixture for s in splits.values()),
        "sizes": {name: len(sel) for name, sel in splits.items()},
        **any_split.source,
    }
