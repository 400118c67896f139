"""The ImageNet layout: ``<root>/train/<class>/*.JPEG`` and ``<root>/val/<class>/*.JPEG``.

What ``bench pretrain`` trains on and the ImageNet evaluation task reads. torchvision's
``ImageFolder`` does the reading (class folders sorted, labels by folder, only image suffixes);
this module adds what it lacks: a check that both splits name the same classes, the data's
identity for provenance, and a tiny fixture in the same layout for tests and the demo.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torchvision.datasets import ImageFolder

from benchmark.data import SplitData
from benchmark.errors import BenchError

SPLITS = ("train", "val")
IDENTITY_VERSION = 1
FIXTURE_MARK = "BLURBENCH_FIXTURE"  # a fixture's runs are marked as such in their records


def open_split(root: Path, split: str) -> ImageFolder:
    """``root/split`` as an ImageFolder, or a one-line error naming the folder to fix."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise BenchError(
            f"{folder} is not a folder: --data needs the ImageNet layout, "
            f"{Path(root)}/train/<class>/*.jpg and {Path(root)}/val/<class>/*.jpg."
        )
    try:
        return ImageFolder(str(folder))
    except FileNotFoundError as err:  # no class folder, or a class folder without images
        raise BenchError(f"{folder}: {err}") from None


def check_same_classes(train: ImageFolder, val: ImageFolder, root: Path) -> None:
    """Labels are folder indices: a class missing from one split would shift every label."""
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))[:5]
        only_val = sorted(set(val.classes) - set(train.classes))[:5]
        raise BenchError(
            f"{root}: train/ and val/ have different class folders (only in train: "
            f"{only_train or '-'}; only in val: {only_val or '-'}); both need the same classes."
        )


def folder_identity(root: Path, splits: tuple[str, ...] = SPLITS) -> dict[str, object]:
    """The data's identity: sha256 over the sorted relative file names and sizes of every
    image, per split. Cheap (no image is read) yet it changes when a file is added, removed,
    renamed or re-encoded to another size, as blurring does."""
    root = Path(root)
    h = hashlib.sha256(f"blurbench-imagefolder-v{IDENTITY_VERSION}\n".encode())
    examples: dict[str, int] = {}
    for split in splits:
        dataset = open_split(root, split)
        files = sorted(Path(path).relative_to(root).as_posix() for path, _ in dataset.samples)
        examples[split] = len(files)
        for name in files:
            h.update(f"{name}\t{(root / name).stat().st_size}\n".encode())
    return {"kind": "imagefolder", "examples": examples, "sha256": h.hexdigest()}


def write_fixture(
    root: Path,
    classes: tuple[str, ...] = ("n01440764", "n02102040", "n03394916"),
    per_class: dict[str, int] | None = None,
    size: int = 40,
    seed: int = 0,
) -> Path:
    """A tiny ImageNet-layout folder of JPEGs, learnable by design: each class has its own
    colour and stripe direction, plus noise. ``per_class`` maps split -> images per class."""
    per_class = per_class or {"train": 8, "val": 4}
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, count in per_class.items():
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            colour = np.array([index * 97, index * 53 + 80, index * 31 + 160]) % 256
            for i in range(count):
                grid = np.indices((size, size))[index % 2]
                stripes = ((grid // 4) % 2)[..., None] * 60
                noise = rng.integers(0, 40, (size, size, 3))
                pixels = np.clip(colour + stripes + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{name}_{split}_{i:04d}.JPEG", quality=90)
    return root


def example_ids(dataset: ImageFolder, root: Path) -> list[str]:
    """Each image's path under ``root`` (``val/<wnid>/<file>``): stable, and what face
    annotations name an image by."""
    return [Path(path).relative_to(root).as_posix() for path, _ in dataset.samples]


# The ImageNet evaluation task's adapter: ``<data_root>/<folder>/<split>/<class>/*``. It is
# registered like the other dataset families so tasks/imagenet.yaml validates and
# `bench data fixture --task imagenet` writes the fixture.


class ImageNetFolderAdapter:
    splits = ("train", "val")
    version = 1

    def load_split(self, root: Path, split: str, download: bool, folder: str = "imagenet",
                   **args: Any) -> SplitData:  # fmt: skip
        if download:
            raise BenchError("ImageNet cannot be downloaded automatically: place its train/ "
                             "and val/ class folders under the data root yourself.")  # fmt: skip
        base = Path(root) / folder
        dataset = open_split(base, split)
        return SplitData(
            dataset=dataset, example_ids=example_ids(dataset, base),
            class_names=list(dataset.classes), labels=np.asarray(dataset.targets),
            is_fixture=(base / FIXTURE_MARK).is_file(),
            source={"loader": "torchvision.datasets.ImageFolder", "folder": str(base)},
        )  # fmt: skip

    def write_fixture(self, root: Path, folder: str = "imagenet", **args: Any) -> Path:
        base = write_fixture(Path(root) / folder)
        (base / FIXTURE_MARK).write_text("blurbench fixture: synthetic images, not ImageNet\n")
        return base
