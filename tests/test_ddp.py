"""Multi-process training through Lightning's DDP: two CPU processes (gloo) on the CIFAR-10
fixture write one record whose predictions cover every test example exactly once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import bench_subprocess, read_json, run_dirs


def test_ddp_on_two_cpu_processes_writes_one_record(tmp_path: Path, cifar_root: Path,
                                                    paper_resnet18: Path) -> None:  # fmt: skip
    # 19 test examples: DistributedSampler pads them to 20 (10 per process); the padding
    # copy must not reach the predictions
    proc = bench_subprocess(
        "run", "--task", "cifar10", "--backbone", paper_resnet18, "--subset", "tiny",
        "--set", "smoke.test=19", "--max-steps", "2", "--accelerator", "cpu", "--devices", "2",
        "--strategy", "ddp", "--num-workers", "0", "--data-root", cifar_root,
        "--results", tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("record: ") == 1  # printed by rank 0 only

    (run_dir,) = run_dirs(tmp_path)
    record = read_json(run_dir / "record.json")
    assert record["status"] == "completed" and record["devices"] == 2
    assert record["config"]["trainer"]["max_steps"] == 2
    assert record["data"]["sizes"]["test"] == 19 and record["training"]["steps"] == 2

    with np.load(run_dir / "predictions.npz", allow_pickle=False) as saved:
        ids, target, logits = saved["example_id"], saved["target"], saved["logits"]
    assert len(ids) == len(set(ids.tolist())) == 19 and all(i.startswith("test/") for i in ids)
    assert float((logits.argmax(1) == target).mean()) == pytest.approx(record["metrics"]["top1"])
    assert not list((tmp_path / "runs" / ".staging").iterdir())
    assert not (tmp_path / "runs" / ".work").exists() or not any(
        (tmp_path / "runs" / ".work").iterdir()
    )
