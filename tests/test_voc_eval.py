"""VOC evaluation: hand-worked cases, devkit quirks, a devkit port and a COCO cross-check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.detection.voc_eval import (
    ImageDetections,
    ImageGroundTruth,
    box_iou,
    evaluate_from_matches,
    evaluate_voc,
    match_detections,
)


def gt(image_id: str, boxes, labels, difficult=None) -> ImageGroundTruth:
    return ImageGroundTruth(image_id, np.array(boxes, float), np.array(labels), difficult)


def det(image_id: str, boxes, scores, labels) -> ImageDetections:
    return ImageDetections(image_id, np.array(boxes, float), np.array(scores), np.array(labels))


FAR = [400, 400, 420, 420]  # a box that overlaps nothing in these tests


# --------------------------------------------------------------------------- hand-worked cases


def test_perfect_detections_give_ap_one():
    gts = [
        gt("a", [[1, 1, 50, 50], [100, 100, 150, 180]], [0, 1]),
        gt("b", [[10, 20, 30, 40]], [1]),
    ]
    dets = [
        det("a", [[1, 1, 50, 50], [100, 100, 150, 180]], [0.9, 0.8], [0, 1]),
        det("b", [[10, 20, 30, 40]], [0.7], [1]),
    ]
    r = evaluate_voc(dets, gts, ["cat", "dog"])
    assert r.map_11point == 1.0 and r.map_area == 1.0
    assert r.per_class_ap_11point == {"cat": 1.0, "dog": 1.0}
    assert r.num_positives == {"cat": 1, "dog": 2}


def test_one_tp_then_one_fp_with_lower_score():
    # Two GT boxes; the TP (0.9) finds one, the FP (0.8) nothing; the other GT is missed.
    # rec = [0.5, 0.5], prec = [1, 0.5].
    # 11-point: t = 0, .1, .., .5 (6 thresholds) see precision 1; t = .6 .. 1 (5) see no point -> 0.
    #   AP = 6 / 11.
    # area: recall rises 0 -> 0.5 under envelope 1, then nothing -> AP = 0.5 * 1 = 0.5.
    gts = [gt("a", [[1, 1, 50, 50], [100, 100, 150, 150]], [0, 0])]
    dets = [det("a", [[1, 1, 50, 50], FAR], [0.9, 0.8], [0, 0])]
    r = evaluate_voc(dets, gts, ["cat"])
    assert r.per_class_ap_11point["cat"] == pytest.approx(6 / 11, abs=1e-15)
    assert r.per_class_ap_area["cat"] == pytest.approx(0.5, abs=1e-15)


def test_one_fp_then_one_tp():
    # One GT. FP (0.9) first, then TP (0.8): rec = [0, 1], prec = [0, 0.5].
    # Envelope is 0.5 everywhere up to recall 1, so both APs are 0.5.
    gts = [gt("a", [[1, 1, 50, 50]], [0])]
    dets = [det("a", [FAR, [1, 1, 50, 50]], [0.9, 0.8], [0, 0])]
    r = evaluate_voc(dets, gts, ["cat"])
    assert r.map_11point == pytest.approx(0.5, abs=1e-15)
    assert r.map_area == pytest.approx(0.5, abs=1e-15)


def test_eleven_point_and_area_differ():
    # 4 positives (one per image); ranked flags TP FP TP FP TP, the 4th GT is missed.
    # tp = 1 1 2 2 3, fp = 0 1 1 2 2; rec = .25 .25 .5 .5 .75; prec = 1 .5 2/3 .5 .6
    # envelope (max precision to the right) = 1, 2/3, 2/3, .6, .6
    # 11-point: t = 0,.1,.2 -> 1 (3x); t = .3,.4,.5 -> 2/3 (3x); t = .6,.7 -> .6 (2x);
    #           t = .8,.9,1 -> 0 (3x).  AP = (3 + 2 + 1.2) / 11 = 31/55 = 0.56363..
    # area: .25*1 + .25*(2/3) + .25*.6 + .25*0 = 17/30 = 0.56666..
    box = [10, 10, 60, 60]
    gts = [gt(f"i{k}", [box], [0]) for k in range(4)]
    dets = [
        det("i0", [box], [0.9], [0]),  # TP
        det("i1", [FAR, box], [0.8, 0.5], [0, 0]),  # FP, and (ranked last) TP
        det("i2", [box], [0.7], [0]),  # TP
        det("i3", [FAR], [0.6], [0]),  # FP; i3's GT is never found
    ]
    r = evaluate_voc(dets, gts, ["cat"])
    assert r.map_11point == pytest.approx(31 / 55, abs=1e-15)
    assert r.map_area == pytest.approx(17 / 30, abs=1e-15)
    assert r.map_11point != pytest.approx(r.map_area)


def test_duplicate_detection_on_same_gt_is_false_positive():
    # GTs G1, G2. Ranked: G1 (TP), G1 again (duplicate -> FP), G2 (TP).
    # rec = .5 .5 1, prec = 1 .5 2/3.
    # 11-point: t <= .5 -> 1 (6x), t >= .6 -> 2/3 (5x): AP = (6 + 10/3) / 11 = 28/33.
    # area: .5*1 + .5*(2/3) = 5/6.
    g1, g2 = [1, 1, 50, 50], [100, 100, 150, 150]
    gts = [gt("a", [g1, g2], [0, 0])]
    dets = [det("a", [g1, [2, 2, 50, 50], g2], [0.9, 0.8, 0.7], [0, 0, 0])]
    m = match_detections(dets, gts, ["cat"])
    assert m.per_class[0].is_tp.tolist() == [True, False, True]
    r = evaluate_voc(dets, gts, ["cat"])
    assert r.map_11point == pytest.approx(28 / 33, abs=1e-15)
    assert r.map_area == pytest.approx(5 / 6, abs=1e-15)


def test_no_fallback_to_second_best_gt():
    # The devkit takes the best-IoU GT even if it is taken: d2 overlaps G2 with IoU .92 > .5,
    # but its best GT is G1 (IoU .98), already matched by d1, so d2 is a false positive.
    # (COCO would match d2 to G2 instead.)
    g1, g2 = [1, 1, 100, 100], [1, 1, 100, 90]
    gts = [gt("a", [g1, g2], [0, 0])]
    dets = [det("a", [g1, [1, 1, 100, 98]], [0.9, 0.8], [0, 0])]
    m = match_detections(dets, gts, ["cat"])
    assert m.per_class[0].is_tp.tolist() == [True, False]


def test_detection_on_difficult_gt_is_ignored():
    # Ranked: two hits on the difficult GT (ignored, not FP), then the normal GT (TP).
    # Without ignoring, the TP would sit behind two FPs and AP would be 1/3, not 1.
    normal, hard = [1, 1, 50, 50], [100, 100, 150, 150]
    gts = [gt("a", [normal, hard], [0, 0], [False, True])]
    dets = [det("a", [hard, [101, 101, 150, 150], normal], [0.9, 0.85, 0.8], [0, 0, 0])]
    m = match_detections(dets, gts, ["cat"])
    assert m.per_class[0].is_tp.tolist() == [True]  # ignored detections are dropped
    r = evaluate_voc(dets, gts, ["cat"])
    assert r.num_positives == {"cat": 1}
    assert r.map_11point == 1.0 and r.map_area == 1.0


def test_missed_difficult_gt_is_not_penalised():
    gts = [gt("a", [[1, 1, 50, 50], [100, 100, 150, 150]], [0, 0], [False, True])]
    dets = [det("a", [[1, 1, 50, 50]], [0.9], [0])]
    assert evaluate_voc(dets, gts, ["cat"]).map_area == 1.0


def test_class_with_only_difficult_gt_is_nan_and_excluded_from_mean():
    # "dog" has one difficult GT (and a detection on it): no positives -> AP NaN, not in the mean.
    # "cat": FP then TP -> AP 0.5 both ways, which is then the mAP.
    gts = [gt("a", [[1, 1, 50, 50], [100, 100, 150, 150]], [0, 1], [False, True])]
    dets = [det("a", [FAR, [1, 1, 50, 50], [100, 100, 150, 150]], [0.9, 0.8, 0.7], [0, 0, 1])]
    r = evaluate_voc(dets, gts, ["cat", "dog", "bird"])
    assert math.isnan(r.per_class_ap_11point["dog"]) and math.isnan(r.per_class_ap_area["dog"])
    assert math.isnan(r.per_class_ap_11point["bird"])  # no GT at all: also NaN
    assert r.num_positives == {"cat": 1, "dog": 0, "bird": 0}
    assert r.map_11point == pytest.approx(0.5) and r.map_area == pytest.approx(0.5)
    metrics = r.as_metrics()
    assert metrics["ap_voc07/dog"] is None and metrics["ap_voc_area/dog"] is None
    assert metrics["map_voc07"] == pytest.approx(0.5)
    assert set(metrics) == {
        "map_voc07",
        "map_voc_area",
        *(f"ap_voc07/{c}" for c in ("cat", "dog", "bird")),
        *(f"ap_voc_area/{c}" for c in ("cat", "dog", "bird")),
    }
    assert all(v is None or type(v) is float for v in metrics.values())


def test_all_classes_without_positives_give_nan_map():
    r = evaluate_voc([], [gt("a", np.zeros((0, 4)), [])], ["cat"])
    assert math.isnan(r.map_11point) and r.as_metrics()["map_voc07"] is None


def test_class_with_positives_but_no_detections_scores_zero():
    r = evaluate_voc([], [gt("a", [[1, 1, 5, 5]], [0])], ["cat"])
    assert r.map_11point == 0.0 and r.map_area == 0.0


def test_iou_uses_plus_one_pixel_convention():
    a = np.array([[1.0, 1.0, 2.0, 2.0]])
    b = np.array([[2.0, 2.0, 3.0, 3.0]])
    # inclusive pixels: each box is 2x2 = 4 px, they share pixel (2, 2): 1 / (4 + 4 - 1)
    assert box_iou(a, b)[0, 0] == pytest.approx(1 / 7)
    assert box_iou(a, b, pixel_offset=0.0)[0, 0] == 0.0  # continuous boxes only touch


@pytest.mark.parametrize("offset, g", [(1.0, [1, 1, 10, 10]), (0.0, [0, 0, 10, 10])])
def test_iou_exactly_at_threshold_is_not_a_match(offset, g):
    # Devkit: match iff ovmax > ovthresh (strict). Half-height box -> IoU exactly 0.5.
    half = [g[0], g[1], g[2], g[1] + (g[3] - g[1] + offset) / 2 - offset]
    assert box_iou(np.array([half], float), np.array([g], float), offset)[0, 0] == 0.5
    gts = [gt("a", [g], [0])]
    at = [det("a", [half], [0.9], [0])]
    assert evaluate_voc(at, gts, ["cat"], pixel_offset=offset).map_area == 0.0
    assert evaluate_voc(at, gts, ["cat"], 0.49, pixel_offset=offset).map_area == 1.0
    above = [det("a", [[*half[:3], half[3] + 1]], [0.9], [0])]  # IoU 0.6
    assert evaluate_voc(above, gts, ["cat"], pixel_offset=offset).map_area == 1.0


def test_voc07_threshold_quirk_recall_exactly_point_three():
    # Reference code uses np.arange(0, 1.1, 0.1), whose "0.3" is 0.30000000000000004, so a recall
    # of exactly 3/10 does not reach it. 10 positives, ranked TP TP TP FP TP:
    # rec = .1 .2 .3 .3 .4, prec = 1 1 1 .75 .8.  t = 0,.1,.2 -> 1; t = "0.3", .4 -> .8 (the
    # point at rec .4); t >= .5 -> 0.  AP = (3 + .8 + .8) / 11 = 4.6 / 11 (exact maths: 4.8 / 11).
    boxes = [[10 + 30 * k, 10, 30 + 30 * k, 30] for k in range(10)]
    gts = [gt("a", boxes, [0] * 10)]
    dets = [det("a", [*boxes[:3], FAR, boxes[3]], [0.9, 0.8, 0.7, 0.6, 0.5], [0] * 5)]
    assert evaluate_voc(dets, gts, ["cat"]).map_11point == pytest.approx(4.6 / 11, abs=1e-15)


def test_stable_order_for_tied_scores():
    # Tied scores keep input order: FP listed first -> FP ranked first -> AP 0.5, not 1.
    gts = [gt("a", [[1, 1, 50, 50]], [0])]
    r = evaluate_voc([det("a", [FAR, [1, 1, 50, 50]], [0.5, 0.5], [0, 0])], gts, ["cat"])
    assert r.map_area == 0.5
    r = evaluate_voc([det("a", [[1, 1, 50, 50], FAR], [0.5, 0.5], [0, 0])], gts, ["cat"])
    assert r.map_area == 1.0


# --------------------------------------------------------------------------- validation


def _one_line_value_error(fn, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


def test_validation_errors():
    gts = [gt("a", [[1, 1, 5, 5]], [0])]
    ok = [det("a", [[1, 1, 5, 5]], [0.9], [0])]
    _one_line_value_error(
        lambda: evaluate_voc([det("zzz", [[1, 1, 5, 5]], [0.9], [0])], gts, ["cat"]),
        "unknown image 'zzz'",
    )
    _one_line_value_error(
        lambda: evaluate_voc([det("a", [[1, 1, 5, 5]], [0.9], [3])], gts, ["cat"]),
        "label 3 is outside 0..0",
    )
    _one_line_value_error(
        lambda: evaluate_voc(ok, [gt("a", [[1, 1, 5, 5]], [-1])], ["cat"]), "label -1"
    )
    _one_line_value_error(lambda: det("a", [[1, 1, 5]], [0.9], [0]), r"shape \[K, 4\]")
    _one_line_value_error(lambda: det("a", [[1, 1, 5, 5]], [np.nan], [0]), "finite")
    _one_line_value_error(lambda: det("a", [[1, 1, 5, 5]], [np.inf], [0]), "finite")
    _one_line_value_error(lambda: det("a", [[1, 1, 5, 5]], [0.9, 0.8], [0]), "2 scores")
    _one_line_value_error(lambda: det("a", [[5, 1, 1, 5]], [0.9], [0]), "x2 >= x1")
    _one_line_value_error(lambda: gt("a", [[1, 1, 5, 5]], [0], [True, False]), "difficult")
    _one_line_value_error(lambda: evaluate_voc(ok, gts + gts, ["cat"]), "more than once")
    _one_line_value_error(lambda: evaluate_voc(ok + ok, gts, ["cat"]), "more than once")
    m = match_detections(ok, gts, ["cat"])
    _one_line_value_error(lambda: evaluate_from_matches(m, [0, 1]), "0..0")


# --------------------------------------------------------------------------- random data


def _random_set(
    rng: np.random.Generator, n_images: int, n_classes: int, *, difficult: bool, grid: bool
):
    """Synthetic GT and detections: hits with jitter (some below IoU .5), duplicates, FPs.

    grid=True puts GT boxes in disjoint cells, so no detection can exceed IoU .5 with two GTs.
    Coordinates are integers and scores float32 values, so torch/COCO see exactly our numbers.
    """
    gts, dets = [], []
    for i in range(n_images):
        m = int(rng.integers(0, 6))
        if grid:
            cells = rng.choice(16, size=m, replace=False)
            x0, y0 = (cells % 4) * 100 + 5, (cells // 4) * 100 + 5
            w, h = rng.integers(20, 90, m), rng.integers(20, 90, m)
            boxes = np.stack([x0, y0, x0 + w, y0 + h], 1)
        else:
            x0, y0 = rng.integers(1, 300, m), rng.integers(1, 300, m)
            boxes = np.stack(
                [x0, y0, x0 + rng.integers(5, 120, m), y0 + rng.integers(5, 120, m)], 1
            )
        labels = rng.integers(0, n_classes, m)
        diff = rng.random(m) < 0.2 if difficult else np.zeros(m, bool)
        gts.append(ImageGroundTruth(f"img{i}", boxes.reshape(-1, 4), labels, diff))
        d_boxes, d_labels = [], []
        for b, c in zip(boxes.reshape(-1, 4), labels, strict=True):
            for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):  # missed, found, duplicated
                d_boxes.append(b + rng.integers(-12, 13, 4))
                d_labels.append(c if rng.random() < 0.9 else rng.integers(0, n_classes))
        for _ in range(int(rng.integers(0, 4))):  # background false positives
            x, y = rng.integers(1, 380, 2)
            d_boxes.append(np.array([x, y, x + rng.integers(5, 60), y + rng.integers(5, 60)]))
            d_labels.append(rng.integers(0, n_classes))
        d_boxes = np.array(d_boxes, float).reshape(-1, 4)
        d_boxes[:, 2:] = np.maximum(d_boxes[:, 2:], d_boxes[:, :2])
        scores = rng.random(len(d_boxes)).astype(np.float32).astype(np.float64)
        dets.append(ImageDetections(f"img{i}", d_boxes, scores, np.array(d_labels, int)))
    return gts, dets


def _devkit_reference(dets, gts, num_classes, ovthresh=0.5):
    """A direct loop port of py-faster-rcnn's voc_eval/voc_ap, to pin bit-level behaviour."""
    out07, out_area = [], []
    for c in range(num_classes):
        recs, npos = {}, 0
        for g in gts:
            sel = g.labels == c
            recs[g.image_id] = [g.boxes[sel], g.difficult[sel], [False] * int(sel.sum())]
            npos += int((~g.difficult[sel]).sum())
        ids, conf, bbs = [], [], []
        for d in dets:
            for b, s, lab in zip(d.boxes, d.scores, d.labels, strict=True):
                if lab == c:
                    ids.append(d.image_id)
                    conf.append(s)
                    bbs.append(b)
        order = np.argsort(-np.array(conf), kind="stable")
        tp, fp = np.zeros(len(order)), np.zeros(len(order))
        for k, j in enumerate(order):
            bbgt, diff, taken = recs[ids[j]]
            bb, ovmax, jmax = bbs[j], -np.inf, -1
            if len(bbgt):
                ixmin = np.maximum(bbgt[:, 0], bb[0])
                iymin = np.maximum(bbgt[:, 1], bb[1])
                ixmax = np.minimum(bbgt[:, 2], bb[2])
                iymax = np.minimum(bbgt[:, 3], bb[3])
                iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
                ih = np.maximum(iymax - iymin + 1.0, 0.0)
                inters = iw * ih
                uni = (
                    (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                    + (bbgt[:, 2] - bbgt[:, 0] + 1.0) * (bbgt[:, 3] - bbgt[:, 1] + 1.0)
                    - inters
                )
                ov = inters / uni
                ovmax, jmax = np.max(ov), int(np.argmax(ov))
            if ovmax > ovthresh:
                if not diff[jmax]:
                    if not taken[jmax]:
                        tp[k] = 1.0
                        taken[jmax] = True
                    else:
                        fp[k] = 1.0
            else:
                fp[k] = 1.0
        if npos == 0:
            out07.append(math.nan)
            out_area.append(math.nan)
            continue
        fp, tp = np.cumsum(fp), np.cumsum(tp)
        rec = tp / float(npos)
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            ap += (0.0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])) / 11.0
        out07.append(ap)
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = max(mpre[i - 1], mpre[i])
        i = np.where(mrec[1:] != mrec[:-1])[0]
        out_area.append(float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])))
    return out07, out_area


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_loop_port_of_devkit(seed):
    rng = np.random.default_rng(seed)
    gts, dets = _random_set(rng, 60, 4, difficult=True, grid=False)
    names = ["a", "b", "c", "d"]
    r = evaluate_voc(dets, gts, names)
    ref07, ref_area = _devkit_reference(dets, gts, 4)
    np.testing.assert_allclose(list(r.per_class_ap_11point.values()), ref07, rtol=0, atol=1e-12)
    np.testing.assert_allclose(list(r.per_class_ap_area.values()), ref_area, rtol=0, atol=1e-12)


