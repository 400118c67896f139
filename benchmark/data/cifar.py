"""CIFAR-10 through torchvision's ``CIFAR10`` (``cifar-10-batches-py`` under the data root),
with the batch files unpickled by an allow-list (:mod:`benchmark.data.safe_pickle`)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from torchvision.datasets import CIFAR10, VisionDataset
from torchvision.datasets.utils import check_integrity

from benchmark.data import SplitData
from benchmark.data.cifar_index import FOLDER, CIFAR10Index
from benchmark.data.download import dataset_download
from benchmark.data.fixtures import read_manifest, require_listed, write_manifest
from benchmark.data.safe_pickle import load_data_pickle
from benchmark.errors import BenchError

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
_FOLDER = FOLDER
_MANUAL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


class _CheckedCIFAR10(CIFAR10):
    """torchvision's CIFAR10, checking files against the fixture md5 table when given one, and
    reading the batches with :func:`load_data_pickle` instead of ``pickle.load``.

    ``__init__`` is torchvision's own (download, integrity check, stack the batches) with only
    the unpickling changed, so a batch file can hold data but never run code. CIFAR-100 is the
    same class over CIFAR100's tables (:func:`checked_cifar`).
    """

    _base: type[CIFAR10] = CIFAR10
    _manual = _MANUAL
    _label = "CIFAR-10"

    def __init__(self, root: str, train: bool, download: bool, md5: dict[str, str] | None):
        base = self._base
        if md5 is not None:
            self.train_list = [[name, md5.get(name, "")] for name, _ in base.train_list]
            self.test_list = [[name, md5.get(name, "")] for name, _ in base.test_list]
            self.meta = {**base.meta, "md5": md5.get(base.meta["filename"], "")}
        VisionDataset.__init__(self, root)
        self.train = train
        if download:
            folder = Path(root, self.base_folder)
            first = base.train_list[0][0]
            manual = f"download {self._manual} and extract it so that {folder}/{first} exists."
            with dataset_download(self._label, folder, manual):
                self.download()
        if not self._check_integrity():
            raise RuntimeError("Dataset not found or corrupted.")
        data, self.targets = [], []
        for file_name, _ in self.train_list if train else self.test_list:
            entry = self._read(file_name)
            labels = entry.get("labels", entry.get("fine_labels"))  # CIFAR-100: fine labels
            if not isinstance(entry.get("data"), np.ndarray) or labels is None:
                raise BenchError(f"{self._path(file_name)}: not a CIFAR batch (no data/labels).")
            data.append(entry["data"])
            self.targets.extend(labels)
        self.data = np.vstack(data).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))  # HWC
        self._load_meta()

    def _path(self, file_name: str) -> Path:
        return Path(self.root, self.base_folder, file_name)

    def _read(self, file_name: str) -> dict[str, Any]:
        entry = load_data_pickle(self._path(file_name), "CIFAR-10")
        if not isinstance(entry, dict):
            raise BenchError(f"{self._path(file_name)}: not a CIFAR-10 file (not a dict).")
        return entry

    def _load_meta(self) -> None:
        if not check_integrity(str(self._path(self.meta["filename"])), self.meta["md5"]):
            raise RuntimeError("Dataset metadata file not found or corrupted.")
        self.classes = list(self._read(self.meta["filename"]).get(self.meta["key"], []))
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


def checked_cifar(
    base: type[CIFAR10], root: str, train: bool, md5: dict[str, str] | None, download: bool = False
) -> CIFAR10:
    """torchvision's ``CIFAR10`` or ``CIFAR100`` (``base``) read through the allow-list
    unpickler, checked against ``md5`` (a fixture manifest) when given, else the release's."""
    if base is CIFAR10:
        return _CheckedCIFAR10(root, train, download, md5)
    manual = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    attrs = {k: getattr(base, k) for k in ("base_folder", "url", "filename", "tgz_md5",
                                            "train_list", "test_list", "meta")}  # fmt: skip
    cls = type(f"_Checked{base.__name__}", (_CheckedCIFAR10,),
               {**attrs, "_base": base, "_manual": manual, "_label": "CIFAR-100"})  # fmt: skip
    return cls(root, train, download, md5)


