"""The leaderboard's on-disk caches (score arrays, record readings, comparisons): a rebuild
reads cache files instead of every run's record and predictions, gives the same pages byte for
byte, and re-reads and recomputes what changed."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.special
from helpers import bench
from synthetic_records import logits_with_correct, write_classification_run

import benchmark.analysis.classification
import benchmark.analysis.npz
import benchmark.run_record
import benchmark.scores
from benchmark import stats
from benchmark.leaderboard.cache import COMPARISONS_FILE, QUANTILES_FILE, RECORDS_FILE
from benchmark.leaderboard.collect import READING_FIELDS
from benchmark.leaderboard.model import Run
from benchmark.score_cache import CACHE_DIR, CACHE_FILE
from benchmark.scores import ExampleScores, RunScores

# the modules, not the functions benchmark.leaderboard exports under the same names
build_module = importlib.import_module("benchmark.leaderboard.build")
cache_module = importlib.import_module("benchmark.leaderboard.cache")
score_cache_module = importlib.import_module("benchmark.score_cache")
collect_module = importlib.import_module("benchmark.leaderboard.collect")
compare_module = importlib.import_module("benchmark.leaderboard.compare")
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
        for name in (CACHE_FILE, RECORDS_FILE, COMPARISONS_FILE, QUANTILES_FILE):
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


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[object]]:
    """Every record the leaderboard validates and every comparison it computes."""
    seen: dict[str, list[object]] = {"records": [], "comparisons": []}
    real_read, real_compare = collect_module.read_record, build_module.compare_all

    def reading(run_dir: Path) -> object:
        seen["records"].append(Path(run_dir))
        return real_read(run_dir)

    def comparing(items: list, *args: object, **kwargs: object) -> object:
        seen["comparisons"] += [item[0] for item in items]
        return real_compare(items, *args, **kwargs)

    monkeypatch.setattr(collect_module, "read_record", reading)
    monkeypatch.setattr(build_module, "compare_all", comparing)
    return seen


def test_warm_rebuild_reads_no_record_and_computes_no_comparison(
    results: Path, tmp_path: Path, work: dict[str, list[object]], loads: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = _build(results, tmp_path / "a", "--no-cache")
    assert len(work["records"]) == 6 and len(work["comparisons"]) == 1
    assert not (results / CACHE_DIR).exists()  # --no-cache writes no cache either
    assert _build(results, tmp_path / "b") == reference
    for seen in (*work.values(), loads):
        seen.clear()
    # as in a new process, whose seed intervals take their t quantiles from the cache
    with monkeypatch.context() as patch:
        patch.setattr(stats, "_T_QUANTILES", {})
        patch.setattr(scipy.special, "stdtrit", None)  # calling it would fail the build
        assert _build(results, tmp_path / "c") == reference
    assert work == {"records": [], "comparisons": []} and loads == []

    # a record edited by hand (content and mtime): that record is read again, the comparison
    # it belongs to recomputed, and the page shows the change
    record = next(results.glob("runs/*/*/blurred_r18/*/record.json"))
    text = json.loads(record.read_text())
    text.update(status="failed", error="CUDA out of memory")
    record.write_text(json.dumps(text))
    changed = _build(results, tmp_path / "d")
    assert work["records"] == [record.parent] and len(work["comparisons"]) == 1
    assert "CUDA out of memory" in changed[0] and changed != reference
    assert changed == _build(results, tmp_path / "e", "--no-cache")

    # other options are other comparisons
    work["comparisons"].clear()
    assert bench("leaderboard", "--results", results, "--out", tmp_path / "f", "--n-boot", "200",
                 "--no-plots") == 0  # fmt: skip
    assert len(work["comparisons"]) == 1


def test_damaged_or_unwritable_caches_change_nothing(results: Path, tmp_path: Path) -> None:
    reference = _build(results, tmp_path / "a", "--no-cache")
    _build(results, tmp_path / "b")
    folder = results / CACHE_DIR
    # valid JSON of the right format with entries of the wrong shape
    wrong = {RECORDS_FILE: [[1, 2], {"seed": "x"}], COMPARISONS_FILE: {"metrics": 3},
             QUANTILES_FILE: ["0.975", None]}  # fmt: skip
    for name, entry in wrong.items():
        stored = json.loads((folder / name).read_text())
        assert stored["entries"], name
        stored["entries"] = {k: entry for k in stored["entries"]}
        (folder / name).write_text(json.dumps(stored))
    assert _build(results, tmp_path / "c") == reference
    assert _build(results, tmp_path / "d") == reference  # and what it wrote reads back

    shutil.rmtree(folder)
    folder.write_text("a file where the cache folder would be: nothing can be written there")
    assert _build(results, tmp_path / "e") == reference


def test_problems_of_unreadable_predictions_survive_the_cache(
    results: Path, tmp_path: Path
) -> None:
    broken = next(results.glob("runs/*/*/original_r18/*/predictions.npz"))
    broken.write_bytes(b"not a zip archive")
    reference = _build(results, tmp_path / "a", "--no-cache")
    assert "unreadable predictions" in reference[0]
    assert _build(results, tmp_path / "b") == reference
    assert _build(results, tmp_path / "c") == reference  # from the comparison cache


def test_removed_runs_leave_every_cache(results: Path, tmp_path: Path) -> None:
    _build(results, tmp_path / "a")
    gone = next(results.glob("runs/*/*/blurred_r18/*"))
    shutil.rmtree(gone)
    after = _build(results, tmp_path / "b")
    assert after == _build(results, tmp_path / "c", "--no-cache")
    rel = gone.relative_to(results).as_posix()
    stored = json.loads((results / CACHE_DIR / RECORDS_FILE).read_text())["entries"]
    assert len(stored) == 5 and rel not in stored
    comparisons = json.loads((results / CACHE_DIR / COMPARISONS_FILE).read_text())["entries"]
    assert len(comparisons) == 1  # the one of six runs was dropped with its runs' change


def test_a_reading_holds_every_field_of_a_run() -> None:
    """The record cache stores READING_FIELDS, made into a Run by position: a field added to
    Run must be added there, in Run's order."""
    names = [f.name for f in dataclasses.fields(Run) if f.name not in ("run_dir", "loaded")]
    assert list(READING_FIELDS) == names


