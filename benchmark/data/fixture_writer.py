"""One fixture writer for the generic adapters: a task's tiny dataset, generated from its YAML.

The task's ``fixture:`` section says how many images per class each of the dataset's splits gets
and how large they are; ``num_classes`` says how many classes. What the files look like is the
real dataset's on-disk layout (index files, ``.mat`` tables, pickles, XML), written per dataset
class the way torchvision's own test suite fakes its datasets (``test/test_datasets.py``), so
torchvision's class reads the fixture with the same code that reads the release. A manifest of
md5s beside the files (:mod:`benchmark.data.fixtures`) marks it as a fixture and stands in for
the release's checksums. Images are small JPEGs a network can tell apart in a few steps: a
colour and a stripe angle per class, plus noise.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmark.data.adapter_args import ImageFolderArgs, TorchvisionArgs
from benchmark.data.fixtures import write_manifest
from benchmark.data.tv_datasets import TORCHVISION_DATASETS
from benchmark.errors import BenchError


class _Images:
    """Writes class-coded images and remembers every file written (for the manifest)."""

    def __init__(self, size: int, num_classes: int, seed: int = 0) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.palette = np.random.default_rng(10).integers(40, 216, size=(max(num_classes, 1), 3))
        self.num_classes = max(num_classes, 1)
        self.written: list[Path] = []

    def array(self, label: int) -> np.ndarray:
        yy, xx = np.mgrid[0 : self.size, 0 : self.size]
        angle = np.pi * (label % 12) / 12
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / 2.0)[..., None]
        noise = self.rng.normal(0, 12, size=(self.size, self.size, 3))
        img = self.palette[label % len(self.palette)] + 35 * stripes + noise
        return np.clip(img, 0, 255).astype(np.uint8)

    def jpeg(self, path: Path, label: int) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(self.array(label)).save(path, quality=90)
        self.written.append(path)
        return path

    def text(self, path: Path, lines: list[str]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in lines))
        self.written.append(path)
        return path

    def savemat(self, path: Path, table: dict[str, Any]) -> Path:
        from scipy.io import savemat

        path.parent.mkdir(parents=True, exist_ok=True)
        savemat(str(path), table)
        self.written.append(path)
        return path


def _class_names(n: int) -> list[str]:
    return [f"class_{i:03d}" for i in range(n)]


def _per_class(spec: dict[str, int], splits: tuple[str, ...]) -> dict[str, int]:
    unknown = sorted(set(spec) - set(splits))
    if unknown:
        raise BenchError(f"fixture.per_class names splits {unknown} the dataset does not have "
                         f"({', '.join(splits)}).")  # fmt: skip
    return spec


Layout = Callable[[Path, _Images, int, dict[str, int], dict[str, Any]], Path]


def _food101(root: Path, w: _Images, k: int, per: dict[str, int], opt: dict[str, Any]) -> Path:
    base = root / "food-101"
    names = _class_names(k)
    for split, n in per.items():
        meta: dict[str, list[str]] = {name: [] for name in names}
        for c, name in enumerate(names):
            for i in range(n):
                rel = f"{name}/{split}{i:05d}"
                w.jpeg(base / "images" / f"{rel}.jpg", c)
                meta[name].append(rel)
        w.text(base / "meta" / f"{split}.json", [json.dumps(meta)])
    w.text(base / "meta" / "classes.txt", names)
    return base


def _cifar100(root: Path, w: _Images, k: int, per: dict[str, int], opt: dict[str, Any]) -> Path:
    if w.size != 32:
        raise BenchError("CIFAR-100 images are 32x32: set fixture.image_size to 32.")
    base = root / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    names = _class_names(k)
    for split, n in per.items():
        labels = w.rng.permutation(np.repeat(np.arange(k), n))
        images = np.stack([w.array(int(c)) for c in labels])
        data = images.transpose(0, 3, 1, 2).reshape(len(labels), -1)  # R, G, B planes per row
        entry = {"filenames": [f"fixture_{i}.png" for i in range(len(labels))],
                 "batch_label": f"{split}ing batch 1 of 1", "fine_labels": labels.tolist(),
                 "coarse_labels": (labels % 20).tolist(), "data": data}  # fmt: skip
        with open(base / split, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)
        w.written.append(base / split)
    with open(base / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": names,
                     "coarse_label_names": [f"super_{i:02d}" for i in range(20)]}, fh, protocol=2)
    w.written.append(base / "meta")
    return base


def _aircraft(root: Path, w: _Images, k: int, per: dict[str, int], opt: dict[str, Any]) -> Path:
    data = root / "fgvc-aircraft-2013b" / "data"
    names = [f"Model {i:03d}-{i % 7}00" for i in range(k)]  # real variants have spaces, digits
    lines: dict[str, list[str]] = {}
    number = 1000000
    for split, n in per.items():
        lines[split] = []
        for c, name in enumerate(names):
            for _ in range(n):
                number += 1
                w.jpeg(data / "images" / f"{number:07d}.jpg", c)
                lines[split].append(f"{number:07d} {name}")
    if "train" in lines and "val" in lines:
        lines.setdefault("trainval", lines["train"] + lines["val"])
    for level, file in (("variant", "variants.txt"), ("family", "families.txt"),
                        ("manufacturer", "manufacturers.txt")):  # fmt: skip
        w.text(data / file, names)
        for split, rows in lines.items():
            w.text(data / f"images_{level}_{split}.txt", rows)
    return data.parent


def _cars(root: Path, w: _Images, k: int, per: dict[str, int], opt: dict[str, Any]) -> Path:
    base = root / "stanford_cars"
    names = np.array([f"Make {i:03d} Sedan 2012" for i in range(k)], dtype=object)
    w.savemat(base / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})
    where = {"train": ("cars_train", base / "devkit" / "cars_train_annos.mat"),
             "test": ("cars_test", base / "cars_test_annos_withlabels.mat")}  # fmt: skip
    fields = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"),
              ("class", "O"), ("fname", "O")]  # fmt: skip
    for split, n in per.items():
        folder, mat = where[split]
        rows = []
        for c in range(k):
            for _ in range(n):
                fname = f"{len(rows) + 1:05d}.jpg"
                w.jpeg(base / folder / fname, c)
                rows.append((1, 1, w.size, w.size, c + 1, fname))  # classes are 1-based
        table = np.array(rows, dtype=fields).reshape(1, -1)
        w.savemat(mat, {"annotations": table})
    return base


def _dtd(root: Path, w: _Images, k: int, per: dict[str, int], opt: dict[str, Any]) -> Path:
    data = root / "dtd" / "dtd"
    names = [f"texture{i:02d}" for i in range(k)]  # DTD's classes are lowercase words
    splits = list(per)
    images: dict[str, list[str]] = {name: [] for name in names}
    n_total = sum(per.values())
    for c, name in enumerate(names):
        for i in range(n_total):
            rel = f"{name}/{name}_{i + 1:04d}.jpg"
            w.jpeg(data / "images" / rel, c)
            images[name].append(rel)
    for partition in range(1, 11):  # ten partitions, each a different assignment of images
        lines: dict[str, list[str]] = {s: [] for s in splits}
        for name in names:
            order = np.random.default_rng(partition).permutation(images[name]).tolist()
            start = 0
            for split in splits:
                lines[split] += order[start : start + per[split]]
                start += per[split]
        for split in splits:
            w.text(data / "labels" / f"{split}{partition}.txt", sorted(lines[split]))
    return data.parent


def _pets(root: Path, w: _Images, k: int, per: dict[str, int], opt: dict[str, Any]) -> Path:
    base = root / "oxford-iiit-pet"
    breeds = [f"breed{i:02d}" if i % 2 else f"Breed{i:02d}" for i in range(k)]  # cats upper
    number = 0
    for split, n in per.items():
        lines = []
        for c, breed in enumerate(breeds):
            for _ in range(n):
                number += 1
                image_id = f"{breed}_{number}"
                w.jpeg(base / "images" / f"{image_id}.jpg", c)
                species = 1 if breed[0].isupper() else 2
                lines.append(f"{image_id} {c + 1} {species} {c // 2 + 1}")
        w.text(base / "annotations" / f"{split}.txt", lines)
    return base


def _caltech(root: Path, w: _Images, k: int, per: dict[str, int], opt: dict[str, Any]) -> Path:
    base = root / "caltech101" / "101_ObjectCategories"
    for c, name in enumerate([*_class_names(k), "BACKGROUND_Google"]):  # the last is dropped
        for i in range(per["all"]):
            w.jpeg(base / name / f"image_{i + 1:04d}.jpg", c)
    return base.parent


def _flowers(root: Path, w: _Images, k: int, per: dict[str, int], opt: dict[str, Any]) -> Path:
    base = root / "flowers-102"
    labels, ids = [], {"train": [], "val": [], "test": []}
    for split, n in per.items():
        for c in range(k):
            for _ in range(n):
                labels.append(c + 1)  # 1-based in imagelabels.mat
                ids[split].append(len(labels))
                w.jpeg(base / "jpg" / f"image_{len(labels):05d}.jpg", c)
    w.savemat(base / "imagelabels.mat", {"labels": np.array(labels, dtype=np.uint8)})
    w.savemat(base / "setid.mat", {"trnid": np.array(ids["train"], dtype=np.uint16),
                                   "valid": np.array(ids["val"], dtype=np.uint16),
                                   "tstid": np.array(ids["test"], dtype=np.uint16)})
    return base


def _voc(root: Path, w: _Images, k: int, per: dict[str, int], opt: dict[str, Any]) -> Path:
    from benchmark.detection.voc_annotations import VOC_CLASSES, VOCObject, write_voc_annotation

    base = root / "VOCdevkit" / "VOC2007"
    sets: dict[str, list[str]] = {}
    number = 0
    s = w.size
    for split, n in per.items():
        sets[split] = []
        for c in range(k):
            for i in range(n):
                number += 1
                image_id = f"{number:06d}"
                w.jpeg(base / "JPEGImages" / f"{image_id}.jpg", c)
                objects = [VOCObject(VOC_CLASSES[c], (1, 1, s // 2, s // 2))]
                if i % 2:  # every other image holds a second class, sometimes difficult
                    objects.append(VOCObject(VOC_CLASSES[(c + 7) % k], (s // 2, s // 2, s, s),
                                             difficult=(c + i) % 3 == 2))  # fmt: skip
                xml = base / "Annotations" / f"{image_id}.xml"
                xml.parent.mkdir(parents=True, exist_ok=True)
                write_voc_annotation(xml, f"{image_id}.jpg", s, s, objects)
                w.written.append(xml)
                sets[split].append(image_id)
    if "train" in sets and "val" in sets:
        sets.setdefault("trainval", sorted(sets["train"] + sets["val"]))
    for split, ids in sets.items():
        w.text(base / "ImageSets" / "Main" / f"{split}.txt", ids)
    return base


_LAYOUTS: dict[str, Layout] = {
    "Food101": _food101,
    "CIFAR100": _cifar100,
    "FGVCAircraft": _aircraft,
    "StanfordCars": _cars,
    "DTD": _dtd,
    "OxfordIIITPet": _pets,
    "Caltech101": _caltech,
    "Flowers102": _flowers,
    "VOCDetection": _voc,
}


def _spec(task: Any) -> Any:
    if task.fixture is None:
        raise BenchError(f"task {task.name} has no 'fixture' section: add one "
                         f"(fixture: {{per_class: {{train: 3, test: 2}}, image_size: 32}}).")
    return task.fixture


def write_torchvision_fixture(task: Any, root: Path) -> Path:
    """The task's dataset, tiny, in the layout its torchvision class reads."""
    from benchmark.data.torchvision_adapter import fixture_tag

    args = TorchvisionArgs.model_validate(task.data.args)
    row = TORCHVISION_DATASETS[args.dataset]
    spec = _spec(task)
    splits = ("all",) if row.split_arg is None else row.splits
    per = _per_class(dict(spec.per_class), splits)
    writer = _Images(spec.image_size, task.num_classes)
    _LAYOUTS[row.name](Path(root), writer, task.num_classes, per, args.constructor_options())
    folder = Path(root) / row.folder
    write_manifest(folder, fixture_tag(row), [f for f in writer.written if folder in f.parents])
    return folder


def write_imagefolder_fixture(task: Any, root: Path) -> Path:
    """``<path>/<split>/<class>/<n>.jpg`` (or ``<path>/<class>/`` plus split files)."""
    from benchmark.data.imagefolder import FIXTURE_TAG, dataset_folder

    args = ImageFolderArgs.model_validate(task.data.args)
    spec = _spec(task)
    folder = dataset_folder(Path(root), args)
    writer = _Images(spec.image_size, task.num_classes)
    names = _class_names(task.num_classes)
    for split, n in spec.per_class.items():
        listed = []
        for c, name in enumerate(names):
            for i in range(n):
                if args.layout == "split_folders":
                    writer.jpeg(folder / split / name / f"{i:04d}.jpg", c)
                else:
                    rel = f"{name}/{split}_{i:04d}.jpg"
                    writer.jpeg(folder / rel, c)
                    listed.append(rel)
        if args.layout == "split_files":
            if split not in args.split_files:
                raise BenchError(f"fixture.per_class has split {split!r}, which "
                                 f"data.args.split_files does not name.")  # fmt: skip
            writer.text(folder / args.split_files[split], listed)
    write_manifest(folder, FIXTURE_TAG, writer.written)
    return folder
