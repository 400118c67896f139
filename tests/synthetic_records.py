"""Hand-made run records for leaderboard tests and its timing script.

They are written the way the runner writes them (``RunStore.write`` of a ``RunRecord``, the same
``predictions.npz`` format) but from chosen predictions, so a test can plant an exact
difference between two backbones, or none.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.records import SCHEMA_VERSION, RunKey, RunRecord, RunStore, config_hash


def classification_metrics(
    logits: np.ndarray, target: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """top1, mean and per-class accuracy as benchmark.metrics computes them (NaN -> None)."""
    correct = logits.argmax(1) == target
    per_class: dict[str, float | None] = {}
    for c, name in enumerate(class_names):
        mask = target == c
        per_class[name] = float(correct[mask].mean()) if mask.any() else None
    present = [v for v in per_class.values() if v is not None]
    return {
        "top1": float(correct.mean()),
        "mean_per_class_accuracy": float(np.mean(present)),
        "per_class_accuracy": per_class,
    }


def logits_with_correct(
    target: np.ndarray, correct: np.ndarray, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Logits whose argmax is the target exactly where ``correct`` is True."""
    n = len(target)
    logits = rng.normal(0.0, 0.1, size=(n, num_classes)).astype(np.float32)
    wrong = (target + 1 + rng.integers(0, num_classes - 1, size=n)) % num_classes
    winner = np.where(correct, target, wrong)
    logits[np.arange(n), winner] += 5.0
    return logits


def write_classification_run(
    results: Path,
    backbone: str,
    arch: str,
    data: str,
    seed: int,
    logits: np.ndarray,
    target: np.ndarray,
    class_names: list[str],
    task: str = "cifar10",
    fixture: bool = False,
    example_ids: list[str] | None = None,
    config_extra: dict[str, Any] | None = None,
) -> Path:
    """One completed classification run with its predictions; returns the run directory."""
    metrics = classification_metrics(logits, target, class_names)
    sha = hashlib.sha256(f"{backbone}".encode()).hexdigest()
    config = {
        "task": {
            "name": task,
            "kind": "classification",
            "metrics": {"primary": "top1",
                        "others": ["mean_per_class_accuracy", "per_class_accuracy"]},
            **(config_extra or {}),
        },
        "subset": "full",
        "backbone": {"name": backbone, "arch": arch, "sha256": sha, "weights": None},
        "trainer": {"max_epochs": 1, "max_steps": None, "precision": "32-true"},
    }
    digest = config_hash(config)
    record = {
        "schema": SCHEMA_VERSION,
        "task": task,
        "kind": "classification",
        "protocol": "finetune",
        "backbone": {"name": backbone, "arch": arch, "sha256": sha, "pretraining_data": data},
        "seed": seed,
        "subset": "full",
        "config": config,
        "config_hash": digest,
        "data": {"fixture": fixture},
        "class_names": class_names,
        "status": "completed",
        "metrics": metrics,
        "primary_metric": "top1",
        "started": "2026-01-01T00:00:00+00:00",
        "ended": f"2026-01-01T00:{seed % 60:02d}:00+00:00",
    }
    ids = example_ids or [f"test/{i}" for i in range(len(target))]
    key = RunKey(task, "finetune", backbone, seed, digest)

    def write_files(run_dir: Path) -> None:
        np.savez_compressed(
            run_dir / "predictions.npz",
            example_id=np.asarray(ids, dtype=np.str_),
            target=target.astype(np.int64),
            logits=logits.astype(np.float32),
        )

    return RunStore(results).write(key, RunRecord.model_validate(record), write_files)


def write_failed_run(results: Path, backbone: str, seed: int, error: str) -> Path:
    config = {"task": {"name": "cifar10"}, "backbone": {"name": backbone}, "seed": seed}
    digest = config_hash(config)
    record = {"schema": SCHEMA_VERSION, "task": "cifar10", "kind": "classification",
              "protocol": "finetune", "backbone": {"name": backbone, "arch": "resnet18"},
              "seed": seed, "config": config, "status": "failed", "error": error}
    key = RunKey("cifar10", "finetune", backbone, seed, digest)
    return RunStore(results).write(key, RunRecord.model_validate(record), lambda _d: None)


def corrupt_record(run_dir: Path) -> None:
    """Cut a record off mid-way, as a disk full or a hand edit might."""
    path = run_dir / "record.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
