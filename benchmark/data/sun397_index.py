"""SUN397's splits without torch: one official partition file and ``ClassName.txt``.

torchvision's ``SUN397`` labels an image by its class folder's index in ``ClassName.txt``
(``/a/abbey`` -> ``abbey``); the loader part (:mod:`benchmark.data.sun397`) then keeps one
partition's images in that file's order. The same labels follow from the partition file's
paths alone, without listing the images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import SplitIndex
from benchmark.data.fixtures import read_manifest
from benchmark.errors import BenchError

FOLDER = "SUN397"
PARTITIONS = "Partitions"
SPLIT_FILES = {"train": "Training", "test": "Testing"}


def partition_file(root: Path, split: str, partition: int) -> Path:
    return Path(root) / FOLDER / PARTITIONS / f"{SPLIT_FILES[split]}_{partition:02d}.txt"


def check_partition(partition: Any) -> int:
    if isinstance(partition, bool) or not isinstance(partition, int) or not 1 <= partition <= 10:
        raise BenchError(
            f"SUN397 data.args.partition {partition!r}: use an official partition number 1..10, "
            f"for example --set data.args.partition=2."
        )
    return partition


class SUN397Index:
    splits = ("train", "test")
    version = 1

    def index_split(self, root: Path, split: str, partition: int = 1, **args: Any) -> SplitIndex:
        if split not in self.splits:
            raise BenchError(f"SUN397 has splits {self.splits}, not {split!r}.")
        if args:
            raise BenchError(f"SUN397: unknown data.args {sorted(args)} (known: partition).")
        partition = check_partition(partition)
        folder = Path(root) / FOLDER
        with open(folder / "ClassName.txt") as fh:
            classes = [line[3:].strip() for line in fh]  # torchvision's own parsing
        class_to_idx = {name: i for i, name in enumerate(classes)}
        listed = partition_file(root, split, partition)
        ids = [line.strip().lstrip("/") for line in listed.read_text().splitlines()]
        ids = [i for i in ids if i]
        # "a/abbey/sun_x.jpg" -> class "abbey" (torchvision: the folders between letter and file)
        labels = np.asarray([class_to_idx["/".join(i.split("/")[1:-1])] for i in ids], np.int64)
        return SplitIndex(
            example_ids=ids,
            class_names=classes,
            labels=labels,
            is_fixture=read_manifest(folder, "sun397") is not None,
            source={"partition": partition},
            files=[folder / "ClassName.txt", listed],
        )
