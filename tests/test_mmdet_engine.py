"""The mmdet detection engine (needs the optional install: skipped, saying why, without it;
under CI=true its absence is a failure).

mmdet's detector holds the registered backbone's tensors exactly; our VOC07 mAP equals mmdet's
own VOCMetric on the same detections; a run killed mid-training resumes and writes a record in
the torchvision engine's shape, whose saved detections recompute its metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import bench, read_json, run_dirs, wait_for
from reference_metrics import detection_reference

from benchmark.engines.availability import INSTALL_COMMAND, mmdet_missing_reason

REASON = mmdet_missing_reason()
if REASON is not None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI: the mmdet engine cannot be imported ({REASON}); .ci/run installs it",
                    pytrace=False)  # fmt: skip
    pytest.skip(f"mmdet engine not installed ({REASON}); {INSTALL_COMMAND}",
                allow_module_level=True)  # fmt: skip

from benchmark.backbones import create_backbone  # noqa: E402
from benchmark.checkpoints import read_checkpoint  # noqa: E402
from benchmark.detection.voc_annotations import VOC_CLASSES  # noqa: E402
from benchmark.detection.voc_eval import ImageDetections, ImageGroundTruth, evaluate_voc  # noqa: E402,E501
from benchmark.errors import BenchError  # noqa: E402
from benchmark.models.detection import detection_module  # noqa: E402
from benchmark.models.mmdet_detection import (  # noqa: E402
    MMDetDetectionModule,
    backbone_key_map,
    frozen_stages,
)
from benchmark.tasks import apply_overrides, for_subset, get_task  # noqa: E402

MMDET = {"detection.engine": "mmdet"}


@pytest.fixture(scope="module")
def module_and_checkpoint(paper_resnet18: Path) -> tuple[MMDetDetectionModule, Path]:
    task = apply_overrides(for_subset(get_task("voc"), "tiny"), MMDET)
    backbone = create_backbone(str(paper_resnet18))
    module = detection_module(backbone.model, task, list(VOC_CLASSES))
    return module, paper_resnet18


def test_backbone_tensors_inside_the_detector_are_the_checkpoints(module_and_checkpoint) -> None:
    module, path = module_and_checkpoint
    assert isinstance(module, MMDetDetectionModule)
    reference = read_checkpoint(path).state_dict  # the file itself, prefixes stripped
    inside = module.detector.backbone.state_dict()
    expected = {k: v for k, v in reference.items() if not k.startswith("fc.")}
    assert set(inside) == set(expected)  # every tensor has its place, none left at init
    for key, value in expected.items():
        assert torch.equal(inside[key], value), key  # weights and BatchNorm statistics
    # mmdet's recipe: stem + layer1 frozen (trainable_backbone_layers 3), heads for 20 classes
    trainable = {n.split(".")[0] for n, p in module.detector.backbone.named_parameters()
                 if p.requires_grad}  # fmt: skip
    assert trainable == {"layer2", "layer3", "layer4"}
    assert module.detector.roi_head.bbox_head.fc_cls.out_features == 21  # + background
    assert module.detector.neck.in_channels == [64, 128, 256, 512]  # ResNet-18's stages


def test_a_checkpoint_that_does_not_fit_is_refused_by_name(module_and_checkpoint) -> None:
    module, _ = module_and_checkpoint
    target = module.detector.backbone.state_dict()
    source = {k: v.clone() for k, v in target.items()}
    source["fc.weight"] = torch.zeros(1000, 512)  # the ImageNet head: no place, no complaint
    assert backbone_key_map(source, target)["layer4.1.bn2.running_var"] == (
        "layer4.1.bn2.running_var"
    )
    del source["layer3.0.downsample.1.running_mean"]
    source["layer2.0.conv1.weight"] = torch.zeros(1, 1, 1, 1)
    source["extra.weight"] = torch.zeros(1)
    with pytest.raises(BenchError, match=r"not in the checkpoint: layer3.0.downsample.1.running_"
                       r"mean; not used by the detector: extra.weight; shape differs: "
                       r"layer2.0.conv1.weight"):  # fmt: skip
        backbone_key_map(source, target)


def test_trainable_layers_map_to_frozen_stages() -> None:
    assert [frozen_stages(n) for n in range(6)] == [4, 3, 2, 1, 0, -1]


def _synthetic_case() -> tuple[list[ImageDetections], list[ImageGroundTruth], list[str]]:
    """Jittered copies of the ground truth plus false positives, duplicates and difficult
    boxes, 3 classes over 12 images (one class absent from the ground truth)."""
    rng = np.random.default_rng(0)
    dets, gts = [], []
    for i in range(12):
        k = int(rng.integers(1, 5))
        xy = rng.uniform(1, 200, size=(k, 2))
        wh = rng.uniform(20, 120, size=(k, 2))
        boxes = np.round(np.hstack([xy, xy + wh]))
        labels = rng.integers(0, 2, size=k)
        difficult = rng.random(k) < 0.2
        gts.append(ImageGroundTruth(f"img{i}", boxes, labels, difficult))
        found = boxes + rng.normal(0, 6, size=boxes.shape)
        found[:, 2:] = np.maximum(found[:, 2:], found[:, :2] + 1)
        extra = np.array([[5.0, 5, 60, 60], *found[:1]])  # a false positive and a duplicate
        det_boxes = np.vstack([found, extra])
        det_labels = np.concatenate([labels, [int(rng.integers(0, 3)), labels[0]]])
        scores = rng.uniform(0.05, 1.0, size=len(det_boxes))
        dets.append(ImageDetections(f"img{i}", det_boxes, scores, det_labels))
    return dets, gts, ["cat", "dog", "bird"]


def _mmdet_voc_map(dets: list[ImageDetections], gts: list[ImageGroundTruth],
                   names: list[str]) -> float:  # fmt: skip
    """mmdet's VOCMetric (11-point, VOC2007) fed the same boxes: difficult ground truth goes
    in as mmdet's ignored instances, as its VOC dataset does."""
    from mmdet.evaluation import VOCMetric

    metric = VOCMetric(iou_thrs=0.5, eval_mode="11points")
    metric.dataset_meta = {"classes": tuple(names), "dataset_type": "VOC2007"}
    samples = []
    for det, gt in zip(dets, gts, strict=True):
        keep = ~gt.difficult
        samples.append({
            "gt_instances": {"bboxes": torch.tensor(gt.boxes[keep]),
                             "labels": torch.tensor(gt.labels[keep])},
            "ignored_instances": {"bboxes": torch.tensor(gt.boxes[~keep]).reshape(-1, 4),
                                  "labels": torch.tensor(gt.labels[~keep])},
            "pred_instances": {"bboxes": torch.tensor(det.boxes), "scores":
                               torch.tensor(det.scores), "labels": torch.tensor(det.labels)},
        })  # fmt: skip
    metric.process({}, samples)
    return float(metric.compute_metrics(metric.results)["mAP"])


