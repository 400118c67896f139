"""What a warm `bench leaderboard` (unchanged runs, caches in place) spends its time on besides
reading the record cache: the comparison keys, the links and files it writes, and what the
process imports. Each shortcut here gives what the long way gives."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import bench
from synthetic_records import logits_with_correct, write_classification_run

from benchmark.leaderboard.collect import READING_FIELDS, collect, group_settings
from benchmark.leaderboard.compare import new_comparison
from benchmark.leaderboard.model import Comparison
from benchmark.leaderboard.pairs import find_pairs

cache_module = importlib.import_module("benchmark.leaderboard.cache")
CLASSES = ["a", "b", "c", "d"]
TARGET = np.repeat(np.arange(4), 25)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    rng = np.random.default_rng(0)
    for seed in range(3):
        for name, data in (("original_r18", "original"), ("blurred_r18", "blurred")):
            logits = logits_with_correct(TARGET, rng.random(len(TARGET)) < 0.7, 4, rng)
            write_classification_run(results, name, "resnet18", data, seed, logits, TARGET,
                                     CLASSES)  # fmt: skip
    return results


def _comparison(results: Path, save: bool = False) -> tuple[Comparison, cache_module.RecordCache]:
    """The one comparison of ``results`` and the record cache that read its runs (``save``:
    written, for the next reading)."""
    readings = cache_module.RecordCache(results, READING_FIELDS)
    runs, problems, _ = collect(results, readings)
    if save:
        readings.save()
    (setting, a, b, explicit), = find_pairs(group_settings(runs, problems, 0.95), [], problems)
    return new_comparison(setting, a, b, explicit), readings


def test_comparison_keys_reuse_the_record_stats_of_the_build(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key stats each run's predictions but not its record again: the record cache took that
    stat when it read (or found) the record. The key is the one fresh stats give."""
    assert bench("leaderboard", "--results", results, "--out", tmp_path / "a", "--no-plots",
                 "--n-boot", "200") == 0  # fmt: skip
    comp, readings = _comparison(results)  # a warm reading: every record from the cache
    assert readings.hits == 6
    statted: list[str] = []
    real = cache_module.file_stat

    def counting(path: str) -> cache_module.FileStat | None:
        statted.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(cache_module, "file_stat", counting)
    reused = cache_module.ComparisonCache(results, 200, 0.95, 0, readings).key(comp)
    assert statted == ["predictions.npz"] * 6
    statted.clear()
    fresh = cache_module.ComparisonCache(results, 200, 0.95, 0).key(comp)
    assert sorted(statted) == ["predictions.npz"] * 6 + ["record.json"] * 6
    assert reused == fresh


def test_a_record_changed_after_reading_changes_the_key(results: Path) -> None:
    """The stat in the key is the one of the record as this build read it: a record the
    record cache read again (new content) gives a new key, so its comparison is recomputed."""
    comp, readings = _comparison(results, save=True)  # cold: every record read, stat kept
    before = cache_module.ComparisonCache(results, 200, 0.95, 0, readings).key(comp)
    record = comp.b.runs[0].run_dir / "record.json"
    record.write_text(record.read_text() + " ")  # still the same run, another file
    comp, readings = _comparison(results)
    assert readings.misses == 1  # read again
    after = cache_module.ComparisonCache(results, 200, 0.95, 0, readings).key(comp)
    assert after != before
    assert after == cache_module.ComparisonCache(results, 200, 0.95, 0).key(comp)
