"""What readers see instead of identifiers: task, protocol and metric names, in one place.

Records, the CSVs and verdicts keep the identifiers (``top1``, ``cifar10``); tables, headings and
plots use these names. An identifier with no entry reads as itself.
"""

from __future__ import annotations

TASK_NAMES = {"cifar10": "CIFAR-10", "sun397": "SUN397", "celeba": "CelebA", "voc": "PASCAL VOC",
              "imagenet": "ImageNet"}
PROTOCOL_NAMES = {"finetune": "fine-tune", "linear": "linear probe (L-BFGS)",
                  "linear_sgd": "linear head (SGD)", "eval": "evaluation"}
METRIC_NAMES = {
    "top1": "Top-1 accuracy",
    "top5": "Top-5 accuracy",
    "mean_per_class_accuracy": "Mean per-class accuracy",
    "per_class_accuracy": "Per-class accuracy",
    "map_voc07": "mAP (VOC07 11-point)",
    "map_voc_area": "mAP (VOC area)",
    "per_class_ap_voc07": "Per-class AP (VOC07 11-point)",
    "per_class_ap_voc_area": "Per-class AP (VOC area)",
    "mean_attribute_accuracy": "Mean attribute accuracy",
    "per_attribute_accuracy": "Per-attribute accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "per_attribute_balanced_accuracy": "Per-attribute balanced accuracy",
    "mean_average_precision": "Mean average precision",
    "per_attribute_average_precision": "Per-attribute average precision",
    "per_attribute_positive_rate": "Per-attribute positive rate",
    "per_group_accuracy": "Per-group accuracy",
    "per_group_balanced_accuracy": "Per-group balanced accuracy",
    "per_group_average_precision": "Per-group average precision",
}


def task_name(task: str) -> str:
    return TASK_NAMES.get(task, task)


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


ENGINE_NAMES = {"torchvision": "torchvision Faster R-CNN", "mmdet": "mmdetection Faster R-CNN"}


def setting_name(task: str, protocol: str, subset: str, engine: str | None = None) -> str:
    """``CIFAR-10 · fine-tune · tiny``, ``PASCAL VOC · fine-tune · mmdetection Faster R-CNN ·
    tiny`` for a detection setting (its ``detection.engine``); the config hash that also tells
    settings apart is left to the caller (shown only where two settings share this name, and
    always in small print)."""
    parts = [task_name(task), PROTOCOL_NAMES.get(protocol, protocol)]
    if engine:
        parts.append(ENGINE_NAMES.get(engine, engine))
    return " · ".join([*parts, subset])
