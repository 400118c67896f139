"""The ImageNet evaluation task (protocol eval) and its per-category comparison: a classifier
evaluated as it is on an ImageNet-layout val folder, numbers recomputable from predictions.npz."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from helpers import bench, read_json

from benchmark.analysis.imagenet import per_category, topk_correct
from benchmark.checkpoints import save_weights_file
from benchmark.data import get_adapter
from benchmark.leaderboard.imagenet import compare_runs, interval, render_markdown

SMALL = ["--subset", "tiny", "--accelerator", "cpu", "--num-workers", "0",
         "--trainer", "enable_progress_bar=false"]


def test_per_category_numbers_by_hand() -> None:
    logits = np.array([[3, 2, 1], [1, 3, 2], [2, 1, 3], [3, 1, 2]], dtype=np.float32)
    targets = np.array([0, 2, 2, 1])
    faces = np.array([1.0, 0.0, 1.0, np.nan])
    assert topk_correct(logits, targets, 2).tolist() == [True, True, True, False]
    overall, rows = per_category(logits, targets, ["a", "b", "c"], faces)
    assert overall == {"top1": 0.5, "top5": 1.0}
    a, b, c = rows
    # AP with ties as scikit-learn counts them: a tied block enters at once
    assert (a.images, a.top1, a.ap, a.faces) == (1, 1.0, 0.5, 1.0)  # tied 1st with a negative
    assert (b.top1, b.ap, b.faces) == (0.0, 0.25, None)  # tied last: precision 1/4
    assert (c.images, c.top1, c.faces) == (2, 0.5, 0.5)
    assert c.ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # 1st, then tied 2nd with a negative


def test_fisher_z_interval_textbook_value() -> None:
    low, high = interval(0.5, 28, 0.95, spearman=False)  # z = 0.549 +- 1.96 * 0.2
    assert (round(low, 3), round(high, 3)) == (0.156, 0.736)
    assert all(math.isnan(v) for v in interval(0.5, 3, 0.95, spearman=False))


def test_pearson_interval_equals_scipys_fisher_interval() -> None:
    """The Pearson interval is scipy's own (Fisher z) on the same data."""
    from scipy.stats import pearsonr

    rng = np.random.default_rng(3)
    x = rng.normal(size=30)
    y = 0.6 * x + rng.normal(size=30)
    result = pearsonr(x, y)
    for level in (0.95, 0.9):
        reference = result.confidence_interval(level)
        ours = interval(float(result.statistic), 30, level, spearman=False)
        assert ours == pytest.approx((reference.low, reference.high), abs=1e-12)


def _classifier(path: Path, seed: int, classes: int = 3) -> Path:
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=classes)
    return save_weights_file(path, model, {"arch": "resnet18"})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inet")
    base = get_adapter("imagenet_folder").write_fixture(root)
    entries = [{"url": p.relative_to(base).as_posix(),
                "bboxes": [{"x0": 2, "y0": 2, "x1": 20, "y1": 20}]
                if p.parent.name == "n01440764" or p.stem.endswith(("0", "2")) else []}
               for p in sorted((base / "val").rglob("*.JPEG"))]  # fmt: skip
    (root / "faces.json").write_text(json.dumps(entries))
    return root


