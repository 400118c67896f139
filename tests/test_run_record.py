"""The run record is one typed model (RunRecord) and the results folder one layout (RunLayout):
records round-trip, older schemas read the same, a broken record is one problem line, and no
other module spells the layout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import bench, read_json
from synthetic_records import logits_with_correct, write_classification_run

import benchmark
from benchmark import leaderboard
from benchmark.layout import RunLayout
from benchmark.records import RunKey, RunStore
from benchmark.run_record import SCHEMA_VERSION, RecordError, RunRecord, read_record

CLASSES = ["cat", "dog", "fox"]


def _pair(results: Path, seeds: int = 2) -> list[Path]:
    """An original/blurred resnet18 pair of completed classification runs."""
    rng = np.random.default_rng(0)
    target = np.repeat(np.arange(3), 20)
    out = []
    for seed in range(seeds):
        for name, data in (("original_r18", "original"), ("blurred_r18", "blurred")):
            correct = rng.random(len(target)) < 0.7
            logits = logits_with_correct(target, correct, 3, rng)
            out.append(write_classification_run(results, name, "resnet18", data, seed, logits,
                                                target, CLASSES))  # fmt: skip
    return out


def _as_schema_1(run_dir: Path) -> dict:
    """Rewrite a record as the first records were written (git 914a671): schema 1, no request,
    no class names (only the per-class metric names them), training without a resume step."""
    path = run_dir / "record.json"
    record = read_json(path)
    record["schema"] = 1
    record.pop("class_names", None)
    record.pop("request", None)
    record["training"] = {"steps": 5, "epochs_completed": 1, "losses": [2.5, 2.25]}
    path.write_text(json.dumps(record, indent=1))
    return record


def test_a_record_round_trips_with_unknown_fields_kept(tmp_path: Path) -> None:
    run_dir = _pair(tmp_path, seeds=1)[0]
    path = run_dir / "record.json"
    raw = read_json(path)
    # a newer version's section and a source-specific backbone field survive a read and write
    raw["segmentation"] = {"decoder": "fpn", "c_grid": [0.1, 1.0]}
    raw["backbone"]["checkpoint_meta"] = {"epoch": 90}
    path.write_text(json.dumps(raw, indent=1) + "\n")
    record = read_record(run_dir)
    assert record.backbone.pretraining_data == "original" and record.seed == 0
    assert record.as_dict() == raw
    assert record.to_json() == path.read_text()
    assert list(record.as_dict()) == list(raw)  # same keys in the same order


def test_a_schema_1_record_is_migrated_and_reads_the_same(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run_dirs = _pair(results)
    before = leaderboard.build(results, n_boot=200)
    old = _as_schema_1(run_dirs[0])
    for run_dir in run_dirs[1:]:
        _as_schema_1(run_dir)
    record = read_record(run_dirs[0])
    assert record.schema_version == SCHEMA_VERSION == 2
    assert record.class_names == CLASSES  # from the per-class metric, in its order
    assert record.config == old["config"]  # the key's contents as written: nothing invented
    assert record.request is None and record.training.resumed_from_step is None
    after = leaderboard.build(results, n_boot=200)
    assert not after.problems
    (was,), (now,) = before.comparisons, after.comparisons
    assert [m.metric for m in now.metrics] == [m.metric for m in was.metrics]
    for a, b in zip(was.metrics, now.metrics, strict=True):
        assert (b.paired.delta, b.paired.low, b.paired.high) == (
            a.paired.delta, a.paired.low, a.paired.high)  # fmt: skip


def test_a_record_of_a_newer_schema_is_named_not_guessed(tmp_path: Path) -> None:
    run_dir = _pair(tmp_path, seeds=1)[0]
    raw = read_json(run_dir / "record.json")
    raw["schema"] = SCHEMA_VERSION + 1
    (run_dir / "record.json").write_text(json.dumps(raw))
    with pytest.raises(RecordError, match="upgrade blurbench"):
        read_record(run_dir)


def test_a_broken_record_is_one_problem_line_and_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    results = tmp_path / "results"
    run_dirs = _pair(results, seeds=1)
    victim = run_dirs[1]
    raw = read_json(victim / "record.json")
    raw["seed"] = "0"  # a string where the seed is a number
    del raw["backbone"]["arch"]
    (victim / "record.json").write_text(json.dumps(raw))

    board = leaderboard.build(results, n_boot=200)
    (problem,) = [p for p in board.problems if p.what == "malformed record"]
    assert problem.path == victim and problem.task == "cifar10"
    assert "\n" not in problem.message
    for field in ("seed", "backbone.arch"):
        assert field in problem.message, problem.message

    out = tmp_path / "site"
    assert bench("leaderboard", "--results", results, "--out", out, "--no-plots") == 0
    lines = [line for line in (out / "leaderboard.md").read_text().splitlines()
             if "malformed record" in line]  # fmt: skip
    assert len(lines) == 1 and "backbone.arch" in lines[0]

    # the same record given to `bench run --config`: one line, exit 2, no traceback
    raw["request"] = {"task": "cifar10", "backbone": "blurred_r18"}
    (victim / "record.json").write_text(json.dumps(raw))
    capsys.readouterr()
    assert bench("run", "--config", victim) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "malformed record" in err and "backbone.arch" in err


def test_a_completed_record_without_results_is_malformed(tmp_path: Path) -> None:
    run_dir = _pair(tmp_path, seeds=1)[0]
    raw = read_json(run_dir / "record.json")
    del raw["primary_metric"]
    (run_dir / "record.json").write_text(json.dumps(raw))
    with pytest.raises(RecordError, match="a completed run needs primary_metric") as err:
        read_record(run_dir)
    assert err.value.what == "malformed record"


def test_a_record_that_is_not_an_object_is_unreadable(tmp_path: Path) -> None:
    run_dir = _pair(tmp_path, seeds=1)[0]
    (run_dir / "record.json").write_text("[1, 2]")
    with pytest.raises(RecordError) as err:
        read_record(run_dir)
    assert err.value.what == "unreadable record"
    found = dict(RunStore(tmp_path).records())
    assert found[run_dir].what == "unreadable record"


def test_the_layout_is_spelled_in_one_module() -> None:
    """Only benchmark/layout.py names the run folder's parts; everything else asks RunLayout."""
    package = Path(benchmark.__file__).parent
    spelled = re.compile(r"last\.ckpt|\.staging\b|\.locks\b|\.work\b|/ [\"']runs[\"']|[\"']runs/")
    found = sorted(
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if spelled.search(line) and path.name != "layout.py"
    )
    assert found == []


