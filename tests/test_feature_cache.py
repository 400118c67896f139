"""The linear probe's feature cache: keys, truncated entries, concurrent writers, bench cache."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import bench

from benchmark.feature_cache import LOCKS_DIR, FeatureCache, entry_key
from benchmark.features import EXTRACTOR_VERSION, key_parts

BASE = dict(
    backbone_sha256="a" * 64, arch="resnet50", task="cifar10", split="train", subset="tiny",
    data_identity={"fingerprint": "f" * 64, "examples": {"train": 40}},
    transform="Compose(Resize(32), CenterCrop(32))", layer="input of fc", precision="32-true",
)  # fmt: skip


def _arrays(n: int = 7, d: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "features": rng.standard_normal((n, d)).astype(np.float32),
        "targets": rng.integers(0, 3, n).astype(np.int64),
        "example_ids": np.asarray([f"train/{i:05d}" for i in range(n)], np.str_),
    }


def test_key_changes_when_any_part_changes() -> None:
    base = key_parts(**BASE)
    assert base["extractor_version"] == EXTRACTOR_VERSION and base["dtype"] == "float32"
    keys = {entry_key(base)}
    changed = {
        "backbone_sha256": "b" * 64, "arch": "resnet18", "task": "sun397", "split": "val",
        "subset": "full", "data_identity": {"fingerprint": "e" * 64, "examples": {"train": 40}},
        "transform": "Compose(Resize(224), CenterCrop(224))", "layer": "input of classifier.6",
        "precision": "bf16-mixed",
    }  # fmt: skip
    assert set(changed) == set(BASE)  # every part the key is built from is varied
    for name, value in changed.items():
        keys.add(entry_key(key_parts(**{**BASE, name: value})))
    keys.add(entry_key({**base, "dtype": "float16"}))
    keys.add(entry_key({**base, "extractor_version": EXTRACTOR_VERSION + 1}))
    assert len(keys) == len(changed) + 3
    assert entry_key(key_parts(**BASE)) == entry_key(dict(reversed(list(base.items()))))


def test_entry_is_computed_once_then_memory_mapped(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    calls = []
    parts = key_parts(**BASE)

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return _arrays()

    first = cache.get_or_compute(parts, compute)
    second = cache.get_or_compute(parts, compute)
    assert len(calls) == 1 and not first.hit and second.hit
    assert isinstance(second.features, np.memmap)
    for name in ("features", "targets", "example_ids"):
        assert np.array_equal(getattr(second, name), _arrays()[name])
    manifest = json.loads((tmp_path / first.key / "manifest.json").read_text())
    assert manifest["parts"]["task"] == "cifar10"
    assert manifest["files"]["features"]["shape"] == [7, 5]
    assert not list(tmp_path.glob(".tmp-*"))  # the staging folder was renamed into place


@pytest.mark.parametrize("damage", ["truncate", "drop_manifest", "drop_array", "wrong_shape"])
def test_damaged_entry_is_recomputed(tmp_path: Path, damage: str) -> None:
    cache = FeatureCache(tmp_path)
    parts = key_parts(**BASE)
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return _arrays()

    entry = tmp_path / cache.get_or_compute(parts, compute).key
    features = entry / "features.npy"
    if damage == "truncate":
        data = features.read_bytes()
        features.write_bytes(data[: len(data) // 2])
    elif damage == "drop_manifest":
        (entry / "manifest.json").unlink()
    elif damage == "drop_array":
        (entry / "targets.npy").unlink()
    else:  # a whole, readable file that is not what the manifest says
        np.save(features, np.zeros((3, 5), np.float32))
    assert cache.read(entry.name) is None
    again = cache.get_or_compute(parts, compute)
    assert len(calls) == 2 and not again.hit
    assert np.array_equal(again.features, _arrays()["features"])
    assert cache.read(entry.name) is not None


_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from pathlib import Path
    from benchmark.feature_cache import FeatureCache
    root, marker = Path(sys.argv[1]), Path(sys.argv[2])
    def compute():
        with open(marker, "a") as fh:
            fh.write("computed\\n")
        time.sleep(1.0)  # long enough for the other process to arrive meanwhile
        rng = np.random.default_rng(0)
        return {"features": rng.standard_normal((500, 64)).astype(np.float32),
                "targets": np.arange(500, dtype=np.int64),
                "example_ids": np.asarray([f"x{i}" for i in range(500)])}
    got = FeatureCache(root).get_or_compute({"same": "entry"}, compute)
    print(got.key, float(np.asarray(got.features).sum()))
""")


def test_two_processes_extracting_the_same_entry_leave_one_valid_entry(tmp_path: Path) -> None:
    root, marker = tmp_path / "cache", tmp_path / "computed.txt"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(root), str(marker)],
                         stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
        for _ in range(2)
    ]  # fmt: skip
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs[0] == outs[1]  # both read the same arrays
    assert marker.read_text().count("computed") == 1  # the second waited and read the first's
    entries = FeatureCache(root).entries()
    assert len(entries) == 1 and entries[0].valid
    assert [p.name for p in root.iterdir() if p.name != LOCKS_DIR] == [entries[0].key]


def test_bench_cache_list_and_clear(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    cache = FeatureCache()
    assert cache.root == tmp_path / "features"
    for split in ("train", "val"):
        for task in ("cifar10", "celeba"):
            cache.get_or_compute(key_parts(**{**BASE, "split": split, "task": task}), _arrays)
    (cache.root / ".tmp-abandoned").mkdir()  # a crashed writer's leftover
    capsys.readouterr()
    assert bench("cache", "list") == 0
    out = capsys.readouterr().out
    assert "5 entries" in out and out.count("cifar10") == 2 and "incomplete" in out
    assert bench("cache", "clear") == 2  # nothing said: refused, nothing removed
    assert "--all" in capsys.readouterr().err and len(cache.entries()) == 5
    assert bench("cache", "clear", "--incomplete") == 0
    assert len(cache.entries()) == 4
    assert bench("cache", "clear", "--task", "cifar10", "--split", "train") == 0
    assert "removed 1 entries" in capsys.readouterr().out
    left = {(e.manifest["parts"]["task"], e.manifest["parts"]["split"]) for e in cache.entries()}
    assert left == {("cifar10", "val"), ("celeba", "train"), ("celeba", "val")}
    assert bench("cache", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed["entries"]) == 3 and all(e["valid"] for e in listed["entries"])
    assert bench("cache", "clear", "--all") == 0
    assert cache.entries() == []
