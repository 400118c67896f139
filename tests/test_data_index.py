"""Each adapter's torch-free index part names the same examples, labels and files as its loader
part, so the run key's data identity computed without torch (`bench run` answering "already
done") equals the one computed from the loaded data, and records made before stay matched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.data.celeba import write_celeba_fixture
from benchmark.data.cifar import write_cifar10_fixture
from benchmark.data.fixtures import MANIFEST_NAME
from benchmark.data.splits import index_identity, index_split, load_split, resolve_splits
from benchmark.data.splits import splits_identity as loaded_identity
from benchmark.data.sun397 import write_sun397_fixture
from benchmark.data.voc import write_voc_fixture
from benchmark.tasks import apply_overrides, for_subset, get_task

HF = {"celeba": "celeba_hf", "sun397": "sun397_hf"}
TRAINING = ("torch", "torchvision", "pytorch_lightning", "lightning", "benchmark.models")


@pytest.fixture(autouse=True)
def _private_caches(tmp_path, monkeypatch) -> None:
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("index-data")
    write_cifar10_fixture(root)
    write_celeba_fixture(root)
    write_sun397_fixture(root, images_per_class=3, train_per_class=2, test_per_class=1)
    write_voc_fixture(root)
    return root


CASES = [
    ("cifar10", {}),
    ("sun397", {}),
    ("sun397", {"data.args.partition": 3}),
    ("celeba", {}),
    ("voc", {}),
    ("voc", {"data.args.trainval_years": [2007, 2012]}),
    ("sun397", "hf"),
    ("celeba", "hf"),
]


def _task(name: str, change: dict | str, root: Path):
    if change == "hf":
        change = {"data.source": "hf", "data.hf.id": str(root / HF[name]),
                  "data.hf.columns.id": "image_id"}  # fmt: skip
    return apply_overrides(get_task(name), change)


@pytest.mark.parametrize(("name", "change"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
@pytest.mark.parametrize("subset", ["tiny", 7, "full"])
def test_index_identity_is_the_loaded_identity(data_root, name, change, subset) -> None:
    task = for_subset(_task(name, change, data_root), str(subset))
    loaded = loaded_identity(task, data_root, resolve_splits(task, data_root, subset))
    assert index_identity(task, data_root, subset) == loaded
    assert loaded["fixture"] is True and sum(loaded["examples"].values()) > 0


@pytest.mark.parametrize(("name", "change"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_index_split_is_the_loaded_split(data_root, name, change) -> None:
    """Field by field, on every split: the identity above hides which one would differ."""
    task = _task(name, change, data_root)
    splits = {task.splits.train, task.splits.test}
    if isinstance(task.splits.val, str):
        splits.add(task.splits.val)
    for split in sorted(splits):
        index = index_split(task, data_root, split)
        loaded = load_split(task, data_root, split, download=False)
        assert index.example_ids == loaded.example_ids, split
        assert index.class_names == loaded.class_names, split
        assert np.array_equal(index.labels, loaded.labels), split
        assert index.labels.dtype == loaded.labels.dtype == np.int64
        assert [Path(f) for f in index.files] == [Path(f) for f in loaded.files], split
        assert (index.is_fixture, index.source, index.content_id) == (
            loaded.is_fixture, loaded.source, loaded.content_id), split  # fmt: skip


def test_a_changed_label_changes_both_identities_alike(tmp_path) -> None:
    """The index reads the labels themselves: a relabelled SUN397 image (moved to another class
    in its partition file and folder) changes the identity the same way on both sides."""
    root = tmp_path / "data"
    write_sun397_fixture(root, images_per_class=3, train_per_class=2, test_per_class=1)
    (root / "SUN397" / MANIFEST_NAME).unlink()  # edited by hand: no longer the fixture
    task = for_subset(get_task("sun397"), "tiny")
    before = index_identity(task, root, "tiny")
    listed = root / "SUN397" / "Partitions" / "Testing_01.txt"
    lines = listed.read_text().splitlines()
    first = lines[0]
    moved = first.replace("/a/abbey/", "/a/alley/")
    (root / "SUN397" / moved.lstrip("/")).write_bytes((root / "SUN397" / first.lstrip("/"))
                                                     .read_bytes())  # fmt: skip
    listed.write_text("\n".join([moved, *lines[1:]]) + "\n")
    loaded = loaded_identity(task, root, resolve_splits(task, root, "tiny"))
    assert index_identity(task, root, "tiny") == loaded != before


def test_torchvision_file_tables_are_the_index_tables() -> None:
    """The index parts name torchvision's files without importing torchvision."""
    from torchvision.datasets import CIFAR10, CelebA

    from benchmark.data import celeba_index, cifar_index

    assert tuple(n for n, _ in CIFAR10.train_list) == cifar_index.TRAIN_BATCHES
    assert tuple(n for n, _ in CIFAR10.test_list) == cifar_index.TEST_BATCHES
    assert CIFAR10.meta["filename"] == cifar_index.META_FILE
    assert CIFAR10.base_folder == cifar_index.FOLDER
    texts = [name for _, _, name in CelebA.file_list if name.endswith(".txt")]
    assert CelebA.base_folder == celeba_index.FOLDER and tuple(texts) == celeba_index.TEXT_FILES


INDEX_MODULES = ["benchmark.data", "benchmark.data.splits", "benchmark.data.hf",
                 "benchmark.tasks", "benchmark.data.cifar_index", "benchmark.data.sun397_index",
                 "benchmark.data.celeba_index", "benchmark.data.voc_index"]  # fmt: skip


@pytest.mark.parametrize("module", INDEX_MODULES)
def test_index_modules_import_no_training_stack(module) -> None:
    code = (f"import sys, {module}; loaded = [m for m in sys.modules if m.split('.')[0] in "
            f"{TRAINING!r} or m.startswith('benchmark.models')]; assert not loaded, loaded")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_a_second_adapter_of_one_name_is_refused() -> None:
    from benchmark.data import _ADAPTERS, register_adapter
    from benchmark.errors import BenchError

    before = dict(_ADAPTERS)
    with pytest.raises(BenchError, match="'cifar10' is already registered"):
        register_adapter("cifar10", "x:Index", "x:Loader")
    assert before == _ADAPTERS
