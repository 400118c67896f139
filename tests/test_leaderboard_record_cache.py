"""Reading records fast (benchmark.leaderboard.collect, the record cache, the run listing) without
changing what is read: a hand-edited or damaged cache entry is read again, a group of runs keeps
its own task config, and the listing finds what glob finds."""

from __future__ import annotations

import gc
import importlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import bench
from synthetic_records import logits_with_correct, write_classification_run

from benchmark.layout import RECORD_FILE, RunLayout
from benchmark.leaderboard.cache import RECORDS_FILE, RecordCache
from benchmark.leaderboard.collect import PER_RUN_FIELDS, READING_FIELDS, collect
from benchmark.run_record import RecordError, read_record
from benchmark.score_cache import CACHE_DIR

collect_module = importlib.import_module("benchmark.leaderboard.collect")
CLASSES = [f"c{i}" for i in range(4)]
TARGET = np.repeat(np.arange(4), 10)


def _run(results: Path, name: str, data: str, seed: int, task: str = "cifar10",
         config_extra: dict[str, object] | None = None) -> Path:  # fmt: skip
    rng = np.random.default_rng(seed)
    correct = rng.random(TARGET.size) < 0.7
    return write_classification_run(results, name, "resnet18", data, seed,
                                    logits_with_correct(TARGET, correct, 4, rng), TARGET, CLASSES,
                                    task=task, config_extra=config_extra)  # fmt: skip


@pytest.fixture
def results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    for seed in range(2):
        _run(results, "original_r18", "original", seed)
        _run(results, "blurred_r18", "blurred", seed)
    return results


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every run folder whose record the leaderboard validates."""
    seen: list[Path] = []
    real = collect_module.read_record

    def counting(run_dir: Path | str) -> object:
        seen.append(Path(run_dir))
        return real(run_dir)

    monkeypatch.setattr(collect_module, "read_record", counting)
    return seen


def _build(results: Path, out: Path, *extra: str) -> tuple[str, bytes]:
    assert bench("leaderboard", "--results", results, "--out", out, "--n-boot", "200",
                 "--no-plots", *extra) == 0  # fmt: skip
    markdown = re.sub(rb"Generated \S+ from", b"Generated TIME from",
                      (out / "leaderboard.md").read_bytes())  # fmt: skip
    return markdown.decode(), (out / "leaderboard.csv").read_bytes()


def _edit_cache(results: Path, edit: object) -> None:
    path = results / CACHE_DIR / RECORDS_FILE
    stored = json.loads(path.read_text())
    edit(stored)  # type: ignore[operator]
    path.write_text(json.dumps(stored))


def _first_run(stored: dict[str, object]) -> list[object]:
    entries = stored["entries"]
    assert isinstance(entries, dict)
    return entries[sorted(entries)[0]]  # type: ignore[no-any-return]


@pytest.mark.parametrize("damage", [
    "seed as text", "seed as bool", "metrics as a list", "ended as a number", "group missing",
    "group too short", "task config as text", "problem of the wrong shape", "stat of another file",
])  # fmt: skip
def test_a_hand_edited_cache_entry_is_read_again(
    results: Path, tmp_path: Path, reads: list[Path], damage: str
) -> None:
    """An entry of the right length but wrong types (or a group it names that is missing or
    damaged) is never made into a run: that record is read again and the page is unchanged."""
    reference = _build(results, tmp_path / "a", "--no-cache")
    _build(results, tmp_path / "b")
    seed, ended, metrics = (5 + PER_RUN_FIELDS.index(n) for n in ("seed", "ended", "metrics"))
    common = [n for n in READING_FIELDS if n not in PER_RUN_FIELDS]

    def edit(stored: dict[str, object]) -> None:
        entry = _first_run(stored)
        shared = stored["shared"]
        assert isinstance(shared, dict)
        if damage == "seed as text":
            entry[seed] = "0"
        elif damage == "seed as bool":
            entry[seed] = False
        elif damage == "metrics as a list":
            entry[metrics] = [0.5]
        elif damage == "ended as a number":
            entry[ended] = 3
        elif damage == "group missing":
            shared.pop(entry[4])  # type: ignore[arg-type]
        elif damage == "group too short":
            shared[entry[4]] = shared[entry[4]][:-1]  # type: ignore[index]
        elif damage == "task config as text":
            shared[entry[4]][common.index("task_config")] = "cifar10"  # type: ignore[index]
        elif damage == "problem of the wrong shape":
            entry[4:] = [{"problem": ["failed run", 3, ""]}]
        elif damage == "stat of another file":
            entry[3] += 1  # type: ignore[operator]

    _edit_cache(results, edit)
    reads.clear()
    assert _build(results, tmp_path / "c") == reference
    # the shared group is stored once per backbone and setting: damaging it re-reads its runs
    expected = 2 if damage.startswith(("group", "task config")) else 1
    assert len(reads) == expected
    reads.clear()
    assert _build(results, tmp_path / "d") == reference  # and what it wrote reads back
    assert reads == []


def test_each_run_of_a_group_shares_one_stored_copy_of_its_common_fields(
    results: Path, tmp_path: Path
) -> None:
    _build(results, tmp_path / "a")
    stored = json.loads((results / CACHE_DIR / RECORDS_FILE).read_text())
    assert len(stored["entries"]) == 4 and len(stored["shared"]) == 2  # two backbones
    for entry in stored["entries"].values():
        assert len(entry) == 5 + len(PER_RUN_FIELDS) and entry[4] in stored["shared"]


def test_runs_alike_but_for_their_task_config_keep_their_own(tmp_path: Path) -> None:
    """Two runs whose other fields all agree (their setting id too, here by hand) but whose
    task configs differ are two groups: a run is never given another run's task config."""
    results = tmp_path / "results"
    folders = [_run(results, "original_r18", "original", 0, config_extra={"note": note})
               for note in ("first", "second")]  # fmt: skip
    cache = RecordCache(results, READING_FIELDS, PER_RUN_FIELDS)
    runs, problems, _ = collect(results, cache)
    assert problems == [] and len(runs) == 2
    for run in runs:
        run.setting = "same"  # as if the setting ids collided
        values = [getattr(run, name) for name in READING_FIELDS]
        cache.put(os.fspath(run.run_dir), _stat(run.run_dir), values)
    assert cache.save()

    again = RecordCache(results, READING_FIELDS, PER_RUN_FIELDS)
    configs = []
    for folder in folders:
        reading = again.get(os.fspath(folder), _stat(folder))
        assert isinstance(reading, list)
        configs.append(reading[READING_FIELDS.index("task_config")]["note"])
    assert configs == ["first", "second"] and again.hits == 2


