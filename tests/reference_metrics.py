"""A record's metrics recomputed from its ``predictions.npz`` by reference code only:
scikit-learn for (multi-label) classification, :func:`evaluate_voc` (checked against the devkit)
for detection. Nothing from ``benchmark.metrics`` or the kinds is used, so a test comparing the
record with these numbers (``==``) checks the record, not the code against itself."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    recall_score,
)

from benchmark.detection.voc_eval import ImageDetections, ImageGroundTruth, evaluate_voc


def load_npz(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(Path(run_dir) / "predictions.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _none_for_nan(values: list[float]) -> list[float | None]:
    return [None if np.isnan(v) else v for v in values]


def _mean_defined(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def classification_reference(run_dir: Path, class_names: list[str]) -> dict[str, Any]:
    saved = load_npz(run_dir)
    targets, predicted = saved["target"], saved["logits"].argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes without test examples: recall undefined
        recall = recall_score(targets, predicted, labels=range(len(class_names)), average=None,
                              zero_division=np.nan)  # fmt: skip
        balanced = balanced_accuracy_score(targets, predicted)
    return {
        "top1": accuracy_score(targets, predicted),
        "mean_per_class_accuracy": balanced,
        "per_class_accuracy": dict(zip(class_names, _none_for_nan(recall.tolist()), strict=True)),
    }


def multilabel_reference(
    run_dir: Path, class_names: list[str], groups: dict[str, list[str]]
) -> dict[str, Any]:
    saved = load_npz(run_dir)
    y, scores = saved["target"], saved["logits"]
    pred = (scores > 0).astype(np.int64)
    k = y.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single-class columns
        per = {
            "accuracy": [accuracy_score(y[:, j], pred[:, j]) for j in range(k)],
            "balanced_accuracy": [balanced_accuracy_score(y[:, j], pred[:, j]) for j in range(k)],
            "average_precision": [
                average_precision_score(y[:, j], scores[:, j]) if y[:, j].any() else None
                for j in range(k)
            ],
        }
    index = {n: j for j, n in enumerate(class_names)}
    out: dict[str, Any] = {
        "mean_attribute_accuracy": _mean_defined(per["accuracy"]),
        "balanced_accuracy": _mean_defined(per["balanced_accuracy"]),
        "mean_average_precision": _mean_defined(per["average_precision"]),
        "per_attribute_positive_rate": dict(
            zip(class_names, [float(np.mean(y[:, j])) for j in range(k)], strict=True)
        ),
    }
    for name, values in per.items():
        out[f"per_attribute_{name}"] = dict(zip(class_names, values, strict=True))
        out[f"per_group_{name}"] = {
            g: _mean_defined([values[index[m]] for m in members]) for g, members in groups.items()
        }
    return out


def detection_reference(run_dir: Path) -> dict[str, Any]:
    a = load_npz(run_dir)
    names = [str(c) for c in a["class_names"]]
    dets, gts = [], []
    for i, image_id in enumerate(str(x) for x in a["example_id"]):
        d, g = a["det_image"] == i, a["gt_image"] == i
        dets.append(ImageDetections(image_id, a["det_boxes"][d], a["det_scores"][d],
                                    a["det_labels"][d]))  # fmt: skip
        gts.append(ImageGroundTruth(image_id, a["gt_boxes"][g], a["gt_labels"][g],
                                    a["gt_difficult"][g]))  # fmt: skip
    result = evaluate_voc(dets, gts, names)
    return {
        "map_voc07": result.map_11point,
        "map_voc_area": result.map_area,
        "per_class_ap_voc07": dict(zip(names, _none_for_nan(
            [result.per_class_ap_11point[c] for c in names]), strict=True)),
        "per_class_ap_voc_area": dict(zip(names, _none_for_nan(
            [result.per_class_ap_area[c] for c in names]), strict=True)),
    }  # fmt: skip


def is_ratio_of_counts(value: float | None, max_denominator: int) -> bool:
    """True when ``value`` is the float64 nearest some p/q with q <= ``max_denominator``, as an
    exact ratio of counts is; a float32 result is not (2/20 -> 0.10000000149011612)."""
    return value is None or float(Fraction(value).limit_denominator(max_denominator)) == value
