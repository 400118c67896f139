"""Worker processes for a cold build: reading many runs, and many comparisons' bootstraps.

A cold leaderboard of 10,000 runs spends most of its time in work that is independent per
run: parsing and validating ``record.json`` and reading ``predictions.npz`` into the kind's
score arrays. Both hold the GIL (threads do not help), so above :data:`PARALLEL_MIN_RUNS`
runs to read they are spread over processes; below it, starting the pool costs more than it
saves. What comes back over the pool's pipe is what our own code computed: the record's
reading (JSON values, :func:`benchmark.leaderboard.reading.record_reading`) and the score
arrays (numpy arrays of plain dtypes), never an object unpickled from a user's file.

The results do not depend on the number of workers: each run is read by the same function,
and ``pool.map`` keeps the order. A run whose predictions fail to read in a worker comes back
without arrays and is read again in the main process, which reports the problem in its usual
words (one code path for every error message).
"""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from benchmark.analysis.kinds import kind_analysis
from benchmark.errors import BenchError
from benchmark.leaderboard.reading import record_reading
from benchmark.run_record import RecordError, read_record
from benchmark.score_cache import StatKey, stat_key

T = TypeVar("T")

# below this many runs to read, one process is faster than starting a pool (measured: a pool
# of two costs about 0.1 s to start with fork; a run costs about 1 ms to read)
PARALLEL_MIN_RUNS = 500

# (the record's reading, the kind's score arrays or None, the run's files' stat taken before the
# predictions were read, None when it changed while they were read)
RunRead = tuple[dict[str, Any], dict[str, np.ndarray] | None, StatKey | None]


def default_workers() -> int:
    """The CPUs this process may run on (the affinity mask, not the machine's count) that
    other work is not already using (the one-minute load average, rounded down). Measured on
    a 2-CPU machine kept busy by other processes: a pool of two cost a quarter more CPU time
    than one process and finished later; the pages are the same either way."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        busy = int(os.getloadavg()[0])
    except (AttributeError, OSError):
        busy = 0
    return max(1, cpus - busy)


def read_run(folder: str, with_arrays: bool = True) -> RunRead:
    """One run's record reading and, for a completed run of a kind whose scores come from
    arrays, those arrays (None when the kind has none or they fail to read)."""
    run_dir = Path(folder)
    try:
        record: Any = read_record(run_dir)
    except RecordError as err:
        record = err
    reading = record_reading(run_dir, record)
    loaded = reading.pop("record", None)
    if loaded is None or not with_arrays:
        return reading, None, None
    try:
        spec = kind_analysis(loaded.kind)
    except KeyError:
        return reading, None, None
    if spec.score_arrays is None or spec.scores_from_arrays is None:
        return reading, None, None
    key = stat_key(run_dir)
    try:
        arrays = spec.score_arrays(run_dir, loaded)
    except (OSError, ValueError, KeyError, IndexError, BenchError, zipfile.BadZipFile):
        return reading, None, None  # read again in the main process, which says what is wrong
    # rewritten while it was read: the arrays are used but not cached under either stat
    return reading, arrays, key if stat_key(run_dir) == key else None


def _read_runs_chunk(folders: list[str]) -> list[RunRead]:
    """A chunk's reads, with equal arrays (a task's example ids, targets and class names,
    the same in every run) made one object: pickle then sends each once per chunk."""
    out = []
    seen: dict[tuple[str, tuple[int, ...], bytes], np.ndarray] = {}
    for folder in folders:
        reading, arrays, key = read_run(folder)
        if arrays is not None:
            for name, array in arrays.items():
                ident = (array.dtype.str, array.shape, array.tobytes())
                arrays[name] = seen.setdefault(ident, array)
        out.append((reading, arrays, key))
    return out


def read_runs(folders: list[str], workers: int) -> list[RunRead] | None:
    """:func:`read_run` of every folder, in order, over ``workers`` processes; None when a
    pool is not worth it (too few runs, one CPU) or cannot run here (the caller then reads
    in this process)."""
    workers = min(workers, len(folders) // (PARALLEL_MIN_RUNS // 2))
    if workers < 2 or len(folders) < PARALLEL_MIN_RUNS:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # fork when this process runs no other thread (the CLI): the workers start in
    # milliseconds with everything imported. A caller with threads (a notebook, a training
    # process) gets forkserver, which forks from a clean single-threaded server instead.
    method = "fork" if threading.active_count() == 1 else "forkserver"
    if method not in multiprocessing.get_all_start_methods():
        method = "spawn"
    # a few chunks per worker: each pipe message carries many runs, and the last chunk to
    # finish leaves the other workers idle only briefly
    size = max(1, -(-len(folders) // (workers * 4)))
    chunks = [folders[i:i + size] for i in range(0, len(folders), size)]
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
            return [read for chunk in pool.map(_read_runs_chunk, chunks) for read in chunk]
    except (BrokenProcessPool, OSError):
        return None  # a worker died (out of memory?) or no pool here: read in this process


# comparisons run in forked workers: below this many, one process is faster
PARALLEL_MIN_COMPARISONS = 16
_JOB: Callable[[int], Any] | None = None  # the forked workers' job (see map_forked)


def _run_jobs(indices: range) -> list[Any]:
    assert _JOB is not None
    return [_JOB(i) for i in indices]


def map_forked(job: Callable[[int], T], count: int, workers: int) -> list[T] | None:
    """``[job(i) for i in range(count)]`` over forked workers, in order; None when a pool is
    not worth it or forking is not safe here (the caller then runs the jobs itself).

    For the comparisons' bootstraps: their inputs (every run's per-example scores, with the
    metrics' closures) are in this process's memory, so the workers are forked to inherit them
    instead of receiving them, and return only results. Fork only: a process with other
    threads (a notebook, a training process) runs the jobs itself. Each worker takes
    contiguous indices (a task's comparisons share their bootstrap replicates,
    :func:`benchmark.stats.reuse_replicates`). Results do not depend on the number of workers:
    each job is the same function of its index."""
    global _JOB
    import multiprocessing

    workers = min(workers, count // (PARALLEL_MIN_COMPARISONS // 2))
    if workers < 2 or count < PARALLEL_MIN_COMPARISONS or threading.active_count() != 1 \
            or "fork" not in multiprocessing.get_all_start_methods():  # fmt: skip
        return None
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    size = -(-count // (workers * 2))
    chunks = [range(i, min(i + size, count)) for i in range(0, count, size)]
    _JOB = job
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return [out for chunk in pool.map(_run_jobs, chunks) for out in chunk]
    except (BrokenProcessPool, OSError):
        return None
    finally:
        _JOB = None
