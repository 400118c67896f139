"""A run's life as a user meets it: two starts of the same run, Ctrl-C, a bad Trainer option,
and a failure after training started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import bench, read_json, run_dirs, wait_for

from benchmark.records import RunKey, RunStore

CPU = ("--subset", "tiny", "--accelerator", "cpu", "--num-workers", "0")


def _start(args: tuple, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "benchmark.cli", *map(str, args)],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,  # noqa: SIM115
    )  # fmt: skip


def _holders(results: Path) -> list[Path]:
    return list((results / "runs" / ".locks").glob("*.json"))


def test_staggered_double_start_gives_one_record_and_one_line(tmp_path, cifar_root,
                                                               paper_resnet18,
                                                               capsys) -> None:  # fmt: skip
    """The same run started twice, the second once the first holds its lock: the second says in
    one line where the run is in progress and exits 2; the first finishes, one record. Two
    other runs (other seeds) started at the same time into the same folder both finish."""
    results = tmp_path / "results"
    base = ("run", "--task", "cifar10", *CPU, "--backbone", paper_resnet18,
            "--data-root", cifar_root, "--results", results)  # fmt: skip
    first = _start((*base, "--max-steps", "40", "--seed", "0"), tmp_path / "first.log")
    others = [_start((*base, "--max-steps", "2", "--seed", str(s)), tmp_path / f"s{s}.log")
              for s in (1, 2)]  # fmt: skip
    wait_for(lambda: any(str(first.pid) in h.read_text() for h in _holders(results)), first)
    # the second start, in this process (its imports are done, so it reaches the lock at once)
    assert bench(*base, "--max-steps", "40", "--seed", "0") == 2
    assert first.poll() is None, "the first run ended before the second started: no overlap"
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "is in progress elsewhere (host " in lines[0] and f"pid {first.pid}, since " in lines[0]
    assert first.wait(timeout=300) == 0
    assert all(p.wait(timeout=300) == 0 for p in others)
    records = [read_json(d / "record.json") for d in run_dirs(results)]
    assert sorted(r["seed"] for r in records) == [0, 1, 2]
    assert all(r["status"] == "completed" for r in records)
    assert not _holders(results)  # released
    assert "Traceback" not in (tmp_path / "first.log").read_text()


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path) -> None:
    """kill -9 while holding the lock: the kernel drops a flock with its process, so the next
    run takes the lock at once."""
    store = RunStore(tmp_path)
    key = RunKey("cifar10", "finetune", "r18", 0, "ab" * 32)
    code = (
        "import sys, time; from benchmark.records import RunKey, RunStore\n"
        f"store = RunStore({str(tmp_path)!r})\n"
        f"with store.lock(RunKey('cifar10', 'finetune', 'r18', 0, {'ab' * 32!r})):\n"
        "    print('held', flush=True); time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    from benchmark.records import RunInProgress

    with pytest.raises(RunInProgress, match=f"pid {holder.pid}"), store.lock(key):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    t0 = time.monotonic()
    with store.lock(key):
        pass
    assert time.monotonic() - t0 < 5


def test_ctrl_c_keeps_a_checkpoint_and_the_rerun_resumes(tmp_path, cifar_root,
                                                         paper_resnet18) -> None:  # fmt: skip
    results = tmp_path / "results"
    args = ("run", "--task", "cifar10", *CPU, "--backbone", paper_resnet18, "--data-root",
            cifar_root, "--results", results, "--max-steps", "30")  # fmt: skip
    log = tmp_path / "run.log"
    proc = _start(args, log)
    wait_for(lambda: "step 3 " in log.read_text(), proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    out = log.read_text()
    assert "Traceback" not in out
    (line,) = [x for x in out.splitlines() if x.startswith("bench: ")]
    assert line.startswith("bench: interrupted: the checkpoint at step ")
    step = int(line.split("at step ")[1].split()[0])
    assert 3 <= step < 30 and line.endswith(f"it resumes from step {step}.")
    assert not run_dirs(results)  # no record for an interrupted run
    assert bench(*args) == 0  # the same command
    (run_dir,) = run_dirs(results)
    training = read_json(run_dir / "record.json")["training"]
    assert training["resumed_from_step"] == step and training["steps"] == 30
    assert len(training["losses"]) == 30 - step  # no step trained twice


def test_ctrl_c_before_training_says_nothing_was_kept(tmp_path, cifar_root, paper_resnet18,
                                                      monkeypatch, capsys) -> None:  # fmt: skip
    from benchmark.data.datamodule import TaskDataModule

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(TaskDataModule, "setup", interrupted)
    results = tmp_path / "results"
    assert bench("run", "--task", "cifar10", *CPU, "--backbone", paper_resnet18, "--data-root",
                 cifar_root, "--results", results, "--max-steps", "1") == 130  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bench: interrupted: nothing was written"]
    assert not results.exists()


@pytest.mark.parametrize(
    "option",
    [("--precision", "bogus"), ("--accelerator", "tpu"), ("--strategy", "nonsense"),
     ("--devices", "-3")],
)  # fmt: skip
def test_bad_trainer_option_is_one_line_and_writes_nothing(tmp_path, cifar_root, paper_resnet18,
                                                           capsys, option) -> None:  # fmt: skip
    results = tmp_path / "results"
    assert bench("run", "--task", "cifar10", "--subset", "tiny", "--num-workers", "0",
                 "--backbone", paper_resnet18, "--data-root", cifar_root, "--results", results,
                 "--max-steps", "1", *option) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: the Trainer options are not usable")
    assert f"{option[0]} {option[1]}" in err[0]
    assert not results.exists()


def test_a_mistake_found_during_training_leaves_a_failed_record(tmp_path, cifar_root,
                                                                paper_resnet18, monkeypatch,
                                                                capsys) -> None:  # fmt: skip
    """Once training has started, any failure (ours included) is recorded as failed, so the
    leaderboard lists it and the next run of the key replaces it."""
    from benchmark.errors import BenchError
    from benchmark.models.finetune import FineTuneModule

    def broken(self, *_a, **_k):
        raise BenchError("a broken batch in the data (simulated)")

    monkeypatch.setattr(FineTuneModule, "training_step", broken)
    results = tmp_path / "results"
    args = ("run", "--task", "cifar10", *CPU, "--backbone", paper_resnet18, "--data-root",
            cifar_root, "--results", results, "--max-steps", "1")  # fmt: skip
    assert bench(*args) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "bench: error: a broken batch in the data (simulated)"
    ]
    (run_dir,) = run_dirs(results)
    record = read_json(run_dir / "record.json")
    assert record["status"] == "failed"
    assert record["error"] == "BenchError: a broken batch in the data (simulated)"
    monkeypatch.undo()
    assert bench(*args) == 0
    assert read_json(run_dir / "record.json")["status"] == "completed"


def test_a_full_disk_is_exit_1_in_one_line_and_debug_shows_the_traceback(
    tmp_path, cifar_root, paper_resnet18, monkeypatch, capsys
) -> None:
    from benchmark import records

    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(records.RunStore, "write", full)
    args = ("run", "--task", "cifar10", *CPU, "--backbone", paper_resnet18, "--data-root",
            cifar_root, "--results", tmp_path / "results", "--max-steps", "1")  # fmt: skip
    assert bench(*args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("bench: error: OSError: [Errno 28] No space left on device")
    monkeypatch.setenv("BENCH_DEBUG", "1")
    assert bench(*args) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "No space left on device" in err
