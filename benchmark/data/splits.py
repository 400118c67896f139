"""From a task's split declaration to the exact examples a run trains, validates and tests on.

Torch-free: the same selection runs over the splits the adapters load (with their datasets) and
over their indexes alone (:func:`index_identity`, the run key's data identity without torch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import SplitData, SplitIndex, get_adapter, get_indexer
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
    """The examples of one split that a run uses: positions into the loaded split (a
    :class:`SplitData` when loaded to train, a :class:`SplitIndex` for the key alone)."""

    data: Any  # SplitData | SplitIndex
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


def index_split(task: Task, root: Path, split: str) -> SplitIndex:
    """One split's examples from the data source's torch-free part (no dataset is built)."""
    if task.data.source == "hf":
        from benchmark.data.hf import index_hf_split

        return index_hf_split(task, split)
    return get_indexer(task.data.adapter).index_split(root, split, **task.data.args)


def resolve_splits(
    task: Task,
    root: Path,
    subset: str | int,
    download: bool = False,
    read: Callable[[str], SplitIndex] | None = None,
) -> dict[str, SelectedSplit]:
    """Load the task's splits, carve validation if needed, then take the subset of each.

    ``read`` reads one split by name (default: :func:`load_split`, datasets included).
    """
    loaded: dict[str, SplitIndex] = {}
    read_split = read or (lambda name: load_split(task, root, name, download))

    def loaded_split(name: str) -> SplitIndex:
        if name not in loaded:
            loaded[name] = read_split(name)
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


def splits_identity(task: Task, root: Path, splits: dict[str, SelectedSplit]) -> dict[str, Any]:
    """The data identity of the run key (:mod:`benchmark.data.identity`) of these splits."""
    from benchmark.data.identity import data_identity

    loaded = list({id(sel.data): sel.data for sel in splits.values()}.values())
    version = get_indexer(task.data.adapter).version
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


def index_identity(task: Task, root: Path, subset: str | int) -> dict[str, Any]:
    """The data identity of a run from the adapters' index part alone: equal to
    :func:`splits_identity` of the loaded splits (tests check every adapter), without torch."""
    chosen = resolve_splits(task, root, subset, read=lambda name: index_split(task, root, name))
    return splits_identity(task, root, chosen)


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
