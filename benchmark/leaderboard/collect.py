"""Records -> runs, settings and problems (steps 1-3 of the leaderboard).

Unreadable, malformed and failed records become :class:`Problem` rows that the page lists:
nothing is dropped silently. Runs are grouped into settings (same task, protocol, subset and
config but the backbone) and each backbone's metrics are summarised over seeds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmark.leaderboard.model import DATA_ORDER, Problem, Row, Run, Setting
from benchmark.records import RECORD_FILE, RunStore
from benchmark.stats import SeedSummary, seed_interval


def _record_problem(run_dir: Path, record: dict[str, Any] | None) -> Problem | None:
    """Why a record cannot be shown as a result, or None when it can."""
    if record is None:
        return Problem("unreadable record", run_dir, f"{RECORD_FILE} is missing, not JSON, "
                       f"or not an object")
    task = record.get("task") if isinstance(record.get("task"), str) else ""
    status = record.get("status")
    if status == "failed":
        return Problem("failed run", run_dir, str(record.get("error") or "no error message"), task)
    if status != "completed":
        return Problem("malformed record", run_dir, f"status is {status!r}, not 'completed'",
                       task)
    backbone = record.get("backbone")
    checks = {
        "task": isinstance(record.get("task"), str),
        "kind": isinstance(record.get("kind"), str),
        "protocol": isinstance(record.get("protocol"), str),
        "seed": isinstance(record.get("seed"), int),
        "backbone.name/arch": isinstance(backbone, dict)
        and isinstance(backbone.get("name"), str)
        and isinstance(backbone.get("arch"), str),
        "config": isinstance(record.get("config"), dict),
        "metrics": isinstance(record.get("metrics"), dict),
        "primary_metric": isinstance(record.get("primary_metric"), str),
    }
    missing = [name for name, ok in checks.items() if not ok]
    if missing:
        return Problem("malformed record", run_dir, f"missing or mistyped: {', '.join(missing)}",
                       task)
    return None


def _setting_id(config: dict[str, Any]) -> str:
    """A short hash of everything in the run config except the backbone."""
    rest = {k: v for k, v in config.items() if k != "backbone"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def collect(results: Path) -> tuple[list[Run], list[Problem], int]:
    """Every completed run, the problems, and how many record files were read."""
    runs: list[Run] = []
    problems: list[Problem] = []
    found = RunStore(results).records()
    for run_dir, record in found:
        problem = _record_problem(run_dir, record)
        if problem is not None:
            problems.append(problem)
            continue
        assert record is not None
        backbone = record["backbone"]
        data = record.get("data") if isinstance(record.get("data"), dict) else {}
        runs.append(
            Run(
                run_dir=run_dir,
                record=record,
                task=record["task"],
                kind=record["kind"],
                protocol=record["protocol"],
                subset=str(record.get("subset", "full")),
                setting=_setting_id(record["config"]),
                backbone=backbone["name"],
                arch=backbone["arch"],
                data=str(backbone.get("pretraining_data") or "unknown"),
                sha256=backbone.get("sha256"),
                seed=record["seed"],
                fixture=bool(data.get("fixture", False)),
                ended=str(record.get("ended", "")),
            )
        )
    problems += _unfinished(Path(results))
    return runs, problems, len(found)


def _unfinished(results: Path) -> list[Problem]:
    """Runs interrupted before their record (they resume when run again) and record writes
    cut short; not results, but listed so nothing on disk goes unmentioned."""
    out = []
    work = results / "runs" / ".work"
    if work.is_dir():
        for entry in sorted(work.iterdir()):
            # work folders are <task>-<hash12>-s<seed>, run folders .../seed<seed>-<hash12>
            task, digest, seed = ([""] * 3 + entry.name.rsplit("-", 2))[-3:]
            finished = list(results.glob(f"runs/{task}/*/*/seed{seed[1:]}-{digest}/{RECORD_FILE}"))
            if finished:  # killed between writing its record and removing its work folder
                out.append(Problem("leftover work folder", entry, f"its run finished "
                                   f"({finished[0].parent.name}); safe to delete", task))
                continue
            ckpt = entry / "checkpoints" / "last.ckpt"
            state = "resumes from its last checkpoint" if ckpt.is_file() else "starts over"
            out.append(Problem("unfinished run", entry, f"no record yet; running it again {state}",
                               task))
    staging = results / "runs" / ".staging"
    if staging.is_dir():
        for entry in sorted(staging.iterdir()):
            out.append(Problem("incomplete write", entry, "a run stopped while writing its "
                               "record; ignored (safe to delete when no run is writing)"))
    return out


def _metric_kinds(runs: Sequence[Run]) -> tuple[str, list[str], list[str]]:
    """Primary metric, scalar metrics (primary first) and per-column metrics, by their values."""
    first = runs[0].record
    primary = first["primary_metric"]
    task_cfg = first["config"].get("task") if isinstance(first["config"].get("task"), dict) else {}
    listed = (task_cfg.get("metrics") or {}).get("others") or []
    names = [primary, *[m for m in listed if isinstance(m, str) and m != primary]]
    names += [m for m in first["metrics"] if m not in names]
    scalar, columns = [], []
    for name in names:
        values = [r.record["metrics"].get(name) for r in runs]
        if any(isinstance(v, dict) for v in values):
            columns.append(name)
        elif any(isinstance(v, (int, float)) for v in values):
            scalar.append(name)
    if primary not in scalar:
        scalar.insert(0, primary)
    return primary, scalar, columns


def group_settings(
    runs: Iterable[Run], problems: list[Problem], confidence: float = 0.95
) -> list[Setting]:
    """Runs grouped into settings, each backbone's metrics summarised over seeds at
    ``confidence`` (the level every interval of the leaderboard uses)."""
    groups: dict[tuple[str, str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.task, run.protocol, run.subset, run.setting), []).append(run)
    settings = []
    for (task, protocol, subset, setting), members in sorted(groups.items()):
        primary, scalar, columns = _metric_kinds(members)
        rows: dict[tuple[str, str | None], Row] = {}
        for run in sorted(members, key=lambda r: (r.backbone, r.seed, r.ended)):
            key = (run.backbone, run.sha256)
            rows.setdefault(key, Row(run.backbone, run.arch, run.data, run.sha256)).runs.append(run)
        for row in rows.values():
            row.runs = _dedupe_seeds(row.runs, problems)
            row.summaries = {m: _summary(row.values(m), confidence) for m in scalar}
        names = [row.name for row in rows.values()]
        for row in rows.values():
            ambiguous = names.count(row.name) > 1
            row.label = f"{row.name} ({(row.sha256 or 'no sha256')[:8]})" if ambiguous else row.name
        ordered = sorted(
            rows.values(), key=lambda r: (r.arch, DATA_ORDER.get(r.data, 9), r.name, r.label)
        )
        settings.append(Setting(task, members[0].kind, protocol, subset, setting, primary,
                                scalar, columns, ordered))
    return settings


def _dedupe_seeds(runs: list[Run], problems: list[Problem]) -> list[Run]:
    """One run per seed (the latest); a second copy (e.g. merged results folders) is listed."""
    by_seed: dict[int, Run] = {}
    for run in runs:
        kept = by_seed.get(run.seed)
        if kept is None or run.ended > kept.ended:
            if kept is not None:
                problems.append(_duplicate(kept, run))
            by_seed[run.seed] = run
        else:
            problems.append(_duplicate(run, kept))
    return [by_seed[s] for s in sorted(by_seed)]


def _duplicate(dropped: Run, kept: Run) -> Problem:
    return Problem("duplicate run", dropped.run_dir, f"same backbone, setting and seed as "
                   f"{kept.run_dir} (newer, used instead)", dropped.task)


def _summary(values: list[float], confidence: float) -> SeedSummary | None:
    return seed_interval(values, confidence) if values else None
