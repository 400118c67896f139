"""Object detection: Faster R-CNN + FPN around a registered ResNet, VOC07 mAP, saved detections.

With ``detection.engine: torchvision`` (the default; ``mmdet`` is
:mod:`benchmark.models.mmdet_detection`, a subclass of this module that swaps the detector)
the detector is torchvision's ``FasterRCNN`` with the ``BackboneWithFPN`` that torchvision's
own ``fasterrcnn_resnet50_fpn`` uses (``_resnet_fpn_extractor``), built on the registry's
ResNet: its ImageNet weights initialise the backbone, BatchNorm is frozen (statistics and
affine parameters fixed, as in every standard detection recipe: detection batches are too small
to estimate them), conv1 + layer1 are frozen by default (``trainable_backbone_layers: 3``), and
FPN, RPN and box heads are freshly initialised for the task's classes + background.

Saved predictions (``predictions.npz``, read with ``np.load(path, allow_pickle=False)``; the
reader and the VOC metrics are :mod:`benchmark.analysis.detection`, torch-free). All boxes are
x1, y1, x2, y2 in ORIGINAL-image pixels, in VOC's 1-based inclusive convention (the XML's own
numbers for ground truth; a detector box in continuous coordinates is saved as
(x1 + 1, y1 + 1, x2, y2), as detectron2's VOC evaluator does), so
:func:`benchmark.detection.voc_eval.evaluate_voc` with its devkit defaults applies:

* ``format`` str: ``blurbench-detections-v1``; ``class_names`` [C] str;
* ``example_id`` [N] str and ``image_size`` [N, 2] int (width, height) of the test images;
* ``det_image`` [D] int (row of ``example_id``), ``det_boxes`` [D, 4] float32,
  ``det_scores`` [D] float32, ``det_labels`` [D] int (index into ``class_names``);
* ``gt_image`` [G], ``gt_boxes`` [G, 4] float32, ``gt_labels`` [G], ``gt_difficult`` [G] bool:
  the ground truth, so the record alone recomputes and bootstraps mAP over images.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.misc import FrozenBatchNorm2d

from benchmark.analysis.detection import PREDICTIONS_FORMAT
from benchmark.data.detection import DetectionDataModule, continuous_to_voc
from benchmark.detection.voc_eval import ImageDetections, ImageGroundTruth, evaluate_voc
from benchmark.errors import BenchError
from benchmark.kinds import KindSpec, register_kind
from benchmark.models.finetune import FineTuneModule
from benchmark.tasks import DetectionSpec, Task

# --- the detector ------------------------------------------------------------------------------


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by a FrozenBatchNorm2d holding the same statistics and affine
    parameters. Written by hand: torchvision builds frozen-BN ResNets only from its own weight
    enums (``norm_layer=FrozenBatchNorm2d``), not from an already loaded network."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            with torch.no_grad():
                if child.weight is not None:
                    frozen.weight.copy_(child.weight)
                    frozen.bias.copy_(child.bias)
                if child.running_mean is not None:
                    frozen.running_mean.copy_(child.running_mean)
                    frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


class TrainTestTransform(GeneralizedRCNNTransform):
    """torchvision's detection transform with separate train and test sizes (it takes one pair;
    in training it picks the shorter side at random from ``min_size``, at test the last one)."""

    def __init__(self, spec: DetectionSpec) -> None:
        train_min = spec.train_min_size
        train_min = tuple(train_min) if isinstance(train_min, list) else (train_min,)
        super().__init__(
            train_min,
            spec.train_max_size,
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],  # ImageNet statistics, as the backbone was trained
        )
        self.sizes = {
            True: (train_min, spec.train_max_size),
            False: ((spec.test_min_size,), spec.test_max_size),
        }

    def resize(self, image: torch.Tensor, target: Any = None) -> Any:
        self.min_size, self.max_size = self.sizes[self.training]
        return super().resize(image, target)


def build_faster_rcnn(network: nn.Module, num_classes: int, spec: DetectionSpec) -> FasterRCNN:
    """Faster R-CNN + FPN around an ImageNet ResNet; ``num_classes`` excludes background."""
    if not isinstance(network, torchvision.models.ResNet):
        raise BenchError(
            f"detection builds Faster R-CNN + FPN on a ResNet backbone (resnet18/34/50/101/152, "
            f"resnext*, wide_resnet*), not on a {type(network).__name__}: pick a ResNet backbone."
        )
    freeze_batchnorm(network)
    backbone = _resnet_fpn_extractor(network, spec.trainable_backbone_layers)
    detector = FasterRCNN(backbone, num_classes=num_classes + 1)
    detector.transform = TrainTestTransform(spec)
    return detector


# --- the LightningModule -----------------------------------------------------------------------


class DetectionModule(pl.LightningModule):
    """Trains the detector on the summed torchvision losses; validation logs VOC07 mAP."""

    def __init__(self, network: nn.Module, task: Task, class_names: list[str]) -> None:
        super().__init__()
        if task.protocol != "finetune":
            raise BenchError(
                f"task {task.name}: protocol {task.protocol!r} is not defined for detection; use "
                f"finetune (--set detection.trainable_backbone_layers=0 freezes the backbone)."
            )
        if len(class_names) != task.num_classes:
            raise BenchError(
                f"task {task.name}: num_classes is {task.num_classes} but the data has "
                f"{len(class_names)} classes."
            )
        self.task = task
        self.class_names = list(class_names)
        self.spec = task.detection or DetectionSpec()
        self.detector = self.build_detector(network, len(class_names))
        self._chunks: list[tuple[int, tuple[int, int], ImageDetections, ImageGroundTruth]] = []
        self.test_outputs: dict[str, Any] = {}

    # the optimiser and lr schedule are the fine-tuning ones, shared with classification
    configure_optimizers = FineTuneModule.configure_optimizers
    _lr_factor = FineTuneModule._lr_factor

    def build_detector(self, network: nn.Module, num_classes: int) -> nn.Module:
        """The engine's detector (torchvision's here; the mmdet engine overrides this,
        :meth:`training_step` and :meth:`detect`)."""
        return build_faster_rcnn(network, num_classes, self.spec)

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return self.detector(images)

    def detect(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> list[tuple[ImageDetections, ImageGroundTruth]]:
        """Each image's detections and ground truth in VOC coordinates (ids filled in later)."""
        return [to_voc(out, target, "") for out, target in zip(self(images), targets, strict=True)]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, targets, _ = batch
        # difficult objects are neither trained on nor penalised (as in py-faster-rcnn/mmdet)
        kept = [
            {"boxes": t["boxes"][~t["difficult"]], "labels": t["labels"][~t["difficult"]]}
            for t in targets
        ]
        losses = self.detector(images, kept)
        loss = sum(losses.values())
        size = len(images)
        for name, value in losses.items():
            self.log(f"train_{name}", value, on_step=True, on_epoch=False, batch_size=size)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=size)
        return loss

    def _collect(self, batch: Any) -> None:
        images, targets, positions = batch
        found = self.detect(images, targets)
        for image, (det, gt), pos in zip(images, found, positions.tolist(), strict=True):
            det.image_id = gt.image_id = str(pos)
            self._chunks.append((pos, (int(image.shape[-1]), int(image.shape[-2])), det, gt))

    def _gathered(self) -> list[tuple[int, tuple[int, int], ImageDetections, ImageGroundTruth]]:
        """Every process's images, once each (DistributedSampler pads with repeats), by position."""
        chunks = self._chunks
        if self.trainer.world_size > 1:
            parts: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(parts, chunks)
            chunks = [c for part in parts for c in part]
        unique = {c[0]: c for c in chunks}
        self._chunks = []
        return [unique[p] for p in sorted(unique)]

    def on_validation_epoch_start(self) -> None:
        self._chunks = []

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._collect(batch)

    def on_validation_epoch_end(self) -> None:
        chunks = self._gathered()
        result = evaluate_voc([c[2] for c in chunks], [c[3] for c in chunks], self.class_names)
        self.log("val_map", float(result.map_11point), prog_bar=True, sync_dist=False)

    def on_test_epoch_start(self) -> None:
        self._chunks = []

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._collect(batch)

    def on_test_epoch_end(self) -> None:
        chunks = self._gathered()
        self.test_outputs = {
            "positions": np.asarray([c[0] for c in chunks], dtype=np.int64),
            "image_sizes": np.asarray([c[1] for c in chunks], dtype=np.int64).reshape(-1, 2),
            "detections": [c[2] for c in chunks],
            "ground_truth": [c[3] for c in chunks],
            "class_names": self.class_names,
        }


