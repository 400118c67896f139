"""Finding faces offline: OpenCV's Haar cascade, whose weights ship inside the OpenCV wheel.

Why this detector (measured with ``scripts/measure_face_detectors.py``, faces that ship in
packages: scikit-image's 100 LFW face crops and 100 non-faces, its astronaut and cameraman
photos, matplotlib's Grace Hopper, and five faceless sample photos):

* ``haarcascade_frontalface_alt2`` (opencv-python-headless < 5): 98/100 LFW faces, no detection
  on the 100 non-faces nor on the faceless photos, 2 of the 3 portraits (misses the cameraman,
  who looks down into his camera); the fastest of those tried.
* MTCNN from facenet-pytorch 2.6.0 (weights in its wheel) found the cameraman too, but the
  package declares torch<2.3, numpy<2 and Pillow<10.3: installing it would replace this
  project's torch, so it cannot be a dependency; it was also 5x slower on the (shared) 2-core
  CPU: 2.4 s vs 0.48 s per 500x375 image.
* scikit-image's LBP cascade: 95/100 and two false faces on the astronaut photo.
* OpenCV 5 no longer ships the cascades in ``cv2.data``: the extra pins ``<5``.

A frontal-face cascade misses profiles and small faces: the paper had people refine boxes
(Amazon Rekognition, then crowd workers). Treat the output as a first draft for review (the
``--draw`` pictures), not as annotations as good as the paper's.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import BenchError
from benchmark.obfuscation.annotations import FaceBox

CASCADE_FILE = "haarcascade_frontalface_alt2.xml"
# OpenCV's usual settings: 10% scale steps, a face must be found by 5 overlapping windows
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
INSTALL_HINT = ("pip install -c constraints.txt '.[faces]' "
                "(or pip install 'opencv-python-headless<5')")


@dataclass(frozen=True)
class Detection:
    box: FaceBox
    score: float  # the cascade's level weight: higher is more face-like


@dataclass
class DetectionSummary:
    images: int
    with_faces: int
    faces: int
    unreadable: list[str]
    seconds: float
    out: Path

    def line(self) -> str:
        rate = self.images / self.seconds if self.seconds > 0 else 0.0
        skipped = f", {len(self.unreadable)} unreadable skipped" if self.unreadable else ""
        return (f"{self.images} images, {self.with_faces} with faces, {self.faces} faces"
                f"{skipped}; {rate:.1f} images/s; wrote {self.out}")


def load_detector() -> Any:
    """The cascade from the installed OpenCV wheel; never downloads anything."""
    try:
        import cv2
    except ImportError:
        raise BenchError(f"bench faces detect needs OpenCV: {INSTALL_HINT}.") from None
    path = Path(cv2.data.haarcascades) / CASCADE_FILE
    if not path.is_file():
        raise BenchError(f"OpenCV {cv2.__version__} ships no Haar cascades ({path} is "
                         f"missing; OpenCV 5 dropped them): {INSTALL_HINT}.")
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise BenchError(f"OpenCV could not read its cascade {path}; reinstall: {INSTALL_HINT}.")
    return cascade


def detect_faces(image: Any, detector: Any, threshold: float | None = None) -> list[Detection]:
    """Faces in a PIL image, boxes clipped to it, best first; ``threshold`` drops low scores."""
    import numpy as np

    grey = np.asarray(image.convert("L"))
    rects, _, weights = detector.detectMultiScale3(
        grey, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, outputRejectLevels=True)
    w, h = image.size
    found = []
    for (x, y, bw, bh), score in zip(np.asarray(rects).reshape(-1, 4),
                                     np.asarray(weights).ravel(), strict=True):
        if threshold is not None and score < threshold:
            continue
        box = FaceBox(float(max(0, x)), float(max(0, y)), float(min(w, x + bw)),
                      float(min(h, y + bh)))
        if not box.degenerate:
            found.append(Detection(box, float(score)))
    return sorted(found, key=lambda d: -d.score)


def draw_detections(image: Any, detections: list[Detection]) -> Any:
    """The image with each box outlined and scored, for reviewing the detector's draft."""
    from PIL import ImageDraw

    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 200))
    for d in detections:
        b = d.box
        draw.rectangle([b.x0, b.y0, b.x1, b.y1], outline=(255, 0, 0), width=width)
        draw.text((b.x0 + width, b.y0 + width), f"{d.score:.1f}", fill=(255, 255, 0))
    return canvas


def _image_files(src: Path) -> list[str]:
    from PIL import Image

    known = {ext.lower() for ext in Image.registered_extensions()}
    found = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in known:
                found.append((Path(root) / name).relative_to(src).as_posix())
    return found


def detect_dataset(src: Path, out: Path, threshold: float | None = None,
                   draw_dir: Path | None = None) -> DetectionSummary:
    """Detect faces in every image under ``src``; write the paper's JSON (every image listed,
    faceless ones with no boxes; each box also carries its ``score``) to ``out``."""
    from PIL import Image, UnidentifiedImageError

    from benchmark.atomic import atomic_write_bytes, atomic_write_text

    if not src.is_dir():
        raise BenchError(f"--src {src} is not a folder; pass the folder of images to scan.")
    if out.suffix.lower() != ".json" or out.is_dir():
        raise BenchError(f"--out {out} must be a .json file path (the paper's format).")
    detector = load_detector()
    entries, unreadable, faces, with_faces = [], [], 0, 0
    files = _image_files(src)
    if not files:
        raise BenchError(f"--src {src} holds no image files.")
    started = time.perf_counter()
    for rel in files:
        try:
            with Image.open(src / rel) as img:
                img.load()
                detections = detect_faces(img, detector, threshold)
                picture = draw_detections(img, detections) if draw_dir is not None else None
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
            unreadable.append(rel)
            continue
        faces += len(detections)
        with_faces += bool(detections)
        entries.append({"url": rel, "bboxes": [{**d.box.as_dict(), "score": round(d.score, 3)}
                                                for d in detections]})  # fmt: skip
        if picture is not None:
            import io

            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            atomic_write_bytes(draw_dir / Path(rel).with_suffix(".png"), buffer.getvalue())
    seconds = time.perf_counter() - started
    atomic_write_text(out, json.dumps(entries, indent=1) + "\n")
    return DetectionSummary(len(entries), with_faces, faces, unreadable, seconds, out)