def test_cross_check_against_torchmetrics_coco():
    """COCO (torchmetrics + pycocotools) must agree where its rules coincide with VOC's.

    Must agree: with pixel_offset=0 (COCO IoU has no +1), no difficult boxes, disjoint GT boxes
    (so a detection can beat IoU .5 with at most one GT and COCO's "best *unmatched* GT" equals
    the devkit's "best GT"), no IoU exactly .5 (COCO matches at >=, VOC at >), distinct scores
    and < 100 detections per image (COCO's maxDets), COCO's precision sampled at the VOC07 recall
    thresholds is the VOC07 11-point AP: both take the envelope at the first recall >= t.
    Only rounding differs (COCO's eps in tp / (tp + fp + eps); torchmetrics returns float32),
    hence the 1e-6 tolerance.

    May differ: COCO's default 101-point AP vs the area AP. Both lie between the right and left
    Riemann sums of the non-increasing envelope on a 0.01 grid, which differ by at most 0.01,
    so |AP_101 - AP_area| <= 0.01 per class (and for the mean).
    """
    torch = pytest.importorskip("torch")
    pytest.importorskip("pycocotools")
    from torchmetrics.detection import MeanAveragePrecision

    from benchmark.detection.voc_eval import VOC07_RECALL_THRESHOLDS

    rng = np.random.default_rng(7)
    n_classes = 5
    gts, dets = _random_set(rng, 80, n_classes, difficult=False, grid=True)
    for d, g in zip(dets, gts, strict=True):  # drop detections sitting exactly at IoU 0.5
        keep = ~np.any(np.abs(box_iou(d.boxes, g.boxes, 0.0) - 0.5) < 1e-9, axis=1)
        d.boxes, d.scores, d.labels = d.boxes[keep], d.scores[keep], d.labels[keep]
    all_scores = np.concatenate([d.scores for d in dets])
    assert len(np.unique(all_scores)) == len(all_scores)
    names = [f"c{k}" for k in range(n_classes)]
    r = evaluate_voc(dets, gts, names, pixel_offset=0.0)

    preds = [
        {
            "boxes": torch.tensor(d.boxes, dtype=torch.float32),
            "scores": torch.tensor(d.scores, dtype=torch.float32),
            "labels": torch.tensor(d.labels),
        }
        for d in dets
    ]
    target = [
        {"boxes": torch.tensor(g.boxes, dtype=torch.float32), "labels": torch.tensor(g.labels)}
        for g in gts
    ]

    def coco(rec_thresholds):
        metric = MeanAveragePrecision(
            iou_type="bbox", iou_thresholds=[0.5], rec_thresholds=rec_thresholds, class_metrics=True
        )
        metric.update(preds, target)
        out = metric.compute()
        per_class = dict(zip(out["classes"].tolist(), out["map_per_class"].tolist(), strict=True))
        return float(out["map"]), per_class

    coco07, coco07_per_class = coco([float(t) for t in VOC07_RECALL_THRESHOLDS])
    assert coco07 == pytest.approx(r.map_11point, abs=1e-6)
    for k, name in enumerate(names):
        assert coco07_per_class[k] == pytest.approx(r.per_class_ap_11point[name], abs=1e-6)

    coco101, coco101_per_class = coco(None)
    assert abs(coco101 - r.map_area) <= 0.01 + 1e-6
    for k, name in enumerate(names):
        assert abs(coco101_per_class[k] - r.per_class_ap_area[name]) <= 0.01 + 1e-6


