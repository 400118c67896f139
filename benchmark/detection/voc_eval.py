"""PASCAL VOC detection evaluation, bit-compatible with the classic devkit rules.

The rules are those of the official VOC devkit (``VOCevaldet.m``) as ported to Python by
py-faster-rcnn / Detectron (``voc_eval.py``), so numbers are comparable with the literature:

* Per class, all detections are sorted by descending score (stable: ties keep the order of the
  ground-truth image list, then the order inside an image).
* Each detection is matched to the ground-truth box of the same class in the same image with the
  highest IoU (first one on IoU ties). It is a match only if ``IoU > iou_threshold`` -- strictly
  greater, as in the devkit (``ovmax > ovthresh``). There is no fallback to the second-best box.
* A ground truth is matched at most once: a later detection whose best box is already taken is a
  false positive (a duplicate).
* ``difficult`` ground truths are not counted as positives, and a detection whose best box is
  difficult is ignored (neither TP nor FP), however many detections hit it.
* IoU uses the devkit's "+1 pixel" convention: VOC coordinates are 1-based *inclusive* pixel
  indices, so a box ``[x1, y1, x2, y2]`` is ``x2 - x1 + 1`` pixels wide. ``pixel_offset=1.0``
  reproduces it; ``pixel_offset=0.0`` gives the continuous-coordinate IoU that COCO uses.
* AP two ways: the VOC2007 11-point interpolation (primary, what VOC2007 results report) and the
  VOC2010+ area under the precision envelope ("all-point").
* A class without any non-difficult ground truth has an undefined recall, so its AP is NaN and it
  is left out of the mean (the per-class dictionaries still list it, as NaN).

Matching depends only on the detections and ground truth of one image, so :func:`match_detections`
runs it once and :func:`evaluate_from_matches` recomputes AP for any multiset of images (a
bootstrap replicate) by re-weighting the per-image TP/FP flags and positive counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "VOC07_RECALL_THRESHOLDS",
    "ClassMatches",
    "ImageDetections",
    "ImageGroundTruth",
    "VOCMatches",
    "VOCResult",
    "ap_area",
    "ap_voc07",
    "box_iou",
    "evaluate_from_matches",
    "evaluate_voc",
    "match_detections",
]

# Exactly the thresholds of py-faster-rcnn's ``np.arange(0., 1.1, 0.1)`` (and MATLAB's
# ``0:0.1:1``), floating-point warts included: the 0.3 threshold is 0.30000000000000004, so a
# recall of exactly 3/10 does not reach it. Kept on purpose so VOC07 numbers match the reference
# code bit for bit; the effect is at most one PR point's worth of precision at that threshold.
VOC07_RECALL_THRESHOLDS: np.ndarray = np.arange(0.0, 1.1, 0.1)


@dataclass(eq=False)
class ImageGroundTruth:
    """Ground-truth boxes of one image (x1, y1, x2, y2; labels 0-based into the class list)."""

    image_id: str
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray | None = None  # None: no box is difficult

    def __post_init__(self) -> None:
        self.boxes = _as_boxes(self.boxes, f"ground truth of image {self.image_id!r}")
        self.labels = _as_labels(self.labels, len(self.boxes), f"image {self.image_id!r}")
        if self.difficult is None:
            self.difficult = np.zeros(len(self.boxes), dtype=bool)
        else:
            difficult = np.asarray(self.difficult).reshape(-1)
            if difficult.shape != (len(self.boxes),):
                raise ValueError(
                    f"ground truth of image {self.image_id!r}: {difficult.size} difficult flags "
                    f"for {len(self.boxes)} boxes"
                )
            self.difficult = difficult.astype(bool)


@dataclass(eq=False)
class ImageDetections:
    """Scored detections of one image (x1, y1, x2, y2; labels 0-based into the class list)."""

    image_id: str
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        where = f"detections of image {self.image_id!r}"
        self.boxes = _as_boxes(self.boxes, where)
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if scores.shape != (len(self.boxes),):
            raise ValueError(f"{where}: {scores.size} scores for {len(self.boxes)} boxes")
        if not np.isfinite(scores).all():
            raise ValueError(f"{where}: scores must be finite (found NaN or inf)")
        self.scores = scores
        self.labels = _as_labels(self.labels, len(self.boxes), where)


def _as_boxes(boxes: object, where: str) -> np.ndarray:
    """Boxes as float64 [K, 4]; an empty array of any shape means no boxes."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{where}: boxes must have shape [K, 4], got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: box coordinates must be finite (found NaN or inf)")
    if (arr[:, 2] < arr[:, 0]).any() or (arr[:, 3] < arr[:, 1]).any():
        raise ValueError(f"{where}: boxes must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1")
    return arr


