"""What every task's LightningDataModule shares: the splits, downloads and loaders.

Subclasses say only how one selected split becomes a Dataset (transforms, targets) and, where
examples cannot be stacked, how a batch is collated.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from benchmark.data.splits import SelectedSplit, load_split, resolve_splits
from benchmark.tasks import Task


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


class TaskDataModule(pl.LightningDataModule):
    """Train/val/test loaders of one task; the splits are fixed by the task, not the seed."""

    collate_fn: Callable[[list[Any]], Any] | None = None

    def __init__(
        self,
        task: Task,
        data_root: Path,
        subset: str | int = "full",
        download: bool = False,
        num_workers: int | None = None,
    ) -> None:
        super().__init__()
        self.task = task
        self.data_root = Path(data_root)
        self.subset = subset
        self.download = download
        workers = task.train.num_workers if num_workers is None else num_workers
        self.num_workers = min(workers, os.cpu_count() or 1)
        self.splits: dict[str, SelectedSplit] = {}

    def prepare_data(self) -> None:
        """Download once per node (Lightning calls this on one process only)."""
        if self.download:
            for split in {self.task.splits.train, self.task.splits.test}:
                load_split(self.task, self.data_root, split, download=True)

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = resolve_splits(self.task, self.data_root, self.subset, download=False)

    @property
    def class_names(self) -> list[str]:
        self.setup()
        return self.splits["test"].data.class_names

    def make_dataset(self, split: SelectedSplit, train: bool) -> Dataset:
        raise NotImplementedError

    def _loader(self, split: str, train: bool) -> DataLoader:
        dataset = self.make_dataset(self.splits[split], train)
        return DataLoader(
            dataset,
            batch_size=self.task.train.batch_size,
            shuffle=train,
            drop_last=train and len(dataset) > self.task.train.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=type(self).collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)
