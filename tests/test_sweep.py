"""`bench sweep`: plans backbones x tasks x seeds, skips what is done, resumes what was
interrupted (also after kill -9), never duplicates a run, and launches through submitit."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from helpers import bench, bench_subprocess, read_json, run_dirs, wait_for

from benchmark.checkpoints import save_imagenet_example_checkpoint
from benchmark.data.sun397 import write_sun397_fixture

FAST = ("--subset", "tiny", "--accelerator", "cpu", "--num-workers", "0")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private backbone registry: two ResNet-18s in the paper's checkpoint layout, one
    'trained on' original and one on blurred images, so pairing is by the registry."""
    folder = tmp_path_factory.mktemp("registry")
    for seed, data in enumerate(("original", "blurred")):
        torch.manual_seed(seed)
        save_imagenet_example_checkpoint(folder / f"resnet18_{data}_ILSVRC.pth", "resnet18",
                                         torchvision.models.resnet18().state_dict())  # fmt: skip
    (folder / "backbones.yaml").write_text(
        "backbones:\n"
        "  t_original_r18: {arch: resnet18, data: original, source: file,"
        " path: resnet18_original_ILSVRC.pth}\n"
        "  t_blurred_r18: {arch: resnet18, data: blurred, source: file,"
        " path: resnet18_blurred_ILSVRC.pth}\n"
    )
    return folder / "backbones.yaml"


