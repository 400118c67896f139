"""The leaderboard's on-disk score cache: a rebuild reads one cache file instead of every
run's predictions, gives the same pages byte for byte, and re-reads what changed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import bench
from synthetic_records import logits_with_correct, write_classification_run

import benchmark.analysis.classification
from benchmark.leaderboard.cache import COMPARISONS_FILE, RECORDS_FILE
from benchmark.score_cache import CACHE_DIR, CACHE_FILE

CLASSES = [f"c{i}" for i in range(5)]
N = 100
TARGET = np.repeat(np.arange(5), N // 5)


def _run(results: Path, name: str, data: str, seed: int, rate: float) -> Path:
    rng = np.random.default_rng(seed * 10 + int(rate * 100))
    correct = rng.random(N) < rate
    return write_classification_run(results, name, "resnet18", data, seed,
                                    logits_with_correct(TARGET, correct, 5, rng), TARGET,
                                    CLASSES)  # fmt: skip


@pytest.fixture
def results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    for seed in range(3):
        _run(results, "original_r18", "original", seed, 0.7)
        _run(results, "blurred_r18", "blurred", seed, 0.6)
    return results


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every predictions file the classification kind opens."""
    opened: list[Path] = []
    real = benchmark.analysis.classification.load_logit_predictions

    def counting(run_dir: Path) -> dict[str, np.ndarray]:
        opened.append(Path(run_dir))
        return real(run_dir)

    monkeypatch.setattr(benchmark.analysis.classification, "load_logit_predictions", counting)
    return opened


def _build(results: Path, out: Path, *extra: str) -> tuple[str, bytes]:
    assert bench("leaderboard", "--results", results, "--out", out, "--n-boot", "300",
                 "--no-plots", *extra) == 0  # fmt: skip
    markdown = (out / "leaderboard.md").read_bytes()
    # the only line that may differ between builds is the generation time
    markdown = re.sub(rb"Generated \S+ from", b"Generated TIME from", markdown)
    return markdown.decode(), (out / "leaderboard.csv").read_bytes()


def test_rebuild_reads_the_cache_and_gives_identical_pages(
    results: Path, tmp_path: Path, loads: list[Path]
) -> None:
    cache = results / CACHE_DIR / CACHE_FILE
    uncached = _build(results, tmp_path / "a", "--no-cache")
    assert len(loads) == 6 and not cache.exists()

    cold = _build(results, tmp_path / "b")
    assert len(loads) == 12 and cache.is_file()
    loads.clear()
    warm = _build(results, tmp_path / "c")
    assert loads == []  # no predictions file opened
    assert uncached == cold == warm
    assert "blurred_r18" in warm[0] and b"top1" in warm[1]

    # a replaced run is read again (and only that one); the pages follow its new predictions
    changed = _run(results, "blurred_r18", "blurred", 1, 0.95)
    after = _build(results, tmp_path / "d")
    assert loads == [changed]
    assert after != warm
    assert after == _build(results, tmp_path / "e", "--no-cache")


def test_corrupt_cache_is_rebuilt_and_removed_runs_dropped(
    results: Path, tmp_path: Path, loads: list[Path]
) -> None:
    reference = _build(results, tmp_path / "a", "--no-cache")
    cache = results / CACHE_DIR / CACHE_FILE
    cache.parent.mkdir()
    for garbage in (b"not a zip", b"PK\x03\x04" + b"\0" * 64):
        for name in (CACHE_FILE, RECORDS_FILE, COMPARISONS_FILE):
            (cache.parent / name).write_bytes(garbage)
        loads.clear()
        assert _build(results, tmp_path / "b") == reference
        assert len(loads) == 6  # ignored, read from the predictions, written anew
    loads.clear()
    assert _build(results, tmp_path / "c") == reference and loads == []

    with np.load(cache, allow_pickle=False) as npz:
        stored = json.loads(npz["index"].tobytes())["runs"]
    assert len(stored) == 6
    gone = next(p for p in results.glob("runs/*/*/*/*") if "blurred" in str(p))
    shutil.rmtree(gone)
    _build(results, tmp_path / "d")
    assert loads == []
    with np.load(cache, allow_pickle=False) as npz:
        stored = json.loads(npz["index"].tobytes())["runs"]
    assert len(stored) == 5
    assert gone.relative_to(results).as_posix() not in stored