def _as_labels(labels: object, n: int, where: str) -> np.ndarray:
    arr = np.asarray(labels).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"{where}: {arr.size} labels for {n} boxes")
    integral = np.issubdtype(arr.dtype, np.integer) or (
        np.issubdtype(arr.dtype, np.floating) and bool(np.all(arr == np.round(arr)))
    )
    if arr.size and not integral:
        raise ValueError(f"{where}: labels must be integer class indices, got {arr.dtype}")
    return arr.astype(np.int64)


def box_iou(boxes: np.ndarray, gt: np.ndarray, pixel_offset: float = 1.0) -> np.ndarray:
    """IoU matrix [K, M], written exactly like the devkit so threshold ties compare the same."""
    ixmin = np.maximum(boxes[:, None, 0], gt[None, :, 0])
    iymin = np.maximum(boxes[:, None, 1], gt[None, :, 1])
    ixmax = np.minimum(boxes[:, None, 2], gt[None, :, 2])
    iymax = np.minimum(boxes[:, None, 3], gt[None, :, 3])
    iw = np.maximum(ixmax - ixmin + pixel_offset, 0.0)
    ih = np.maximum(iymax - iymin + pixel_offset, 0.0)
    inters = iw * ih
    area_d = (boxes[:, 2] - boxes[:, 0] + pixel_offset) * (boxes[:, 3] - boxes[:, 1] + pixel_offset)
    area_g = (gt[:, 2] - gt[:, 0] + pixel_offset) * (gt[:, 3] - gt[:, 1] + pixel_offset)
    union = area_d[:, None] + area_g[None, :] - inters
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inters / np.where(union > 0, union, 1.0), 0.0)
    return iou