# --------------------------------------------------------------------------- bootstrap support


def test_evaluate_from_matches_identity_equals_evaluate_voc():
    rng = np.random.default_rng(3)
    gts, dets = _random_set(rng, 50, 3, difficult=True, grid=False)
    names = ["a", "b", "c"]
    direct = evaluate_voc(dets, gts, names)
    m = match_detections(dets, gts, names)
    assert evaluate_from_matches(m) == direct
    via_indices = evaluate_from_matches(m, np.arange(len(gts)))
    for name in names:
        assert via_indices.per_class_ap_11point[name] == pytest.approx(
            direct.per_class_ap_11point[name], abs=1e-12, nan_ok=True
        )
        assert via_indices.per_class_ap_area[name] == pytest.approx(
            direct.per_class_ap_area[name], abs=1e-12, nan_ok=True
        )


@pytest.mark.parametrize("seed", [4, 5])
def test_resampled_indices_equal_evaluate_voc_on_duplicated_images(seed):
    rng = np.random.default_rng(seed)
    gts, dets = _random_set(rng, 40, 3, difficult=True, grid=False)
    names = ["a", "b", "c"]
    m = match_detections(dets, gts, names)
    det_by_id = {d.image_id: d for d in dets}
    idx = rng.integers(0, len(gts), len(gts))
    assert len(np.unique(idx)) < len(idx)  # there are repeats
    dup_gts, dup_dets = [], []
    for k, i in enumerate(idx):
        g, d = gts[i], det_by_id[gts[i].image_id]
        dup_gts.append(ImageGroundTruth(f"{g.image_id}#{k}", g.boxes, g.labels, g.difficult))
        dup_dets.append(ImageDetections(f"{g.image_id}#{k}", d.boxes, d.scores, d.labels))
    expected = evaluate_voc(dup_dets, dup_gts, names)
    got = evaluate_from_matches(m, idx)
    assert got.num_positives == expected.num_positives
    for name in names:
        assert got.per_class_ap_11point[name] == pytest.approx(
            expected.per_class_ap_11point[name], abs=1e-12, nan_ok=True
        )
        assert got.per_class_ap_area[name] == pytest.approx(
            expected.per_class_ap_area[name], abs=1e-12, nan_ok=True
        )
    assert got.map_11point == pytest.approx(expected.map_11point, abs=1e-12)
    assert got.map_area == pytest.approx(expected.map_area, abs=1e-12)


def test_resample_without_a_class_gives_nan_for_it():
    gts = [gt("a", [[1, 1, 5, 5]], [0]), gt("b", [[1, 1, 5, 5]], [1])]
    dets = [det("a", [[1, 1, 5, 5]], [0.9], [0]), det("b", [[1, 1, 5, 5]], [0.9], [1])]
    r = evaluate_from_matches(match_detections(dets, gts, ["cat", "dog"]), [0, 0])
    assert r.per_class_ap_11point["cat"] == 1.0
    assert math.isnan(r.per_class_ap_11point["dog"])
    assert r.map_11point == 1.0 and r.num_positives == {"cat": 2, "dog": 0}