@pytest.fixture(scope="module")
def data_root(cifar_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CIFAR-10 and SUN397 fixtures side by side under one data root."""
    root = tmp_path_factory.mktemp("sweep-data")
    (root / "cifar-10-batches-py").symlink_to(cifar_root / "cifar-10-batches-py")
    write_sun397_fixture(root)
    return root


@pytest.fixture
def env(registry: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("BENCH_BACKBONES_FILE", str(registry))
    return {"BENCH_BACKBONES_FILE": str(registry), "PYTHONUNBUFFERED": "1"}


def test_sweep_file_dry_run_then_run_then_skip(tmp_path, data_root, env, capsys) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "backbones: [t_original_r18, t_blurred_r18]\n"
        "tasks: [cifar10]\n"
        "seeds: 0-1\n"
        "subset: tiny\n"
        "max_steps: 1\n"
        "accelerator: cpu\n"
        "num_workers: 0\n"
        "set: {optim.lr: 0.05}\n"
    )
    args = ("sweep", "--file", sweep, "--data-root", data_root, "--results", tmp_path / "r")
    assert bench(*args, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "= 4 runs: 0 done, 0 interrupted (resume from their checkpoint), 4 to run" in out
    assert out.count("[to run]") == 4 and not (tmp_path / "r").exists()

    assert bench(*args, "--seeds", "1") == 0  # the command line overrides the file
    out = capsys.readouterr().out
    assert "[1/2] cifar10 × t_original_r18 × seed 1: running" in out
    assert "[2/2] cifar10 × t_blurred_r18 × seed 1: top1 = " in out and "2/2 done, 0 left" in out
    assert "sweep: 2/2 runs done, 0 failed" in out
    records = [read_json(d / "record.json") for d in run_dirs(tmp_path / "r")]
    assert {(r["backbone"]["name"], r["seed"]) for r in records} == {
        ("t_original_r18", 1), ("t_blurred_r18", 1)
    }  # fmt: skip
    assert {r["config"]["task"]["optim"]["lr"] for r in records} == {0.05}
    assert {r["backbone"]["pretraining_data"] for r in records} == {"original", "blurred"}

    assert bench(*args, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "4 runs: 2 done, 0 interrupted (resume from their checkpoint), 2 to run" in out
    assert bench(*args, "--seeds", "1") == 0
    assert "sweep: 2/2 runs done, 0 failed" in capsys.readouterr().out
    assert len(run_dirs(tmp_path / "r")) == 2  # nothing ran twice


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, data_root, env, monkeypatch,
                                                     capsys) -> None:  # fmt: skip
    """A run stopped after training but before its record resumes from Lightning's last
    checkpoint instead of training again."""
    from benchmark import records

    args = ("sweep", "--backbones", "t_original_r18", "--tasks", "cifar10", *FAST,
            "--max-steps", "2", "--checkpoint-every-n-steps", "1", "--data-root", data_root,
            "--results", tmp_path)  # fmt: skip

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(records.RunStore, "write", interrupted)
        assert bench(*args) == 130  # KeyboardInterrupt: the CLI's exit code
    (work,) = (tmp_path / "runs" / ".work").iterdir()
    assert (work / "checkpoints" / "last.ckpt").is_file() and not run_dirs(tmp_path)
    assert bench(*args, "--dry-run") == 0
    assert "0 done, 1 interrupted" in capsys.readouterr().out
    assert bench(*args) == 0
    (run_dir,) = run_dirs(tmp_path)
    record = read_json(run_dir / "record.json")
    assert record["training"]["resumed_from_step"] == 2 and record["training"]["steps"] == 2
    assert record["training"]["losses"] == []  # no step was trained twice
    assert not (tmp_path / "runs" / ".work" / work.name).exists()


def test_kill_9_in_the_middle_then_rerun_completes_without_duplicates(tmp_path, data_root, env,
                                                                      capsys) -> None:  # fmt: skip
    """2 backbones x 2 tasks x 1 seed: kill -9 once the sweep is half done and its current run
    has a checkpoint; the same command then finishes every run, none twice. (The 12-run
    version, 3 seeds, is scripts/sweep_kill_resume.py: too slow for the suite.)"""
    results = tmp_path / "results"
    argv = ["sweep", "--backbones", "t_original_r18,t_blurred_r18", "--tasks", "cifar10,sun397",
            "--seeds", "0", *FAST, "--max-steps", "3", "--checkpoint-every-n-steps", "1",
            "--data-root", str(data_root), "--results", str(results)]  # fmt: skip
    cmd = [sys.executable, "-m", "benchmark.cli", *argv]
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    work = results / "runs" / ".work"

    def unfinished_checkpoint() -> bool:
        """A checkpoint of a run that has no record yet (work folders are <task>-<hash>-s<seed>,
        run folders <task>/<protocol>/<backbone>/seed<seed>-<hash>)."""
        for ckpt in work.glob("*/checkpoints/last.ckpt"):
            task, digest, seed = ckpt.parent.parent.name.rsplit("-", 2)
            if not list(results.glob(f"runs/{task}/*/*/seed{seed[1:]}-{digest}/record.json")):
                return True
        return False

    def half_done_and_checkpointed() -> bool:
        return len(run_dirs(results)) >= 2 and unfinished_checkpoint()

    wait_for(half_done_and_checkpointed, proc, timeout=240)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = len(run_dirs(results))
    assert 2 <= before < 4

    rerun = bench_subprocess(*argv, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    expected = f"{before} done, 1 interrupted (resume from their checkpoint), {3 - before} to run"
    assert expected in rerun.stdout
    assert "sweep: 4/4 runs done, 0 failed" in rerun.stdout

    dirs = run_dirs(results)
    keys = [(r["task"], r["backbone"]["name"], r["seed"])
            for r in (read_json(d / "record.json") for d in dirs)]  # fmt: skip
    assert len(dirs) == 4 and len(set(keys)) == 4
    resumed = [read_json(d / "record.json")["training"]["resumed_from_step"] for d in dirs]
    assert sum(step is not None for step in resumed) == 1 and max(s or 0 for s in resumed) >= 1
    assert not work.exists() or not any(work.iterdir())  # work folders go once recorded

    assert bench(*argv, "--dry-run") == 0  # in-process: a third run finds everything done
    assert "4 runs: 4 done, 0 interrupted" in capsys.readouterr().out
    assert len(run_dirs(results)) == 4


def test_submitit_launcher_runs_each_run_as_a_job(tmp_path, data_root, env, capsys) -> None:
    """submitit's debug executor runs the array in this process, through the same job
    callable SLURM would run; resources come from the task's YAML (--set resources.*)."""
    args = ("sweep", "--backbones", "t_original_r18,t_blurred_r18", "--tasks", "cifar10", *FAST,
            "--max-steps", "1", "--data-root", data_root, "--results", tmp_path,
            "--launcher", "submitit-debug", "--set", "resources.timeout_min=17")  # fmt: skip
    assert bench(*args) == 0
    out = capsys.readouterr().out
    assert "submitted cifar10: 2 run(s) as debug job(s)" in out
    assert "sweep: 2/2 runs done, 0 failed" in out and "top1 = " in out
    assert len(run_dirs(tmp_path)) == 2
    assert bench(*args) == 0  # done: nothing submitted again
    assert "submitted" not in capsys.readouterr().out


def test_slurm_parameters_come_from_the_task(tmp_path, data_root, env) -> None:
    from benchmark.launchers import SubmititLauncher
    from benchmark.sweep import build_spec, plan_sweep

    spec = build_spec(None, {"backbones": "t_blurred_r18", "tasks": "cifar10", "seeds": "0",
                             "subset": "tiny", "data_root": data_root, "results": tmp_path,
                             "devices": "2", "strategy": "ddp"},
                      ["resources.timeout_min=90", "resources.mem_gb=12"])  # fmt: skip
    (item,) = plan_sweep(spec)
    params = SubmititLauncher("slurm", tmp_path, {"partition": "gpu"}).parameters(item, 5)
    assert params["timeout_min"] == 90 and params["mem_gb"] == 12
    assert params["gpus_per_node"] == 2 and params["tasks_per_node"] == 2  # one task per GPU
    assert params["cpus_per_task"] == 4 and params["slurm_partition"] == "gpu"
    assert params["slurm_array_parallelism"] == 5
    # resources are not part of the run key: the same run as without them
    plain = build_spec(None, {"backbones": "t_blurred_r18", "tasks": "cifar10", "seeds": "0",
                              "subset": "tiny", "data_root": data_root, "results": tmp_path,
                              "devices": "2", "strategy": "ddp"})  # fmt: skip
    assert plan_sweep(plain)[0].plan.key == item.plan.key


@pytest.mark.parametrize(
    ("args", "file", "message"),
    [
        (("--tasks", "cifar1000"), None, "bench: error: unknown task 'cifar1000'"),
        (("--tasks", "cifar10", "--seeds", "0,x"), None, "--seeds: 'x' is not a seed"),
        (("--tasks", "cifar10", "--backbones", "nope_*"), None, "no backbone matches 'nope_*'"),
        ((), "tasks: [cifar10]\nepochs: 3\n", "epochs: unknown key"),
        (("--tasks", "cifar10", "--launcher", "slurm", "--slurm", "nokey"), None,
         "--slurm 'nokey': expected KEY=VALUE"),
        pytest.param(("--tasks", "cifar10", "--launcher", "slurm"), None,
                     "cannot submit to slurm", marks=pytest.mark.skipif(
                         shutil.which("srun") is not None, reason="this machine has SLURM")),
    ],
)
def test_user_errors(tmp_path, env, data_root, capsys, args, file, message) -> None:
    base = ["sweep", "--backbones", "t_original_r18", "--results", tmp_path,
            "--data-root", data_root]
    if file is not None:
        (tmp_path / "s.yaml").write_text(file)
        base += ["--file", tmp_path / "s.yaml"]
    assert bench(*base, *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_sweep_needs_its_data_to_plan(tmp_path, env, capsys) -> None:
    """Each run key holds its data's identity, so planning reads the data: missing data is one
    line at planning time, before any run starts."""
    assert bench("sweep", "--backbones", "t_original_r18", "--tasks", "cifar10", "--results",
                 tmp_path / "r", "--data-root", tmp_path / "nothing-here", "--dry-run") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CIFAR-10 not found or corrupted under" in err[0]
    assert not (tmp_path / "r").exists()