def test_other_code_reads_and_computes_everything_again(
    results: Path, tmp_path: Path, work: dict[str, list[object]], loads: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every cache is versioned by the package's source (benchmark.source_digest): arrays,
    readings and statistics of older code are never served (found by review: edits of the VOC
    evaluator or of the score arrays' code were served from the caches)."""
    reference = _build(results, tmp_path / "a")
    for seen in (*work.values(), loads):
        seen.clear()
    for module in (cache_module, score_cache_module):
        monkeypatch.setattr(module, "source_digest", lambda: "edited code")
    assert _build(results, tmp_path / "b") == reference
    assert len(work["records"]) == 6 and len(work["comparisons"]) == 1 and len(loads) == 6


def test_a_record_replaced_with_the_same_size_and_mtime_is_read_again(
    results: Path, tmp_path: Path
) -> None:
    """``cp -p`` / ``rsync -a`` keep a file's mtime: the caches also key on the change time
    and the inode, which no copy keeps."""
    _build(results, tmp_path / "a")
    record = next(results.glob("runs/*/*/blurred_r18/*/record.json"))
    before = record.stat()
    text = record.read_text().replace('"completed"', '"failed"   ')  # same size
    replacement = record.with_name("copy.json")
    replacement.write_text(text)
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, record)
    assert record.stat().st_size == before.st_size
    assert record.stat().st_mtime_ns == before.st_mtime_ns
    changed = _build(results, tmp_path / "b")
    assert "failed run" in changed[0]
    assert changed == _build(results, tmp_path / "c", "--no-cache")


def test_a_record_that_could_not_be_read_is_not_cached(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read error (permissions, a network disk) can pass without the file changing, so the
    next build reads the record again instead of repeating the problem from the cache."""
    record = next(results.glob("runs/*/*/blurred_r18/*/record.json"))
    real = os.open

    def failing(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, (str, Path)) and Path(path) == record:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", failing)
        assert "unreadable record" in _build(results, tmp_path / "a")[0]
    healed = _build(results, tmp_path / "b")
    assert "unreadable record" not in healed[0]
    assert healed == _build(results, tmp_path / "c", "--no-cache")


def test_predictions_that_are_not_an_archive_are_a_problem(
    results: Path, tmp_path: Path
) -> None:
    """A bare ``.npy`` saved as predictions.npz is listed as unreadable predictions, not a
    crash of the whole build (np.load returns an array, not an archive, for it)."""
    broken = next(results.glob("runs/*/*/original_r18/*/predictions.npz"))
    with broken.open("wb") as handle:
        np.save(handle, np.zeros(3))
    markdown, _ = _build(results, tmp_path / "a")
    assert "unreadable predictions" in markdown


def test_damaged_compressed_predictions_are_a_problem(results: Path, tmp_path: Path) -> None:
    """Runs write np.savez_compressed archives: a flipped byte in the deflate data raises
    zlib.error inside np.load, listed as unreadable predictions like any damaged file (found
    by review: it ended the whole build with exit 1)."""
    broken = next(results.glob("runs/*/*/original_r18/*/predictions.npz"))
    arrays = dict(np.load(broken))
    np.savez_compressed(broken, **arrays)
    data = bytearray(broken.read_bytes())
    start = data.find(b"logits.npy") + len("logits.npy") + 40  # inside the member's deflate data
    data[start:start + 8] = bytes(b ^ 0xFF for b in data[start:start + 8])
    broken.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        benchmark.analysis.npz.read_npz(broken)
    markdown, _ = _build(results, tmp_path / "a")
    assert "unreadable predictions" in markdown


def test_empty_predictions_file_is_a_problem(results: Path, tmp_path: Path) -> None:
    """An empty predictions.npz (a disk that filled up): np.load raises EOFError, outside the
    errors the comparisons catch; read_npz makes it a ValueError, so it is a problem row, not
    a crash of the build (found while rewriting read_npz)."""
    broken = next(results.glob("runs/*/*/original_r18/*/predictions.npz"))
    broken.write_bytes(b"")
    markdown, _ = _build(results, tmp_path / "a")
    assert "unreadable predictions" in markdown


def _runs(results: Path) -> list[Run]:
    runs, problems, _ = collect_module.collect(results, None)
    assert not problems
    return sorted(runs, key=lambda run: str(run.run_dir))


def test_repeated_ids_are_found_after_a_unique_set(results: Path) -> None:
    """The loader checks each distinct example-id set once (the runs of a task share theirs):
    a run whose ids repeat one is still caught after runs whose ids did not."""
    loader = compare_module.RunScoreLoader([])
    first, second, third = _runs(results)[:3]
    ids = np.asarray([f"test/{i}" for i in range(N)])
    assert loader._checked(first, RunScores(ids), []) is not None
    assert loader._checked(second, RunScores(ids.copy()), []) is not None  # equal: not again
    repeated = ids.copy()
    repeated[1] = repeated[0]
    assert loader._checked(third, RunScores(repeated), []) is None
    assert [p.what for p in loader.problems] == ["unreadable predictions"]
    assert "repeated example ids" in loader.problems[0].message


def test_a_run_rewritten_while_read_is_not_served_from_the_cache(results: Path) -> None:
    """put stores a run's arrays under the key get took before the files were read (no second
    stat): a run rewritten in between has a new ctime, so its entry is never served."""
    run = _runs(results)[0]
    cache = score_cache_module.ScoreArrayCache(results)
    arrays, key = cache.get(run.run_dir, run.kind)
    assert arrays is None and key is not None
    old = benchmark.analysis.classification.classification_score_arrays(run.run_dir)
    predictions = run.run_dir / "predictions.npz"
    predictions.write_bytes(predictions.read_bytes())  # same bytes, a new ctime
    cache.put(run.run_dir, run.kind, key, old)
    assert cache.save()
    again = score_cache_module.ScoreArrayCache(results)
    assert again.get(run.run_dir, run.kind)[0] is None  # stale: read from the predictions
    unchanged = _runs(results)[1]  # a run not rewritten is served
    arrays, key = cache.get(unchanged.run_dir, unchanged.kind)
    cache.put(unchanged.run_dir, unchanged.kind, key, old)
    assert cache.save()
    served = score_cache_module.ScoreArrayCache(results).get(unchanged.run_dir, unchanged.kind)[0]
    assert served is not None and served.keys() == old.keys()


def test_shared_ids_are_trusted_by_identity_and_writable_ones_are_not(results: Path) -> None:
    """A read-only id array already found unique (the one array read_npz shares between the
    runs of a task) is not checked again; a writable one may have been edited since, so it is
    checked by its bytes every time."""
    loader = compare_module.RunScoreLoader([])
    first, second, third = _runs(results)[:3]
    ids = np.asarray([f"test/{i}" for i in range(N)])
    ids.setflags(write=False)
    assert loader._checked(first, RunScores(ids), []) is not None
    assert loader._unique_arrays.get(id(ids)) is ids
    writable = np.asarray([f"other/{i}" for i in range(N)])
    assert loader._checked(second, RunScores(writable), []) is not None
    assert id(writable) not in loader._unique_arrays
    writable[1] = writable[0]
    assert loader._checked(third, RunScores(writable), []) is None
    assert "repeated example ids" in loader.problems[0].message


@pytest.mark.parametrize("recorded, agrees", [(0.5, True), (0.25, True), (0.6, False)])
def test_top1_is_checked_against_the_record_as_its_mean(
    results: Path, recorded: float, agrees: bool
) -> None:
    """The per-example 0/1 scores' mean (summed by np.add.reduce, the sum ndarray.mean uses)
    must give the record's top1."""
    run = dataclasses.replace(_runs(results)[0], metrics={"top1": recorded})
    values = np.zeros(N)
    values[: int(recorded * N) if agrees else N // 2] = 1.0
    loader = compare_module.RunScoreLoader([])
    scores = RunScores(np.arange(N), {"top1": ExampleScores(values)})
    assert (loader._checked(run, scores, ["top1"]) is not None) == agrees
    if not agrees:
        assert "the record says 0.6, its predictions give 0.5" in loader.problems[0].message


def test_the_sum_over_the_count_is_ndarray_mean() -> None:
    """What _checked relies on: for float64 vectors, np.add.reduce divided by the length is
    bit for bit ndarray.mean (the same pairwise sum, the same division)."""
    rng = np.random.default_rng(4)
    for n in (1, 7, 128, 129, 1000, 4099):
        for values in (rng.random(n), (rng.random(n) < 0.5).astype(np.float64),
                       rng.normal(size=n) * 1e6):  # fmt: skip
            assert float(np.add.reduce(values)) / len(values) == float(values.mean())


def test_runs_of_a_task_share_one_int64_target_and_its_merge_key(results: Path) -> None:
    """The targets read_npz shares between runs become one read-only int64 array, hashed once
    for mean per-class accuracy's merge key; a run's own (writable) targets are converted
    each time and nothing is kept by their identity."""
    classification = benchmark.analysis.classification
    first, second = _runs(results)[:2]
    a = classification.classification_score_arrays(first.run_dir)
    b = classification.classification_score_arrays(second.run_dir)
    c = classification.classification_score_arrays(first.run_dir)
    assert b["target"] is c["target"] and not b["target"].flags.writeable
    np.testing.assert_array_equal(a["target"], TARGET)
    assert b["target"].dtype == np.int64
    key = classification._merge_key(b["target"])
    assert key == benchmark.scores.array_key(TARGET) == classification._merge_key(c["target"])
    own = TARGET.astype(np.int32)
    converted = classification._int64_target(own)
    assert converted is not classification._int64_target(own) and converted.flags.writeable
    assert id(own) not in classification._TARGETS
    scores = classification.classification_scores_from_arrays(b, second.record)
    assert scores.metrics["mean_per_class_accuracy"].merge_key == key


def test_one_blob_per_array_object_and_per_distinct_bytes(tmp_path: Path) -> None:
    """The score cache stores an array once: by its identity (the runs of a task share their
    ids and targets), else by its dtype, shape and bytes; every run reads its arrays back."""
    shared = np.arange(6)
    shared.setflags(write=False)
    entries = {
        "runs/a": ((1,) * 8, "classification", {"target": shared, "own": np.ones(3)}),
        "runs/b": ((2,) * 8, "classification", {"target": shared, "own": np.ones(3)}),
        "runs/c": ((3,) * 8, "classification", {"target": np.arange(6), "own": np.zeros(3)}),
    }
    path = tmp_path / "scores.npz"
    path.write_bytes(score_cache_module._encode(entries))
    with np.load(path) as stored:
        blobs = json.loads(stored["index"].tobytes())["blobs"]
    assert len(blobs) == 3  # arange(6), ones(3), zeros(3)
    back = score_cache_module._read(path)
    for rel, (key, kind, arrays) in entries.items():
        assert back[rel][:2] == (key, kind)
        for name, array in arrays.items():
            np.testing.assert_array_equal(back[rel][2][name], array)


def test_stat_key_is_the_record_and_predictions_identity(results: Path) -> None:
    run_dir = _runs(results)[0].run_dir
    record, predictions = run_dir / "record.json", run_dir / "predictions.npz"
    expected = score_cache_module.file_stat(str(record)) + score_cache_module.file_stat(
        str(predictions))
    assert score_cache_module.stat_key(run_dir) == expected
    assert score_cache_module.stat_key(str(run_dir)) == expected
    predictions.unlink()
    assert score_cache_module.stat_key(run_dir) is None


def test_per_class_scores_are_made_when_used_and_equal_the_kept_ones(results: Path) -> None:
    """Per-class accuracy's [N, C] scores are not kept per run (MadeExampleScores): each use
    makes the same values per_class_accuracy_scores gives, and its resamples are the same."""
    run = _runs(results)[0]
    classification = benchmark.analysis.classification
    arrays = classification.classification_score_arrays(run.run_dir)
    scored = classification.classification_scores_from_arrays(arrays, run.record).metrics[
        "per_class_accuracy"]
    assert isinstance(scored, benchmark.scores.MadeExampleScores)
    kept = benchmark.scores.per_class_accuracy_scores(
        arrays["correct"].astype(np.float64), arrays["target"], len(CLASSES))
    np.testing.assert_array_equal(scored.values, kept)
    assert scored.values is not scored.values  # made again, not held
    assert scored.columns == tuple(CLASSES)
    idx = np.random.default_rng(5).integers(0, N, size=(7, N))
    np.testing.assert_array_equal(scored.compute(idx),
                                  ExampleScores(kept, tuple(CLASSES)).compute(idx))  # fmt: skip
    with pytest.raises(ValueError, match="column names"):
        benchmark.scores.MadeExampleScores(lambda: kept, (N, 5), ("a",))


@pytest.mark.parametrize("bad", ["too large", "too small", "short correct"])
def test_per_class_scores_that_cannot_be_made_fail_while_the_run_is_read(bad: str) -> None:
    """Targets out of range or per-example arrays of another length raise numpy's own error
    when the run's scores are built (a problem row), not later in a comparison."""
    target = np.arange(10) % 5
    correct = np.ones(10, bool)
    if bad == "too large":
        target[3] = 5
    elif bad == "too small":
        target[3] = -6
    else:
        correct = correct[:4]
    arrays = {"example_id": np.arange(10), "target": target, "correct": correct,
              "num_classes": np.asarray(5)}  # fmt: skip
    record = benchmark.run_record.RunRecord.model_construct(class_names=CLASSES, metrics={})
    with pytest.raises((IndexError, ValueError)) as info:
        benchmark.scores.per_class_accuracy_scores(correct.astype(np.float64), target, 5)
    with pytest.raises(info.type, match=re.escape(str(info.value))):
        benchmark.analysis.classification.classification_scores_from_arrays(arrays, record)
    target[3] = -5  # numpy's negative index: the last class, as before
    if bad != "short correct":
        scores = benchmark.analysis.classification.classification_scores_from_arrays(arrays,
                                                                                     record)
        np.testing.assert_array_equal(
            scores.metrics["per_class_accuracy"].values,
            benchmark.scores.per_class_accuracy_scores(correct.astype(np.float64), target, 5))
