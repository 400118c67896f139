"""Detection engine ``mmdet``: mmdetection's own Faster R-CNN R50-FPN inside our LightningModule.

``--set detection.engine=mmdet`` swaps only the detector: the data, the Trainer (devices,
precision, checkpoints, resume), the record, ``predictions.npz`` and our VOC07 evaluation are
those of the torchvision engine (:class:`benchmark.models.detection.DetectionModule`, which this
subclasses). What comes from mmdetection 3.3.0:

* the model, built from mmdet's ``configs/pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py`` (the
  recipe ``tasks/voc.yaml`` cites): ResNet with ``frozen_stages`` from
  ``trainable_backbone_layers``, BatchNorm in eval mode but with trained affine parameters
  (``norm_eval=True``, mmdet's recipe; the torchvision engine freezes them), FPN, RPN, RoI head
  with ``num_classes`` from the task, and mmdet's train/test settings (score > 0.05, NMS 0.5, 100
  detections per image). ``backbone.init_cfg`` is None: mmdet would otherwise download
  torchvision's weights; the registered backbone's weights are injected instead
  (:func:`inject_backbone_weights`);
* its data preprocessor (normalisation with mmdet's ImageNet mean/std, padding to 32), ``loss``
  and ``predict`` (boxes mapped back to the original image with the resize's scale factor).

The resize to the task's ``detection`` sizes is done here, with mmcv's own ``rescale_size`` (the
rule of mmdet's ``Resize(keep_ratio=True)``), because mmdet's resize lives in its dataset
pipeline, which this engine does not use. Checkpoints never go through mmengine's loaders (they
call ``torch.load`` without ``weights_only``): the backbone comes already loaded and checked by
:mod:`benchmark.checkpoints`, and Lightning restores the whole module on resume.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from benchmark.data.detection import continuous_to_voc
from benchmark.detection.voc_eval import ImageDetections, ImageGroundTruth
from benchmark.engines.availability import require_mmdet
from benchmark.errors import BenchError
from benchmark.models.detection import DetectionModule
from benchmark.tasks import DetectionSpec

MMDET_CONFIG = "configs/pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py"
# torchvision ResNet depth by (block, blocks per stage); mmdet's ResNet takes the depth.
_DEPTHS = {
    ("BasicBlock", (2, 2, 2, 2)): 18,
    ("BasicBlock", (3, 4, 6, 3)): 34,
    ("Bottleneck", (3, 4, 6, 3)): 50,
    ("Bottleneck", (3, 4, 23, 3)): 101,
    ("Bottleneck", (3, 8, 36, 3)): 152,
}


@contextmanager
def _quiet_mmengine() -> Iterator[None]:
    """mmengine logs every initialised tensor at INFO; keep warnings only."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def resnet_depth(network: nn.Module) -> int:
    """The depth of a torchvision ResNet, for mmdet's ResNet; other networks are refused."""
    if isinstance(network, torchvision.models.ResNet):
        layers = tuple(len(getattr(network, f"layer{i}")) for i in range(1, 5))
        block = type(network.layer1[0]).__name__
        depth = _DEPTHS.get((block, layers))
        if depth is not None:
            return depth
    raise BenchError(
        f"detection.engine=mmdet builds mmdet's Faster R-CNN on a ResNet-18/34/50/101/152 "
        f"backbone, not on a {type(network).__name__}: pick one of those, or use "
        f"--set detection.engine=torchvision."
    )


def frozen_stages(trainable_backbone_layers: int) -> int:
    """``trainable_backbone_layers`` (of conv1, layer1..layer4, counted from the top) as mmdet's
    ``frozen_stages`` (stem and the first N stages frozen; -1 none): 3 -> 1, as mmdet's recipe."""
    return -1 if trainable_backbone_layers == 5 else 4 - trainable_backbone_layers


def mmdet_model_config(depth: int, num_classes: int, spec: DetectionSpec) -> Any:
    """mmdet's VOC Faster R-CNN config, with what the task and backbone set."""
    import mmdet
    from mmengine.config import Config

    path = resources.files(mmdet) / ".mim" / MMDET_CONFIG
    cfg = Config.fromfile(str(path)).model
    cfg.backbone.depth = depth
    cfg.backbone.init_cfg = None  # weights are injected, never downloaded
    cfg.backbone.frozen_stages = frozen_stages(spec.trainable_backbone_layers)
    if depth < 50:
        cfg.neck.in_channels = [64, 128, 256, 512]  # BasicBlock stages
    cfg.roi_head.bbox_head.num_classes = num_classes
    # our images arrive as RGB (mmdet's pipeline reads BGR with OpenCV and swaps them here)
    cfg.data_preprocessor.bgr_to_rgb = False
    return cfg


