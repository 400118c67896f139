"""Object detection, analysis side: the saved detections read back, VOC mAP, per-image scores.

numpy only (:mod:`benchmark.detection.voc_eval`): the detector that writes the file is
:mod:`benchmark.models.detection`, and nothing here imports torch.

Saved predictions (``predictions.npz``, read with ``np.load(path, allow_pickle=False)``; see
:func:`load_detections`). All boxes are x1, y1, x2, y2 in ORIGINAL-image pixels, in VOC's
1-based inclusive convention (the XML's own numbers for ground truth; a detector box in
continuous coordinates is saved as (x1 + 1, y1 + 1, x2, y2), as detectron2's VOC evaluator
does), so :func:`benchmark.detection.voc_eval.evaluate_voc` with its devkit defaults applies:

* ``format`` str: ``blurbench-detections-v1``; ``class_names`` [C] str;
* ``example_id`` [N] str and ``image_size`` [N, 2] int (width, height) of the test images;
* ``det_image`` [D] int (row of ``example_id``), ``det_boxes`` [D, 4] float32,
  ``det_scores`` [D] float32, ``det_labels`` [D] int (index into ``class_names``);
* ``gt_image`` [G], ``gt_boxes`` [G, 4] float32, ``gt_labels`` [G], ``gt_difficult`` [G] bool:
  the ground truth, so the record alone recomputes and bootstraps mAP over images.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.detection.voc_eval import (
    ImageDetections,
    ImageGroundTruth,
    VOCResult,
    evaluate_from_matches,
    evaluate_voc,
    match_detections,
)
from benchmark.errors import BenchError
from benchmark.layout import PREDICTIONS_FILE, predictions_file
from benchmark.metrics import json_number, register_metric
from benchmark.scores import ResampledMetric, RunScores, memoized, nanmean_rows

if TYPE_CHECKING:  # the type only: pydantic (through run_record) costs a warm leaderboard,
    # which reads no record, 0.1 s of start-up
    from benchmark.run_record import RunRecord

PREDICTIONS_FORMAT = "blurbench-detections-v1"


# --- metrics: predictions = list[ImageDetections], targets = list[ImageGroundTruth] ---------


def _voc(
    detections: list[ImageDetections], ground_truth: list[ImageGroundTruth], class_names: list[str]
) -> VOCResult:
    return evaluate_voc(detections, ground_truth, class_names)  # devkit: IoU > 0.5, "+1" pixels


@register_metric("detection", "map_voc07")
def map_voc07(detections: Any, ground_truth: Any, class_names: list[str]) -> float | None:
    """VOC2007 11-point interpolated mAP at IoU 0.5 (the number VOC07-test papers report)."""
    return json_number(_voc(detections, ground_truth, class_names).map_11point)


@register_metric("detection", "map_voc_area")
def map_voc_area(detections: Any, ground_truth: Any, class_names: list[str]) -> float | None:
    """Area-under-the-PR-envelope mAP at IoU 0.5 (the VOC2010+ rule)."""
    return json_number(_voc(detections, ground_truth, class_names).map_area)


@register_metric("detection", "per_class_ap_voc07")
def per_class_ap_voc07(
    detections: Any, ground_truth: Any, class_names: list[str]
) -> dict[str, float | None]:
    """11-point AP per class; null for a class without non-difficult ground truth."""
    per_class = _voc(detections, ground_truth, class_names).per_class_ap_11point
    return {name: json_number(per_class[name]) for name in class_names}


@register_metric("detection", "per_class_ap_voc_area")
def per_class_ap_voc_area(
    detections: Any, ground_truth: Any, class_names: list[str]
) -> dict[str, float | None]:
    per_class = _voc(detections, ground_truth, class_names).per_class_ap_area
    return {name: json_number(per_class[name]) for name in class_names}


# --- saved predictions ---------------------------------------------------------------------


def detections_from_arrays(
    arrays: dict[str, np.ndarray],
) -> tuple[list[ImageDetections], list[ImageGroundTruth]]:
    """Per-image detections and ground truth (image ids: the example ids) from the saved arrays:
    what the detection metrics take."""
    ids = [str(i) for i in arrays["example_id"]]
    dets, gts = [], []
    for i, image_id in enumerate(ids):
        d = arrays["det_image"] == i
        g = arrays["gt_image"] == i
        dets.append(ImageDetections(
            image_id, arrays["det_boxes"][d], arrays["det_scores"][d], arrays["det_labels"][d]
        ))  # fmt: skip
        gts.append(ImageGroundTruth(
            image_id, arrays["gt_boxes"][g], arrays["gt_labels"][g], arrays["gt_difficult"][g]
        ))  # fmt: skip
    return dets, gts


def load_detections(
    run_dir: Path,
) -> tuple[list[ImageDetections], list[ImageGroundTruth], list[str]]:
    """Read ``predictions.npz`` back into what the metrics take (ids are the example ids)."""
    with np.load(predictions_file(run_dir), allow_pickle=False) as data:
        if "format" not in data.files or str(data["format"]) != PREDICTIONS_FORMAT:
            raise BenchError(f"{run_dir}: {PREDICTIONS_FILE} does not hold detections.")
        arrays = {k: data[k] for k in data.files}
    return (*detections_from_arrays(arrays), [str(c) for c in arrays["class_names"]])


# --- per-image resampling for the paired bootstrap (benchmark.analysis.kinds) ------------


def detection_scores(run_dir: Path, record: RunRecord) -> RunScores:
    """mAP and per-class AP recomputed on resamples of the test IMAGES (the unit VOC results are
    bootstrapped over). Matching is done once (:func:`match_detections`); a replicate only
    re-weights each image's TP/FP flags and positives (:func:`evaluate_from_matches`), and one
    evaluation per replicate serves all four metrics (memoized)."""
    detections, ground_truth, class_names = load_detections(run_dir)
    matches = match_detections(detections, ground_truth, class_names)
    k = len(class_names)

    def per_class(idx: np.ndarray) -> np.ndarray:
        out = np.empty((idx.shape[0], 2 * k))
        for r, row in enumerate(idx):
            result = evaluate_from_matches(matches, row)
            out[r, :k] = [result.per_class_ap_11point[c] for c in class_names]
            out[r, k:] = [result.per_class_ap_area[c] for c in class_names]
        return out

    both = memoized(per_class)
    names = tuple(class_names)
    return RunScores(
        example_ids=np.asarray([g.image_id for g in ground_truth]),
        metrics={
            "map_voc07": ResampledMetric(lambda idx: nanmean_rows(both(idx)[:, :k])),
            "map_voc_area": ResampledMetric(lambda idx: nanmean_rows(both(idx)[:, k:])),
            "per_class_ap_voc07": ResampledMetric(lambda idx: both(idx)[:, :k], names),
            "per_class_ap_voc_area": ResampledMetric(lambda idx: both(idx)[:, k:], names),
        },
    )
