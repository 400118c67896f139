"""The metric registry: ``(kind, name) -> function(predictions, targets, class_names)``.

Tasks name their metrics in YAML; the same functions compute them at the end of a run and again
from the saved predictions (leaderboard, bootstrap), so a reported number can always be
recomputed. A metric returns a float, or a ``{class name: float}`` mapping for per-class views.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torchmetrics.functional.classification import multiclass_accuracy

MetricValue = float | dict[str, float | None]
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
    """Metrics of other kinds live beside their models; import them so they register."""
    import importlib

    for module in ("benchmark.models.multilabel", "benchmark.models.detection"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def json_number(value: float) -> float | None:
    """JSON has no NaN: a metric that is undefined (a class with no examples) becomes null."""
    value = float(value)
    return None if math.isnan(value) else value


# --- single-label classification: predictions are logits [N, C], targets are labels [N] ---


@register_metric("classification", "top1")
def top1(logits: torch.Tensor, targets: torch.Tensor, class_names: list[str]) -> float:
    return float(multiclass_accuracy(logits, targets, len(class_names), average="micro"))


@register_metric("classification", "mean_per_class_accuracy")
def mean_per_class_accuracy(
    logits: torch.Tensor, targets: torch.Tensor, class_names: list[str]
) -> float:
    per_class = _per_class(logits, targets, len(class_names))
    present = per_class[~torch.isnan(per_class)]
    return float(present.mean()) if len(present) else float("nan")


@register_metric("classification", "per_class_accuracy")
def per_class_accuracy(
    logits: torch.Tensor, targets: torch.Tensor, class_names: list[str]
) -> dict[str, float | None]:
    per_class = _per_class(logits, targets, len(class_names))
    return {name: json_number(v) for name, v in zip(class_names, per_class.tolist(), strict=True)}


def _per_class(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class recall, NaN for classes absent from ``targets``.

    torchmetrics reports 0 for an absent class, which would drag a per-class mean down on a
    subset that misses a class; NaN keeps "no examples" apart from "all wrong".
    """
    acc = multiclass_accuracy(logits, targets, num_classes, average=None).float()
    counts = torch.bincount(targets, minlength=num_classes)
    return torch.where(counts > 0, acc, torch.full_like(acc, float("nan")))
