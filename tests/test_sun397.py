"""SUN397 end to end: the fixture is in torchvision's layout with the official partition files;
a partition selects the split in its file's order; validation is carved deterministically and
stratified; `bench run` trains and records per-class accuracy; broken data fails in one line."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import bench, read_json, run_dirs
from reference_metrics import classification_reference
from torchvision.datasets import SUN397

from benchmark.data import get_adapter
from benchmark.data.splits import resolve_splits
from benchmark.errors import BenchError, EnvironmentFailure
from benchmark.tasks import apply_overrides, get_task

RUN = ("run", "--task", "sun397", "--subset", "tiny", "--max-steps", "5", "--accelerator", "cpu",
       "--num-workers", "0")  # fmt: skip


@pytest.fixture(scope="module")
def sun_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sun397-data")
    assert bench("data", "fixture", "--task", "sun397", "--root", root) == 0
    return root


def _partition(root: Path, name: str) -> list[str]:
    return (root / "SUN397" / "Partitions" / name).read_text().splitlines()


def test_fixture_is_in_the_real_layout(sun_root: Path) -> None:
    class_lines = (sun_root / "SUN397" / "ClassName.txt").read_text().splitlines()
    assert len(class_lines) == 397
    assert class_lines[:2] == ["/a/abbey", "/a/airplane_cabin"]
    assert "/a/apartment_building/outdoor" in class_lines
    train = _partition(sun_root, "Training_01.txt")
    assert train[0].startswith("/a/abbey/sun_") and train[0].endswith(".jpg")
    assert (sun_root / "SUN397" / train[0].lstrip("/")).is_file()
    assert len(list((sun_root / "SUN397" / "Partitions").glob("*_*.txt"))) == 20
    # torchvision's own class reads the fixture: class list parsing, glob and labels
    plain = SUN397(str(sun_root))
    assert len(plain.classes) == 397 and plain.classes[8] == "apartment_building/outdoor"
    assert len(plain) == 397 * 4  # four images per class, some in no partition


def test_partition_selects_its_files_in_their_order(sun_root: Path) -> None:
    adapter = get_adapter("sun397")
    train = adapter.load_split(sun_root, "train", download=False, partition=1)
    test = adapter.load_split(sun_root, "test", download=False, partition=1)
    assert train.example_ids == [p.lstrip("/") for p in _partition(sun_root, "Training_01.txt")]
    assert test.example_ids == [p.lstrip("/") for p in _partition(sun_root, "Testing_01.txt")]
    assert not set(train.example_ids) & set(test.example_ids)
    assert Counter(train.labels.tolist()) == dict.fromkeys(range(397), 2)
    assert train.class_names[int(train.labels[0])] == "abbey"
    assert train.source == {"partition": 1} and train.is_fixture
    image, label = train.dataset[0]
    assert image.mode == "RGB" and image.size == (32, 24) and label == train.labels[0]
    other = adapter.load_split(sun_root, "train", download=False, partition=7)
    assert other.example_ids == [p.lstrip("/") for p in _partition(sun_root, "Training_07.txt")]
    assert other.example_ids != train.example_ids
    with pytest.raises(BenchError, match="partition 11: use an official partition number 1..10"):
        adapter.load_split(sun_root, "train", download=False, partition=11)


def test_validation_is_carved_from_training_stratified_and_fixed(sun_root: Path) -> None:
    task = get_task("sun397")
    first = resolve_splits(task, sun_root, "full")
    again = resolve_splits(task, sun_root, "full")
    assert first["val"].example_ids == again["val"].example_ids
    val, train = first["val"], first["train"]
    assert len(val) == round(0.1 * 794) and len(train) == 794 - len(val)
    assert not set(val.example_ids) & set(train.example_ids)
    assert len(set(val.labels().tolist())) == len(val)  # one per class: stratified
    assert len(first["test"]) == 397
    other = resolve_splits(apply_overrides(task, {"data.args.partition": 2}), sun_root, "full")
    assert set(other["test"].example_ids) != set(first["test"].example_ids)


def test_run_trains_and_records_per_class_accuracy(
    tmp_path, sun_root: Path, paper_resnet18: Path
) -> None:
    code = bench(*RUN, "--backbone", paper_resnet18, "--data-root", sun_root,
                 "--results", tmp_path)  # fmt: skip
    assert code == 0
    (run_dir,) = run_dirs(tmp_path)
    record = read_json(run_dir / "record.json")
    assert record["status"] == "completed" and record["task"] == "sun397"
    assert record["data"]["sizes"] == {"train": 40, "val": 10, "test": 20}
    assert record["data"]["partition"] == 1 and record["data"]["fixture"] is True
    assert record["training"]["steps"] == 5
    losses = record["training"]["losses"]
    assert all(np.isfinite(losses)) and abs(losses[0] - np.log(397)) < 1.5
    metrics = record["metrics"]
    per_class = metrics["per_class_accuracy"]
    assert len(per_class) == 397 and per_class["youth_hostel"] is None  # not in the tiny test
    assert sum(v is not None for v in per_class.values()) == 20  # one class per test image
    with np.load(run_dir / "predictions.npz", allow_pickle=False) as data:
        ids, targets, logits = data["example_id"], data["target"], data["logits"]
    assert logits.shape == (20, 397)
    assert set(ids) <= {p.lstrip("/") for p in _partition(sun_root, "Testing_01.txt")}
    assert metrics == classification_reference(run_dir, record["class_names"])  # exactly
    assert metrics["top1"] == int((logits.argmax(1) == targets).sum()) / 20


def _copy(sun_root: Path, tmp_path: Path) -> Path:
    """A copy to break: text files copied, images hard-linked (fast; tests only delete them)."""

    def copy(src: str, dst: str) -> None:
        os.link(src, dst) if src.endswith(".jpg") else shutil.copy2(src, dst)

    root = tmp_path / "data"
    shutil.copytree(sun_root / "SUN397", root / "SUN397", copy_function=copy)
    return root


def _load_error(root: Path, split: str = "train") -> str:
    with pytest.raises(BenchError) as info:
        get_adapter("sun397").load_split(root, split, download=False)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_class_folder_without_images_is_named(sun_root, tmp_path, paper_resnet18, capsys):
    root = _copy(sun_root, tmp_path)
    folder = root / "SUN397" / "b" / "bedroom"
    for image in folder.glob("sun_*.jpg"):
        image.unlink()
    code = bench(*RUN, "--backbone", paper_resnet18, "--data-root", root,
                 "--results", tmp_path / "results")  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert f"SUN397 class folder {folder} has no sun_*.jpg images" in err
    assert not (tmp_path / "results").exists()


def test_listed_but_missing_image_is_named(sun_root, tmp_path) -> None:
    root = _copy(sun_root, tmp_path)
    listed = _partition(root, "Testing_01.txt")[5].lstrip("/")
    (root / "SUN397" / listed).unlink()
    message = _load_error(root, "test")
    assert f"image {root / 'SUN397' / listed} is listed in" in message
    assert "Testing_01.txt line 6" in message


def test_malformed_partition_line_and_missing_partitions(sun_root, tmp_path) -> None:
    root = _copy(sun_root, tmp_path)
    partition = root / "SUN397" / "Partitions" / "Training_01.txt"
    lines = partition.read_text().splitlines()
    partition.write_text("\n".join([lines[0], "abbey sun_x.jpg", *lines[2:]]) + "\n")
    from benchmark.data.fixtures import write_manifest

    folder = root / "SUN397"
    write_manifest(folder, "sun397", [folder / "ClassName.txt", *folder.glob("Partitions/*")])
    assert f"{partition} line 2: expected a path like" in _load_error(root)
    shutil.rmtree(root / "SUN397" / "Partitions")
    message = _load_error(root)
    assert "Training_01.txt is missing" in message and "Partitions.zip" in message
    shutil.rmtree(root / "SUN397")
    assert "ClassName.txt is missing" in _load_error(root)


def test_fixture_text_files_are_md5_checked(sun_root, tmp_path) -> None:
    root = _copy(sun_root, tmp_path)
    class_file = root / "SUN397" / "ClassName.txt"
    class_file.write_text(class_file.read_text()[:-30])
    assert f"{class_file}: missing or changed since the fixture was written" in _load_error(root)


def test_download_failure_gives_the_manual_steps(tmp_path, monkeypatch) -> None:
    """No network here: torchvision's download fails, and the message says what to do."""
    import urllib.error

    import torchvision.datasets.sun397 as tv_sun397

    def offline(url: str, **kwargs) -> None:
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(tv_sun397, "download_and_extract_archive", offline)
    with pytest.raises(EnvironmentFailure) as info:  # the network, not the user: exit 1
        get_adapter("sun397").load_split(tmp_path, "train", download=True)
    message = str(info.value)
    assert message.startswith(f"could not download SUN397 into {tmp_path / 'SUN397'} (URLError")
    assert "SUN397.tar.gz" in message and "Partitions.zip" in message


def test_download_fetches_partitions_into_place(sun_root, tmp_path, monkeypatch) -> None:
    """With the images present but no partitions, --download fetches the partitions zip (here a
    stand-in that unpacks into a nested folder, as some archives do) and uses it."""
    import benchmark.data.sun397 as sun397_module

    root = _copy(sun_root, tmp_path)
    original = root / "SUN397" / "Partitions"
    saved = tmp_path / "saved"
    shutil.move(original, saved)
    (root / "SUN397" / "blurbench_fixture.json").unlink()  # a real dataset: no manifest
    calls = []

    def fake_download(url: str, download_root: str, extract_root: str, md5: str) -> None:
        calls.append((url, md5))
        shutil.copytree(saved, Path(extract_root) / "Partitions")

    monkeypatch.setattr(sun397_module, "download_and_extract_archive", fake_download)
    data = get_adapter("sun397").load_split(root, "test", download=True)
    assert calls == [(sun397_module._PARTITIONS_URL, sun397_module._PARTITIONS_MD5)]
    assert (original / "Testing_01.txt").is_file() and not data.is_fixture
    listed = (saved / "Testing_01.txt").read_text().split()
    assert data.example_ids == [p.lstrip("/") for p in listed]