class CIFAR10Adapter(CIFAR10Index):
    """The loader part (the index part is :mod:`benchmark.data.cifar_index`)."""

    def load_split(self, root: Path, split: str, download: bool, **args: Any) -> SplitData:
        if split not in self.splits:
            raise BenchError(f"CIFAR-10 has splits {self.splits}, not {split!r}.")
        folder = Path(root) / _FOLDER
        md5 = read_manifest(folder, "cifar10")
        if md5 is not None:
            files = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list]
            require_listed(folder, md5, [*files, CIFAR10.meta["filename"]])
        try:
            ds = _CheckedCIFAR10(str(root), split == "train", download and md5 is None, md5)
        except RuntimeError as err:
            where = folder.resolve()
            if "not found or corrupted" not in str(err):
                raise
            raise BenchError(
                f"CIFAR-10 not found or corrupted under {where}: pass --download (or --data-root "
                f"pointing at the folder that holds {_FOLDER}/), or download {_MANUAL} and "
                f"extract it there."
            ) from None
        labels = np.asarray(ds.targets, dtype=np.int64)
        batches = ds.train_list if split == "train" else ds.test_list
        files = [folder / name for name, _ in batches] + [folder / ds.meta["filename"]]
        return SplitData(
            dataset=ds,
            example_ids=[f"{split}/{i:05d}" for i in range(len(labels))],
            class_names=list(ds.classes),
            labels=labels,
            is_fixture=md5 is not None,
            files=files,
        )

    def write_fixture(self, root: Path, per_class_train: int = 6, per_class_test: int = 4) -> Path:
        return write_cifar10_fixture(root, per_class_train, per_class_test)


def _class_images(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """32x32 RGB images a network can tell apart in a few steps: each class has its own colour
    and stripe orientation, plus noise."""
    palette = np.random.default_rng(10).integers(40, 216, size=(10, 3))  # same in every batch
    yy, xx = np.mgrid[0:32, 0:32]
    images = np.empty((len(labels), 32, 32, 3), dtype=np.uint8)
    for i, c in enumerate(labels):
        angle = np.pi * c / 10
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / 2.0)[..., None]
        img = palette[c] + 35 * stripes + rng.normal(0, 12, size=(32, 32, 3))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return images


def write_cifar10_fixture(root: Path, per_class_train: int = 6, per_class_test: int = 4) -> Path:
    """A small CIFAR-10 in the real ``cifar-10-batches-py`` layout: five training batches, a
    test batch and ``batches.meta``, pickled dicts with str keys and data as [N, 3072] uint8
    rows (R, G, B planes), exactly what torchvision reads."""
    folder = Path(root) / _FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = []

    def dump(name: str, obj: dict) -> None:
        with open(folder / name, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
        written.append(folder / name)

    train_labels = rng.permutation(np.repeat(np.arange(10), per_class_train))
    test_labels = rng.permutation(np.repeat(np.arange(10), per_class_test))
    batches = np.array_split(np.arange(len(train_labels)), 5)
    for b, idx in enumerate(batches, start=1):
        labels = train_labels[idx]
        images = _class_images(rng, labels)
        dump(
            f"data_batch_{b}",
            {
                "batch_label": f"training batch {b} of 5",
                "labels": labels.tolist(),
                "data": images.transpose(0, 3, 1, 2).reshape(len(labels), -1),
                "filenames": [f"fixture_{b}_{i}.png" for i in range(len(labels))],
            },
        )
    test_images = _class_images(rng, test_labels)
    dump(
        "test_batch",
        {
            "batch_label": "testing batch 1 of 1",
            "labels": test_labels.tolist(),
            "data": test_images.transpose(0, 3, 1, 2).reshape(len(test_labels), -1),
            "filenames": [f"fixture_test_{i}.png" for i in range(len(test_labels))],
        },
    )
    dump(
        "batches.meta",
        {"num_cases_per_batch": len(batches[0]), "label_names": CIFAR10_CLASSES, "num_vis": 3072},
    )
    write_manifest(folder, "cifar10", written)
    return folder
