"""The Hugging Face source gives the same splits, labels, inputs and metrics as torchvision's
loaders, offline, on the local datasets the fixture writer produces; ids are checked paths."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import bench, bench_subprocess, read_json, run_dirs

from benchmark.data.classification import ClassificationDataModule
from benchmark.data.hf import resolve_dataset_id
from benchmark.data.splits import resolve_splits
from benchmark.data.sun397 import write_sun397_fixture
from benchmark.errors import BenchError
from benchmark.tasks import apply_overrides, for_subset, get_task


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory) -> None:
    """No network, and a throwaway cache (read by the loader at call time)."""
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path_factory.getbasetemp() / "hf-cache"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hf-data")
    assert bench("data", "fixture", "--task", "celeba", "--root", root) == 0
    # two images per class keep the 397-class fixture quick; the format is the same
    write_sun397_fixture(root, images_per_class=3, train_per_class=2, test_per_class=1)
    return root


def _hf(task_name: str, root: Path) -> dict[str, object]:
    folder = {"celeba": "celeba_hf", "sun397": "sun397_hf"}[task_name]
    return {"data.source": "hf", "data.hf.id": str(root / folder), "data.hf.columns.id": "image_id"}


@pytest.mark.parametrize("task_name", ["celeba", "sun397"])
def test_same_splits_labels_and_inputs(data_root: Path, task_name: str) -> None:
    task = for_subset(get_task(task_name), "tiny")
    hf_task = apply_overrides(task, _hf(task_name, data_root))
    tv, hf = resolve_splits(task, data_root, "full"), resolve_splits(hf_task, data_root, "full")
    for split in ("train", "val", "test"):
        assert hf[split].example_ids == tv[split].example_ids, split
        assert np.array_equal(hf[split].labels(), tv[split].labels()), split
        assert hf[split].data.class_names == tv[split].data.class_names
    assert hf["test"].data.is_fixture and hf["test"].data.source["hf"]["id"].endswith("_hf")
    # the same tensors reach the network: decoded from the same JPEG bytes, same transforms
    tv_dm = ClassificationDataModule(task, data_root, "tiny", num_workers=0)
    hf_dm = ClassificationDataModule(hf_task, data_root, "tiny", num_workers=0)
    tv_dm.setup(), hf_dm.setup()
    for a, b in zip(tv_dm.test_dataloader(), hf_dm.test_dataloader(), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])


def test_same_record_either_way(data_root: Path, paper_resnet18: Path, tmp_path: Path) -> None:
    args = ("run", "--task", "celeba", "--subset", "tiny", "--max-steps", "3", "--accelerator",
            "cpu", "--num-workers", "0", "--backbone", paper_resnet18, "--data-root", data_root,
            "--results", tmp_path)  # fmt: skip
    assert bench(*args) == 0
    sets = [f"--set={k}={v}" for k, v in _hf("celeba", data_root).items()]
    assert bench(*args, *sets) == 0
    records = {}
    for run_dir in run_dirs(tmp_path):
        record = read_json(run_dir / "record.json")
        with np.load(run_dir / "predictions.npz", allow_pickle=False) as data:
            records[record["data"]["source"]] = (record, dict(data))
    (tv, tv_pred), (hf, hf_pred) = records["torchvision"], records["hf"]
    assert hf["data"]["hf"]["id"] == str(data_root / "celeba_hf") and hf["data"]["fixture"]
    assert hf["data"]["hf"]["revision"] is None  # the YAML's Hub revision means nothing here
    assert hf["data"]["sizes"] == tv["data"]["sizes"]
    assert np.array_equal(hf_pred["example_id"], tv_pred["example_id"])
    assert np.array_equal(hf_pred["target"], tv_pred["target"])
    assert np.allclose(hf_pred["logits"], tv_pred["logits"], atol=1e-5)
    assert hf["training"]["losses"] == pytest.approx(tv["training"]["losses"], abs=1e-5)
    assert hf["metrics"].keys() == tv["metrics"].keys()
    primary = tv["primary_metric"]
    assert hf["metrics"][primary] == pytest.approx(tv["metrics"][primary], abs=1e-6)


def test_local_ids_must_be_existing_directories(tmp_path: Path, monkeypatch) -> None:
    assert resolve_dataset_id("flwrlabs/celeba") == "flwrlabs/celeba"
    assert resolve_dataset_id(str(tmp_path)) == str(tmp_path.resolve())
    with pytest.raises(BenchError, match="is not a directory"):
        resolve_dataset_id(str(tmp_path / "nope"))
    (tmp_path / "file.parquet").write_bytes(b"x")
    with pytest.raises(BenchError, match="is not a directory"):
        resolve_dataset_id(str(tmp_path / "file.parquet"))
    for bad in ("owner/../../etc", "a b", "owner/name/extra"):
        with pytest.raises(BenchError, match="expected a Hub id"):
            resolve_dataset_id(bad)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    with pytest.raises(BenchError, match=r"both a Hub id and a local path.*\./owner/name"):
        resolve_dataset_id("owner/name")
    assert resolve_dataset_id("./owner/name") == str((tmp_path / "owner" / "name").resolve())


def test_column_and_fixture_errors_are_one_line(data_root: Path, tmp_path: Path) -> None:
    from benchmark.data.hf import load_hf_split

    task = apply_overrides(get_task("celeba"), _hf("celeba", data_root))
    renamed = apply_overrides(task, {"data.hf.columns.Male": "is_male"})
    with pytest.raises(BenchError, match=r"has no column\(s\) \['is_male'\]"):
        load_hf_split(renamed, "test")
    with pytest.raises(BenchError, match="unknown field"):
        load_hf_split(apply_overrides(task, {"data.hf.columns.male": "Male"}), "test")
    with pytest.raises(BenchError, match="could not load Hugging Face dataset.*'validation'"):
        load_hf_split(apply_overrides(task, {"data.hf.splits.test": "validation"}), "test")

    import shutil

    copy = tmp_path / "celeba_hf"
    shutil.copytree(data_root / "celeba_hf", copy)
    shard = next(copy.glob("*/test-*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(BenchError, match=re.escape(f"{shard}: missing or changed since")):
        load_hf_split(apply_overrides(task, {"data.hf.id": str(copy)}), "test")


def test_offline_hub_dataset_not_in_cache_is_one_line(tmp_path: Path, paper_resnet18) -> None:
    proc = bench_subprocess(
        "run", "--task", "celeba", "--subset", "tiny", "--max-steps", "1", "--accelerator", "cpu",
        "--backbone", paper_resnet18, "--results", tmp_path / "results", "--set",
        "data.source=hf",
        env={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
             "HF_HOME": str(tmp_path / "hf-home"), "HF_DATASETS_CACHE": str(tmp_path / "c")},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert "could not load Hugging Face dataset 'flwrlabs/celeba'" in line
    assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()