def test_setting_ids_remembered_by_repr_tell_json_values_apart() -> None:
    """1, 1.0 and True are equal in Python but not in JSON: each has its own setting id, the
    one the canonical JSON gives with nothing remembered."""
    configs = [{"task": {"name": "t", "lr": value}, "subset": "full", "backbone": {"name": b}}
               for value in (1, 1.0, True, 1) for b in ("x", "y")]  # fmt: skip
    known: dict[str, str] = {}
    ids = [collect_module._setting_id(config, known) for config in configs]
    assert ids == [collect_module._setting_id(config, {}) for config in configs]
    assert len(set(ids)) == 3 and ids[0] == ids[1] == ids[6] and len(known) == 3


def _stat(run_dir: Path) -> tuple[int, int, int, int]:
    st = os.stat(run_dir / RECORD_FILE)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_build_pauses_the_cycle_collector_and_leaves_it_as_it_found_it(
    results: Path, tmp_path: Path, enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from benchmark import leaderboard

    build_module = importlib.import_module("benchmark.leaderboard.build")
    seen: list[bool] = []
    real_collect = build_module.collect

    def collecting(*args: object, **kwargs: object) -> object:
        seen.append(gc.isenabled())
        return real_collect(*args, **kwargs)

    monkeypatch.setattr(build_module, "collect", collecting)
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        board = leaderboard.build(results, plots=False)
        assert gc.isenabled() == enabled
        leaderboard.write(board, tmp_path / "site")
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert len(board.settings) == 1 and seen == [False]  # paused while the records were read


def test_the_listing_finds_what_glob_finds_with_the_stat_of_each_record(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for seed in range(3):
        _run(results, "original_r18", "original", seed, task="b")
        made = _run(results, "other_r18", "original", seed, task="a")
    runs = RunLayout(results).runs
    made.parent.rename(made.parent.with_name(".hidden"))  # glob's "*" finds hidden names too
    (runs / "a" / "finetune" / "x" / "no-record").mkdir(parents=True)
    (runs / "a" / "finetune" / "x" / "a-folder" / RECORD_FILE).mkdir(parents=True)
    (runs / "stray.json").write_text("{}")

    listed = RunLayout(results).record_folders()
    globbed = sorted(runs.glob(f"*/*/*/*/{RECORD_FILE}"))
    globbed = [p for p in globbed if p.is_file()]
    assert [Path(folder) / RECORD_FILE for folder, _ in listed] == globbed and len(globbed) == 6
    assert all(os.stat(Path(folder) / RECORD_FILE) == st for folder, st in listed)
    assert RunLayout(results).record_files() == globbed
    assert RunLayout(tmp_path / "nothing").record_folders() == []


def test_a_record_larger_than_one_read_is_read_whole(tmp_path: Path) -> None:
    folder = _run(tmp_path / "results", "original_r18", "original", 0)
    record = json.loads((folder / RECORD_FILE).read_text())
    record["notes"] = "x" * 300_000  # an extra key: kept as written
    (folder / RECORD_FILE).write_text(json.dumps(record))
    assert read_record(os.fspath(folder)).model_extra == {"notes": "x" * 300_000}


def test_a_string_folder_without_a_record_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(RecordError) as err:
        read_record(os.fspath(tmp_path))
    assert err.value.io_error and err.value.where == tmp_path / RECORD_FILE
    assert str(err.value).startswith(f"{tmp_path / RECORD_FILE}: unreadable record: ")


def test_a_record_with_a_surrogate_escaped_text_is_served_from_the_cache(
    tmp_path: Path, reads: list[Path]
) -> None:
    """A task config holding a path that is not UTF-8 (Python keeps its bytes as lone
    surrogates, which JSON writes as \\udcXX escapes): the record cache must still read back
    (found by review: a stricter JSON parser refused the whole file, so every build was cold)."""
    results = tmp_path / "results"
    for name, data in (("original_r18", "original"), ("blurred_r18", "blurred")):
        _run(results, name, data, 0, config_extra={"root": "/data/caf\udce9"})
    first = _build(results, tmp_path / "a")
    assert len(reads) == 2
    reads.clear()
    assert _build(results, tmp_path / "b") == first
    assert reads == []  # every record from the cache


def test_a_record_kept_for_the_comparisons_holds_no_training_history(tmp_path: Path) -> None:
    """A run keeps its record for the comparisons (class names, metrics), not its loss per
    step, which no leaderboard step reads and which was most of a cold build's memory for
    records), whether it was read while collecting or later; the file is untouched."""
    folder = _run(tmp_path / "results", "original_r18", "original", 0)
    record = json.loads((folder / RECORD_FILE).read_text())
    record["training"] = {"steps": 3, "epochs_completed": 1, "losses": [0.5, 0.4, 0.3]}
    (folder / RECORD_FILE).write_text(json.dumps(record))
    readings = RecordCache(tmp_path / "results", READING_FIELDS, PER_RUN_FIELDS)
    (run,), problems, _ = collect(tmp_path / "results", readings)
    assert problems == [] and run.loaded is not None and run.loaded.training is None
    assert run.loaded.class_names == CLASSES and run.loaded.metrics == record["metrics"]
    readings.save()
    (cached,), _, _ = collect(tmp_path / "results", RecordCache(tmp_path / "results",
                                                                READING_FIELDS, PER_RUN_FIELDS))
    assert cached.loaded is None  # from the cache: read on first use, kept the same way
    assert cached.record.training is None and cached.record.class_names == CLASSES
    training = read_record(folder).training
    assert training is not None and training.losses == [0.5, 0.4, 0.3]