def test_the_layout_names_what_the_store_writes(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    key = RunKey("cifar10", "finetune", "original_r18", 3, "ab" * 32)
    assert layout.run_dir(key) == tmp_path / "runs/cifar10/finetune/original_r18/seed3-abababababab"
    assert layout.last_checkpoint(key).is_relative_to(layout.work_dir(key))
    assert layout.work_folders() == []
    layout.last_checkpoint(key).parent.mkdir(parents=True)
    layout.last_checkpoint(key).write_bytes(b"x")
    (work,) = layout.work_folders()
    assert (work.task, work.hash12, work.seed, work.has_checkpoint) == (
        "cifar10", "abababababab", "3", True)  # fmt: skip
    with RunStore(tmp_path).lock(key):
        assert layout.lock_file(key).is_file() and layout.lock_file(key).parent == layout.locks
    record = RunRecord.model_validate({
        "task": "cifar10", "kind": "classification", "protocol": "finetune", "seed": 3,
        "backbone": {"name": "original_r18", "arch": "resnet18"}, "config": {},
        "status": "failed", "error": "boom"})  # fmt: skip
    written = RunStore(tmp_path).write(key, record, lambda _d: None)
    assert written == layout.run_dir(key) and layout.record_files() == [written / "record.json"]
    assert layout.finished_run_dirs(work) == [written]
    assert read_json(written / "record.json") == {"schema": SCHEMA_VERSION, **record.as_dict()}
    assert layout.incomplete_writes() == []


def test_the_record_and_the_layout_import_without_torch() -> None:
    """The leaderboard reads records through these: they must not pull in the training stack."""
    import subprocess
    import sys

    code = ("import sys, benchmark.layout, benchmark.run_record, benchmark.records, "
            "benchmark.pretraining; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'torchvision', 'pytorch_lightning', 'lightning'}))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr
