"""CIFAR-10's splits without torch: the batch files in ``cifar-10-batches-py`` and their labels.

The loader part (:mod:`benchmark.data.cifar`) reads the same batches through torchvision's
``CIFAR10``, which also checks their md5; here only the labels are taken, in torchvision's batch
order, to compute the run key's data identity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import SplitIndex
from benchmark.data.fixtures import read_manifest
from benchmark.data.safe_pickle import load_data_pickle
from benchmark.errors import BenchError

FOLDER = "cifar-10-batches-py"
# torchvision's CIFAR10.train_list / test_list / meta["filename"], in its order (a test checks)
TRAIN_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_BATCHES = ("test_batch",)
META_FILE = "batches.meta"


class CIFAR10Index:
    splits = ("train", "test")
    version = 1

    def index_split(self, root: Path, split: str, **args: Any) -> SplitIndex:
        if split not in self.splits:
            raise BenchError(f"CIFAR-10 has splits {self.splits}, not {split!r}.")
        folder = Path(root) / FOLDER
        labels: list[int] = []
        batches = TRAIN_BATCHES if split == "train" else TEST_BATCHES
        for name in batches:
            entry = load_data_pickle(folder / name, "CIFAR-10")
            labels.extend(entry["labels"])
        meta = load_data_pickle(folder / META_FILE, "CIFAR-10")
        array = np.asarray(labels, dtype=np.int64)
        return SplitIndex(
            example_ids=[f"{split}/{i:05d}" for i in range(len(array))],
            class_names=list(meta.get("label_names", [])),
            labels=array,
            is_fixture=read_manifest(folder, "cifar10") is not None,
            files=[folder / name for name in batches] + [folder / META_FILE],
        )
