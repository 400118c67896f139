"""The metric registry: ``(kind, name) -> function(predictions, targets, class_names)``.

Tasks name their metrics in YAML; the same functions compute them at the end of a run and again
from the saved predictions (leaderboard, bootstrap), so a reported number can always be
recomputed. A metric returns a float, or a ``{class name: float}`` mapping for per-class views.

Metrics take numpy arrays, exactly the arrays ``predictions.npz`` holds (the runner evaluates what
it saves), and need neither torch nor torchmetrics, so whatever reads records can compute them.
Ratios are integer counts divided in float64 and means are ``np.mean`` over float64 values, so a
record equals scikit-learn's numbers on the saved file exactly (2 of 20 correct is 0.1, not the
0.10000000149011612 of a float32 result).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

MetricValue = float | None | dict[str, float | None]
MetricFn = Callable[[Any, Any, list[str]], MetricValue]

_METRICS: dict[str, dict[str, MetricFn]] = {}


def register_metric(kind: str, name: str) -> Callable[[MetricFn], MetricFn]:
    def deco(fn: MetricFn) -> MetricFn:
        _METRICS.setdefault(kind, {})[name] = fn
        return fn

    return deco


def metric_names(kind: str) -> list[str]:
    _load_kind_metrics()
    return sorted(_METRICS.get(kind, {}))


def get_metric(kind: str, name: str) -> MetricFn:
    _load_kind_metrics()
    return _METRICS[kind][name]


def compute_metrics(
    kind: str,
    names: list[str],
    predictions: Any,
    targets: Any,
    class_names: list[str],
    **context: Any,
) -> dict[str, MetricValue]:
    """``context`` (for example a task's attribute ``groups``) is passed to the metrics whose
    signature names it, so per-group summaries can be recomputed from saved predictions."""
    out: dict[str, MetricValue] = {}
    for name in names:
        fn = get_metric(kind, name)
        wanted = {k: v for k, v in context.items() if k in inspect.signature(fn).parameters}
        out[name] = fn(predictions, targets, class_names, **wanted)
    return out


def _load_kind_metrics() -> None:
    """Metrics of the other kinds live with their analysis code (numpy only, no torch); import
    them so they register. Imported here, not at the top: those modules import this one."""
    import benchmark.analysis.detection  # noqa: F401
    import benchmark.analysis.multilabel  # noqa: F401


def json_number(value: float) -> float | None:
    """JSON has no NaN: a metric that is undefined (a class with no examples) becomes null."""
    value = float(value)
    return None if math.isnan(value) else value


def mean_of_defined(values: np.ndarray) -> float:
    """Mean of the non-NaN values (NaN: undefined, e.g. a class without test examples), NaN if
    none is defined; ``np.mean`` over float64, as scikit-learn averages per-class values."""
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    return float(np.mean(defined)) if len(defined) else math.nan


# --- single-label classification: predictions are logits [N, C], targets are labels [N] ---


@register_metric("classification", "top1")
def top1(logits: np.ndarray, targets: np.ndarray, class_names: list[str]) -> float | None:
    """Correct / total (scikit-learn's ``accuracy_score`` of the argmax); ties in the logits go
    to the lowest class index, as ``np.argmax`` breaks them."""
    targets = np.asarray(targets)
    if len(targets) == 0:
        return None
    return int((np.asarray(logits).argmax(axis=1) == targets).sum()) / len(targets)


@register_metric("classification", "mean_per_class_accuracy")
def mean_per_class_accuracy(
    logits: np.ndarray, targets: np.ndarray, class_names: list[str]
) -> float | None:
    """scikit-learn's ``balanced_accuracy_score``: the mean recall of the classes present."""
    return json_number(mean_of_defined(_per_class(logits, targets, len(class_names))))


@register_metric("classification", "per_class_accuracy")
def per_class_accuracy(
    logits: np.ndarray, targets: np.ndarray, class_names: list[str]
) -> dict[str, float | None]:
    per_class = _per_class(logits, targets, len(class_names))
    return {name: json_number(v) for name, v in zip(class_names, per_class.tolist(), strict=True)}


def _per_class(logits: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class recall from integer counts, NaN for classes absent from ``targets`` (a class
    with no examples is not "all wrong", so it must not drag a per-class mean down). Counted by
    hand: one ``bincount`` for all classes, equal to ``recall_score(average=None)`` (tested)."""
    targets = np.asarray(targets).astype(np.int64)
    hits = targets[np.asarray(logits).argmax(axis=1) == targets]
    counts = np.bincount(targets, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(hits, minlength=num_classes) / counts
