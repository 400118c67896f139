"""What the leaderboard takes from one record (a :class:`RunRecord` or the error reading it):
the fields of :class:`benchmark.leaderboard.model.Run` as JSON values, the record cache's
entry. Apart from :mod:`.collect` so that worker processes (:mod:`.workers`) make the same
reading without importing the rest of the collecting.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from benchmark.leaderboard.model import Problem
from benchmark.pretraining import UNKNOWN_DATA
from benchmark.run_record import RecordError, RunRecord


def record_problem(run_dir: Path, record: RunRecord | RecordError) -> Problem | None:
    """Why a record cannot be shown as a result, or None when it can (the record validated
    as a :class:`RunRecord` and is a completed run)."""
    if isinstance(record, RecordError):
        return Problem(record.what, run_dir, record.detail, record.task)
    if not record.completed:
        return Problem("failed run", run_dir, str(record.error or "no error message"),
                       record.task)
    return None


def _setting_id(config: dict[str, Any]) -> str:
    """A short hash of everything in the run config except the backbone."""
    rest = {k: v for k, v in config.items() if k != "backbone"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# what the leaderboard reads from a completed run's record: the fields of Run but its folder
READING_FIELDS = ("task", "kind", "protocol", "subset", "setting", "backbone", "arch", "data",
                  "sha256", "seed", "fixture", "ended", "metrics", "primary_metric",
                  "task_config")  # fmt: skip


def record_reading(run_dir: Path, record: RunRecord | RecordError) -> dict[str, Any]:
    """What the leaderboard takes from a record, as JSON values (the record cache's entry);
    ``"record"`` keeps the object itself for this build (it is not stored)."""
    problem = record_problem(run_dir, record)
    if problem is not None:
        io_error = isinstance(record, RecordError) and record.io_error  # not stored: see collect
        return {"problem": [problem.what, problem.message, problem.task], "io_error": io_error}
    assert isinstance(record, RunRecord)
    backbone = record.backbone
    task_config = record.config.get("task")
    return {
        "task": record.task, "kind": record.kind, "protocol": record.protocol,
        "subset": str(record.subset), "setting": _setting_id(record.config),
        "backbone": backbone.name, "arch": backbone.arch,
        "data": backbone.pretraining_data or UNKNOWN_DATA, "sha256": backbone.sha256,
        "seed": record.seed, "fixture": bool(record.data.get("fixture", False)),
        "ended": str(record.ended or ""), "metrics": record.metrics or {},
        "primary_metric": str(record.primary_metric),
        "task_config": task_config if isinstance(task_config, dict) else {},
        "record": record,
    }  # fmt: skip
