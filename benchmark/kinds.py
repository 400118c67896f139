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


@dataclass(frozen=True)
class KindSpec:
    datamodule: type
    module: type
    save_predictions: Callable[[Path, dict[str, Any], list[str]], None]
    evaluate: Callable[[dict[str, Any], list[str], list[str]], dict[str, MetricValue]]


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


def save_logit_predictions(
    run_dir: Path, outputs: dict[str, Any], example_ids: list[str]
) -> None:
    """``predictions.npz``: ``example_id`` [N] str, ``target`` [N] or [N, K] int,
    ``logits`` [N, C] float32 (raw scores, before softmax/sigmoid). Loaded with
    ``np.load(path, allow_pickle=False)``: no pickle is needed to read it."""
    ids = np.asarray([example_ids[int(p)] for p in outputs["positions"]], dtype=np.str_)
    np.savez_compressed(
        run_dir / PREDICTIONS_FILE,
        example_id=ids,
        target=outputs["targets"].numpy().astype(np.int64),
        logits=outputs["logits"].numpy().astype(np.float32),
    )


def load_logit_predictions(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(Path(run_dir) / PREDICTIONS_FILE, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def evaluate_logits(kind: str) -> Callable[[dict[str, Any], list[str], list[str]], dict]:
    def evaluate(outputs: dict[str, Any], class_names: list[str], names: list[str]) -> dict:
        return compute_metrics(kind, names, outputs["logits"], outputs["targets"], class_names)

    return evaluate


def _register_classification() -> None:
    from benchmark.data.classification import ClassificationDataModule
    from benchmark.models.classification import ClassificationModule

    register_kind(
        "classification",
        KindSpec(
            datamodule=ClassificationDataModule,
            module=ClassificationModule,
            save_predictions=save_logit_predictions,
            evaluate=evaluate_logits("classification"),
        ),
    )


_register_classification()
