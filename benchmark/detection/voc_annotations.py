"""Read and write PASCAL VOC2007 XML annotations, strictly.

Annotations decide the ground truth of the benchmark, so a malformed file is reported (with its
path, on one line) rather than silently repaired: a box outside the image, an unknown class or a
missing ``<difficult>`` would all change the score without anyone noticing.

Parsing is safe against hostile XML: any DTD (``<!DOCTYPE``), entity declaration or external
entity is refused before the tree is built, which rules out entity-expansion ("billion laughs")
and external-entity attacks with the standard library alone. Real VOC files never contain a DTD.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
import xml.parsers.expat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.detection.voc_eval import ImageGroundTruth

__all__ = [
    "VOC_CLASSES",
    "AnnotationError",
    "VOCAnnotation",
    "VOCObject",
    "parse_voc_annotation",
    "write_voc_annotation",
]

# The 20 classes in the standard order; labels are indices into this tuple.
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


class AnnotationError(ValueError):
    """A bad annotation file; the message is one line and starts with the file's path."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = " ".join(problem.split())
        super().__init__(" ".join(f"{self.path}: {self.problem}".split()))

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # picklable across DataLoader workers
        return (type(self), (self.path, self.problem))


@dataclass(frozen=True)
class VOCObject:
    """One annotated object; bbox is (xmin, ymin, xmax, ymax) in 1-based inclusive pixels."""

    name: str
    bbox: tuple[float, float, float, float]
    difficult: bool = False
    truncated: bool = False
    pose: str = "Unspecified"


@dataclass(frozen=True)
class VOCAnnotation:
    """One parsed file: image size plus its objects, in file order."""

    image_id: str  # the file stem, e.g. "000005" -- how VOC image sets name images
    filename: str
    width: int
    height: int
    depth: int | None
    objects: tuple[VOCObject, ...] = field(default_factory=tuple)

    def to_ground_truth(
        self, class_names: Sequence[str] = VOC_CLASSES, image_id: str | None = None
    ) -> ImageGroundTruth:
        """The evaluator's view: labels index ``class_names``."""
        index = {name: i for i, name in enumerate(class_names)}
        return ImageGroundTruth(
            image_id=self.image_id if image_id is None else image_id,
            boxes=np.array([o.bbox for o in self.objects], dtype=np.float64).reshape(-1, 4),
            labels=np.array([index[o.name] for o in self.objects], dtype=np.int64),
            difficult=np.array([o.difficult for o in self.objects], dtype=bool),
        )


class _UnsafeXML(Exception):
    pass


def _refuse(*_args: object) -> None:
    raise _UnsafeXML


def _safe_parse(data: bytes) -> ET.Element:
    """Parse after a pre-scan that refuses DTDs and entities (expat handlers raise on sight)."""
    scanner = xml.parsers.expat.ParserCreate()
    scanner.StartDoctypeDeclHandler = _refuse
    scanner.EntityDeclHandler = _refuse
    scanner.UnparsedEntityDeclHandler = _refuse
    scanner.ExternalEntityRefHandler = _refuse
    scanner.Parse(data, True)
    return ET.fromstring(data)


def _classes_phrase(class_names: Sequence[str]) -> str:
    if tuple(class_names) == VOC_CLASSES:
        return f"the classes are the 20 VOC classes ({', '.join(VOC_CLASSES)})"
    return f"the classes are: {', '.join(class_names)}"