def ap_voc07(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 11-point AP: mean over t of the best precision at recall >= t (0 if none)."""
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    # recall is non-decreasing, so the first index with recall >= t carries max(prec[rec >= t]).
    first = np.searchsorted(recall, VOC07_RECALL_THRESHOLDS, side="left")
    points = [float(envelope[i]) if i < len(envelope) else 0.0 for i in first]
    # fsum then one division: the reference's running sum of p / 11 gives 1.0000000000000002
    # for a perfect detector; this differs from it by a few ulps at most.
    return math.fsum(points) / len(points)


def ap_area(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+ AP: area under the monotone precision envelope, sentinels as in the devkit."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@dataclass(frozen=True, eq=False)
class ClassMatches:
    """One class's non-ignored detections over the whole set, in evaluation (score) order."""

    scores: np.ndarray  # [D] float64, descending
    is_tp: np.ndarray  # [D] bool; False = false positive
    image_index: np.ndarray  # [D] int64 index into VOCMatches.image_ids


@dataclass(frozen=True, eq=False)
class VOCMatches:
    """The result of matching, done once; everything AP needs for any resample of images."""

    class_names: tuple[str, ...]
    image_ids: tuple[str, ...]  # ground-truth order; bootstrap indices refer to it
    num_positives: np.ndarray  # [N, C] int64 non-difficult GT boxes per image and class
    per_class: tuple[ClassMatches, ...]


@dataclass(frozen=True)
class VOCResult:
    """Per-class and mean AP; NaN marks a class without non-difficult ground truth."""

    map_11point: float
    map_area: float
    per_class_ap_11point: dict[str, float]
    per_class_ap_area: dict[str, float]
    num_positives: dict[str, int] = field(default_factory=dict)

    def as_metrics(self) -> dict[str, float | None]:
        """Flat JSON-ready metrics; NaN becomes None because JSON has no NaN."""

        def clean(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        out: dict[str, float | None] = {
            "map_voc07": clean(self.map_11point),
            "map_voc_area": clean(self.map_area),
        }
        for name, ap in self.per_class_ap_11point.items():
            out[f"ap_voc07/{name}"] = clean(ap)
        for name, ap in self.per_class_ap_area.items():
            out[f"ap_voc_area/{name}"] = clean(ap)
        return out


def _match_image(
    det: ImageDetections, gt: ImageGroundTruth, iou_threshold: float, pixel_offset: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Devkit greedy matching for one image, all classes at once.

    Returns (order, flag, scores) in stable descending-score order, flag 1 = TP, 0 = FP,
    -1 = ignored (best box is difficult). Because each detection's target is its argmax
    box regardless of what is already taken, "greedy" reduces to: the first detection (in score
    order) above threshold on a non-difficult box is the TP, every later one is a duplicate FP.
    """
    order = np.argsort(-det.scores, kind="stable")
    flag = np.zeros(len(order), dtype=np.int8)
    if len(order) and len(gt.boxes):
        iou = box_iou(det.boxes[order], gt.boxes, pixel_offset)
        iou[det.labels[order][:, None] != gt.labels[None, :]] = -np.inf  # other classes
        jmax = np.argmax(iou, axis=1)
        ovmax = iou[np.arange(len(order)), jmax]
        hit = ovmax > iou_threshold
        hit_difficult = hit & gt.difficult[jmax]
        candidates = np.flatnonzero(hit & ~hit_difficult)
        _, first = np.unique(jmax[candidates], return_index=True)
        flag[candidates[first]] = 1
        flag[hit_difficult] = -1
    return order, flag, det.scores[order]


def match_detections(
    detections: Sequence[ImageDetections],
    ground_truth: Sequence[ImageGroundTruth],
    class_names: Sequence[str],
    iou_threshold: float = 0.5,
    pixel_offset: float = 1.0,
) -> VOCMatches:
    """Match every image once; images absent from ``detections`` simply have no detections."""
    class_names = tuple(class_names)
    num_classes = len(class_names)
    if num_classes == 0 or len(set(class_names)) != num_classes:
        raise ValueError("class_names must be a non-empty list of distinct names")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if not (math.isfinite(pixel_offset) and pixel_offset >= 0.0):
        raise ValueError(f"pixel_offset must be a finite number >= 0, got {pixel_offset}")

    gt_index: dict[str, int] = {}
    for i, gt in enumerate(ground_truth):
        if gt.image_id in gt_index:
            raise ValueError(f"ground truth lists image {gt.image_id!r} more than once")
        gt_index[gt.image_id] = i
        _check_label_range(gt.labels, num_classes, f"ground truth of image {gt.image_id!r}")
    by_image: dict[int, ImageDetections] = {}
    for det in detections:
        idx = gt_index.get(det.image_id)
        if idx is None:
            raise ValueError(f"detections for unknown image {det.image_id!r} (not in ground truth)")
        if idx in by_image:
            raise ValueError(f"detections list image {det.image_id!r} more than once")
        _check_label_range(det.labels, num_classes, f"detections of image {det.image_id!r}")
        by_image[idx] = det

    num_pos = np.zeros((len(ground_truth), num_classes), dtype=np.int64)
    for i, gt in enumerate(ground_truth):
        num_pos[i] = np.bincount(gt.labels[~gt.difficult], minlength=num_classes)

    labels, flags, scores, images = [], [], [], []
    for idx in sorted(by_image):  # ground-truth order, so global ties break by image order
        det = by_image[idx]
        order, flag, det_scores = _match_image(det, ground_truth[idx], iou_threshold, pixel_offset)
        labels.append(det.labels[order])
        flags.append(flag)
        scores.append(det_scores)
        images.append(np.full(len(order), idx, dtype=np.int64))
    if labels:
        all_labels = np.concatenate(labels)
        all_flags = np.concatenate(flags)
        all_scores = np.concatenate(scores)
        all_images = np.concatenate(images)
    else:
        all_labels = all_images = np.zeros(0, dtype=np.int64)
        all_flags = np.zeros(0, dtype=np.int8)
        all_scores = np.zeros(0, dtype=np.float64)

    per_class = []
    for c in range(num_classes):
        sel = np.flatnonzero((all_labels == c) & (all_flags >= 0))  # drop ignored detections
        order = sel[np.argsort(-all_scores[sel], kind="stable")]
        per_class.append(
            ClassMatches(
                scores=all_scores[order],
                is_tp=all_flags[order] == 1,
                image_index=all_images[order],
            )
        )
    return VOCMatches(
        class_names=class_names,
        image_ids=tuple(gt.image_id for gt in ground_truth),
        num_positives=num_pos,
        per_class=tuple(per_class),
    )


def _check_label_range(labels: np.ndarray, num_classes: int, where: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"{where}: label {bad} is outside 0..{num_classes - 1}")


def evaluate_from_matches(
    matches: VOCMatches, image_indices: Sequence[int] | np.ndarray | None = None
) -> VOCResult:
    """AP over a multiset of images (e.g. a bootstrap resample), reusing the one-time matching.

    ``image_indices`` index ``matches.image_ids``; repeats count an image (its positives, TPs and
    FPs) that many times, as if the copies were distinct images. ``None`` means every image once,
    which equals :func:`evaluate_voc`. Copies of one detection are treated as adjacent in score
    order (that only matters if two *different* detections of a class share a score exactly, where
    the devkit itself depends on input order). A class with no positive in the resample gets NaN.
    """
    num_images = len(matches.image_ids)
    if image_indices is None:
        counts = None
        npos = matches.num_positives.sum(axis=0)
    else:
        idx = np.asarray(image_indices)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"image_indices must be integers, got {idx.dtype}")
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= num_images):
            raise ValueError(f"image_indices must lie in 0..{num_images - 1}")
        counts = np.bincount(idx, minlength=num_images)
        npos = counts @ matches.num_positives

    ap07: dict[str, float] = {}
    ap_all: dict[str, float] = {}
    for c, name in enumerate(matches.class_names):
        n = int(npos[c])
        if n == 0:
            ap07[name] = ap_all[name] = math.nan
            continue
        cm = matches.per_class[c]
        if counts is None:
            tp = np.cumsum(cm.is_tp, dtype=np.float64)
            total = np.arange(1, len(tp) + 1, dtype=np.float64)
        else:
            weight = counts[cm.image_index]
            keep = weight > 0
            weight = weight[keep].astype(np.float64)
            tp = np.cumsum(np.where(cm.is_tp[keep], weight, 0.0))
            total = np.cumsum(weight)
        fp = total - tp
        recall = tp / float(n)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        ap07[name] = ap_voc07(recall, precision)
        ap_all[name] = ap_area(recall, precision)

    return VOCResult(
        map_11point=_nanmean(ap07.values()),
        map_area=_nanmean(ap_all.values()),
        per_class_ap_11point=ap07,
        per_class_ap_area=ap_all,
        num_positives={name: int(npos[c]) for c, name in enumerate(matches.class_names)},
    )


def _nanmean(values: Iterable[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def evaluate_voc(
    detections: Sequence[ImageDetections],
    ground_truth: Sequence[ImageGroundTruth],
    class_names: Sequence[str],
    iou_threshold: float = 0.5,
    pixel_offset: float = 1.0,
) -> VOCResult:
    """Devkit-compatible VOC evaluation of a whole test set (see the module docstring)."""
    matches = match_detections(detections, ground_truth, class_names, iou_threshold, pixel_offset)
    return evaluate_from_matches(matches)
