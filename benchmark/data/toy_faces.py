"""A procedural labelled image set in ImageNet's folder layout in which some categories
contain faces, with the faces' boxes in the paper's JSON annotation format: the study demo's
"ImageNet" (``bench demo --study``).

Drawn, not shipped: the project has no image package to take photographs from (scikit-image
is not a dependency, and a handful of photographs would not make ten categories), and drawing
the faces means their boxes are known exactly, so no face detector is needed. Each category is
one drawn object on a noisy background. In the face categories (``mask``, ``harmonica``,
``sunglasses``, ``microphone``) the object sits on or next to a drawn face (a skin-coloured
ellipse with eyes and a mouth), as a mask or a harmonica does in ImageNet; in some other
categories a face appears in a share of the images, away from the object. The pictures are
toys: whatever a network learns from them says nothing about face blurring on real images.

Class folders carry readable names rather than WordNet ids, since these are not ImageNet's
categories; :class:`torchvision.datasets.ImageFolder` reads either.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmark.atomic import atomic_write_text, current_umask
from benchmark.data.imagenet_folder import FIXTURE_MARK
from benchmark.errors import BenchError
from benchmark.obfuscation.annotations import FaceBox, annotations_json

ANNOTATIONS_FILE = "face_annotations.json"  # the paper's format, one entry per image
SETTINGS_FILE = ".blurbench-toy-faces.json"  # what was generated, so a rerun can reuse it
GENERATOR_VERSION = 1

Box = tuple[float, float, float, float]
Rng = np.random.Generator
SKIN = [(241, 194, 167), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172)]
# One colour per faceless object with a little jitter: ImageNet categories have colour
# tendencies too. The face categories share one palette, so their shape is what tells them apart.
SHARED = [(200, 30, 40), (30, 60, 200), (30, 150, 60), (230, 180, 20), (120, 40, 160)]


@dataclass(frozen=True)
class ToyScale:
    """How big the set is. The demo's default is its full size; tests pass a smaller one
    through the same code."""

    categories: int = 10
    train_per_class: int = 24
    val_per_class: int = 10
    image_size: int = 56
    seed: int = 0


@dataclass(frozen=True)
class Category:
    name: str
    face_share: float  # fraction of its images with a face
    face_on_object: bool  # the object overlaps the face (mask) rather than sits apart from it
    draw: Callable[[ImageDraw.ImageDraw, Rng, Box, int], None]  # (draw, rng, anchor box, size)


def _jitter(rng: Rng, colour: tuple[int, int, int], amount: int = 25) -> tuple[int, int, int]:
    r, g, b = (int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)
    return r, g, b


def _shared_colour(rng: Rng) -> tuple[int, int, int]:
    return _jitter(rng, SHARED[int(rng.integers(len(SHARED)))])


# Objects on a face: the anchor box is the face's (x0, y0, x1, y1).


def _mask(d: ImageDraw.ImageDraw, rng: Rng, face: Box, size: int) -> None:
    x0, y0, x1, y1 = face
    w, h = x1 - x0, y1 - y0
    top, bottom = y0 + 0.25 * h, y0 + 0.5 * h
    d.rectangle((x0 - 0.08 * w, top, x1 + 0.08 * w, bottom), fill=_shared_colour(rng))
    for cx in (x0 + 0.32 * w, x0 + 0.68 * w):  # eye holes
        r = 0.09 * w
        d.ellipse((cx - r, y0 + 0.37 * h - r, cx + r, y0 + 0.37 * h + r), fill=(20, 20, 20))


def _sunglasses(d: ImageDraw.ImageDraw, rng: Rng, face: Box, size: int) -> None:
    x0, y0, x1, y1 = face
    w, h = x1 - x0, y1 - y0
    frame = _shared_colour(rng)
    r = 0.16 * w
    for cx in (x0 + 0.3 * w, x0 + 0.7 * w):
        d.ellipse((cx - r, y0 + 0.38 * h - r, cx + r, y0 + 0.38 * h + r), fill=(15, 15, 25),
                  outline=frame, width=max(1, round(0.05 * w)))  # fmt: skip
    d.line((x0 + 0.42 * w, y0 + 0.36 * h, x0 + 0.58 * w, y0 + 0.36 * h), fill=frame,
           width=max(1, round(0.05 * w)))  # fmt: skip


def _harmonica(d: ImageDraw.ImageDraw, rng: Rng, face: Box, size: int) -> None:
    x0, y0, x1, y1 = face
    w, h = x1 - x0, y1 - y0
    left, right, top, bottom = x0 + 0.1 * w, x1 - 0.1 * w, y0 + 0.66 * h, y0 + 0.84 * h
    d.rectangle((left, top, right, bottom), fill=_shared_colour(rng))
    holes = 5
    for i in range(holes):  # the comb's holes
        cx = left + (i + 0.5) * (right - left) / holes
        d.rectangle((cx - 0.03 * w, top + 0.3 * (bottom - top), cx + 0.03 * w,
                     bottom - 0.3 * (bottom - top)), fill=(20, 20, 20))  # fmt: skip


def _microphone(d: ImageDraw.ImageDraw, rng: Rng, face: Box, size: int) -> None:
    x0, y0, x1, y1 = face
    w, h = x1 - x0, y1 - y0
    cx, cy, r = x0 + 0.5 * w + rng.uniform(-0.1, 0.1) * w, y0 + 0.78 * h, 0.14 * w
    d.line((cx, cy, cx + rng.uniform(-0.2, 0.2) * w, size), fill=(40, 40, 40),
           width=max(2, round(0.08 * w)))  # fmt: skip
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_shared_colour(rng), outline=(30, 30, 30))


# Faceless objects: the anchor box is the region the object fills.


def _ball(d: ImageDraw.ImageDraw, rng: Rng, box: Box, size: int) -> None:
    x0, y0, x1, y1 = box
    d.ellipse(box, fill=_jitter(rng, (235, 120, 20)), outline=(40, 20, 10), width=2)
    d.line((x0, (y0 + y1) / 2, x1, (y0 + y1) / 2), fill=(40, 20, 10), width=2)
    d.line(((x0 + x1) / 2, y0, (x0 + x1) / 2, y1), fill=(40, 20, 10), width=2)


def _tree(d: ImageDraw.ImageDraw, rng: Rng, box: Box, size: int) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    d.rectangle((x0 + 0.42 * w, y0 + 0.6 * h, x0 + 0.58 * w, y1), fill=_jitter(rng, (110, 70, 30)))
    d.polygon([(x0, y0 + 0.7 * h), (x1, y0 + 0.7 * h), ((x0 + x1) / 2, y0)],
              fill=_jitter(rng, (30, 130, 40)))  # fmt: skip


def _boat(d: ImageDraw.ImageDraw, rng: Rng, box: Box, size: int) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    d.polygon([(x0, y0 + 0.7 * h), (x1, y0 + 0.7 * h), (x1 - 0.2 * w, y1), (x0 + 0.2 * w, y1)],
              fill=_jitter(rng, (120, 60, 30)))  # fmt: skip
    d.polygon([(x0 + 0.5 * w, y0), (x0 + 0.5 * w, y0 + 0.65 * h), (x0 + 0.85 * w, y0 + 0.65 * h)],
              fill=_jitter(rng, (245, 245, 235)), outline=(60, 60, 60))  # fmt: skip


def _house(d: ImageDraw.ImageDraw, rng: Rng, box: Box, size: int) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    d.rectangle((x0 + 0.1 * w, y0 + 0.45 * h, x1 - 0.1 * w, y1), fill=_jitter(rng, (200, 190, 160)))
    d.polygon([(x0, y0 + 0.45 * h), (x1, y0 + 0.45 * h), ((x0 + x1) / 2, y0)],
              fill=_jitter(rng, (170, 40, 30)))  # fmt: skip
    d.rectangle((x0 + 0.42 * w, y0 + 0.7 * h, x0 + 0.58 * w, y1), fill=(70, 45, 25))


def _kite(d: ImageDraw.ImageDraw, rng: Rng, box: Box, size: int) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    d.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=_jitter(rng, (220, 40, 140)))
    d.line((cx, y1, cx + rng.uniform(-0.5, 0.5) * (x1 - x0), size), fill=(50, 50, 50), width=1)


def _clock(d: ImageDraw.ImageDraw, rng: Rng, box: Box, size: int) -> None:
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    d.ellipse(box, fill=_jitter(rng, (245, 245, 240)), outline=(20, 20, 20), width=2)
    for angle in rng.uniform(0, 2 * np.pi, 2):
        length = r * rng.uniform(0.5, 0.85)
        d.line((cx, cy, cx + length * np.cos(angle), cy + length * np.sin(angle)),
               fill=(20, 20, 20), width=2)  # fmt: skip


# Ordered so that any first few mix face and faceless categories (the reduced test's set).
CATEGORIES: tuple[Category, ...] = (
    Category("mask", 1.0, True, _mask),
    Category("ball", 0.5, False, _ball),
    Category("harmonica", 1.0, True, _harmonica),
    Category("tree", 0.0, False, _tree),
    Category("sunglasses", 1.0, True, _sunglasses),
    Category("boat", 0.0, False, _boat),
    Category("microphone", 1.0, True, _microphone),
    Category("kite", 0.25, False, _kite),
    Category("house", 0.1, False, _house),
    Category("clock", 0.0, False, _clock),
)


def _draw_face(d: ImageDraw.ImageDraw, rng: Rng, box: Box) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    d.ellipse(box, fill=_jitter(rng, SKIN[int(rng.integers(len(SKIN)))], 10))
    d.chord((x0, y0 - 0.05 * h, x1, y0 + 0.45 * h), 180, 360,
            fill=_jitter(rng, (60, 40, 25), 20))  # hair  # fmt: skip
    r = max(1.0, 0.07 * w)
    for cx in (x0 + 0.32 * w, x0 + 0.68 * w):
        d.ellipse((cx - r, y0 + 0.42 * h - r, cx + r, y0 + 0.42 * h + r), fill=(30, 30, 30))
    d.arc((x0 + 0.3 * w, y0 + 0.55 * h, x1 - 0.3 * w, y0 + 0.8 * h), 20, 160,
          fill=(150, 40, 40), width=max(1, round(0.05 * w)))  # fmt: skip


def _random_box(rng: Rng, size: int, width: float, height: float, x_range: tuple[float, float],
                y_range: tuple[float, float]) -> Box:  # fmt: skip
    """A ``width`` x ``height`` box whose top-left corner lies in the given fractions of the
    free space, so callers can keep a face and an object apart."""
    x0 = rng.uniform(*x_range) * (size - width)
    y0 = rng.uniform(*y_range) * (size - height)
    return x0, y0, x0 + width, y0 + height


def draw_image(category: Category, with_face: bool, size: int,
               rng: Rng) -> tuple[Image.Image, list[FaceBox]]:  # fmt: skip
    """One picture of ``category`` and the boxes of the faces drawn in it."""
    background = np.clip(rng.integers(90, 200, 3) + rng.normal(0, 12, (size, size, 3)), 0, 255)
    image = Image.fromarray(background.astype(np.uint8))
    d = ImageDraw.Draw(image)
    faces: list[FaceBox] = []
    if category.face_on_object:
        w = rng.uniform(0.38, 0.5) * size
        face = _random_box(rng, size, w, 1.2 * w, (0.1, 0.9), (0.05, 0.6))
        _draw_face(d, rng, face)
        category.draw(d, rng, face, size)
        faces.append(FaceBox(*(round(v, 1) for v in face)))
        return image, faces
    side = rng.uniform(0.45, 0.6) * size
    left = bool(rng.integers(2))  # object on one side, a face (if any) on the other
    obj = _random_box(rng, size, side, side, (0.0, 0.15) if left else (0.85, 1.0), (0.1, 0.9))
    category.draw(d, rng, obj, size)
    if with_face:
        w = rng.uniform(0.22, 0.3) * size
        face = _random_box(rng, size, w, 1.2 * w, (0.9, 1.0) if left else (0.0, 0.1), (0.0, 1.0))
        _draw_face(d, rng, face)
        faces.append(FaceBox(*(round(v, 1) for v in face)))
    return image, faces


@dataclass(frozen=True)
class ToySet:
    root: Path  # <root>/train/<category>/*.JPEG, <root>/val/<category>/*.JPEG
    annotations: Path  # the paper's JSON: every image, faceless ones with "bboxes": []
    categories: list[str]
    images: int
    faces: int
    reused: bool  # an earlier run's identical set was found and kept


def write_toy_faces(root: Path, scale: ToyScale = ToyScale()) -> ToySet:
    """Draw the set into ``root`` (written in a staging folder, then renamed: a folder that
    exists is complete). A rerun with the same scale keeps it; another scale is refused rather
    than mixed into it."""
    root = Path(root)
    if not 2 <= scale.categories <= len(CATEGORIES):
        raise BenchError(f"the toy set has 2 to {len(CATEGORIES)} categories, "
                         f"not {scale.categories}.")  # fmt: skip
    settings = {"generator": "benchmark.data.toy_faces", "version": GENERATOR_VERSION,
                **asdict(scale)}  # fmt: skip
    chosen = CATEGORIES[: scale.categories]
    names = [c.name for c in chosen]
    if root.exists():
        return _reuse(root, settings, names)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.incomplete-"))
    try:
        table: dict[str, list[FaceBox]] = {}
        rng = np.random.default_rng(scale.seed)
        for split, count in (("train", scale.train_per_class), ("val", scale.val_per_class)):
            for category in chosen:
                folder = staging / split / category.name
                folder.mkdir(parents=True)
                # a fixed share of faces per category and split, not a coin toss per image
                with_face = np.arange(count) < round(category.face_share * count)
                for i in rng.permutation(count):
                    image, faces = draw_image(category, bool(with_face[i]), scale.image_size, rng)
                    name = f"{category.name}_{split}_{i:04d}.JPEG"
                    image.save(folder / name, format="JPEG", quality=90)
                    table[f"{split}/{category.name}/{name}"] = faces
        atomic_write_text(staging / ANNOTATIONS_FILE, annotations_json(table))
        atomic_write_text(staging / FIXTURE_MARK,
                          "blurbench toy set: procedurally drawn images, not ImageNet\n")
        atomic_write_text(staging / SETTINGS_FILE, json.dumps(settings, indent=1) + "\n")
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp made it 0700
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    faces = sum(len(boxes) for boxes in table.values())
    return ToySet(root, root / ANNOTATIONS_FILE, names, len(table), faces, reused=False)


def _reuse(root: Path, settings: dict[str, object], names: list[str]) -> ToySet:
    try:
        found = json.loads((root / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        found = None
    if found != settings:
        raise BenchError(f"{root} exists but is not this toy set ({root / SETTINGS_FILE} "
                         f"differs or is missing): pass another --workdir, or remove it.")
    table = json.loads((root / ANNOTATIONS_FILE).read_text())
    faces = sum(len(entry["bboxes"]) for entry in table)
    return ToySet(root, root / ANNOTATIONS_FILE, names, len(table), faces, reused=True)
