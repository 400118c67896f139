"""``adapter: imagefolder``: a user's own images, one folder per class, read by torchvision's
``ImageFolder`` (no adapter module needed for a new dataset).

Two layouts (:class:`benchmark.data.adapter_args.ImageFolderArgs`):

* ``split_folders``: ``<path>/<split>/<class>/<image>``;
* ``split_files``: ``<path>/<class>/<image>`` plus a text file per split listing image paths
  relative to ``<path>`` (``cat/001.jpg``), one a line, in the order the split uses them.

Class names are the class folders, sorted, taken over all splits (a class missing from one split
keeps its index), so label ``i`` means the same class in every split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Subset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from benchmark.data import SplitData
from benchmark.data.adapter_args import ImageFolderArgs
from benchmark.data.fixtures import read_manifest
from benchmark.errors import BenchError

FIXTURE_TAG = "imagefolder"


def dataset_folder(root: Path, args: ImageFolderArgs) -> Path:
    path = Path(args.path).expanduser()
    return path if path.is_absolute() else Path(root) / path


def _class_folders(folders: list[Path]) -> list[str]:
    return sorted({d.name for f in folders if f.is_dir() for d in f.iterdir() if d.is_dir()})


def class_names(root: Path, args: ImageFolderArgs) -> list[str]:
    folder = dataset_folder(root, args)
    if args.layout == "split_files":
        return _class_folders([folder])
    return _class_folders([d for d in folder.iterdir() if d.is_dir()] if folder.is_dir() else [])


def split_index_files(root: Path, split: str, args: ImageFolderArgs) -> list[Path]:
    """The files that define ``split`` (for ``split_files``, its list; folders have none: their
    image names and labels go into the data identity through the example ids)."""
    if args.layout == "split_files" and split in args.split_files:
        return [dataset_folder(root, args) / args.split_files[split]]
    return []


class _FixedClasses(ImageFolder):
    """ImageFolder with the class list of the whole dataset, not of one split's folder."""

    def __init__(self, root: str, classes: list[str]) -> None:
        self._classes = classes
        super().__init__(root, allow_empty=True)

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        return self._classes, {c: i for i, c in enumerate(self._classes)}


class ImageFolderAdapter:
    name = "imagefolder"
    version = 1
    splits = ()  # any split name the layout has

    def load_split(self, root: Path, split: str, download: bool, **raw: Any) -> SplitData:
        args = ImageFolderArgs.model_validate(raw)
        folder = dataset_folder(root, args)
        if download:
            raise BenchError(f"an imagefolder task has nothing to download: put the images "
                             f"under {folder.resolve()} and run without --download.")  # fmt: skip
        if not folder.is_dir():
            raise BenchError(f"image folder {folder.resolve()} does not exist: create it "
                             f"(data.args.path is relative to --data-root) or fix data.args.path.")
        classes = class_names(root, args)
        if not classes:
            raise BenchError(f"image folder {folder.resolve()} has no class folders.")
        if args.layout == "split_folders":
            where = folder / split
            if not where.is_dir():
                found = sorted(d.name for d in folder.iterdir() if d.is_dir())
                raise BenchError(f"image folder {where.resolve()} does not exist (split "
                                 f"{split!r}; split folders found: {', '.join(found)}).")
            ds = _FixedClasses(str(where), classes)
            ids = [Path(p).relative_to(folder).as_posix() for p, _ in ds.samples]
            labels = [y for _, y in ds.samples]
            dataset: Any = ds
        else:
            ds = _FixedClasses(str(folder), classes)
            position = {Path(p).relative_to(folder).as_posix(): i for i, (p, _) in
                        enumerate(ds.samples)}  # fmt: skip
            ids = _read_split_file(folder, args, split, position)
            labels = [ds.samples[position[i]][1] for i in ids]
            dataset = Subset(ds, [position[i] for i in ids])
        if not ids:
            raise BenchError(f"split {split!r} of image folder {folder.resolve()} has no images "
                             f"({', '.join(IMG_EXTENSIONS)}).")  # fmt: skip
        return SplitData(
            dataset=dataset,
            example_ids=ids,
            class_names=classes,
            labels=np.asarray(labels, dtype=np.int64),
            is_fixture=read_manifest(folder, FIXTURE_TAG) is not None,
            files=split_index_files(root, split, args),
            source={"image_folder": str(folder.resolve())},
        )

    def write_task_fixture(self, task: Any, root: Path) -> Path:
        from benchmark.data.fixture_writer import write_imagefolder_fixture

        return write_imagefolder_fixture(task, root)


def _read_split_file(folder: Path, args: ImageFolderArgs, split: str,
                     position: dict[str, int]) -> list[str]:  # fmt: skip
    if split not in args.split_files:
        raise BenchError(f"data.args.split_files names no file for split {split!r} "
                         f"(it has {', '.join(args.split_files)}).")  # fmt: skip
    path = folder / args.split_files[split]
    if not path.is_file():
        raise BenchError(f"split file {path.resolve()} does not exist.")
    ids = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        if entry not in position:
            raise BenchError(f"{path} line {number}: {entry!r} is not an image under a class "
                             f"folder of {folder.resolve()}.")  # fmt: skip
        ids.append(entry)
    return ids
