"""The torchvision datasets ``adapter: torchvision`` can read, as data: no torch, no torchvision.

One row per dataset class says what a task needs to know before anything is loaded: the
constructor argument that picks a split and the split names it takes, the other constructor
arguments a task may set (typed, checked when the task is read), the folder the class reads under
the data root, the files that define each split (the index, label and split files: what a data
identity hashes), and how to get the data by hand when ``download=True`` cannot. Reading the
data is :mod:`benchmark.data.torchvision_adapter`'s; writing a fixture in the same layout is
:mod:`benchmark.data.fixture_writer`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# split arg kinds: "split" (a str argument), "train" (CIFAR's bool), "image_set" (VOC),
# None: the dataset has no split and the adapter makes one (Caltech-101, per_class_train).
SplitArg = str | None


@dataclass(frozen=True)
class TorchvisionDataset:
    """What blurbench knows about one torchvision dataset class without importing it."""

    name: str  # the class name in torchvision.datasets
    folder: str  # what the class reads under the data root
    split_arg: SplitArg
    splits: tuple[str, ...]  # the split names a task may use
    options: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # allowed values per arg
    defaults: dict[str, Any] = field(default_factory=dict)  # what we pass when a task says nothing
    kind: str = "classification"  # or "multilabel" (VOC2007 classification)
    manual: str = ""  # how to get the data by hand (a URL and where to unpack it)
    download_broken: bool = False  # torchvision's own download no longer works
    index_files: Callable[[Path, str, dict[str, Any]], list[str]] = lambda r, s, o: []


def _food101(root: Path, split: str, options: dict[str, Any]) -> list[str]:
    return [f"food-101/meta/{split}.json"]


def _aircraft(root: Path, split: str, options: dict[str, Any]) -> list[str]:
    level = options["annotation_level"]
    names = {"variant": "variants.txt", "family": "families.txt",
             "manufacturer": "manufacturers.txt"}  # fmt: skip
    data = "fgvc-aircraft-2013b/data"
    return [f"{data}/{names[level]}", f"{data}/images_{level}_{split}.txt"]


def _cars(root: Path, split: str, options: dict[str, Any]) -> list[str]:
    annotations = ("stanford_cars/devkit/cars_train_annos.mat" if split == "train"
                   else "stanford_cars/cars_test_annos_withlabels.mat")  # fmt: skip
    return ["stanford_cars/devkit/cars_meta.mat", annotations]


def _dtd(root: Path, split: str, options: dict[str, Any]) -> list[str]:
    return [f"dtd/dtd/labels/{split}{options['partition']}.txt"]


def _pets(root: Path, split: str, options: dict[str, Any]) -> list[str]:
    return [f"oxford-iiit-pet/annotations/{split}.txt"]


def _flowers(root: Path, split: str, options: dict[str, Any]) -> list[str]:
    return ["flowers-102/imagelabels.mat", "flowers-102/setid.mat"]


def _cifar100(root: Path, split: str, options: dict[str, Any]) -> list[str]:
    batch = "train" if split == "train" else "test"
    return [f"cifar-100-python/{batch}", "cifar-100-python/meta"]


def _voc(root: Path, split: str, options: dict[str, Any]) -> list[str]:
    # the annotation XMLs define the labels too; the adapter adds them once the set is read
    return [f"VOCdevkit/VOC2007/ImageSets/Main/{split}.txt"]


_ROWS = [
    TorchvisionDataset(
        "Food101", "food-101", "split", ("train", "test"),
        manual="download http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz (5 GB) and extract it "
        "there (giving food-101/meta/train.json and food-101/images/)",
        index_files=_food101,
    ),
    TorchvisionDataset(
        "CIFAR100", "cifar-100-python", "train", ("train", "test"),
        manual="download https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and extract "
        "it there (giving cifar-100-python/train)",
        index_files=_cifar100,
    ),
    TorchvisionDataset(
        "FGVCAircraft", "fgvc-aircraft-2013b", "split", ("train", "val", "trainval", "test"),
        options={"annotation_level": ("variant", "family", "manufacturer")},
        defaults={"annotation_level": "variant"},
        manual="download https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/"
        "fgvc-aircraft-2013b.tar.gz and extract it there (giving fgvc-aircraft-2013b/data/)",
        index_files=_aircraft,
    ),
    TorchvisionDataset(
        "StanfordCars", "stanford_cars", "split", ("train", "test"),
        download_broken=True,
        manual="torchvision can no longer download Stanford Cars (the original URL is gone): get "
        "the copy on Kaggle (https://www.kaggle.com/datasets/rickyyyyyyy/torchvision-stanford-"
        "cars, or `kaggle datasets download rickyyyyyyy/torchvision-stanford-cars`) and unpack it "
        "so that stanford_cars/devkit/cars_meta.mat, stanford_cars/devkit/cars_train_annos.mat, "
        "stanford_cars/cars_test_annos_withlabels.mat, stanford_cars/cars_train/ and "
        "stanford_cars/cars_test/ exist there",
        index_files=_cars,
    ),
    TorchvisionDataset(
        "DTD", "dtd", "split", ("train", "val", "test"),
        options={"partition": tuple(range(1, 11))}, defaults={"partition": 1},
        manual="download https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz "
        "and extract it into dtd/ there (giving dtd/dtd/images/ and dtd/dtd/labels/)",
        index_files=_dtd,
    ),
    TorchvisionDataset(
        "OxfordIIITPet", "oxford-iiit-pet", "split", ("trainval", "test"),
        manual="download https://thor.robots.ox.ac.uk/pets/images.tar.gz and "
        "https://thor.robots.ox.ac.uk/pets/annotations.tar.gz and extract both into "
        "oxford-iiit-pet/ there (giving oxford-iiit-pet/images/ and oxford-iiit-pet/annotations/)",
        index_files=_pets,
    ),
    TorchvisionDataset(
        "Caltech101", "caltech101", None, ("train", "test"),
        manual="download https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip, "
        "unpack it and extract its 101_ObjectCategories.tar.gz into caltech101/ there (giving "
        "caltech101/101_ObjectCategories/<class>/image_0001.jpg)",
    ),
    TorchvisionDataset(
        "Flowers102", "flowers-102", "split", ("train", "val", "test"),
        manual="download https://thor.robots.ox.ac.uk/flowers/102/102flowers.tgz, "
        "imagelabels.mat and setid.mat from the same folder into flowers-102/ there and extract "
        "the archive (giving flowers-102/jpg/image_00001.jpg)",
        index_files=_flowers,
    ),
    TorchvisionDataset(
        "VOCDetection", "VOCdevkit/VOC2007", "image_set", ("train", "val", "trainval", "test"),
        kind="multilabel",
        manual="download https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-"
        "2007.tar and VOCtest_06-Nov-2007.tar and extract both there (giving VOCdevkit/VOC2007/)",
        index_files=_voc,
    ),
]

TORCHVISION_DATASETS: dict[str, TorchvisionDataset] = {}
for _row in _ROWS:
    if _row.name in TORCHVISION_DATASETS:  # a registry refuses duplicates, never overwrites
        raise ValueError(f"torchvision dataset {_row.name!r} listed twice")
    TORCHVISION_DATASETS[_row.name] = _row
