"""The data a run read is part of its key: fixture and real data, or two copies of a dataset,
never answer "already done" for each other; `bench run --dry-run` shows the identity."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
from helpers import bench, read_json, run_dirs

from benchmark.data.cifar import write_cifar10_fixture
from benchmark.data.fixtures import MANIFEST_NAME, md5_of
from benchmark.data.identity import FileDigests
from benchmark.data.safe_pickle import load_data_pickle
from benchmark.data.sun397 import write_sun397_fixture

FAST = ("--subset", "tiny", "--max-steps", "1", "--accelerator", "cpu", "--num-workers", "0")


@pytest.fixture(autouse=True)
def _private_digest_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def test_fixture_then_real_data_gives_two_records(tmp_path, paper_resnet18, capsys) -> None:
    """A SUN397 fixture loses its manifest and becomes, to the loader, real data (the real
    SUN397 has no checksums to check): the second run is a new run, not "already done"."""
    root = tmp_path / "data"
    write_sun397_fixture(root)
    results = tmp_path / "results"
    args = ("run", "--task", "sun397", *FAST, "--backbone", paper_resnet18, "--data-root", root,
            "--results", results)  # fmt: skip
    assert bench(*args) == 0
    (root / "SUN397" / MANIFEST_NAME).unlink()
    capsys.readouterr()
    assert bench(*args) == 0
    assert "already done" not in capsys.readouterr().out
    records = [read_json(d / "record.json") for d in run_dirs(results)]
    assert sorted(r["config"]["data"]["fixture"] for r in records) == [False, True]
    assert sorted(r["data"]["fixture"] for r in records) == [False, True]
    assert len({r["config_hash"] for r in records}) == 2
    # and each answers for itself: the real-data run again is already done
    assert bench(*args) == 0
    assert "already done" in capsys.readouterr().out
    assert len(run_dirs(results)) == 2


def _tamper_cifar(folder: Path) -> None:
    """Change one test label and re-sign the fixture manifest, as a tampered copy would."""
    batch = folder / "test_batch"
    content = load_data_pickle(batch, "CIFAR-10")
    content["labels"][0] = (content["labels"][0] + 1) % 10
    with open(batch, "wb") as fh:
        pickle.dump(content, fh, protocol=2)
    manifest = folder / MANIFEST_NAME
    text = manifest.read_text()
    table = read_json(manifest)
    manifest.write_text(text.replace(table["md5"]["test_batch"], md5_of(batch)))


def test_two_copies_of_a_dataset_are_two_runs(tmp_path, paper_resnet18, capsys) -> None:
    clean, tampered = tmp_path / "clean", tmp_path / "tampered"
    write_cifar10_fixture(clean)
    shutil.copytree(clean, tampered)
    _tamper_cifar(tampered / "cifar-10-batches-py")
    results = tmp_path / "results"
    for root in (clean, tampered):
        assert bench("run", "--task", "cifar10", *FAST, "--backbone", paper_resnet18,
                     "--data-root", root, "--results", results) == 0  # fmt: skip
    assert "already done" not in capsys.readouterr().out
    fingerprints = {read_json(d / "record.json")["config"]["data"]["fingerprint"]
                    for d in run_dirs(results)}  # fmt: skip
    assert len(fingerprints) == 2


def test_a_moved_copy_is_the_same_data(tmp_path, paper_resnet18, capsys) -> None:
    """The identity hashes file contents and names relative to the data root, not where the
    root is: an identical copy elsewhere is the same run."""
    first, moved = tmp_path / "a", tmp_path / "b"
    write_cifar10_fixture(first)
    shutil.copytree(first, moved)
    results = tmp_path / "results"
    for root in (first, moved):
        assert bench("run", "--task", "cifar10", *FAST, "--backbone", paper_resnet18,
                     "--data-root", root, "--results", results) == 0  # fmt: skip
    assert "already done" in capsys.readouterr().out
    assert len(run_dirs(results)) == 1


def test_dry_run_shows_the_identity_and_writes_nothing(tmp_path, cifar_root, paper_resnet18,
                                                       capsys) -> None:  # fmt: skip
    results = tmp_path / "results"
    args = ("run", "--task", "cifar10", *FAST, "--backbone", paper_resnet18,
            "--data-root", cifar_root, "--results", results)  # fmt: skip
    assert bench(*args, "--dry-run") == 0
    out = capsys.readouterr().out
    assert ": to run" in out
    assert "data: FIXTURE data via cifar10 v1 (torchvision), train 40, val 6, test 20" in out
    assert "fingerprint " in out
    assert not results.exists()
    assert bench(*args) == 0
    (run_dir,) = run_dirs(results)
    capsys.readouterr()
    assert bench(*args, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"run {run_dir}: done" in out
    identity = read_json(run_dir / "record.json")["config"]["data"]
    assert identity["fingerprint"][:16] in out
    assert identity["files"] == 7  # five training batches, test_batch and batches.meta


def test_file_digests_are_cached_by_stat(tmp_path) -> None:
    """A second process (a new FileDigests) reads the digest from the cache; a changed file is
    hashed again."""
    data = tmp_path / "f.bin"
    data.write_bytes(b"a" * 1000)
    cache = tmp_path / "digests.json"
    first = FileDigests(cache).sha256(data)
    digests = FileDigests(cache)
    digests.sha256(data)
    digests.save()
    assert cache.is_file() and first in cache.read_text()
    data.write_bytes(b"b" * 1001)
    assert FileDigests(cache).sha256(data) != first
