"""Task kinds, training side: which DataModule, LightningModule and prediction arrays serve each
kind.

The runner looks a task's ``kind`` up here and never branches on it, so adding a kind
(multi-label, detection) means registering one :class:`KindSpec`, not editing the runner. What
the saved arrays mean to a reader (metric inputs, the leaderboard's per-example scores) is the
analysis side's, :mod:`benchmark.analysis.kinds`, which imports no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.analysis.kinds import kind_analysis
from benchmark.layout import PREDICTIONS_FILE
from benchmark.metrics import MetricValue, compute_metrics


@dataclass(frozen=True)
class KindSpec:
    datamodule: type
    # (network, task, class names) -> the LightningModule: a class, or a factory choosing one
    module: Callable[..., Any]
    # (module.test_outputs, test example ids) -> the arrays predictions.npz holds. Built once and
    # used both to save and to evaluate, so the record is what the file recomputes, exactly.
    prediction_arrays: Callable[[dict[str, Any], list[str]], dict[str, np.ndarray]]


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
    predictions, targets = kind_analysis(kind).metric_inputs(arrays)
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


def _register_classification() -> None:
    from benchmark.data.classification import ClassificationDataModule
    from benchmark.models.classification import ClassificationModule

    register_kind(
        "classification",
        KindSpec(
            datamodule=ClassificationDataModule,
            module=ClassificationModule,
            prediction_arrays=logit_prediction_arrays,
        ),
    )


_register_classification()
