"""CelebA end to end: the fixture is in the real text formats and passes torchvision's md5
check through its manifest; `bench run` trains and records every attribute's figures; broken
files fail before training with one line that names them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import bench, read_json, run_dirs
from reference_metrics import is_ratio_of_counts, load_npz, multilabel_reference
from torchvision.datasets import CelebA

from benchmark.data import get_adapter
from benchmark.data.celeba import CELEBA_ATTRIBUTES, FIXTURE_SPLIT_SIZES
from benchmark.tasks import get_task

RUN = ("run", "--task", "celeba", "--subset", "tiny", "--max-steps", "5", "--accelerator", "cpu",
       "--num-workers", "0")  # fmt: skip


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("celeba-data")
    assert bench("data", "fixture", "--task", "celeba", "--root", root) == 0
    return root


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, celeba_root: Path, paper_resnet18: Path) -> Path:
    results = tmp_path_factory.mktemp("results")
    code = bench(*RUN, "--backbone", paper_resnet18, "--data-root", celeba_root,
                 "--results", results)  # fmt: skip
    assert code == 0
    (run_dir,) = run_dirs(results)
    return run_dir


def test_fixture_is_in_the_real_text_formats(celeba_root: Path) -> None:
    folder = celeba_root / "celeba"
    n = sum(FIXTURE_SPLIT_SIZES.values())
    attr = (folder / "list_attr_celeba.txt").read_text().splitlines()
    assert attr[0] == str(n) and attr[1] == " ".join(CELEBA_ATTRIBUTES) + " "
    assert attr[2].startswith("000001.jpg ") and len(attr) == n + 2
    values = attr[2].split(" ", 1)[1]
    assert set(values.split()) <= {"-1", "1"} and " 1" in values  # space-padded columns
    assert (folder / "list_eval_partition.txt").read_text().splitlines()[0] == "000001.jpg 0"
    assert (folder / "list_bbox_celeba.txt").read_text().splitlines()[1].startswith("image_id")
    assert (folder / "img_align_celeba" / f"{n:06d}.jpg").read_bytes()[:2] == b"\xff\xd8"
    # torchvision's own table of the real files' md5s refuses the fixture...
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        CelebA(str(celeba_root), split="train")
    # ...the adapter passes the fixture's table to the same check, and every split loads
    for split, size in FIXTURE_SPLIT_SIZES.items():
        data = get_adapter("celeba").load_split(celeba_root, split, download=False)
        assert len(data.dataset) == size and data.is_fixture
        assert data.class_names == CELEBA_ATTRIBUTES  # the header's trailing space is dropped
        assert data.labels.shape == (size, 40) and set(np.unique(data.labels)) <= {0, 1}
        image, target = data.dataset[0]
        assert image.size == (36, 44) and torch.equal(target, torch.from_numpy(data.labels[0]))


def test_groups_cover_every_attribute_once() -> None:
    groups = get_task("celeba").groups
    assert set(groups) == {"eyes", "mouth_and_nose", "hair", "facial_hair", "accessories",
                           "whole_face"}  # fmt: skip
    members = [a for group in groups.values() for a in group]
    assert sorted(members) == sorted(CELEBA_ATTRIBUTES)


def test_run_records_every_attribute(first_run: Path) -> None:
    record = read_json(first_run / "record.json")
    assert record["status"] == "completed" and record["kind"] == "multilabel"
    assert record["data"]["fixture"] is True and record["data"]["source"] == "torchvision"
    assert record["data"]["sizes"] == {"train": 16, "val": 4, "test": 8}
    assert record["training"]["steps"] == 5
    losses = record["training"]["losses"]
    assert len(losses) == 5 and all(np.isfinite(losses))
    assert abs(losses[0] - np.log(2)) < 0.5  # BCE of a fresh head is near log 2 per attribute
    metrics = record["metrics"]
    assert record["primary_metric"] == "mean_attribute_accuracy"
    assert 0 <= metrics["mean_attribute_accuracy"] <= 1
    for name in ("per_attribute_accuracy", "per_attribute_balanced_accuracy",
                 "per_attribute_average_precision", "per_attribute_positive_rate"):  # fmt: skip
        assert list(metrics[name]) == CELEBA_ATTRIBUTES
    assert set(metrics["per_group_accuracy"]) == set(get_task("celeba").groups)
    assert 0 <= metrics["balanced_accuracy"] <= 1 and 0 <= metrics["mean_average_precision"] <= 1


def test_predictions_recompute_the_record(first_run: Path) -> None:
    """scikit-learn on the saved file (AP on the raw float32 logits) gives back every number of
    the record exactly (==); accuracies and positive rates are exact ratios of counts."""
    record = read_json(first_run / "record.json")
    saved = load_npz(first_run)
    ids, targets, logits = saved["example_id"], saved["target"], saved["logits"]
    assert targets.shape == logits.shape == (8, 40) and logits.dtype == np.float32
    assert all(i.endswith(".jpg") for i in ids) and len(set(ids)) == 8
    test_ids = set(get_adapter("celeba").load_split(
        Path(record["data"]["root"]), "test", download=False).example_ids)  # fmt: skip
    assert set(ids) <= test_ids
    groups = record["config"]["task"]["groups"]
    metrics = record["metrics"]
    reference = multilabel_reference(first_run, CELEBA_ATTRIBUTES, groups)
    assert set(metrics) <= set(reference)
    assert metrics == {name: reference[name] for name in metrics}
    correct = ((logits > 0) == targets).sum(axis=0)
    assert list(metrics["per_attribute_accuracy"].values()) == [int(c) / 8 for c in correct]
    for name in ("per_attribute_accuracy", "per_attribute_positive_rate"):
        assert all(is_ratio_of_counts(v, 8) for v in metrics[name].values()), name


def _broken_copy(celeba_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(celeba_root / "celeba", root / "celeba")
    return root


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and err.startswith("bench: error: "), err
    return err


def test_truncated_attribute_file_is_named(celeba_root, tmp_path, paper_resnet18, capsys):
    root = _broken_copy(celeba_root, tmp_path)
    attr = root / "celeba" / "list_attr_celeba.txt"
    attr.write_bytes(attr.read_bytes()[:-70])  # cut mid-line, as an interrupted copy does
    results = tmp_path / "results"
    code = bench(*RUN, "--backbone", paper_resnet18, "--data-root", root, "--results", results)
    assert code == 2
    err = _one_line_error(capsys)
    assert str(attr) in err and "md5" in err
    assert not results.exists()


def test_truncation_is_named_even_when_the_md5_table_agrees(celeba_root, tmp_path, capsys):
    """A manifest rewritten after truncation passes the md5 check; the count line does not."""
    from benchmark.data.fixtures import write_manifest

    root = _broken_copy(celeba_root, tmp_path)
    folder = root / "celeba"
    attr = folder / "list_attr_celeba.txt"
    attr.write_text("".join(attr.read_text().splitlines(keepends=True)[:-3]))
    write_manifest(folder, "celeba", sorted(folder.glob("*.txt")))
    from benchmark.errors import BenchError

    with pytest.raises(BenchError, match=f"{attr} says it has 36 rows but holds 33"):
        get_adapter("celeba").load_split(root, "train", download=False)


def test_missing_image_is_named(celeba_root, tmp_path, paper_resnet18, capsys) -> None:
    root = _broken_copy(celeba_root, tmp_path)
    missing = root / "celeba" / "img_align_celeba" / "000003.jpg"
    missing.unlink()
    code = bench(*RUN, "--backbone", paper_resnet18, "--data-root", root,
                 "--results", tmp_path / "results")  # fmt: skip
    assert code == 2
    err = _one_line_error(capsys)
    assert f"CelebA image {missing} is listed in" in err and "list_eval_partition.txt" in err


def test_missing_dataset_gives_the_manual_steps(tmp_path, paper_resnet18, capsys) -> None:
    code = bench(*RUN, "--backbone", paper_resnet18, "--data-root", tmp_path / "empty",
                 "--results", tmp_path / "results")  # fmt: skip
    assert code == 2
    err = _one_line_error(capsys)
    assert "list_attr_celeba.txt is missing" in err and "drive.google.com" in err
    assert "data.source=hf" in err


def test_failed_download_gives_the_manual_steps(tmp_path, monkeypatch) -> None:
    """torchvision downloads CelebA from Google Drive, which often refuses on quota."""
    import torchvision.datasets.celeba as tv_celeba

    from benchmark.errors import EnvironmentFailure

    def refused(*args, **kwargs) -> None:
        raise RuntimeError("Too many users have viewed or downloaded this file recently.")

    monkeypatch.setattr(tv_celeba, "download_file_from_google_drive", refused)
    with pytest.raises(EnvironmentFailure) as info:  # Google Drive's quota, not the user: exit 1
        get_adapter("celeba").load_split(tmp_path, "train", download=True)
    message = str(info.value)
    assert message.startswith(
        f"could not download CelebA into {tmp_path / 'celeba'} (RuntimeError: Too many users"
    )
    assert "img_align_celeba.zip" in message and "--set data.source=hf" in message