def to_voc(
    output: dict[str, torch.Tensor], target: dict[str, torch.Tensor], image_id: str
) -> tuple[ImageDetections, ImageGroundTruth]:
    """One image's detections and ground truth in VOC coordinates, labels 0-based, boxes and
    scores in float32 (the saved precision)."""
    det_boxes = continuous_to_voc(output["boxes"].detach().float().cpu())
    gt_boxes = continuous_to_voc(target["boxes"].float().cpu())
    return (
        ImageDetections(
            image_id=image_id,
            boxes=det_boxes.numpy(),
            scores=output["scores"].detach().float().cpu().numpy(),
            labels=output["labels"].cpu().numpy() - 1,
        ),
        ImageGroundTruth(
            image_id=image_id,
            boxes=gt_boxes.numpy(),
            labels=target["labels"].cpu().numpy() - 1,
            difficult=target["difficult"].cpu().numpy(),
        ),
    )


# --- saved predictions -------------------------------------------------------------------------


def detection_prediction_arrays(
    outputs: dict[str, Any], example_ids: list[str]
) -> dict[str, np.ndarray]:
    """The arrays of ``predictions.npz`` in the format of the module docstring. The record's
    metrics are computed from these (boxes and scores as float32, as saved), so evaluate_voc on
    the file gives back the record exactly."""
    dets: list[ImageDetections] = outputs["detections"]
    gts: list[ImageGroundTruth] = outputs["ground_truth"]

    def rows(items: list[Any]) -> np.ndarray:
        return np.concatenate(
            [np.full(len(x.boxes), i, dtype=np.int64) for i, x in enumerate(items)]
            or [np.zeros(0, np.int64)]
        )

    def cat(items: list[Any], field: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        parts = [np.asarray(getattr(x, field)).astype(dtype) for x in items]
        return np.concatenate(parts) if parts else np.zeros(shape, dtype=dtype)

    ids = [example_ids[int(p)] for p in outputs["positions"]]
    return {
        "format": np.asarray(PREDICTIONS_FORMAT),
        "class_names": np.asarray(outputs["class_names"], dtype=np.str_),
        "example_id": np.asarray(ids, dtype=np.str_),
        "image_size": np.asarray(outputs["image_sizes"], dtype=np.int64).reshape(-1, 2),
        "det_image": rows(dets),
        "det_boxes": cat(dets, "boxes", np.float32, (0, 4)).reshape(-1, 4),
        "det_scores": cat(dets, "scores", np.float32, (0,)),
        "det_labels": cat(dets, "labels", np.int64, (0,)),
        "gt_image": rows(gts),
        "gt_boxes": cat(gts, "boxes", np.float32, (0, 4)).reshape(-1, 4),
        "gt_labels": cat(gts, "labels", np.int64, (0,)),
        "gt_difficult": cat(gts, "difficult", bool, (0,)),
    }


# detection.engine -> the module that trains it; mmdet's is imported only when asked for (an
# optional install, see benchmark.engines.install_mmdet)
DETECTION_ENGINES = {
    "torchvision": "benchmark.models.detection:DetectionModule",
    "mmdet": "benchmark.models.mmdet_detection:MMDetDetectionModule",
}


def detection_module(network: nn.Module, task: Task, class_names: list[str]) -> DetectionModule:
    """The LightningModule of the task's ``detection.engine``."""
    engine = (task.detection or DetectionSpec()).engine
    module_name, _, class_name = DETECTION_ENGINES[engine].partition(":")
    module_class = getattr(importlib.import_module(module_name), class_name)
    return module_class(network, task, class_names)


register_kind(
    "detection",
    KindSpec(
        datamodule=DetectionDataModule,
        module=detection_module,
        prediction_arrays=detection_prediction_arrays,
    ),
)