def parse_voc_annotation(
    path: str | os.PathLike[str], class_names: Sequence[str] = VOC_CLASSES
) -> VOCAnnotation:
    """Read one VOC XML file, refusing anything that would make the ground truth wrong."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AnnotationError(path, "annotation file not found") from None
    except OSError as exc:
        raise AnnotationError(path, f"cannot read annotation file ({exc.strerror})") from None
    try:
        root = _safe_parse(data)
    except _UnsafeXML:
        raise AnnotationError(
            path, "refusing XML with a DTD or entity declarations (VOC files have none)"
        ) from None
    except (xml.parsers.expat.ExpatError, ET.ParseError) as exc:
        raise AnnotationError(path, f"not well-formed XML ({exc})") from None
    if root.tag != "annotation":
        raise AnnotationError(path, f"root element is <{root.tag}>, expected <annotation>")

    filename = _text(root, "filename", path)
    width = _positive_int(root, "size/width", path)
    height = _positive_int(root, "size/height", path)
    depth = _positive_int(root, "size/depth", path) if root.find("size/depth") is not None else None
    known = set(class_names)
    objects = []
    for k, obj in enumerate(root.findall("object"), start=1):
        where = f"object {k}"
        name = _text(obj, "name", path, where)
        if name not in known:
            raise AnnotationError(
                path, f"{where}: unknown class name {name!r}; {_classes_phrase(class_names)}"
            )
        x1, y1, x2, y2 = (_coordinate(obj, f"bndbox/{c}", path, where) for c in _COORDS)
        bbox = (x1, y1, x2, y2)
        _check_box(bbox, width, height, path, f"{where} ({name})")
        objects.append(
            VOCObject(
                name=name,
                bbox=bbox,
                difficult=_flag(obj, "difficult", path, where, required=True),
                truncated=_flag(obj, "truncated", path, where, required=False),
                pose=(obj.findtext("pose") or "Unspecified").strip() or "Unspecified",
            )
        )
    return VOCAnnotation(
        image_id=path.stem,
        filename=filename,
        width=width,
        height=height,
        depth=depth,
        objects=tuple(objects),
    )


_COORDS = ("xmin", "ymin", "xmax", "ymax")


def _text(elem: ET.Element, tag: str, path: Path, where: str = "") -> str:
    node = elem.find(tag)
    text = node.text.strip() if node is not None and node.text is not None else ""
    if not text:
        prefix = f"{where}: " if where else ""
        raise AnnotationError(path, f"{prefix}missing <{tag}>")
    return text


def _positive_int(elem: ET.Element, tag: str, path: Path) -> int:
    text = _text(elem, tag, path)
    try:
        value = int(text)
    except ValueError:
        raise AnnotationError(path, f"<{tag}> is {text!r}, expected a whole number") from None
    if value <= 0:
        raise AnnotationError(path, f"<{tag}> is {value}, expected a positive number")
    return value


def _coordinate(elem: ET.Element, tag: str, path: Path, where: str) -> float:
    text = _text(elem, tag, path, where)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise AnnotationError(path, f"{where}: <{tag}> is {text!r}, expected a number")
    return value


def _flag(elem: ET.Element, tag: str, path: Path, where: str, required: bool) -> bool:
    if not required and elem.find(tag) is None:
        return False
    text = _text(elem, tag, path, where)
    if text not in ("0", "1"):
        raise AnnotationError(path, f"{where}: <{tag}> is {text!r}, expected 0 or 1")
    return text == "1"


def _check_box(
    bbox: tuple[float, float, float, float], width: int, height: int, path: Path, where: str
) -> None:
    """VOC boxes are 1-based inclusive: 1 <= x1 <= x2 <= width, same for y."""
    x1, y1, x2, y2 = bbox
    if not all(math.isfinite(v) for v in bbox):
        raise AnnotationError(path, f"{where}: box {bbox} has a non-finite coordinate")
    shown = f"({_fmt(x1)}, {_fmt(y1)}, {_fmt(x2)}, {_fmt(y2)})"
    if x2 < x1 or y2 < y1:
        raise AnnotationError(path, f"{where}: box {shown} has xmax < xmin or ymax < ymin")
    if x1 < 1 or y1 < 1 or x2 > width or y2 > height:
        raise AnnotationError(
            path,
            f"{where}: box {shown} lies outside the {width}x{height} image "
            "(VOC coordinates run from 1 to width/height)",
        )


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def write_voc_annotation(
    path: str | os.PathLike[str],
    filename: str,
    width: int,
    height: int,
    objects: Sequence[VOCObject],
    depth: int = 3,
    class_names: Sequence[str] = VOC_CLASSES,
) -> Path:
    """Write a file in the real VOC2007 layout, so fixtures exercise the same parser as VOC.

    Objects are validated like parsed ones, so whatever this writes reads back unchanged.
    """
    path = Path(path)
    if width <= 0 or height <= 0 or depth <= 0:
        raise AnnotationError(path, f"image size {width}x{height}x{depth} must be positive")
    known = set(class_names)
    for k, obj in enumerate(objects, start=1):
        if obj.name not in known:
            raise AnnotationError(
                path, f"object {k}: unknown class name {obj.name!r}; {_classes_phrase(class_names)}"
            )
        if len(obj.bbox) != 4:
            raise AnnotationError(path, f"object {k}: bbox needs 4 numbers, got {len(obj.bbox)}")
        x1, y1, x2, y2 = (float(v) for v in obj.bbox)
        _check_box((x1, y1, x2, y2), width, height, path, f"object {k} ({obj.name})")

    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2007"
    ET.SubElement(root, "filename").text = filename
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "The VOC2007 Database"
    ET.SubElement(source, "annotation").text = "PASCAL VOC2007"
    ET.SubElement(source, "image").text = "synthetic"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(int(width))
    ET.SubElement(size, "height").text = str(int(height))
    ET.SubElement(size, "depth").text = str(int(depth))
    ET.SubElement(root, "segmented").text = "0"
    for obj in objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = obj.name
        ET.SubElement(node, "pose").text = obj.pose
        ET.SubElement(node, "truncated").text = "1" if obj.truncated else "0"
        ET.SubElement(node, "difficult").text = "1" if obj.difficult else "0"
        box = ET.SubElement(node, "bndbox")
        for tag, value in zip(_COORDS, obj.bbox, strict=True):
            ET.SubElement(box, tag).text = _fmt(value)
    ET.indent(root, space="\t")
    path.write_text(ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")
    return path
