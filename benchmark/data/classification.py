"""The LightningDataModule for image classification tasks (single- and multi-label)."""

from __future__ import annotations

from torch.utils.data import Dataset

from benchmark.data.datamodule import TaskDataModule, TransformedSplit
from benchmark.data.splits import SelectedSplit
from benchmark.data.transforms import eval_transform, train_transform


class ClassificationDataModule(TaskDataModule):
    """Images resized and augmented by the task's ``input`` section; targets as loaded."""

    def make_dataset(self, split: SelectedSplit, train: bool) -> Dataset:
        spec = self.task.input
        assert spec is not None  # required for classification kinds by Task validation
        return TransformedSplit(split, train_transform(spec) if train else eval_transform(spec))
