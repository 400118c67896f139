"""adapter: torchvision: every suite task's fixture is generated from its YAML in the layout
torchvision's own class reads; ids, labels and class names come from the dataset object; a
missing dataset, a failed or impossible download and a tampered fixture are one line each."""

from __future__ import annotations

import shutil
import urllib.error
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import bench
from torchvision import datasets

from benchmark.data import get_adapter
from benchmark.data.splits import load_split
from benchmark.data.tv_datasets import TORCHVISION_DATASETS
from benchmark.errors import BenchError, EnvironmentFailure
from benchmark.tasks import apply_overrides, get_task

SUITE = ["food101", "cifar100", "fgvc_aircraft", "stanford_cars", "dtd", "oxford_pets",
         "caltech101", "flowers102", "voc2007_cls"]  # fmt: skip


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each suite task's fixture, written once through `bench data fixture`."""
    out = {}
    for name in SUITE:
        root = tmp_path_factory.mktemp(name)
        assert bench("data", "fixture", "--task", name, "--root", root) == 0
        out[name] = root
    return out


def _torchvision_reads(name: str, root: Path) -> dict[str, int]:
    """Split sizes as torchvision's own class reads the fixture (no blurbench code)."""
    task = get_task(name)
    row = TORCHVISION_DATASETS[task.data.args["dataset"]]
    if row.name == "CIFAR100":  # torchvision would unpickle; its md5 check refuses a fixture
        return {}
    cls = getattr(datasets, row.name)
    options = task.data.args.get("options", {})
    if row.name == "Caltech101":
        return {"all": len(cls(str(root)))}
    if row.name == "Flowers102":
        return {}  # torchvision checks the release md5s of its .mat files; see the adapter test
    if row.name == "VOCDetection":
        return {s: len(cls(str(root), year="2007", image_set=s)) for s in ("trainval", "test")}
    return {s: len(cls(str(root), **{row.split_arg: s}, **options))
            for s in task.fixture.per_class}  # fmt: skip


@pytest.mark.parametrize("name", SUITE)
def test_fixture_is_read_by_torchvision_and_the_adapter(name: str, roots: dict[str, Path]) -> None:
    task = get_task(name)
    root = roots[name]
    per_class = task.fixture.per_class
    for split, n in _torchvision_reads(name, root).items():
        if name != "voc2007_cls":
            assert n == per_class.get(split, n) * task.num_classes or split == "all"
    splits = {task.splits.train, task.splits.test}
    loaded = {s: load_split(task, root, s, download=False) for s in splits}
    for data in loaded.values():
        assert data.is_fixture and len(data.class_names) == task.num_classes
        assert len(set(data.example_ids)) == len(data.example_ids) == len(data.dataset)
        assert all(f.is_file() for f in data.files)  # what the identity hashes
        assert data.files or name == "caltech101"  # no index file: the ids name the split
        image, target = data.dataset[0]
        assert image.size == (task.fixture.image_size,) * 2
        if task.kind == "classification":
            assert int(target) == int(data.labels[0])
            assert Counter(data.labels.tolist()).keys() == set(range(task.num_classes))
        else:
            assert np.array_equal(np.asarray(target), data.labels[0])
    train, test = loaded[task.splits.train], loaded[task.splits.test]
    assert not set(train.example_ids) & set(test.example_ids)


def test_caltech101_takes_30_per_class_for_training_seeded(roots: dict[str, Path]) -> None:
    task = get_task("caltech101")
    train = load_split(task, roots["caltech101"], "train", download=False)
    test = load_split(task, roots["caltech101"], "test", download=False)
    assert Counter(train.labels.tolist()) == dict.fromkeys(range(101), 30)
    assert Counter(test.labels.tolist()) == dict.fromkeys(range(101), 1)
    assert not set(train.example_ids) & set(test.example_ids)
    again = load_split(task, roots["caltech101"], "train", download=False)
    assert again.example_ids == train.example_ids
    other = load_split(apply_overrides(task, {"data.args.split_seed": 1}), roots["caltech101"],
                       "test", download=False)  # fmt: skip
    assert other.example_ids != test.example_ids
    assert "BACKGROUND_Google" not in train.class_names


def test_voc2007_labels_are_the_non_difficult_objects(roots: dict[str, Path]) -> None:
    from benchmark.detection.voc_annotations import VOC_CLASSES, parse_voc_annotation

    data = load_split(get_task("voc2007_cls"), roots["voc2007_cls"], "test", download=False)
    folder = roots["voc2007_cls"] / "VOCdevkit" / "VOC2007" / "Annotations"
    difficult_seen = False
    for image_id, labels in zip(data.example_ids, data.labels, strict=True):
        objects = parse_voc_annotation(folder / f"{image_id}.xml").objects
        expected = {o.name for o in objects if not o.difficult}
        difficult_seen |= any(o.difficult for o in objects)
        assert {VOC_CLASSES[j] for j in np.flatnonzero(labels)} == expected
    assert difficult_seen  # the rule was exercised


def test_flowers_fixture_md5s_replace_the_release_table(roots: dict[str, Path], tmp_path) -> None:
    task = get_task("flowers102")
    root = tmp_path / "data"
    shutil.copytree(roots["flowers102"], root)
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        datasets.Flowers102(str(root))  # the release's md5s: the fixture is not the release
    mat = root / "flowers-102" / "setid.mat"
    mat.write_bytes(mat.read_bytes()[:-8])
    with pytest.raises(BenchError, match=r"setid.mat: missing or changed since the fixture"):
        load_split(task, root, "train", download=False)


def test_missing_dataset_names_the_folder_and_the_manual_steps(tmp_path: Path) -> None:
    with pytest.raises(BenchError) as info:
        load_split(get_task("food101"), tmp_path, "train", download=False)
    message = str(info.value)
    assert f"under {(tmp_path / 'food-101').resolve()}" in message and "\n" not in message
    assert "food-101.tar.gz" in message and "--download" in message


def test_stanford_cars_download_gives_the_manual_steps(tmp_path: Path) -> None:
    with pytest.raises(BenchError) as info:
        load_split(get_task("stanford_cars"), tmp_path, "train", download=True)
    message = str(info.value)
    assert "cannot be downloaded by torchvision" in message and "kaggle" in message
    assert "stanford_cars/devkit/cars_meta.mat" in message and str(tmp_path.resolve()) in message


def test_a_failed_download_is_an_environment_failure(tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets.food101 as food101

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(food101, "download_and_extract_archive", offline)
    with pytest.raises(EnvironmentFailure) as info:
        load_split(get_task("food101"), tmp_path, "train", download=True)
    message = str(info.value)
    assert message.startswith("could not download Food101 into")
    assert "URLError" in message and "food-101.tar.gz" in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"data.args.dataset": "Food102"}, "data.args.dataset 'Food102' is not a torchvision"),
        ({"data.args.options.partition": 11}, "DTD option partition=11: use one of"),
        ({"data.args.options.split": "x"}, "DTD takes no option 'split'"),
        ({"data.args.per_class_train": 5}, "DTD has official splits"),
    ],
)
def test_adapter_arguments_are_typed(override: dict, expected: str) -> None:
    with pytest.raises(BenchError) as info:
        apply_overrides(get_task("dtd"), override)
    assert expected in str(info.value) and "field 'data'" in str(info.value)


def test_adapter_registry_refuses_duplicates() -> None:
    from benchmark.data import register_adapter

    get_adapter("torchvision")
    with pytest.raises(BenchError, match="'torchvision' is already registered"):
        register_adapter("torchvision", "x:Index", "x:Loader")
