"""The ImageNet evaluation task's numbers, from saved logits: overall top-1/top-5, and per
category top-1, top-5, one-vs-rest average precision and the fraction of images with faces
(the paper's Table 4 and its per-category analysis). numpy and scikit-learn only, so the
leaderboard recomputes every number from ``predictions.npz`` without torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CategoryRow:
    category: str
    images: int
    top1: float
    top5: float
    ap: float | None  # None: no positive example (AP undefined)
    faces: float | None  # fraction of its images with a face; None without annotations


def topk_correct(logits: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Per example: is the target among the ``k`` highest logits (ties broken by index, as
    ``torch.topk`` would on CPU for distinct values)."""
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (top == targets[:, None]).any(axis=1)


def face_flags(example_ids: Sequence[str], has_face: Mapping[str, bool]) -> np.ndarray:
    """1.0 / 0.0 per example whose id (its path under the data root, as the annotation's
    ``url``) is annotated; NaN where the annotations do not list it."""
    return np.array([float(has_face[i]) if i in has_face else np.nan for i in example_ids])


def per_category(
    logits: np.ndarray,
    targets: np.ndarray,
    class_names: Sequence[str],
    faces: np.ndarray | None = None,
) -> tuple[dict[str, float], list[CategoryRow]]:
    """Overall top-1/top-5 and one row per category. AP is scikit-learn's
    ``average_precision_score`` of the category's softmax-free logit against one-vs-rest
    labels (a monotone transform of the logit gives the same AP)."""
    from sklearn.metrics import average_precision_score

    targets = np.asarray(targets, dtype=np.int64)
    top1, top5 = topk_correct(logits, targets, 1), topk_correct(logits, targets, 5)
    overall = {"top1": float(top1.mean()), "top5": float(top5.mean())}
    rows = []
    for index, name in enumerate(class_names):
        mine = targets == index
        ap = float(average_precision_score(mine, logits[:, index])) if mine.any() else None
        share = None
        if faces is not None and np.isfinite(faces[mine]).any():
            share = float(np.nanmean(faces[mine]))
        rows.append(CategoryRow(
            name, int(mine.sum()), float(top1[mine].mean()) if mine.any() else float("nan"),
            float(top5[mine].mean()) if mine.any() else float("nan"), ap, share,
        ))  # fmt: skip
    return overall, rows


def render_rows(rows: Sequence[CategoryRow]) -> str:
    """A plain aligned table (Markdown-compatible) for the terminal and the run folder."""
    lines = ["| category | images | top1 | top5 | AP | with faces |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ap = "-" if r.ap is None else f"{r.ap:.3f}"
        faces = "-" if r.faces is None else f"{r.faces:.2f}"
        lines.append(f"| {r.category} | {r.images} | {r.top1:.3f} | {r.top5:.3f} | {ap} | "
                     f"{faces} |")
    return "\n".join(lines)
