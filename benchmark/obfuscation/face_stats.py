"""What an annotation file says about a dataset's faces: the numbers of the paper's Figure 2
(share of images with faces per category, faces per image) plus the face sizes, as a table
and a plot. A category is the folder above the image (the wnid in ImageNet's train urls; the
paper's val urls have none, so they count under ``val``)."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from benchmark.obfuscation.annotations import read_annotations


@dataclass
class CategoryStats:
    name: str
    images: int = 0
    with_faces: int = 0
    faces: int = 0

    @property
    def share(self) -> float:
        return self.with_faces / self.images if self.images else 0.0


@dataclass
class FaceStats:
    images: int
    with_faces: int
    faces: int
    skipped_boxes: int  # degenerate boxes, not counted as faces
    faces_per_image: Counter[int]  # over images with faces: number of faces -> images
    sizes: np.ndarray  # d (the larger side, pixels) of every face
    categories: list[CategoryStats] = field(default_factory=list)  # most faces first


def face_stats(annotations: Path) -> FaceStats:
    table = read_annotations(annotations)
    categories: dict[str, CategoryStats] = {}
    per_image: Counter[int] = Counter()
    sizes, skipped = [], 0
    for url, boxes in table.items():
        valid = [b for b in boxes if not b.degenerate]
        skipped += len(boxes) - len(valid)
        parent = PurePosixPath(url).parent
        cat = categories.setdefault(parent.name or ".", CategoryStats(parent.name or "."))
        cat.images += 1
        cat.with_faces += bool(valid)
        cat.faces += len(valid)
        if valid:
            per_image[len(valid)] += 1
        sizes.extend(b.size for b in valid)
    ranked = sorted(categories.values(), key=lambda c: (-c.faces, -c.share, c.name))
    return FaceStats(len(table), sum(per_image.values()), len(sizes), skipped, per_image,
                     np.asarray(sizes, dtype=float), ranked)


def render_table(stats: FaceStats, top: int = 20) -> str:
    """Plain aligned text: the overall numbers, then the categories with the most faces."""
    share = stats.with_faces / stats.images if stats.images else 0.0
    mean = stats.faces / stats.with_faces if stats.with_faces else 0.0
    lines = [
        f"images            {stats.images}",
        f"with faces        {stats.with_faces} ({share:.1%})",
        f"faces             {stats.faces} ({stats.skipped_boxes} degenerate boxes not counted)",
        f"faces per image   {mean:.2f} mean over images with faces, max "
        f"{max(stats.faces_per_image, default=0)}",
    ]
    if stats.faces:
        q = np.percentile(stats.sizes, [0, 25, 50, 75, 100])
        lines.append("face size (px)    min {:.0f}  p25 {:.0f}  median {:.0f}  p75 {:.0f}  "
                     "max {:.0f} (larger side of the box)".format(*q))
    counts = "  ".join(f"{n}: {stats.faces_per_image[n]}" for n in sorted(stats.faces_per_image))
    lines.append(f"images by faces   {counts or '-'}")
    shown = stats.categories[:top]
    width = max([len("CATEGORY"), *(len(c.name) for c in shown)])
    lines.append("")
    lines.append(f"{'CATEGORY'.ljust(width)}  IMAGES  WITH_FACES  SHARE   FACES")
    for c in shown:
        lines.append(f"{c.name.ljust(width)}  {c.images:6d}  {c.with_faces:10d}  "
                     f"{c.share:5.1%}  {c.faces:6d}")
    if len(stats.categories) > len(shown):
        lines.append(f"... {len(stats.categories) - len(shown)} more categories (--top)")
    return "\n".join(lines)


def save_plot(stats: FaceStats, path: Path) -> Path:
    """Three panels: share of images with faces per category, sorted (the paper's Figure 2
    left), images by number of faces (Figure 2 right), and face sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmark.atomic import atomic_write_bytes

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    shares = sorted((c.share for c in stats.categories), reverse=True)
    axes[0].plot(range(len(shares)), shares, marker="." if len(shares) < 100 else None)
    axes[0].set(title="Images with faces, per category", xlabel="category (sorted)",
                ylabel="share of its images", ylim=(0, 1))
    counts = sorted(stats.faces_per_image)
    axes[1].bar(counts, [stats.faces_per_image[n] for n in counts])
    axes[1].set(title="Faces per image (images with faces)", xlabel="faces", ylabel="images")
    if stats.faces:
        axes[2].hist(stats.sizes, bins=min(50, max(5, stats.faces // 5)))
    axes[2].set(title="Face size", xlabel="larger side of the box (px)", ylabel="faces")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
