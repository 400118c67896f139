"""What a leaderboard build keeps in ``<results>/.cache`` besides the score arrays
(:mod:`benchmark.score_cache`), so a rebuild over unchanged runs does almost no work.

* ``leaderboard-records.json``: per run folder, what the leaderboard reads from its record (the
  :class:`~benchmark.leaderboard.model.Run` fields, its metrics and its task config), or the
  problem the record is (failed, malformed). Keyed by the ``(size, mtime_ns, ctime_ns, inode)``
  of the run's ``record.json`` (the stat the run listing took) and the package's source
  (:mod:`benchmark.source_digest`); the fields that the runs of one backbone in one setting
  share are stored once per group (:class:`RecordCache`). A reading of the wrong shape or
  types (a hand-edited file) is not used: its record is read again.
  Building 10,000 validated :class:`~benchmark.run_record.RunRecord` objects
  costs about a second whichever way (``model_validate_json`` and ``model_construct`` measured
  alike), so a cached run holds no record object: :attr:`Run.record` reads it on first use,
  which only a comparison that is computed again needs.
* ``leaderboard-comparisons.json``: per comparison, its statistics (every
  :class:`~benchmark.leaderboard.model.MetricDelta` and :class:`ColumnDeltas`, the notes, and
  the problems that reading its runs' predictions gave), keyed by a digest of everything they
  depend on: the options (``n_boot``, ``confidence``, ``rng_seed``), the setting and the two
  rows, every member run's folder and the ``(size, mtime_ns, ctime_ns, inode)`` of its
  ``record.json`` and ``predictions.npz``, and the package's source
  (:func:`benchmark.source_digest.source_digest`).
  A warm rebuild then opens no predictions and runs no bootstrap.

* ``leaderboard-t-quantiles.json``: the Student-t quantiles of the seed intervals, by scipy's
  version, so a rebuild does not import ``scipy.special`` for them.

The rules of :mod:`benchmark.score_cache`: JSON only (floats written by ``repr`` read back bit
for bit, NaN included), written atomically, a missing, corrupt or unwritable file ignored and
rebuilt (never an error), entries of runs or comparisons not seen in a build dropped when it
writes, and ``bench leaderboard --no-cache`` uses none of them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.layout import PREDICTIONS_FILE, RECORD_FILE
from benchmark.leaderboard.model import ColumnDeltas, Comparison, MetricDelta, Problem
from benchmark.score_cache import CACHE_DIR, FileStat, file_stat
from benchmark.source_digest import source_digest
from benchmark.stats import DeltaResult, SeedSummary

RECORDS_FILE = "leaderboard-records.json"
COMPARISONS_FILE = "leaderboard-comparisons.json"
QUANTILES_FILE = "leaderboard-t-quantiles.json"
# Bump when what an entry holds changes meaning (the code digest covers the statistics).
FORMAT = 1
RECORDS_FORMAT = 2  # 2: runs of one backbone and setting share their common fields

def run_prefix(results: Path) -> str:
    """What the run folders' paths start with (the cache keys are the rest): ``str(Path)`` of
    ``--results .`` is ``.`` but its runs are ``runs/...``, without ``./``."""
    text = os.fspath(Path(results))
    return "" if text == "." else os.path.join(text, "")


class _JsonCache:
    """One JSON file of entries by name: read once, entries kept by :meth:`keep`, written by
    :meth:`save` only when the kept set differs from what was read."""

    def __init__(self, results: Path, name: str, version: str) -> None:
        self.path = Path(results) / CACHE_DIR / name
        self.version = version
        self._old: dict[str, Any] | None = None
        self._new: dict[str, Any] = {}
        self._shared: dict[str, Any] = {}  # values the entries refer to, as read
        self.hits = 0
        self.misses = 0

    def _read(self) -> dict[str, Any]:
        if self._old is None:
            self._old = {}
            try:
                with open(self.path, "rb") as fh:
                    stored = json.loads(fh.read())
                if isinstance(stored, dict) and stored.get("format") == self.version \
                        and isinstance(stored.get("entries"), dict) \
                        and isinstance(stored.get("shared"), dict):  # fmt: skip
                    self._old, self._shared = stored["entries"], stored["shared"]
            except (OSError, ValueError, RecursionError):
                pass  # missing or corrupt: rebuilt
        return self._old

    def lookup(self, name: str) -> Any:
        return self._read().get(name)

    def keep(self, name: str, entry: Any) -> None:
        self._new[name] = entry

    def save(self, shared: dict[str, Any] | None = None) -> bool:
        """Write the entries kept in this build (those not kept are dropped) and ``shared``
        (values entries refer to); returns whether a file was written. A cache that cannot be
        written is skipped."""
        old = self._read()
        if old.keys() == self._new.keys() and all(old[k] is v for k, v in self._new.items()) \
                and (shared or {}) == self._shared:  # fmt: skip
            return False
        try:
            from benchmark.atomic import atomic_write_text

            text = json.dumps({"format": self.version, "entries": self._new,
                               "shared": shared or {}}, separators=(",", ":"))  # fmt: skip
            atomic_write_text(self.path, text)
        except (OSError, ValueError):
            return False
        self._old = dict(self._new)
        self._shared = dict(shared or {})
        return True


class RecordCache(_JsonCache):
    """The leaderboard's reading of each record (see the module docstring): a reading is what
    :func:`benchmark.leaderboard.collect.collect` makes of a record, its ``fields`` in order as
    JSON values, or a problem ``{"problem": [what, message, task]}``.

    Runs of one backbone in one setting differ only in the ``per_run`` fields (seed, end time,
    metrics), so an entry is ``[size, mtime_ns, ctime_ns, inode, group, *per_run values]`` and
    the other fields (the task config among them) are stored once per group under
    ``"shared"``; a problem's entry is ``[size, mtime_ns, ctime_ns, inode, problem]``. At 10,000
    runs this layout is a quarter smaller than a list of every field per run and parses in
    two thirds of the time, and the stat is compared with no second ``os.stat`` (the listing's
    is passed in)."""

    def __init__(self, results: Path, fields: Iterable[str], per_run: Iterable[str]) -> None:
        self.fields = list(fields)
        self.per_run = list(per_run)
        super().__init__(results, RECORDS_FILE,
                         json.dumps([RECORDS_FORMAT, source_digest(), self.fields, self.per_run]))
        self._prefix = run_prefix(results)
        self._own = [self.fields.index(name) for name in self.per_run]  # where they go
        common = [i for i in range(len(self.fields)) if i not in self._own]
        self._pick_own, self._pick_common = _picker(self._own), _picker(common)
        self._group_ids: dict[str, str] = {}  # canonical JSON -> digest, this build
        # the group last put and its values: the runs of a group come one after another in the
        # listing, and comparing with it (==) costs a tenth of writing the canonical JSON
        # (sorted keys) that finds a group. (== takes 1 and 1.0 as equal where JSON does not;
        # the setting id, a digest of the canonical JSON of the config, tells them apart.)
        self._last: tuple[list[Any], str] | None = None
        self._groups: dict[str, list[Any]] = {}  # digest -> shared values, put in this build
        self._templates: dict[Any, list[Any] | None] = {}  # group -> all fields (per_run: None)

    def rel(self, run_dir: str) -> str | None:
        return run_dir[len(self._prefix):] if run_dir.startswith(self._prefix) else None

    def get(self, run_dir: str, stat: FileStat) -> list[Any] | dict[str, Any] | None:
        """The cached reading of a run folder whose ``record.json`` has ``stat`` now; None when
        absent, stale or not of the shape this version writes (the record is read again)."""
        rel = self.rel(run_dir)
        entry = self.lookup(rel) if rel is not None else None
        if not isinstance(entry, list) or len(entry) < 5 or tuple(entry[:4]) != stat:
            self.misses += 1
            return None
        reading: list[Any] | dict[str, Any]
        if len(entry) == 5 and isinstance(entry[4], dict):
            reading = entry[4]  # a problem
        else:
            template = self._template(entry[4])
            if template is None or len(entry) != 5 + len(self._own):
                self.misses += 1
                return None
            reading = list(template)
            for where, value in zip(self._own, entry[5:], strict=True):
                reading[where] = value
        self.keep(rel, entry)  # type: ignore[arg-type]
        self.hits += 1
        return reading

    def _template(self, group: Any) -> list[Any] | None:
        """Every field of ``group``'s runs, the per-run ones left None; None for a group that
        is missing or of the wrong shape. Built once per group and build."""
        if not isinstance(group, str):
            return None
        if group not in self._templates:
            shared = self._shared.get(group)
            template = None
            if isinstance(shared, list) and len(shared) == len(self.fields) - len(self._own):
                values = iter(shared)
                template = [None if i in self._own else next(values)
                            for i in range(len(self.fields))]  # fmt: skip
            self._templates[group] = template
        return self._templates[group]

    def put(self, run_dir: str, stat: FileStat, reading: list[Any] | dict[str, Any]) -> None:
        rel = self.rel(run_dir)
        if rel is None:
            return
        if isinstance(reading, dict):
            self.keep(rel, [*stat, {"problem": reading["problem"]}])
            return
        shared = list(self._pick_common(reading))
        if self._last is not None and self._last[0] == shared:
            group = self._last[1]
        else:
            text = json.dumps(shared, sort_keys=True, separators=(",", ":"), default=str)
            group = self._group_ids.get(text)
            if group is None:
                group = self._group_ids[text] = hashlib.sha256(text.encode()).hexdigest()[:16]
                self._groups[group] = json.loads(text)
            self._last = (shared, group)
        self.keep(rel, [*stat, group, *self._pick_own(reading)])

    def record_stats(self) -> dict[str, list[int]]:
        """Each kept run's ``record.json`` stat (by folder relative to the results), as taken
        when this build read it (:meth:`get`): the comparison keys reuse them instead of a
        second ``stat`` per run. Only an entry that holds a full stat counts (any other shape:
        the key takes its own stat)."""
        stats = {}
        for rel, entry in self._new.items():  # [size, mtime_ns, ctime_ns, inode, group, ...]
            stat = entry[:4] if isinstance(entry, list) else None
            if stat is not None and len(stat) == 4 and all(type(v) is int for v in stat):
                stats[rel] = stat
        return stats

    def save(self) -> bool:  # type: ignore[override]
        """Write the kept readings with the groups they refer to."""
        shared = {**self._shared, **self._groups}
        used = {e[4] for e in self._new.values() if len(e) > 5}
        return super().save({k: v for k, v in shared.items() if k in used})


def _picker(indices: list[int]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """The values at ``indices`` of a list, as a tuple (``itemgetter`` of one index gives the
    value itself)."""
    if len(indices) == 1:
        return lambda values: (values[indices[0]],)
    return itemgetter(*indices)


class QuantileCache(_JsonCache):
    """The Student-t quantiles of the seed intervals (:func:`benchmark.stats.t_quantiles`), so a
    rebuild does not import ``scipy.special`` (a quarter of a second) to compute the same few
    again; keyed by the installed scipy's version, whose ``stdtrit`` gave them."""

    def __init__(self, results: Path) -> None:
        import scipy

        super().__init__(results, QUANTILES_FILE, f"{FORMAT}-scipy-{scipy.__version__}")

    def values(self) -> list[tuple[float, float, float]]:
        out = []
        for entry in self._read().values():
            if isinstance(entry, list) and len(entry) == 3 \
                    and all(isinstance(v, float) for v in entry):  # fmt: skip
                out.append((entry[0], entry[1], entry[2]))
        return out

    def update(self, values: Iterable[tuple[float, float, float]]) -> None:
        old = self._read()
        for q, df, value in values:
            name = f"{q!r} {df!r}"
            entry = old.get(name)
            self.keep(name, entry if entry == [q, df, value] else [q, df, value])