def test_eval_run_records_per_category_and_comparison(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    faces = f"data.args.annotations={data / 'faces.json'}"
    runs = []
    for seed in (0, 1):
        ckpt = _classifier(tmp_path / f"m{seed}.safetensors", seed)
        assert bench("run", "--task", "imagenet", "--backbone", ckpt, "--data-root", data,
                     "--results", results, "--set", faces, *SMALL) == 0
        runs.append(sorted((results / "runs" / "imagenet" / "eval").glob(f"*m{seed}*/*"))[0])
    assert "| n01440764 | 4 |" in capsys.readouterr().out
    record = read_json(runs[0] / "record.json")
    assert record["protocol"] == "eval" and record["data"]["test"]["fixture"] is True
    saved = np.load(runs[0] / "predictions.npz", allow_pickle=False)
    assert saved["logits"].shape == (12, 3) and len(saved["example_id"]) == 12
    overall, rows = per_category(saved["logits"], saved["target"], record["class_names"],
                                 saved["has_face"])  # fmt: skip
    assert record["metrics"]["top1"] == pytest.approx(overall["top1"])
    assert record["metrics"]["top5"] == pytest.approx(overall["top5"]) == 1.0  # 3 classes
    per = record["metrics"]["per_category"]
    assert per["n01440764"]["faces"] == 1.0 and per["n02102040"]["faces"] == 0.5
    assert [per[r.category]["ap"] for r in rows] == [r.ap for r in rows]
    assert (runs[0] / "per_category.md").read_text().startswith("| category |")

    comparison = compare_runs(runs[0], runs[1])
    drops = {r["category"]: r["top1_drop"] for r in comparison.rows}
    assert drops == {r.category: r.top1 - per_category(
        np.load(runs[1] / "predictions.npz")["logits"], saved["target"],
        record["class_names"])[1][i].top1 for i, r in enumerate(rows)}
    assert [r["top1_drop"] for r in comparison.rows] == sorted(drops.values(), reverse=True)
    assert "Largest top-1 drops" in render_markdown(comparison)


def test_wrong_number_of_outputs_is_one_line(data: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _classifier(tmp_path / "five.safetensors", 0, classes=5)
    assert bench("run", "--task", "imagenet", "--backbone", ckpt, "--data-root", data,
                 "--results", tmp_path, *SMALL) == 2
    assert "has 5 outputs, the data has 3 class folders" in capsys.readouterr().err


def test_eval_task_is_refused_where_it_would_train(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.errors import BenchError
    from benchmark.request import RunRequest
    from benchmark.runner import plan_run

    with pytest.raises(BenchError, match="trains nothing"):  # what a sweep calls
        plan_run(RunRequest(task="imagenet", backbone="random_r18", results=tmp_path))
    assert bench("run", "--task", "imagenet", "--backbone", "x.pth", "--dry-run") == 2
    assert "not available for protocol eval" in capsys.readouterr().err


def test_subset_n_is_stratified_deterministic_and_recorded(data: Path, tmp_path: Path) -> None:
    """--subset 3 of 3 categories x 4 images: one image per category (the stratified prefix
    of every task's subsets), the same images in every results folder, and the record says
    how many were evaluated out of how many; --backbone-data labels the file as for bench run,
    so the leaderboard pairs it."""
    from benchmark.data.selection import take_subset

    ckpt = _classifier(tmp_path / "m.safetensors", 0)
    chosen = []
    for folder in ("a", "b"):
        results = tmp_path / folder
        assert bench("run", "--task", "imagenet", "--backbone", ckpt, "--data-root", data,
                     "--results", results, *SMALL, "--subset", "3",  # the last --subset wins
                     "--backbone-data", "blurred") == 0  # fmt: skip
        (run,) = (results / "runs" / "imagenet" / "eval").glob("*/*")
        saved = np.load(run / "predictions.npz", allow_pickle=False)
        assert sorted(saved["target"].tolist()) == [0, 1, 2]
        record = read_json(run / "record.json")
        assert record["subset"] == 3 and record["data"]["sizes"] == {"test": 3}
        assert record["data"]["fixture"] is True  # the leaderboard marks it
        assert (record["backbone"]["pretraining_data"],
                record["backbone"]["pretraining_data_from"]) == ("blurred", "--backbone-data")
        assert (record["data"]["test"]["examples"], record["data"]["test"]["available"]) == (3, 12)
        assert sum(v["images"] for v in record["metrics"]["per_category"].values()) == 3
        chosen.append(saved["example_id"].tolist())
    assert chosen[0] == chosen[1]
    split = get_adapter("imagenet_folder").load_split(data, "val", False)
    expected = take_subset(np.asarray(split.labels), 12, 3, seed=0)
    assert chosen[0] == [split.example_ids[i] for i in expected]
