"""Records -> runs, settings and problems (steps 1-3 of the leaderboard).

Unreadable, malformed and failed records become :class:`Problem` rows that the page lists:
nothing is dropped silently. Runs are grouped into settings (same task, protocol, subset and
config but the backbone) and each backbone's metrics are summarised over seeds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from benchmark.layout import RunLayout
from benchmark.leaderboard.cache import RecordCache
from benchmark.leaderboard.model import DATA_ORDER, Problem, Row, Run, Setting, kept_record
from benchmark.pretraining import UNKNOWN_DATA
from benchmark.score_cache import stat_identity
from benchmark.stats import SeedSummary, seed_interval

if TYPE_CHECKING:  # imported by the first record read (_read): pydantic, through run_record,
    # is 0.1 s of a warm leaderboard's start-up, and a warm build reads no record
    from benchmark.run_record import RecordError, RunRecord


def _record_problem(run_dir: Path, record: RunRecord | RecordError) -> Problem | None:
    """Why a record cannot be shown as a result, or None when it can (the record validated
    as a :class:`RunRecord` and is a completed run)."""
    if isinstance(record, _run_record().RecordError):
        return Problem(record.what, run_dir, record.detail, record.task)
    if not record.completed:
        return Problem("failed run", run_dir, str(record.error or "no error message"),
                       record.task)
    return None


@cache
def _run_record() -> ModuleType:
    """:mod:`benchmark.run_record`, imported by the first record read (see the imports above);
    remembered, as the two import statements per record it replaces cost 2 us (20 ms of a
    10,000-run cold build)."""
    import benchmark.run_record

    return benchmark.run_record


def read_record(run_dir: str) -> RunRecord:
    """:func:`benchmark.run_record.read_record` (through :func:`_run_record`)."""
    return _run_record().read_record(run_dir)


# one encoder for every record: json.dumps builds a new JSONEncoder per call
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def _setting_id(config: dict[str, Any], known: dict[str, str]) -> str:
    """A short hash of everything in the run config except the backbone. ``known``: the ids
    found so far, by ``repr`` of that rest, which costs a third of its canonical JSON and tells
    JSON values apart as exactly (1, 1.0 and True differ; another key order only misses)."""
    rest = {k: v for k, v in config.items() if k != "backbone"}
    key = repr(rest)
    setting = known.get(key)
    if setting is None:
        text = _CANONICAL.encode(rest)
        setting = known[key] = hashlib.sha256(text.encode()).hexdigest()[:8]
    return setting


# what the leaderboard reads from a completed run's record: the fields of Run but its folder
# and the record object, in Run's order (a reading is made into a Run by position)
READING_FIELDS = ("task", "kind", "protocol", "subset", "setting", "backbone", "arch", "data",
                  "sha256", "seed", "fixture", "ended", "metrics", "primary_metric",
                  "task_config")  # fmt: skip
# the fields that differ between the runs of one backbone in one setting (RecordCache)
PER_RUN_FIELDS = ("seed", "ended", "metrics")
# each field's type, as a reading from the record cache must hold it (anything else: read again)
_READING_TYPES: tuple[type | tuple[type, ...], ...] = tuple(
    {"sha256": (str, type(None)), "seed": int, "fixture": bool, "metrics": dict,
     "task_config": dict}.get(name, str) for name in READING_FIELDS)  # fmt: skip
_SEED = READING_FIELDS.index("seed")


def collect(
    results: Path, cache: RecordCache | None = None
) -> tuple[list[Run], list[Problem], int]:
    """Every completed run, the problems, and how many record files were read. ``cache``: take
    unchanged records' readings from it (and put new ones in), see
    :mod:`benchmark.leaderboard.cache`."""
    runs: list[Run] = []
    problems: list[Problem] = []
    found = RunLayout(results).record_folders()
    setting_ids: dict[str, str] = {}
    for folder, st in found:
        # string paths until the Run: a Path per step cost half a second at 10,000 runs
        run_dir = Path(folder)
        stat = stat_identity(st)
        reading = cache.get(folder, stat) if cache is not None else None
        run = _from_reading(run_dir, reading) if reading is not None else None
        if run is None:
            run, reading, cacheable = _read(run_dir, folder, setting_ids)
            if cache is not None and cacheable:
                cache.put(folder, stat, reading)
        if isinstance(run, Problem):
            problems.append(run)
        else:
            runs.append(run)
    problems += _unfinished(Path(results))
    return runs, problems, len(found)


def _read(
    run_dir: Path, folder: str, setting_ids: dict[str, str]
) -> tuple[Run | Problem, list[Any] | dict[str, Any], bool]:
    """A run folder's record read: the run or problem, its reading (the record cache's entry)
    and whether the cache may keep it (not after an I/O error: it may pass without the file
    changing)."""
    module = _run_record()
    try:
        record: RunRecord | RecordError = read_record(folder)
    except module.RecordError as err:
        record = err
    problem = _record_problem(run_dir, record)
    if problem is not None:
        io_error = isinstance(record, module.RecordError) and record.io_error
        return problem, {"problem": [problem.what, problem.message, problem.task]}, not io_error
    assert isinstance(record, module.RunRecord)
    reading = _reading(record, setting_ids)
    return Run(run_dir, *reading, loaded=kept_record(record)), reading, True


def _reading(record: RunRecord, setting_ids: dict[str, str]) -> list[Any]:
    """What the leaderboard takes from a completed run's record: the values of
    :data:`READING_FIELDS` in their order, as JSON values (``setting_ids``: see
    :func:`_setting_id`)."""
    backbone = record.backbone
    task_config = record.config.get("task")
    return [
        record.task, record.kind, record.protocol, str(record.subset),
        _setting_id(record.config, setting_ids), backbone.name, backbone.arch,
        backbone.pretraining_data or UNKNOWN_DATA, backbone.sha256, record.seed,
        bool(record.data.get("fixture", False)), str(record.ended or ""), record.metrics or {},
        str(record.primary_metric), task_config if isinstance(task_config, dict) else {},
    ]  # fmt: skip


def _from_reading(run_dir: Path, reading: list[Any] | dict[str, Any]) -> Run | Problem | None:
    """The run (or problem) a cached reading describes; None for one of the wrong shape or
    types (a damaged or hand-edited cache file: the record is read again)."""
    if isinstance(reading, dict):
        problem = reading.get("problem")
        if isinstance(problem, list) and len(problem) == 3 \
                and all(isinstance(v, str) for v in problem):  # fmt: skip
            return Problem(problem[0], run_dir, problem[1], problem[2])
        return None
    if len(reading) != len(READING_FIELDS) or not all(map(isinstance, reading, _READING_TYPES)) \
            or isinstance(reading[_SEED], bool):  # fmt: skip
        return None
    return Run(run_dir, *reading)


def _unfinished(results: Path) -> list[Problem]:
    """Runs interrupted before their record (they resume when run again) and record writes
    cut short; not results, but listed so nothing on disk goes unmentioned."""
    out = []
    layout = RunLayout(results)
    for folder in layout.work_folders():
        finished = layout.finished_run_dirs(folder)
        if finished:  # killed between writing its record and removing its work folder
            out.append(Problem("leftover work folder", folder.path, f"its run finished "
                               f"({finished[0].name}); safe to delete", folder.task))
            continue
        state = "resumes from its last checkpoint" if folder.has_checkpoint else "starts over"
        out.append(Problem("unfinished run", folder.path, f"no record yet; running it again "
                           f"{state}", folder.task))
    for entry in layout.incomplete_writes():
        out.append(Problem("incomplete write", entry, "a run stopped while writing its "
                           "record; ignored (safe to delete when no run is writing)"))
    return out


def _metric_kinds(runs: Sequence[Run]) -> tuple[str, list[str], list[str]]:
    """Primary metric, scalar metrics (primary first) and per-column metrics, by their values."""
    first = runs[0]
    primary = first.primary_metric
    task_cfg = first.task_config
    listed = (task_cfg.get("metrics") or {}).get("others") or []
    names = [primary, *[m for m in listed if isinstance(m, str) and m != primary]]
    names += [m for m in first.metrics if m not in names]
    scalar, columns = [], []
    for name in names:
        values = [r.metrics.get(name) for r in runs]
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
