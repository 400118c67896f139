"""A cold build reads its runs in worker processes (benchmark.leaderboard.workers): the pages
are byte for byte those of a build in one process, problems included, with and without the
caches."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from synthetic_records import corrupt_record, logits_with_correct, write_classification_run

from benchmark import leaderboard
from benchmark.leaderboard import workers

collect_module = importlib.import_module("benchmark.leaderboard.collect")
CLASSES = [f"c{i}" for i in range(5)]
TARGET = np.repeat(np.arange(5), 20)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Two backbones x 4 seeds, one record cut off and one predictions file damaged."""
    results = tmp_path / "results"
    dirs = []
    for seed in range(4):
        for name, data, rate in (("original_r18", "original", 0.7), ("blurred_r18", "blurred",
                                                                         0.6)):
            rng = np.random.default_rng(seed * 10 + int(rate * 100))
            logits = logits_with_correct(TARGET, rng.random(len(TARGET)) < rate, 5, rng)
            dirs.append(write_classification_run(results, name, "resnet18", data, seed, logits,
                                                 TARGET, CLASSES))  # fmt: skip
    corrupt_record(dirs[0])
    (dirs[3] / "predictions.npz").write_bytes(b"not a zip archive")
    return results


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A pool for as few as 4 runs; records how many runs each pool returned."""
    monkeypatch.setattr(workers, "PARALLEL_MIN_RUNS", 4)
    sizes: list[int] = []
    real = collect_module.read_runs

    def counting(folders: list[str], n: int) -> list[workers.RunRead] | None:
        got = real(folders, n)
        sizes.append(-1 if got is None else len(got))
        return got

    monkeypatch.setattr(collect_module, "read_runs", counting)
    return sizes


def _pages(results: Path, out: Path, n_workers: int, cache: bool) -> tuple[str, bytes, bytes]:
    board = leaderboard.build(results, n_boot=300, plots=False, cache=cache, workers=n_workers)
    leaderboard.write(board, out)
    markdown = re.sub(r"Generated \S+ from", "Generated TIME from",
                      (out / "leaderboard.md").read_text())  # fmt: skip
    return (markdown, (out / "leaderboard.csv").read_bytes(),
            (out / "leaderboard_wide.csv").read_bytes())


def test_worker_processes_give_the_same_pages(
    results: Path, tmp_path: Path, pooled: list[int]
) -> None:
    serial = _pages(results, tmp_path / "one", 1, cache=False)
    assert pooled == []  # one worker: no pool
    parallel = _pages(results, tmp_path / "two", 2, cache=False)
    assert pooled == [8]  # every record read in the pool
    assert parallel == serial
    assert "unreadable predictions" in serial[0] and "malformed" in serial[0].lower()

    cold = _pages(results, tmp_path / "cold", 2, cache=True)
    warm = _pages(results, tmp_path / "warm", 2, cache=True)
    assert pooled == [8, 8, -1]  # warm: every reading from the record cache, no pool
    assert cold == warm == serial


def test_a_run_read_in_a_worker_is_what_the_main_process_reads(results: Path) -> None:
    """The worker's reading is the record's reading, its arrays those of the kind's reader."""
    from benchmark.analysis.classification import classification_score_arrays
    from benchmark.leaderboard.reading import record_reading
    from benchmark.run_record import read_record

    run_dir = next(results.glob("runs/*/*/blurred_r18/*"))
    reading, arrays, key = workers.read_run(str(run_dir))
    record = read_record(run_dir)
    expected = record_reading(run_dir, record)
    expected.pop("record")
    assert reading == expected
    assert arrays is not None and key is not None
    for name, array in classification_score_arrays(run_dir, record).items():
        assert np.array_equal(arrays[name], array) and arrays[name].dtype == array.dtype
    assert list(arrays["class_names"]) == CLASSES


@pytest.mark.parametrize(("load", "expected"), [(0.3, 4), (1.7, 3), (3.9, 1), (9.0, 1)])
def test_default_workers_leave_busy_cpus_to_their_work(
    monkeypatch: pytest.MonkeyPatch, load: float, expected: int
) -> None:
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    monkeypatch.setattr(workers.os, "getloadavg", lambda: (load, 0.0, 0.0))
    assert workers.default_workers() == expected
