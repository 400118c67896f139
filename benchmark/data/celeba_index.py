"""CelebA's splits without torch: ``list_eval_partition.txt`` and ``list_attr_celeba.txt``.

Parsed as torchvision's ``CelebA._load_csv`` parses them (space-separated, a count line and a
header line in the attribute file), rows taken by position where the partition file says the
split, attributes mapped from -1/1 to 0/1. The loader part (:mod:`benchmark.data.celeba`) reads
the same files through torchvision and checks them.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import SplitIndex
from benchmark.data.fixtures import read_manifest
from benchmark.errors import BenchError

FOLDER = "celeba"  # torchvision's CelebA.base_folder
PARTITION_FILE = "list_eval_partition.txt"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
# torchvision's CelebA.file_list text files, in its order (a test checks)
TEXT_FILES = ("list_attr_celeba.txt", "identity_CelebA.txt", "list_bbox_celeba.txt",
              "list_landmarks_align_celeba.txt", "list_eval_partition.txt")  # fmt: skip
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}

# The header of list_attr_celeba.txt, in its column order.
CELEBA_ATTRIBUTES = [
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
]  # fmt: skip


def _rows(path: Path, header: int | None = None) -> tuple[list[str], list[str], list[list[str]]]:
    """(header, first column, other columns) as torchvision's ``_load_csv`` splits them."""
    with open(path) as fh:
        data = list(csv.reader(fh, delimiter=" ", skipinitialspace=True))
    names: list[str] = []
    if header is not None:
        names, data = data[header], data[header + 1 :]
    return names, [row[0] for row in data], [row[1:] for row in data]


class CelebAIndex:
    splits = ("train", "valid", "test")
    version = 1
    attribute_names = CELEBA_ATTRIBUTES

    def index_split(self, root: Path, split: str, **args: Any) -> SplitIndex:
        if split not in self.splits:
            raise BenchError(f"CelebA has splits {self.splits}, not {split!r}.")
        if args:
            raise BenchError(f"CelebA takes no data.args, got {sorted(args)}.")
        folder = Path(root) / FOLDER
        _, names, codes = _rows(folder / PARTITION_FILE)
        header, _, values = _rows(folder / ATTRIBUTE_FILE, header=1)
        rows = [i for i, code in enumerate(codes) if int(code[0]) == SPLIT_CODES[split]]
        attributes = np.asarray([[int(v) for v in values[i]] for i in rows], dtype=np.int64)
        return SplitIndex(
            example_ids=[names[i] for i in rows],
            class_names=[name for name in header if name],
            labels=(attributes + 1) // 2,
            is_fixture=read_manifest(folder, "celeba") is not None,
            files=[folder / name for name in TEXT_FILES],
        )
