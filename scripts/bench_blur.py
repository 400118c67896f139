"""Throughput of `bench blur` (images/s) with 1 and 2 worker processes.

Writes N JPEGs of ImageNet's typical size (500x375, quality 90; smooth shapes plus sensor-like
noise, so they decode and encode like photos) once, each with 1-3 face boxes of 30-150 px in a
paper-format annotation JSON (``--face-share`` of the images; the rest are copied), then runs
``obfuscate_dataset`` into a fresh folder per worker count and prints the summary line. The load
average is printed too: on a shared machine the wall-clock figures move with it, so the CPU
time of this process and its workers is printed as well (images per CPU-second is what one
unshared core would do).

    python scripts/bench_blur.py                      # 500 images, 1 and 2 processes
    python scripts/bench_blur.py --images 2000 --workers 1,2,4 --method pixelate
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmark.obfuscation import obfuscate_dataset


def write_dataset(root: Path, n: int, face_share: float, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(n):
        wnid = f"n{i % 10:08d}"
        (root / "train" / wnid).mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (500, 375), tuple(int(v) for v in rng.integers(0, 255, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(12):
            x, y = rng.integers(0, 500), rng.integers(0, 375)
            r = rng.integers(10, 120)
            draw.ellipse([x - r, y - r, x + r, y + r],
                         fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        pixels = np.asarray(img).astype(np.int16) + rng.integers(-8, 9, (375, 500, 3))
        url = f"train/{wnid}/{wnid}_{i}.JPEG"
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / url, quality=90)
        boxes = []
        if rng.random() < face_share:
            for _ in range(rng.integers(1, 4)):
                s = float(rng.integers(30, 150))
                x0, y0 = float(rng.integers(-20, 480)), float(rng.integers(-20, 355))
                boxes.append({"x0": x0, "y0": y0, "x1": x0 + s, "y1": y0 + s * 1.2})
        entries.append({"url": url, "bboxes": boxes})
    annotations = root.parent / "face_annotations.json"
    annotations.write_text(json.dumps(entries))
    return annotations


def _cpu_seconds() -> float:
    """User + system time of this process and its finished workers (a Pool's are reaped when it
    closes, inside obfuscate_dataset)."""
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                     resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--workers", default="1,2", help="comma-separated process counts")
    parser.add_argument("--method", default="blur")
    parser.add_argument("--face-share", type=float, default=1.0,
                        help="share of images with faces (ImageNet: about 0.17)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_blur_") as tmp:
        src = Path(tmp) / "src"
        annotations = write_dataset(src, args.images, args.face_share)
        size = sum(p.stat().st_size for p in src.rglob("*.JPEG")) / args.images / 1024
        print(f"{args.images} JPEGs 500x375 (mean {size:.0f} KiB), face share "
              f"{args.face_share}, method {args.method}, {os.cpu_count()} CPUs")
        for workers in (int(w) for w in args.workers.split(",")):
            dst = Path(tmp) / f"dst{workers}"
            load = os.getloadavg()
            cpu = _cpu_seconds()
            summary = obfuscate_dataset(annotations, src, dst, method=args.method,
                                        workers=workers, progress=False)
            cpu = _cpu_seconds() - cpu
            print(f"workers={workers}: {summary.images_per_second:.1f} images/s wall, "
                  f"{args.images / cpu:.1f} images per CPU-second  [{summary.line()}]  "
                  f"load average before: {load[0]:.2f}")
            shutil.rmtree(dst)


if __name__ == "__main__":
    main()