def backbone_key_map(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
                     ) -> dict[str, str]:  # fmt: skip
    """mmdet ResNet tensor name -> torchvision ResNet tensor name, checked both ways.

    mmdet's ResNet (``style='pytorch'``) was written to load torchvision's checkpoints
    (``torchvision://resnet50``), so every name is the same (``conv1``, ``bn1``,
    ``layerN.i.convK``/``bnK``, ``layerN.0.downsample.0/1``) and only the ImageNet classifier
    (``fc``) has no place. The map is still spelled out and checked rather than assumed: every
    detector tensor must get one, every source tensor but ``fc`` must be used, shapes must
    agree; anything else is refused, listing the names.
    """
    mapping = {name: name for name in target}
    unused = sorted(k for k in source if k not in mapping.values() and not k.startswith("fc."))
    missing = sorted(k for k, v in mapping.items() if v not in source)
    shapes = sorted(k for k, v in mapping.items()
                    if v in source and source[v].shape != target[k].shape)  # fmt: skip
    if unused or missing or shapes:
        parts = [f"{what}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
                 for what, names in (("not in the checkpoint", missing),
                                     ("not used by the detector", unused),
                                     ("shape differs", shapes)) if names]  # fmt: skip
        raise BenchError(
            f"the backbone's weights do not fit mmdet's ResNet ({'; '.join(parts)}): use a "
            f"torchvision-layout ResNet or --set detection.engine=torchvision."
        )
    return mapping


def inject_backbone_weights(detector: nn.Module, network: nn.Module) -> None:
    """Copy every tensor of the registered ResNet (BatchNorm statistics included) into the
    detector's ResNet, after mmdet initialised the rest; strict, so none stays at init."""
    source = network.state_dict()
    target = detector.backbone.state_dict()
    mapping = backbone_key_map(source, target)
    detector.backbone.load_state_dict({k: source[v] for k, v in mapping.items()}, strict=True)


class MMDetDetectionModule(DetectionModule):
    """The torchvision engine's module with mmdet's detector: same batches, outputs and hooks."""

    def build_detector(self, network: nn.Module, num_classes: int) -> nn.Module:
        require_mmdet()
        depth = resnet_depth(network)
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
        from mmengine.registry import DefaultScope

        with _quiet_mmengine(), DefaultScope.overwrite_default_scope("mmdet"):
            register_all_modules(init_default_scope=False)
            detector = MODELS.build(mmdet_model_config(depth, num_classes, self.spec))
            detector.init_weights()
        inject_backbone_weights(detector, network)
        return detector

    # --- batches in mmdet's form -----------------------------------------------------------

    def _sizes(self) -> tuple[int, int]:
        """(shorter side, cap on the longer side) for this batch, as DetectionSpec says."""
        if self.training:
            short = self.spec.train_min_size
            short = random.choice(short) if isinstance(short, list) else short
            return short, self.spec.train_max_size
        return self.spec.test_min_size, self.spec.test_max_size

    def mmdet_batch(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> dict[str, Any]:
        """Resized images (0-255, as mmdet's preprocessor expects) and DetDataSamples with the
        non-difficult boxes, labels 0-based (mmdet has no background class), through mmdet's
        data preprocessor."""
        import mmcv
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        short, long = self._sizes()
        inputs, samples = [], []
        for image, target in zip(images, targets, strict=True):
            height, width = image.shape[-2:]
            new_w, new_h = mmcv.rescale_size((width, height), (long, short))
            resized = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear",
                                    align_corners=False)[0]  # fmt: skip
            inputs.append((resized * 255.0).clamp(0, 255))
            scale = (new_w / width, new_h / height)
            sample = DetDataSample(metainfo={
                "img_shape": (new_h, new_w), "ori_shape": (height, width), "scale_factor": scale,
            })  # fmt: skip
            keep = ~target["difficult"]
            boxes = target["boxes"][keep] * target["boxes"].new_tensor([*scale, *scale])
            sample.gt_instances = InstanceData(bboxes=boxes, labels=target["labels"][keep] - 1)
            samples.append(sample)
        preprocessor = self.detector.data_preprocessor
        preprocessor.to(self.device)  # mmengine tracks its device itself (Lightning bypasses it)
        return preprocessor({"inputs": inputs, "data_samples": samples}, self.training)

    # --- the engine's steps ------------------------------------------------------------------

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, targets, _ = batch
        data = self.mmdet_batch(images, targets)
        losses = self.detector.loss(data["inputs"], data["data_samples"])
        loss, parts = self.detector.parse_losses(losses)  # mmdet's own sum of its loss terms
        size = len(images)
        for name, value in parts.items():
            if name != "loss":
                self.log(f"train_{name}", value, on_step=True, on_epoch=False, batch_size=size)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=size)
        return loss

    def forward(self, images: list[torch.Tensor]) -> list[Any]:
        """mmdet's predictions (DetDataSamples, boxes in original-image pixels)."""
        empty = [{"boxes": im.new_zeros(0, 4), "labels": im.new_zeros(0, dtype=torch.long),
                  "difficult": im.new_zeros(0, dtype=torch.bool)} for im in images]  # fmt: skip
        data = self.mmdet_batch(images, empty)
        return self.detector.predict(data["inputs"], data["data_samples"], rescale=True)

    def detect(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> list[tuple[ImageDetections, ImageGroundTruth]]:
        out = []
        for sample, target in zip(self(images), targets, strict=True):
            pred = sample.pred_instances
            det = ImageDetections(
                image_id="",
                boxes=continuous_to_voc(pred.bboxes.detach().float().cpu()).numpy(),
                scores=pred.scores.detach().float().cpu().numpy(),
                labels=pred.labels.cpu().numpy(),  # 0-based already
            )
            gt = ImageGroundTruth(
                image_id="",
                boxes=continuous_to_voc(target["boxes"].float().cpu()).numpy(),
                labels=target["labels"].cpu().numpy() - 1,
                difficult=target["difficult"].cpu().numpy(),
            )
            out.append((det, gt))
        return out
