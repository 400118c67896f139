"""PASCAL VOC detection through torchvision's ``VOCDetection`` (``VOCdevkit/VOC<year>/`` under
the data root), with the XML read by blurbench's strict parser.

torchvision's ``VOCDetection`` finds the files (``ImageSets/Main/<set>.txt`` -> ``JPEGImages``
and ``Annotations``) and downloads the official archives. Its own XML reader is lenient (a
missing ``<difficult>``, an unknown class or a box outside the image pass silently and change
the score), so every annotation is read once, when the split is loaded, by
:func:`benchmark.detection.voc_annotations.parse_voc_annotation`, and a bad file stops the run
before training with one line naming it.

Splits: ``trainval``, ``train``, ``val`` (from the years in ``trainval_years``: ``[2007]`` by
default, ``[2007, 2012]`` for the usual "07+12") and ``test`` (always VOC2007 test; VOC2012 has
no public test annotations). Examples are named ``VOC<year>/<image id>``.

Each example is ``(PIL RGB image, VOCAnnotation)``: boxes stay in the XML's 1-based inclusive
pixel coordinates of the original image, ``difficult`` objects included (the evaluation needs
them; :mod:`benchmark.data.detection` decides what training sees).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from torch.utils.data import Dataset
from torchvision.datasets import VOCDetection
from torchvision.datasets.utils import download_and_extract_archive
from torchvision.datasets.voc import DATASET_YEAR_DICT

from benchmark.data import SplitData
from benchmark.data.download import dataset_download
from benchmark.data.fixtures import read_manifest, verify_manifest, write_manifest
from benchmark.data.voc_index import (
    VOCIndex,
    check_args,
    check_years,
    image_set_file,
    stratification_labels,
)
from benchmark.detection.voc_annotations import (
    VOC_CLASSES,
    AnnotationError,
    VOCAnnotation,
    VOCObject,
    parse_voc_annotation,
    write_voc_annotation,
)
from benchmark.errors import BenchError

_MANUAL = {
    2007: "https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-2007.tar and "
    "https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtest_06-Nov-2007.tar",
    2012: "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
}


class VOCImages(Dataset):
    """Images and parsed annotations of one split (one or more VOC years, concatenated)."""

    def __init__(self, images: list[str], annotations: list[VOCAnnotation], xml: list[str]):
        self.images = images
        self.annotations = annotations
        self.xml = xml

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Image.Image, VOCAnnotation]:
        ann = self.annotations[index]
        with Image.open(self.images[index]) as raw:
            image = raw.convert("RGB")
        if image.size != (ann.width, ann.height):
            # boxes are only meaningful in the image size the annotation declares
            raise BenchError(
                f"{self.xml[index]}: <size> says {ann.width}x{ann.height} but "
                f"{self.images[index]} is {image.size[0]}x{image.size[1]}; the annotation "
                f"does not belong to this image."
            )
        return image, ann


def _load_year(root: Path, year: int, image_set: str, download: bool) -> tuple[VOCImages, bool]:
    folder = Path(root) / "VOCdevkit" / f"VOC{year}"
    md5 = read_manifest(folder, f"voc{year}")
    if md5 is not None:
        verify_manifest(folder, md5)  # torchvision checks only VOC's archives
    if download and md5 is None:  # torchvision's own archive table and downloader
        key = "2007-test" if (year, image_set) == (2007, "test") else str(year)
        archive = DATASET_YEAR_DICT[key]
        manual = f"download {_MANUAL[year]} and extract them under {Path(root).resolve()}."
        with dataset_download(f"VOC{year}", folder, manual):
            download_and_extract_archive(
                archive["url"], str(root), filename=archive["filename"], md5=archive["md5"]
            )
    try:
        ds = VOCDetection(str(root), year=str(year), image_set=image_set, download=False)
    except (RuntimeError, FileNotFoundError) as err:
        missing = getattr(err, "filename", None) or folder
        raise BenchError(
            f"VOC{year} {image_set} not found under {Path(root).resolve()} ({missing} is "
            f"missing): pass --download (or --data-root pointing at the folder that holds "
            f"VOCdevkit/), or download {_MANUAL[year]} and extract them there."
        ) from None
    annotations = []
    for image, xml in zip(ds.images, ds.annotations, strict=True):
        try:
            ann = parse_voc_annotation(xml, VOC_CLASSES)
        except AnnotationError as err:
            raise BenchError(str(err)) from None
        if not Path(image).is_file():
            raise BenchError(f"{image}: image listed in {image_set}.txt is missing.")
        annotations.append(ann)
    return VOCImages(list(ds.images), annotations, list(ds.annotations)), md5 is not None


class VOCAdapter(VOCIndex):
    """The loader part (the index part is :mod:`benchmark.data.voc_index`)."""

    def load_split(
        self,
        root: Path,
        split: str,
        download: bool,
        trainval_years: Sequence[int] = (2007,),
        **args: Any,
    ) -> SplitData:
        check_args(args)
        if split not in self.splits:
            raise BenchError(f"VOC has splits {self.splits}, not {split!r}.")
        years = [2007] if split == "test" else check_years(trainval_years)
        parts = [_load_year(root, year, split, download) for year in years]
        dataset = VOCImages(
            [p for part, _ in parts for p in part.images],
            [a for part, _ in parts for a in part.annotations],
            [x for part, _ in parts for x in part.xml],
        )
        ids = [
            f"VOC{y}/{a.image_id}"
            for y, (part, _) in zip(years, parts, strict=True)
            for a in part.annotations
        ]
        return SplitData(
            dataset=dataset,
            example_ids=ids,
            class_names=list(VOC_CLASSES),
            labels=stratification_labels(dataset.annotations),
            is_fixture=all(fixture for _, fixture in parts),
            source={"voc_trainval_years": [int(y) for y in check_years(trainval_years)]},
            files=[
                *(image_set_file(root, year, split) for year in years),
                *(Path(x) for x in dataset.xml),
            ],
        )

    def write_fixture(self, root: Path) -> Path:
        return write_voc_fixture(root)


# --- fixture -----------------------------------------------------------------------------------


def _palette() -> np.ndarray:
    """20 well-separated colours (hues round the wheel, alternating brightness)."""
    import colorsys

    rgb = [colorsys.hsv_to_rgb(c / 20, 0.85, 1.0 if c % 2 == 0 else 0.6) for c in range(20)]
    return (np.asarray(rgb) * 255).round().astype(np.uint8)


def _draw_image(
    rng: np.random.Generator, objects_wanted: list[tuple[int, bool]], width: int, height: int
) -> tuple[Image.Image, list[VOCObject]]:
    """Noise background with one filled shape per ``(class, difficult)``: each class has its own
    colour, even classes are rectangles and odd ones ellipses, so a detector has something to
    learn. Shapes never overlap (each box shows its whole object); difficult ones are small,
    like most difficult VOC objects, and are dropped if they do not fit."""
    palette = _palette()
    background = rng.normal(110, 35, size=(height, width, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    objects: list[VOCObject] = []
    taken: list[tuple[int, int, int, int]] = []
    for c, difficult in objects_wanted:
        lo, hi = (0.12, 0.2) if difficult else (0.3, 0.55)
        for attempt in range(80):
            shrink = 0.97**attempt  # crowded image: try smaller shapes
            w = max(6, int(width * rng.uniform(lo, hi) * shrink))
            h = max(6, int(height * rng.uniform(lo, hi) * shrink))
            x0 = 0 if rng.random() < 0.15 else int(rng.integers(0, width - w + 1))
            y0 = int(rng.integers(0, height - h + 1))
            box = (x0, y0, x0 + w - 1, y0 + h - 1)  # 0-based inclusive pixels
            if all(box[2] < t[0] or t[2] < box[0] or box[3] < t[1] or t[3] < box[1] for t in taken):
                break
        else:
            if difficult:
                continue
            raise RuntimeError("fixture writer: no room for an object")  # a bug, not user input
        taken.append(box)
        colour = tuple(int(v) for v in palette[c])
        (draw.rectangle if c % 2 == 0 else draw.ellipse)(box, fill=colour)
        touches = box[0] == 0 or box[1] == 0 or box[2] == width - 1 or box[3] == height - 1
        objects.append(
            VOCObject(
                name=VOC_CLASSES[c],
                bbox=(box[0] + 1, box[1] + 1, box[2] + 1, box[3] + 1),  # VOC: 1-based
                difficult=bool(difficult),
                truncated=bool(touches),
                pose=str(rng.choice(["Unspecified", "Left", "Right", "Frontal", "Rear"])),
            )
        )
    return image, objects


def _write_year(root: Path, year: int, sets: dict[str, list[str]], seed: int) -> Path:
    """One ``VOCdevkit/VOC<year>`` folder: JPEGs, XMLs, ImageSets/Main (whole sets and the
    per-class ``<class>_<set>.txt`` files with 1 / -1 / 0 = present / absent / only difficult)."""
    folder = Path(root) / "VOCdevkit" / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written: list[Path] = []
    present: dict[str, dict[str, int]] = {}
    cycle = 0
    for ids in sets.values():
        for image_id in ids:
            # classes cycle through the list, so any 20 consecutive images hold every class
            wanted = [((cycle + j) % 20, False) for j in range(int(rng.integers(1, 4)))]
            cycle += len(wanted)
            if rng.random() < 0.3:
                wanted.append((int(rng.integers(0, 20)), True))
            width, height = int(rng.integers(96, 201)), int(rng.integers(80, 161))
            image, objects = _draw_image(rng, wanted, width, height)
            jpg = folder / "JPEGImages" / f"{image_id}.jpg"
            image.save(jpg, quality=92)
            xml = write_voc_annotation(
                folder / "Annotations" / f"{image_id}.xml", jpg.name, width, height, objects
            )
            if year != 2007:  # the writer labels files VOC2007, as the 2007 release does
                xml.write_text(xml.read_text().replace("VOC2007", f"VOC{year}"))
            written += [jpg, xml]
            flags: dict[str, int] = {}
            for o in objects:
                flags[o.name] = max(flags.get(o.name, 0), 0 if o.difficult else 1)
            present[image_id] = flags
    main = folder / "ImageSets" / "Main"
    for name, ids in {**sets, "trainval": sets.get("train", []) + sets.get("val", [])}.items():
        if not ids:
            continue
        (main / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
        written.append(main / f"{name}.txt")
        for cls in VOC_CLASSES:
            lines = "".join(f"{i} {present[i].get(cls, -1):2d}\n" for i in ids)
            (main / f"{cls}_{name}.txt").write_text(lines)
            written.append(main / f"{cls}_{name}.txt")
    write_manifest(folder, f"voc{year}", written)
    return folder


def write_voc_fixture(
    root: Path, trainval_2007: int = 40, test_2007: int = 20, trainval_2012: int = 10
) -> Path:
    """A small VOC in the real layout: ``VOCdevkit/VOC2007`` (train, val, trainval, test) and a
    ``VOCdevkit/VOC2012`` trainval for the 07+12 option. Ids follow the real schemes (``000005``,
    ``2008_000002``); object classes cycle so every class has a non-difficult object in each
    set of 20 or more images."""
    ids07 = [f"{i:06d}" for i in range(1, trainval_2007 + test_2007 + 1)]
    half = trainval_2007 // 2
    sets07 = {
        "train": ids07[:half],
        "val": ids07[half:trainval_2007],
        "test": ids07[trainval_2007:],
    }
    _write_year(root, 2007, sets07, seed=7)
    ids12 = [f"2008_{i:06d}" for i in range(1, trainval_2012 + 1)]
    _write_year(
        root,
        2012,
        {"train": ids12[: trainval_2012 // 2], "val": ids12[trainval_2012 // 2 :]},
        seed=12,
    )
    return Path(root) / "VOCdevkit"