def test_our_map_equals_mmdets_voc_metric_on_the_same_detections() -> None:
    dets, gts, names = _synthetic_case()
    ours = evaluate_voc(dets, gts, names)
    assert 0.2 < ours.map_11point < 0.95  # a case with something to get right
    assert np.isnan(ours.per_class_ap_11point["bird"])  # no ground truth: left out of the mean
    assert _mmdet_voc_map(dets, gts, names) == pytest.approx(ours.map_11point, abs=1e-6)
    # the check can fail: one image's detections moved off their objects change both, equally
    dets[0].boxes += 80
    moved = evaluate_voc(dets, gts, names).map_11point
    assert moved != pytest.approx(ours.map_11point)
    assert _mmdet_voc_map(dets, gts, names) == pytest.approx(moved, abs=1e-6)


@pytest.mark.timeout(1500)  # 8-13 min measured on 2 cores at load 13 (not timed unloaded)
def test_a_killed_run_resumes_and_records_like_the_torchvision_engine(
    tmp_path: Path, voc_root: Path, paper_resnet18: Path
) -> None:
    results = tmp_path / "results"
    args = ["run", "--task", "voc", "--subset", "tiny", "--accelerator", "cpu", "--num-workers",
            "0", "--backbone", str(paper_resnet18), "--data-root", str(voc_root), "--results",
            str(results), "--max-steps", "3", "--checkpoint-every-n-steps", "1", "--set",
            "detection.engine=mmdet"]  # fmt: skip
    log = tmp_path / "run.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "benchmark.cli", *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env)  # fmt: skip
        wait_for(lambda: "step 2 " in log.read_text(), proc, timeout=400)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert not run_dirs(results)
    assert bench(*args) == 0  # the same command resumes
    (run_dir,) = run_dirs(results)
    record = read_json(run_dir / "record.json")
    training = record["training"]
    # "step 2" is printed as the step's checkpoint is written: the kill finds step 1 or 2 saved
    assert 1 <= training["resumed_from_step"] < 3 and training["steps"] == 3
    assert len(training["losses"]) == 3 - training["resumed_from_step"]  # none trained twice
    assert all(np.isfinite(training["losses"]))
    assert record["status"] == "completed" and record["kind"] == "detection"
    assert record["config"]["task"]["detection"]["engine"] == "mmdet"
    metrics = record["metrics"]
    assert set(metrics) == {"map_voc07", "map_voc_area", "per_class_ap_voc07",
                            "per_class_ap_voc_area"}  # fmt: skip
    assert list(metrics["per_class_ap_voc07"]) == list(VOC_CLASSES)
    assert record["metrics"] == detection_reference(run_dir)  # predictions.npz recomputes it
    with np.load(run_dir / "predictions.npz", allow_pickle=False) as data:
        assert len(data["example_id"]) == 8 and data["det_boxes"].shape[1:] == (4,)
        if len(data["det_boxes"]):  # original-image pixels, VOC-style, mmdet's score threshold
            assert data["det_boxes"].min() >= 1.0 and data["det_scores"].min() >= 0.05
