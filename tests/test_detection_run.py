"""`bench run --task voc` end to end on the fixture: it trains, the record holds VOC07 mAP and
20 per-class APs, and the saved detections alone recompute every number."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import bench, bench_subprocess, read_json, run_dirs
from reference_metrics import detection_reference

from benchmark.analysis.detection import load_detections
from benchmark.analysis.kinds import kind_analysis
from benchmark.data.fixtures import MANIFEST_NAME
from benchmark.detection.voc_annotations import VOC_CLASSES, parse_voc_annotation
from benchmark.detection.voc_eval import ImageDetections, ImageGroundTruth, evaluate_voc
from benchmark.kinds import evaluate_predictions, save_predictions
from benchmark.metrics import compute_metrics
from benchmark.models.detection import detection_prediction_arrays
from benchmark.run_record import read_record

RUN = ("run", "--task", "voc", "--subset", "tiny", "--max-steps", "2", "--accelerator", "cpu",
       "--num-workers", "0")  # fmt: skip
METRICS = ["map_voc07", "map_voc_area", "per_class_ap_voc07", "per_class_ap_voc_area"]


@pytest.fixture(scope="module")
def voc_run(tmp_path_factory, voc_root: Path, paper_resnet18: Path):
    results = tmp_path_factory.mktemp("results")
    code = bench(*RUN, "--backbone", paper_resnet18, "--data-root", voc_root, "--results", results)
    assert code == 0
    (run_dir,) = run_dirs(results)
    return run_dir


def test_record_holds_map_and_per_class_ap(voc_run: Path) -> None:
    record = read_json(voc_run / "record.json")
    assert record["status"] == "completed" and record["kind"] == "detection"
    assert record["task"] == "voc" and record["backbone"]["arch"] == "resnet18"
    assert record["data"]["fixture"] is True and record["data"]["voc_trainval_years"] == [2007]
    assert record["data"]["sizes"] == {"train": 16, "val": 4, "test": 8}
    detection = record["config"]["task"]["detection"]
    assert (detection["train_min_size"], detection["test_max_size"]) == (128, 160)  # smoke size
    losses = record["training"]["losses"]
    assert record["training"]["steps"] == 2 and len(losses) == 2
    assert all(np.isfinite(losses)) and losses[0] > 0
    metrics = record["metrics"]
    assert record["primary_metric"] == "map_voc07" and set(metrics) == set(METRICS)
    assert 0.0 <= metrics["map_voc07"] <= 1.0 and 0.0 <= metrics["map_voc_area"] <= 1.0
    # 8 test images hold some classes only: AP is null exactly where there is no ground truth
    _, ground_truth, _ = load_detections(voc_run)
    present = {VOC_CLASSES[c] for g in ground_truth for c in g.labels[~g.difficult]}
    assert 4 <= len(present) < 20
    for name in ("per_class_ap_voc07", "per_class_ap_voc_area"):
        assert list(metrics[name]) == list(VOC_CLASSES)
        for cls, ap in metrics[name].items():
            assert (ap is None) == (cls not in present) and (ap is None or 0.0 <= ap <= 1.0)
    defined = [v for v in metrics["per_class_ap_voc07"].values() if v is not None]
    assert metrics["map_voc07"] == pytest.approx(np.mean(defined))


def test_saved_detections_recompute_the_metrics(voc_run: Path, voc_root: Path) -> None:
    record = read_json(voc_run / "record.json")
    detections, ground_truth, class_names = load_detections(voc_run)
    assert class_names == list(VOC_CLASSES) and len(ground_truth) == 8
    # evaluate_voc on the arrays as saved (float32 boxes and scores): the record, exactly
    assert record["metrics"] == detection_reference(voc_run)
    assert compute_metrics("detection", METRICS, detections, ground_truth, class_names) == (
        record["metrics"]
    )
    with np.load(voc_run / "predictions.npz", allow_pickle=False) as data:
        sizes = data["image_size"]
    annotations = voc_root / "VOCdevkit" / "VOC2007" / "Annotations"
    for gt, det, (width, height) in zip(ground_truth, detections, sizes, strict=True):
        year, image_id = gt.image_id.split("/")
        ann = parse_voc_annotation(annotations / f"{image_id}.xml")
        assert year == "VOC2007" and (width, height) == (ann.width, ann.height)
        # ground truth: the XML's own numbers, difficult flags included
        assert np.array_equal(gt.boxes, [o.bbox for o in ann.objects])
        assert gt.labels.tolist() == [VOC_CLASSES.index(o.name) for o in ann.objects]
        assert gt.difficult.tolist() == [o.difficult for o in ann.objects]
        # detections: original-image pixels (VOC 1-based), not the 128/160 network input
        if len(det.boxes):
            assert det.boxes.min() >= 1.0 and det.boxes[:, 2].max() <= width
            assert det.boxes[:, 3].max() <= height
            assert det.labels.min() >= 0 and det.labels.max() < 20
            assert det.scores.min() >= 0.05  # torchvision's (and mmdetection's) threshold


def _one_class_case() -> tuple[list[ImageDetections], list[ImageGroundTruth]]:
    """Hand-worked: 3 images, classes 0 and 1 with ground truth, class 2 without.

    class 0: GT a (image 0) and a difficult GT (image 1). Detections by score: 0.9 on a (TP),
    0.8 on nothing (FP), 0.7 on the difficult box (ignored). One positive: recall 1 reached at
    precision 1 -> AP 1.0 both ways.
    class 1: one GT (image 2). Detections: 0.9 elsewhere (FP), 0.6 on it (TP), 0.5 on it again
    (duplicate, FP). Precision 1/2 at recall 1 -> 11-point AP 0.5, area AP 0.5.
    mAP = 0.75; class 2 has no ground truth -> null, left out of the mean.
    """
    gt = [
        ImageGroundTruth("a", np.array([[10, 10, 50, 50]]), np.array([0])),
        ImageGroundTruth("b", np.array([[1, 1, 20, 20]]), np.array([0]), np.array([True])),
        ImageGroundTruth("c", np.array([[30, 30, 80, 90]]), np.array([1])),
    ]
    det = [
        ImageDetections("a", np.array([[11, 10, 50, 51], [60, 60, 90, 90], [10, 10, 40, 40]]),
                        np.array([0.9, 0.8, 0.9]), np.array([0, 0, 1])),
        ImageDetections("b", np.array([[1, 1, 20, 21]]), np.array([0.7]), np.array([0])),
        ImageDetections("c", np.array([[30, 31, 80, 90], [29, 30, 80, 90]]),
                        np.array([0.6, 0.5]), np.array([1, 1])),
    ]  # fmt: skip
    return det, gt


def test_metrics_on_a_hand_worked_case_survive_saving(tmp_path: Path) -> None:
    det, gt = _one_class_case()
    names = ["cls0", "cls1", "cls2"]
    outputs = {
        "positions": np.arange(3),
        "image_sizes": np.array([[100, 100]] * 3),
        "detections": det,
        "ground_truth": gt,
        "class_names": names,
    }
    expected = {
        "map_voc07": 0.75,
        "map_voc_area": 0.75,
        "per_class_ap_voc07": {"cls0": 1.0, "cls1": 0.5, "cls2": None},
        "per_class_ap_voc_area": {"cls0": 1.0, "cls1": 0.5, "cls2": None},
    }
    arrays = detection_prediction_arrays(outputs, ["VOC2007/a", "VOC2007/b", "VOC2007/c"])
    metrics = evaluate_predictions("detection", arrays, names, METRICS)
    assert metrics == expected  # exact: these APs are sums of 0.5s and 1s
    save_predictions(tmp_path, arrays)
    det2, gt2, names2 = load_detections(tmp_path)
    assert names2 == names and [g.image_id for g in gt2] == ["VOC2007/a", "VOC2007/b", "VOC2007/c"]
    assert compute_metrics("detection", METRICS, det2, gt2, names2) == expected


def test_record_is_evaluated_on_the_float32_boxes_it_saves(tmp_path: Path) -> None:
    """Whatever precision the detector hands over, the record is computed from the saved
    (float32) arrays. Here a float64 box has IoU 0.5000000001 with its ground truth (a match,
    IoU > 0.5) but float32 rounds it to 0.5 exactly (no match): the two must not disagree."""
    gt = [ImageGroundTruth("a", np.array([[1.0, 1.0, 10.0, 10.0]]), np.array([0]))]
    det = [ImageDetections("a", np.array([[1.0, 1.0, 10.0, 5.000000001]]), np.array([0.9]),
                           np.array([0]))]  # fmt: skip
    outputs = {"positions": np.arange(1), "image_sizes": np.array([[20, 20]]),
               "detections": det, "ground_truth": gt, "class_names": ["cls0"]}  # fmt: skip
    assert evaluate_voc(det, gt, ["cls0"]).map_11point == 1.0  # in float64 it is a hit
    arrays = detection_prediction_arrays(outputs, ["VOC2007/a"])
    metrics = evaluate_predictions("detection", arrays, ["cls0"], METRICS)
    save_predictions(tmp_path, arrays)
    assert metrics == detection_reference(tmp_path)
    assert metrics["map_voc07"] == 0.0  # float32 box: IoU exactly 0.5, not above it


def test_non_resnet_backbone_is_a_one_line_error(tmp_path: Path, voc_root: Path, capsys) -> None:
    import torchvision

    from benchmark.checkpoints import save_imagenet_example_checkpoint

    ckpt = tmp_path / "mobilenet.pth"
    save_imagenet_example_checkpoint(ckpt, "mobilenet_v2",
                                     torchvision.models.mobilenet_v2().state_dict())  # fmt: skip
    code = bench(*RUN, "--backbone", ckpt, "--data-root", voc_root, "--results", tmp_path / "r")
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "ResNet backbone" in err


def test_malformed_annotation_exits_2_without_traceback(
    voc_root: Path, tmp_path: Path, paper_resnet18: Path
) -> None:
    """As a user sees it: a subprocess, exit status 2, one line naming the file, no traceback."""
    root = tmp_path / "data"
    shutil.copytree(voc_root / "VOCdevkit", root / "VOCdevkit")
    voc07 = root / "VOCdevkit" / "VOC2007"
    (voc07 / MANIFEST_NAME).unlink()  # a real dataset has no fixture manifest
    xml = sorted((voc07 / "Annotations").glob("*.xml"))[3]
    xml.write_text(xml.read_text().replace("<ymax>", "<ymax>7", 1))
    proc = bench_subprocess(*RUN, "--backbone", paper_resnet18, "--data-root", root,
                            "--results", tmp_path / "r")  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"bench: error: {xml}: object 1")
    assert "lies outside the" in lines[0]


def test_leaderboard_scores_resample_images(voc_run: Path) -> None:
    """The kind's per-image scores give back the record's numbers on the identity resample, and
    a resample of the images is evaluated as that multiset of images."""
    record = read_record(voc_run)
    scores = kind_analysis("detection").scores(voc_run, record)
    n = scores.n
    assert n == 8 and list(scores.example_ids) == [g.image_id for g in load_detections(voc_run)[1]]
    idx = np.stack([np.arange(n), np.zeros(n, dtype=np.int64)])  # identity; image 0 n times
    for name in METRICS:
        values = scores.metrics[name].compute(idx)
        reported = record.metrics[name]
        if isinstance(reported, dict):
            expected = [np.nan if v is None else v for v in reported.values()]
            np.testing.assert_allclose(values[0], expected, atol=1e-12)
            first = load_detections(voc_run)[1][0]
            present = {VOC_CLASSES[c] for c in first.labels[~first.difficult]}
            # resampling image 0 only: AP is defined exactly for the classes it contains
            assert [not np.isnan(v) for v in values[1]] == [c in present for c in VOC_CLASSES]
        else:
            assert values[0] == pytest.approx(reported, abs=1e-12)


def test_leaderboard_of_a_detection_run_names_its_engine(voc_run: Path, tmp_path: Path) -> None:
    """A detection setting's engine is read from the typed record (a dict lookup raised
    TypeError on every VOC record, so no leaderboard could be written with one)."""
    from benchmark import leaderboard

    board = leaderboard.build(voc_run.parents[4], n_boot=100, plots=False, cache=False)
    (setting,) = board.settings
    assert setting.kind == "detection" and setting.engine == "torchvision"
    written = leaderboard.write(board, tmp_path / "board")
    assert "| file-resnet18_blurred_ILSVRC" in written["markdown"].read_text()