class ComparisonCache(_JsonCache):
    """Each comparison's statistics by the digest of its inputs (see the module docstring)."""

    def __init__(self, results: Path, n_boot: int, confidence: float, rng_seed: int,
                 records: RecordCache | None = None) -> None:
        """``records``: this build's record cache, whose stats of the records the keys reuse
        (half of a warm key's ``stat`` calls: 10,000 of 20,000 at 10,000 runs; measured
        0.21 -> 0.15 s of CPU for the whole stage)."""
        super().__init__(results, COMPARISONS_FILE, f"{FORMAT}-{source_digest()}")
        self.results = Path(results)
        self._prefix = run_prefix(results)
        self._options = [n_boot, confidence, rng_seed]
        self._record_stats = records.record_stats() if records is not None else {}

    def _rel(self, path: Path) -> str:
        text = os.fspath(path)
        return text[len(self._prefix):] if text.startswith(self._prefix) else text

    def _path(self, text: str) -> Path:
        return Path(text) if os.path.isabs(text) else self.results / text

    def key(self, comp: Comparison) -> str:
        """The digest of every input of ``comp``'s statistics (the rows' runs as they are on
        disk now)."""
        setting = comp.setting
        rows = []
        prefix, size, known = self._prefix, len(self._prefix), self._record_stats
        for row in (comp.a, comp.b):
            runs = []
            for run in row.runs:
                # this loop is most of a warm build's comparison stage (10,000 runs): paths are
                # joined by hand, not by os.path.join (a third of the loop's time); a run
                # folder's str(Path) never ends with a separator
                text = os.fspath(run.run_dir)
                rel = text[size:] if text.startswith(prefix) else text
                record = known.get(rel)
                if record is None:
                    record = file_stat(text + os.sep + RECORD_FILE)
                runs.append([rel, run.seed, record,
                             file_stat(text + os.sep + PREDICTIONS_FILE)])  # fmt: skip
            rows.append([row.name, row.label, row.data, row.sha256, runs])
        where = [setting.task, setting.kind, setting.protocol, setting.subset, setting.setting,
                 setting.primary, setting.scalar_metrics, setting.column_metrics]  # fmt: skip
        inputs = [self._options, comp.subject, comp.explicit, where, rows]
        text = json.dumps(inputs, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def restore(self, key: str, comp: Comparison) -> list[Problem] | None:
        """Fill ``comp`` from the cache and return the problems stored with it; None (and
        ``comp`` untouched) on a miss or an entry that does not read back."""
        entry = self.lookup(key)
        if entry is None:
            self.misses += 1
            return None
        try:
            metrics = [MetricDelta(str(m), float(ma), float(mb), _delta(p), _seeds(s), str(v))
                       for m, ma, mb, p, s, v in entry["metrics"]]  # fmt: skip
            columns = [ColumnDeltas(str(m), [str(c) for c in cols], [_delta(r) for r in res],
                                    np.asarray(holm, np.float64), untested=int(untested))
                       for m, cols, res, holm, untested in entry["columns"]]  # fmt: skip
            notes = [str(n) for n in entry["notes"]]
            n_examples = None if entry["n_examples"] is None else int(entry["n_examples"])
            seeds_paired = (int(entry["seeds_paired"][0]), int(entry["seeds_paired"][1]))
            problems = [Problem(str(w), self._path(p), str(m), str(t))
                        for w, p, m, t in entry["problems"]]  # fmt: skip
        except (KeyError, TypeError, ValueError, IndexError):
            self.misses += 1
            return None
        if any(r is None for c in columns for r in c.results):
            self.misses += 1
            return None
        comp.metrics, comp.columns, comp.notes = metrics, columns, notes
        comp.n_examples, comp.seeds_paired = n_examples, seeds_paired
        self.keep(key, entry)
        self.hits += 1
        return problems

    def put(self, key: str, comp: Comparison, problems: Iterable[Problem]) -> None:
        self.keep(key, {
            "metrics": [[m.metric, m.mean_a, m.mean_b, _delta_json(m.paired),
                         _seeds_json(m.seeds), m.verdict] for m in comp.metrics],
            "columns": [[c.metric, c.columns, [_delta_json(r) for r in c.results],
                         [float(p) for p in c.p_holm], c.untested] for c in comp.columns],
            "notes": comp.notes,
            "n_examples": comp.n_examples,
            "seeds_paired": list(comp.seeds_paired),
            "problems": [[p.what, self._rel(p.path), p.message, p.task] for p in problems],
        })  # fmt: skip


def _delta_json(result: DeltaResult | None) -> list[Any] | None:
    if result is None:
        return None
    return [float(result.delta), float(result.low), float(result.high), float(result.p_value),
            int(result.n_boot), int(result.n_examples), float(result.confidence)]


def _delta(value: Any) -> DeltaResult | None:
    if value is None:
        return None
    delta, low, high, p, n_boot, n, confidence = value
    return DeltaResult(float(delta), float(low), float(high), float(p), int(n_boot), int(n),
                       float(confidence))  # fmt: skip


def _seeds_json(summary: SeedSummary | None) -> list[Any] | None:
    if summary is None:
        return None
    return [float(summary.mean), float(summary.low), float(summary.high), int(summary.n)]


def _seeds(value: Any) -> SeedSummary | None:
    if value is None:
        return None
    mean, low, high, n = value
    return SeedSummary(float(mean), float(low), float(high), int(n))
