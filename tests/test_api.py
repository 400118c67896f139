"""The Python API: one real (tiny) run through benchmark.api.run, and an import that stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.errors import BenchError


def test_import_loads_neither_torch_nor_lightning() -> None:
    probe = ("import sys, benchmark, benchmark.api; "
             "print(sorted(m for m in ('torch', 'pytorch_lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    assert out == "[]"


def test_leaderboard_module_is_not_shadowed() -> None:
    import benchmark.api
    from benchmark import leaderboard

    assert hasattr(leaderboard, "build") and callable(benchmark.api.leaderboard)
    assert benchmark.api.leaderboard is not leaderboard


def test_run_returns_the_record_and_skips_it_the_second_time(
    tmp_path: Path, cifar_root: Path, paper_resnet18: Path
) -> None:
    from benchmark.api import leaderboard, run

    options = dict(subset="tiny", max_steps=1, accelerator="cpu", num_workers=0,
                   data_root=str(cifar_root), results=str(tmp_path / "results"),
                   overrides={"optim.lr": 0.02})  # fmt: skip
    outcome = run("cifar10", str(paper_resnet18), **options)
    record = outcome.record
    assert not outcome.skipped and record["status"] == "completed"
    assert record["task"] == "cifar10" and record["backbone"]["arch"] == "resnet18"
    assert record["training"]["steps"] == 1 and len(record["training"]["losses"]) == 1
    assert record["config"]["task"]["optim"]["lr"] == 0.02
    assert 0.0 <= record["metrics"]["top1"] <= 1.0
    assert outcome.run_dir.relative_to(tmp_path / "results" / "runs").parts[:2] == (
        "cifar10", "finetune")  # fmt: skip
    assert (outcome.run_dir / "record.json").is_file()

    again = run("cifar10", str(paper_resnet18), **options)
    assert again.skipped and again.run_dir == outcome.run_dir

    board = leaderboard(tmp_path / "results", write=False, plots=False, cache=False)
    assert board.records_read == 1


def test_unknown_option_and_unknown_task() -> None:
    from benchmark.api import run

    with pytest.raises(TypeError, match="max_step"):
        run("cifar10", "x", max_step=1)
    with pytest.raises(BenchError, match="unknown task 'cifar1'"):
        run("cifar1", "x")


def test_sweep_dry_run_plans_every_run_and_runs_nothing(
    tmp_path: Path, cifar_root: Path, paper_resnet18: Path
) -> None:
    from benchmark.api import sweep

    planned = sweep([str(paper_resnet18)], "cifar10", seeds="0-1", dry_run=True, subset="tiny",
                    data_root=cifar_root, results=tmp_path / "results")  # fmt: skip
    assert [(i.request.seed, i.status) for i in planned.planned] == [(0, "to run"), (1, "to run")]
    assert not planned.result.completed and not (tmp_path / "results" / "runs").exists()
