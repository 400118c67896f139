"""``adapter: torchvision``: any dataset class of :mod:`benchmark.data.tv_datasets`, read by
torchvision itself.

A task names the class and its arguments (``dataset: Food101``, ``options: {partition: 1}``);
torchvision's class finds the files, downloads, checks and loads the images, and the example ids,
labels and class names come from the dataset object. What is not torchvision's:

* the errors: a missing folder, a failed or impossible download become one line naming the folder
  and the manual steps, all in :func:`dataset_missing` and
  :func:`benchmark.data.download.dataset_download`;
* fixtures: a folder written by :mod:`benchmark.data.fixture_writer` carries a manifest of md5s,
  checked here (and handed to torchvision where the class has its own md5 table, Flowers-102);
* CIFAR-100 goes through :mod:`benchmark.data.cifar`'s allow-list unpickler, never ``pickle``;
* Caltech-101 has no official split: ``per_class_train`` images per class (seeded) train, the
  rest test;
* VOC2007 classification: labels are multi-hot from each image's non-difficult objects, read by
  blurbench's strict XML parser.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision import datasets

from benchmark.data import SplitData
from benchmark.data.adapter_args import TorchvisionArgs
from benchmark.data.download import dataset_download
from benchmark.data.fixtures import read_manifest, require_listed, verify_manifest
from benchmark.data.tv_datasets import TORCHVISION_DATASETS, TorchvisionDataset
from benchmark.errors import BenchError

# Bump when what is read or how it is labelled changes (part of every run key of these tasks).
ADAPTER_VERSION = 1


def fixture_tag(row: TorchvisionDataset) -> str:
    """The ``dataset`` a fixture manifest of this class carries."""
    return f"torchvision:{row.name}"


def dataset_missing(row: TorchvisionDataset, root: Path, detail: str = "") -> BenchError:
    """The one error for data that is not there (or not whole): the folder and the manual steps."""
    where = (Path(root) / row.folder).resolve()
    how = "" if row.download_broken else "pass --download, or "
    extra = f" ({detail})" if detail else ""
    return BenchError(
        f"{row.name} not found or incomplete under {where}{extra}: {how}{row.manual}; "
        f"--data-root names the folder that holds {row.folder.split('/')[0]}/."
    )


def _download(row: TorchvisionDataset, root: Path, construct: Callable[[], Any]) -> None:
    if row.download_broken:
        raise BenchError(f"{row.name} cannot be downloaded by torchvision: {row.manual} "
                         f"(under {Path(root).resolve()}).")  # fmt: skip
    with dataset_download(row.name, Path(root) / row.folder, f"{row.manual} (under "
                          f"{Path(root).resolve()})"):  # fmt: skip
        construct()


def split_index_files(root: Path, split: str, args: TorchvisionArgs) -> list[Path]:
    """The files that define ``split`` (index, label, split files), without reading images:
    what the data identity hashes."""
    row = TORCHVISION_DATASETS[args.dataset]
    return [Path(root) / f for f in row.index_files(Path(root), split, args.constructor_options())]


# --- per-class readers: the dataset object -> (image paths, labels, class names) --------------

Read = tuple[list[str], list[int], list[str]]


def _attrs(files: str, labels: str, classes: str = "classes") -> Callable[[Any], Read]:
    return lambda ds: ([str(p) for p in getattr(ds, files)], list(getattr(ds, labels)),
                       list(getattr(ds, classes)))  # fmt: skip


def _cars(ds: Any) -> Read:
    return [p for p, _ in ds._samples], [int(y) for _, y in ds._samples], list(ds.classes)


def _caltech(ds: Any) -> Read:
    folder = Path(ds.root) / "101_ObjectCategories"
    files = [str(folder / ds.categories[y] / f"image_{i:04d}.jpg") for i, y in zip(ds.index, ds.y,
                                                                                   strict=True)]
    return files, list(ds.y), list(ds.categories)


_READERS: dict[str, Callable[[Any], Read]] = {
    "Food101": _attrs("_image_files", "_labels"),
    "FGVCAircraft": _attrs("_image_files", "_labels"),
    "StanfordCars": _cars,
    "DTD": _attrs("_image_files", "_labels"),
    "OxfordIIITPet": _attrs("_images", "_labels"),
    "Caltech101": _caltech,
    "Flowers102": _attrs("_image_files", "_labels"),
}


class _WithTargets(Dataset):
    """Images of a torchvision dataset with targets it does not give (VOC's multi-hot labels)."""

    def __init__(self, files: list[str], targets: np.ndarray) -> None:
        self.files, self.targets = files, targets

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Image.Image, torch.Tensor]:
        with Image.open(self.files[index]) as raw:
            return raw.convert("RGB"), torch.as_tensor(self.targets[index])


def _construct(row: TorchvisionDataset, root: Path, split: str, args: TorchvisionArgs,
               md5: dict[str, str] | None) -> Any:  # fmt: skip
    """The torchvision object for ``split`` (for Caltech-101, the whole dataset)."""
    options = args.constructor_options()
    if row.name == "CIFAR100":
        from benchmark.data.cifar import checked_cifar

        return checked_cifar(datasets.CIFAR100, str(root), split == "train", md5)
    cls = getattr(datasets, row.name)
    if row.name == "Flowers102" and md5 is not None:
        # its own md5 table is the release's: check the fixture's .mat files against the manifest
        table = {k: (f, md5.get(f, "")) for k, (f, _) in cls._file_dict.items()}
        cls = type("FixtureFlowers102", (cls,), {"_file_dict": table})
    if row.split_arg == "image_set":
        return cls(str(root), year="2007", image_set=split, **options)
    if row.split_arg is None:
        return cls(str(root), **options)
    return cls(str(root), **{row.split_arg: split}, **options)


