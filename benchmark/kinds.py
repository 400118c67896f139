"""Task kinds: which DataModule, LightningModule and prediction format serve each kind.

The runner looks a task's ``kind`` up here and never branches on it, so adding a kind
(multi-label, detection) means registering one :class:`KindSpec`, not editing the runner.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.metrics import MetricValue, compute_metrics
from benchmark.records import PREDICTIONS_FILE
from benchmark.scores import (
    ExampleScores,
    RunScores,
    mean_per_class_accuracy_metric,
    per_class_accuracy_scores,
)


@dataclass(frozen=True)
class KindSpec:
    datamodule: type
    module: type
    # (module.test_outputs, test example ids) -> the arrays predictions.npz holds. Built once and
    # used both to save and to evaluate, so the record is what the file recomputes, exactly.
    prediction_arrays: Callable[[dict[str, Any], list[str]], dict[str, np.ndarray]]
    # saved arrays -> (predictions, targets) as the kind's registered metrics take them
    metric_inputs: Callable[[dict[str, np.ndarray]], tuple[Any, Any]]
    # (run_dir, record) -> per-example scores for the leaderboard's paired bootstrap, read from
    # the saved predictions; None: that kind's runs are compared by seed means only.
    scores: Callable[[Path, dict[str, Any]], RunScores] | None = None
    # Optional split of ``scores`` that lets the leaderboard cache per-run arrays on disk
    # (benchmark.score_cache): ``score_arrays`` reads the predictions into a few plain arrays
    # (no object dtypes), ``scores_from_arrays`` builds the RunScores from them and the record.
    score_arrays: Callable[[Path, dict[str, Any]], dict[str, np.ndarray]] | None = None
    scores_from_arrays: Callable[[dict[str, np.ndarray], dict[str, Any]], RunScores] | None = None


_KINDS: dict[str, KindSpec] = {}
_KIND_MODULES = {
    "multilabel": "benchmark.models.multilabel",
    "detection": "benchmark.models.detection",
}


def register_kind(kind: str, spec: KindSpec) -> None:
    _KINDS[kind] = spec


def get_kind(kind: str) -> KindSpec:
    if kind not in _KINDS and kind in _KIND_MODULES:
        importlib.import_module(_KIND_MODULES[kind])
    return _KINDS[kind]


def save_predictions(run_dir: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a kind's :attr:`KindSpec.prediction_arrays` as ``predictions.npz`` (no pickle)."""
    np.savez_compressed(Path(run_dir) / PREDICTIONS_FILE, **arrays)


def evaluate_predictions(
    kind: str,
    arrays: dict[str, np.ndarray],
    class_names: list[str],
    names: list[str],
    **context: Any,
) -> dict[str, MetricValue]:
    """The named metrics of saved (or about to be saved) prediction arrays; ``context`` (e.g. a
    task's ``groups``) goes to the metrics that take it. The runner records exactly this."""
    predictions, targets = get_kind(kind).metric_inputs(arrays)
    return compute_metrics(kind, names, predictions, targets, class_names, **context)


def logit_prediction_arrays(
    outputs: dict[str, Any], example_ids: list[str]
) -> dict[str, np.ndarray]:
    """``predictions.npz``: ``example_id`` [N] str, ``target`` [N] or [N, K] int,
    ``logits`` [N, C] float32 (raw scores, before softmax/sigmoid). Loaded with
    ``np.load(path, allow_pickle=False)``: no pickle is needed to read it."""
    return {
        "example_id": np.asarray([example_ids[int(p)] for p in outputs["positions"]], np.str_),
        "target": np.asarray(outputs["targets"]).astype(np.int64),
        "logits": np.asarray(outputs["logits"]).astype(np.float32),
    }


def logit_metric_inputs(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return arrays["logits"], arrays["target"]


def load_logit_predictions(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(Path(run_dir) / PREDICTIONS_FILE, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def record_class_names(record: dict[str, Any], count: int) -> list[str]:
    """The run's class (or attribute) names: the record's ``class_names``, else the keys of its
    first per-class metric, else ``class 0..`` when an old record has neither."""
    names = record.get("class_names")
    if isinstance(names, list) and len(names) == count:
        return [str(n) for n in names]
    for value in (record.get("metrics") or {}).values():
        if isinstance(value, dict) and len(value) == count:
            return [str(n) for n in value]
    return [f"class {i}" for i in range(count)]


def classification_score_arrays(run_dir: Path, record: dict[str, Any]) -> dict[str, np.ndarray]:
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
    arrays: dict[str, np.ndarray], record: dict[str, Any]
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


def classification_scores(run_dir: Path, record: dict[str, Any]) -> RunScores:
    """The leaderboard's per-example scores of a classification run, from its saved logits."""
    return classification_scores_from_arrays(classification_score_arrays(run_dir, record), record)


def _register_classification() -> None:
    from benchmark.data.classification import ClassificationDataModule
    from benchmark.models.classification import ClassificationModule

    register_kind(
        "classification",
        KindSpec(
            datamodule=ClassificationDataModule,
            module=ClassificationModule,
            prediction_arrays=logit_prediction_arrays,
            metric_inputs=logit_metric_inputs,
            scores=classification_scores,
            score_arrays=classification_score_arrays,
            scores_from_arrays=classification_scores_from_arrays,
        ),
    )


_register_classification()
