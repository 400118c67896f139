"""Single-label classification, analysis side: the saved logits read back, and the per-example
scores the leaderboard's paired bootstrap resamples. numpy only, so reading records never imports
torch or Lightning."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.analysis.npz import read_npz
from benchmark.layout import predictions_file
from benchmark.run_record import RunRecord
from benchmark.scores import (
    ExampleScores,
    RunScores,
    mean_per_class_accuracy_metric,
    per_class_accuracy_scores,
)


def logit_metric_inputs(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return arrays["logits"], arrays["target"]


def load_logit_predictions(run_dir: Path) -> dict[str, np.ndarray]:
    return read_npz(predictions_file(run_dir))  # np.load's arrays, faster over many runs


def record_class_names(record: RunRecord, count: int) -> list[str]:
    """The run's class (or attribute) names: the record's ``class_names`` (schema-1 records
    without them get them from a per-class metric when read), else the keys of a per-class
    metric of that many classes, else ``class 0..``."""
    names = record.class_names
    if names is not None and len(names) == count:
        return list(names)
    for value in (record.metrics or {}).values():
        if isinstance(value, dict) and len(value) == count:
            return [str(n) for n in value]
    return [f"class {i}" for i in range(count)]


def classification_score_arrays(run_dir: Path) -> dict[str, np.ndarray]:
    """What the leaderboard needs from the saved logits (argmax, as the top1 metric takes it):
    example ids, targets, per-example correctness and the class count; small enough to cache."""
    saved = load_logit_predictions(run_dir)
    logits, target = saved["logits"], saved["target"].astype(np.int64)
    return {
        "example_id": saved["example_id"],
        "target": target,
        "correct": logits.argmax(axis=1) == target,
        "num_classes": np.asarray(logits.shape[1], np.int64),
    }


def classification_scores_from_arrays(
    arrays: dict[str, np.ndarray], record: RunRecord
) -> RunScores:
    """top1 (0/1 per example), per-class accuracy (its class's column) and mean per-class
    accuracy (recomputed per resample), from :func:`classification_score_arrays`."""
    target = arrays["target"]
    num_classes = int(arrays["num_classes"])
    correct = arrays["correct"].astype(np.float64)
    names = tuple(record_class_names(record, num_classes))
    return RunScores(
        example_ids=arrays["example_id"],
        metrics={
            "top1": ExampleScores(correct),
            "per_class_accuracy": ExampleScores(
                per_class_accuracy_scores(correct, target, num_classes), names
            ),
            "mean_per_class_accuracy": mean_per_class_accuracy_metric(
                correct, target, num_classes
            ),
        },
    )


def classification_scores(run_dir: Path, record: RunRecord) -> RunScores:
    """The leaderboard's per-example scores of a classification run, from its saved logits."""
    return classification_scores_from_arrays(classification_score_arrays(run_dir), record)