class TorchvisionAdapter:
    name = "torchvision"
    version = ADAPTER_VERSION
    splits = ("train", "val", "trainval", "test")  # each dataset takes a subset of these

    def load_split(self, root: Path, split: str, download: bool, **raw: Any) -> SplitData:
        args = TorchvisionArgs.model_validate(raw)
        row = TORCHVISION_DATASETS[args.dataset]
        if split not in row.splits:
            raise BenchError(f"{row.name} has splits {', '.join(row.splits)}, not {split!r}.")
        root = Path(root)
        folder = root / row.folder
        md5 = read_manifest(folder, fixture_tag(row))
        if md5 is not None:
            index = [p.relative_to(folder).as_posix() for p in split_index_files(root, split, args)]
            require_listed(folder, md5, index)
            verify_manifest(folder, md5, index)
        elif download:
            _download(row, root, lambda: _construct_download(row, root, split, args))
        try:
            ds = _construct(row, root, split, args, md5)
        except (RuntimeError, FileNotFoundError, KeyError, ValueError) as err:
            raise dataset_missing(row, root, " ".join(str(err).split())[:160]) from None
        if row.name == "CIFAR100":
            files, labels, classes = [], list(ds.targets), list(ds.classes)
            ids = [f"{split}/{i:05d}" for i in range(len(labels))]
            data = SplitData(dataset=ds, example_ids=ids, class_names=classes,
                             labels=np.asarray(labels, dtype=np.int64))
        elif row.kind == "multilabel":
            data = _voc_classification(ds, folder)
        else:
            files, labels, classes = _READERS[row.name](ds)
            ids = [Path(f).relative_to(folder).as_posix() for f in files]
            data = SplitData(dataset=ds, example_ids=ids, class_names=classes,
                             labels=np.asarray(labels, dtype=np.int64))
        if args.per_class_train is not None:
            data = _per_class_split(data, split, args.per_class_train, args.split_seed, row)
        data.is_fixture = md5 is not None
        data.files = [*data.files, *split_index_files(root, split, args)]
        data.source = {"torchvision_dataset": row.name, **args.constructor_options()}
        if args.per_class_train is not None:
            data.source.update(per_class_train=args.per_class_train, split_seed=args.split_seed)
        return data

    def write_task_fixture(self, task: Any, root: Path) -> Path:
        from benchmark.data.fixture_writer import write_torchvision_fixture

        return write_torchvision_fixture(task, root)


def _construct_download(row: TorchvisionDataset, root: Path, split: str,
                        args: TorchvisionArgs) -> None:  # fmt: skip
    """torchvision's own downloader (archives md5-checked by it)."""
    options = args.constructor_options()
    cls = getattr(datasets, row.name)
    if row.name == "CIFAR100":  # never torchvision's pickle.load, even of the release
        from benchmark.data.cifar import checked_cifar

        checked_cifar(cls, str(root), split == "train", None, download=True)
    elif row.split_arg == "image_set":
        cls(str(root), year="2007", image_set=split, download=True, **options)
    elif row.split_arg is None:
        cls(str(root), download=True, **options)
    else:
        cls(str(root), **{row.split_arg: split}, download=True, **options)


def _per_class_split(data: SplitData, split: str, per_class: int, seed: int,
                     row: TorchvisionDataset) -> SplitData:  # fmt: skip
    """Caltech-101's convention (Kornblith et al. 2019, after Fei-Fei et al. 2004): ``per_class``
    images of each class train, the rest test, drawn once with ``seed`` (not the run seed)."""
    assert data.labels is not None
    rng = np.random.default_rng(seed)
    train: list[int] = []
    for c in range(len(data.class_names)):
        members = np.flatnonzero(data.labels == c)
        if len(members) <= per_class:
            raise BenchError(
                f"{row.name} class {data.class_names[c]!r} has {len(members)} images, not more "
                f"than per_class_train={per_class}: nothing would be left to test on."
            )
        train += rng.permutation(members)[:per_class].tolist()
    chosen = np.sort(np.asarray(train)) if split == "train" else np.setdiff1d(
        np.arange(len(data.labels)), train)  # fmt: skip
    return SplitData(
        dataset=Subset(data.dataset, chosen.tolist()),
        example_ids=[data.example_ids[i] for i in chosen],
        class_names=data.class_names,
        labels=data.labels[chosen],
    )


def _voc_classification(ds: Any, folder: Path) -> SplitData:
    """VOC2007 as multi-label classification: an image is positive for a class when it holds a
    non-difficult object of it (an image whose only objects of a class are difficult counts as
    negative for it; the devkit ignores such pairs instead)."""
    from benchmark.detection.voc_annotations import (
        VOC_CLASSES,
        AnnotationError,
        parse_voc_annotation,
    )

    index = {name: i for i, name in enumerate(VOC_CLASSES)}
    targets = np.zeros((len(ds.images), len(VOC_CLASSES)), dtype=np.int64)
    for row, xml in enumerate(ds.annotations):
        try:
            annotation = parse_voc_annotation(xml, VOC_CLASSES)
        except AnnotationError as err:
            raise BenchError(str(err)) from None
        for obj in annotation.objects:
            if not obj.difficult:
                targets[row, index[obj.name]] = 1
    ids = [Path(p).relative_to(folder / "JPEGImages").with_suffix("").as_posix()
           for p in ds.images]  # fmt: skip
    return SplitData(
        dataset=_WithTargets(list(ds.images), targets),
        example_ids=ids,
        class_names=list(VOC_CLASSES),
        labels=targets,
        files=[Path(x) for x in ds.annotations],
    )
