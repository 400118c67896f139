"""PASCAL VOC's splits without torch: ``ImageSets/Main/<set>.txt`` and the annotation XMLs.

The same files torchvision's ``VOCDetection`` lists (``VOCdevkit/VOC<year>/``), read by
blurbench's strict XML parser; the stratification label of an image (its rarest class) needs
every annotation of the split, so the XMLs are parsed here too (no image is opened).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import SplitIndex
from benchmark.data.fixtures import read_manifest
from benchmark.detection.voc_annotations import (
    VOC_CLASSES,
    AnnotationError,
    VOCAnnotation,
    parse_voc_annotation,
)
from benchmark.errors import BenchError

TRAIN_SETS = ("trainval", "train", "val")
YEARS = (2007, 2012)


def year_folder(root: Path, year: int) -> Path:
    return Path(root) / "VOCdevkit" / f"VOC{year}"


def image_set_file(root: Path, year: int, image_set: str) -> Path:
    return year_folder(root, year) / "ImageSets" / "Main" / f"{image_set}.txt"


def check_years(years: Any) -> list[int]:
    if isinstance(years, int | str):
        years = [years]
    try:
        out = sorted({int(y) for y in years})
    except (TypeError, ValueError):
        out = []
    if not out or any(y not in YEARS for y in out):
        raise BenchError(f"data.args.trainval_years {years!r}: use [2007] or [2007, 2012] (07+12).")
    return out


def check_args(args: dict[str, Any]) -> None:
    if args:
        raise BenchError(
            f"data.args for the voc adapter: unknown {', '.join(sorted(args))}; the only "
            f"option is trainval_years (e.g. [2007] or [2007, 2012])."
        )


def stratification_labels(annotations: Sequence[VOCAnnotation]) -> np.ndarray:
    """One label per image for the stratified carve and subsets: the split's rarest class among
    the image's non-difficult objects, so a small subset covers as many classes as it can.
    Images without a non-difficult object get their own bucket (``len(VOC_CLASSES)``)."""
    index = {name: i for i, name in enumerate(VOC_CLASSES)}
    counts = Counter(o.name for a in annotations for o in a.objects if not o.difficult)
    labels = np.full(len(annotations), len(VOC_CLASSES), dtype=np.int64)
    for i, ann in enumerate(annotations):
        names = {o.name for o in ann.objects if not o.difficult}
        if names:
            labels[i] = index[min(names, key=lambda n: (counts[n], index[n]))]
    return labels


class VOCIndex:
    splits = (*TRAIN_SETS, "test")
    version = 1

    def index_split(
        self, root: Path, split: str, trainval_years: Sequence[int] = (2007,), **args: Any
    ) -> SplitIndex:
        check_args(args)
        if split not in self.splits:
            raise BenchError(f"VOC has splits {self.splits}, not {split!r}.")
        years = [2007] if split == "test" else check_years(trainval_years)
        ids: list[str] = []
        xml: list[Path] = []
        annotations: list[VOCAnnotation] = []
        for year in years:
            listed = image_set_file(root, year, split)
            for name in (line.strip() for line in listed.read_text().splitlines()):
                path = year_folder(root, year) / "Annotations" / f"{name}.xml"
                try:
                    annotations.append(parse_voc_annotation(path, VOC_CLASSES))
                except AnnotationError as err:
                    raise BenchError(str(err)) from None
                ids.append(f"VOC{year}/{annotations[-1].image_id}")
                xml.append(path)
        return SplitIndex(
            example_ids=ids,
            class_names=list(VOC_CLASSES),
            labels=stratification_labels(annotations),
            is_fixture=all(read_manifest(year_folder(root, y), f"voc{y}") is not None
                           for y in years),  # fmt: skip
            source={"voc_trainval_years": [int(y) for y in check_years(trainval_years)]},
            files=[*(image_set_file(root, year, split) for year in years), *xml],
        )
