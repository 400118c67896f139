"""The detector around a registered ResNet: ImageNet weights kept, BatchNorm frozen with the
same statistics, fresh heads, train/test sizes, and boxes back in original-image pixels."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from benchmark.backbones import create_backbone
from benchmark.checkpoints import read_checkpoint
from benchmark.detection.voc_annotations import VOC_CLASSES
from benchmark.errors import BenchError
from benchmark.models.detection import DetectionModule, build_faster_rcnn, freeze_batchnorm
from benchmark.tasks import DetectionSpec, apply_overrides, for_subset, get_task


def _trained_like_resnet18() -> nn.Module:
    """A ResNet-18 whose BN layers hold non-trivial statistics, as ImageNet weights do."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def test_freeze_batchnorm_keeps_the_function() -> None:
    net = _trained_like_resnet18()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = net(x)
    frozen = freeze_batchnorm(copy.deepcopy(net)).train()  # train mode: frozen BN ignores it
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in frozen.modules()) == 20
    with torch.no_grad():
        assert torch.allclose(frozen(x), expected, atol=1e-5)


def test_detector_keeps_backbone_weights_and_freezes_the_stem(paper_resnet18: Path) -> None:
    backbone = create_backbone(str(paper_resnet18))
    reference = read_checkpoint(paper_resnet18).state_dict  # the file itself, prefixes stripped
    detector = build_faster_rcnn(backbone.model, 20, DetectionSpec(trainable_backbone_layers=3))
    body = detector.backbone.body.state_dict()
    for key, value in reference.items():
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            assert key not in body  # the ImageNet classifier is gone; frozen BN counts nothing
            continue
        assert torch.equal(body[key], value), key  # every ImageNet weight and BN statistic
    trainable = {n.split(".")[0] for n, p in detector.backbone.body.named_parameters()
                 if p.requires_grad}  # fmt: skip
    assert trainable == {"layer2", "layer3", "layer4"}
    assert detector.roi_heads.box_predictor.cls_score.out_features == 21  # 20 + background
    assert all(p.requires_grad for p in detector.rpn.parameters())
    assert all(p.requires_grad for p in detector.backbone.fpn.parameters())


def test_only_resnets_are_accepted() -> None:
    with pytest.raises(BenchError, match="ResNet backbone .* not on a MobileNetV2"):
        build_faster_rcnn(torchvision.models.mobilenet_v2(), 20, DetectionSpec())


def test_linear_protocol_is_refused() -> None:
    task = apply_overrides(get_task("voc"), {"protocol": "linear"})
    with pytest.raises(BenchError, match="protocol 'linear' is not defined for detection"):
        DetectionModule(torchvision.models.resnet18(), task, list(VOC_CLASSES))


def test_train_and_test_sizes_and_boxes_in_original_pixels() -> None:
    task = apply_overrides(
        for_subset(get_task("voc"), "tiny"),
        {"detection.train_min_size": [96, 112], "detection.test_min_size": 100},
    )
    module = DetectionModule(_trained_like_resnet18(), task, list(VOC_CLASSES))
    transform = module.detector.transform
    image = torch.rand(3, 200, 300)  # height 200, width 300
    module.train()
    sizes = {tuple(transform([image])[0].image_sizes[0]) for _ in range(20)}
    assert sizes <= {(96, 144), (106, 160)} and len(sizes) == 2  # max side 160 caps 112
    module.eval()
    assert transform([image])[0].image_sizes == [(100, 150)]  # the test size
    module.detector.roi_heads.score_thresh = 0.0  # random heads: keep every box
    with torch.no_grad():
        (out,) = module([image])
    boxes = out["boxes"]
    assert len(boxes) > 0
    # back in the 300x200 original: they reach past the 150x100 network input
    assert float(boxes[:, 2].max()) > 150 and float(boxes[:, 2].max()) <= 300
    assert float(boxes[:, 3].max()) <= 200 and float(boxes.min()) >= 0


def test_difficult_objects_are_left_out_of_training() -> None:
    task = for_subset(get_task("voc"), "tiny")
    module = DetectionModule(_trained_like_resnet18(), task, list(VOC_CLASSES))
    seen: list[list[dict[str, torch.Tensor]]] = []
    module.detector.forward = lambda images, targets: (  # record what the detector gets
        seen.append(targets) or {"loss_a": torch.tensor(1.0), "loss_b": torch.tensor(2.0)}
    )
    module.log = lambda *a, **k: None  # outside a Trainer
    target = {
        "boxes": torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]]),
        "labels": torch.tensor([3, 7]),
        "difficult": torch.tensor([False, True]),
    }
    loss = module.training_step(([torch.rand(3, 32, 32)], [target], torch.tensor([0])), 0)
    assert float(loss) == 3.0
    (sent,) = seen[0]
    assert sent["labels"].tolist() == [3] and np.array_equal(sent["boxes"], [[0, 0, 10, 10]])
