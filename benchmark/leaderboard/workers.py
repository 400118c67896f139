"""Reading many runs' predictions in worker processes (``bench leaderboard --workers N``).

Why processes: reading a predictions file is mostly Python work that holds the GIL (zip
headers, a zlib inflate, a few small numpy calls); two threads measured slower than one loop.
Each run is independent. On the 2-core machine, a cold build of 10,000 runs read them in
1.39 s in one process and in 1.01 s with two workers (this process's own share, the checks
and the cache, is what remains); whole cold processes took 4.68-5.30 s without workers and
4.35-5.07 s with two (four of each, alternating).

Why ``fork``: a worker must be ready in milliseconds, not after importing numpy again. On this
2-core machine a pool of two was ready in 0.08 s with fork, 1.2 s with spawn and 1.6 s with
forkserver (load about 1), which is most of what the workers save. Fork copies the process as
it is, so it is used only where that is safe: on Linux (macOS frameworks break after fork), and
only while this process runs no other Python thread (one could hold a lock the child would
inherit taken). The CLI asks for workers; :func:`benchmark.leaderboard.build` reads in its own
process unless told otherwise, so a notebook or a script without a ``__main__`` guard that
calls it never forks.

What a worker does is only the kind's ``score_arrays`` (a function of the run folder's files):
the score cache, the checks against the record and everything else stay in this process, in
the runs' order, so a build gives the same pages, caches and problem rows with or without
workers.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.analysis.kinds import kind_analysis
from benchmark.analysis.npz import READ_ERRORS, is_shared
from benchmark.errors import BenchError, EnvironmentFailure
from benchmark.score_cache import Arrays

# below this many files to read, starting workers costs more than it saves (about 0.1 s to
# fork and shut down two; one run's predictions take about 0.14 ms in one process)
MIN_RUNS = 500
# at most this many workers unless asked for more: past a few, the files come from one disk
# and this process's own per-run work (checks, cache) is what the build waits for
DEFAULT_MAX = 8


class ReadFailure(Exception):
    """A run whose predictions a worker could not read; the message is what the in-process
    reader's error would say (``TypeName: message``)."""


def default_workers() -> int:
    """How many worker processes ``bench leaderboard`` uses unless told: the CPUs this process
    may run on (``sched_getaffinity``: what SLURM and taskset allow, not the whole node's
    count), at most :data:`DEFAULT_MAX`; 0 (read in this process) with one CPU or off Linux."""
    if not sys.platform.startswith("linux"):
        return 0
    cpus = len(os.sched_getaffinity(0))
    return min(cpus, DEFAULT_MAX) if cpus > 1 else 0


def workers_usable(workers: int, runs: int) -> bool:
    """Whether ``runs`` files are read by ``workers`` processes (see the module docstring)."""
    return (workers > 0 and runs >= MIN_RUNS and sys.platform.startswith("linux")
            and not _other_python_threads())  # fmt: skip


def _other_python_threads() -> bool:
    return threading.active_count() > 1


def _chunk_size(jobs: int, workers: int) -> int:
    return max(16, min(256, math.ceil(jobs / (workers * 8))))  # ~8 chunks a worker


def pool_size(jobs: int, workers: int) -> int:
    """How many processes :func:`read_score_arrays` starts for ``jobs`` files: no more than
    it has chunks of files to hand out."""
    return min(workers, math.ceil(jobs / _chunk_size(jobs, workers))) if jobs else 0


def read_score_arrays(
    jobs: Sequence[tuple[Path, str]], workers: int
) -> Generator[tuple[Path, Arrays | ReadFailure], None, None]:
    """``(run folder, arrays)`` for each ``(run folder, kind)`` job, in the jobs' order, read
    by :func:`pool_size` processes (started at the first ``next``); for a run whose files
    cannot be read, the :class:`ReadFailure` to raise in its place (yielded, not raised: the
    runs after it are still to be served). A pool that cannot start (no processes or file
    descriptors left) or loses a worker raises :class:`EnvironmentFailure`.

    Stopping before the last chunk's results are in (an exception in the caller, Ctrl-C,
    ``close()``) kills the workers: one may be blocked in a read that never ends (a stalled
    network mount), and they ignore Ctrl-C; after that, the idle workers are shut down. Either
    way no worker outlives the generator."""
    if not jobs:
        return
    # imported here: a warm build, which reads no predictions, does not load multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    size = _chunk_size(len(jobs), workers)
    starts = range(0, len(jobs), size)
    chunks = [[(os.fspath(d), kind) for d, kind in jobs[i : i + size]] for i in starts]
    executor = ProcessPoolExecutor(
        max_workers=pool_size(len(jobs), workers),
        mp_context=_fork_context(),
        initializer=_worker_started,
        initargs=(os.getpid(),),
    )
    idle = False  # every chunk's results received: no worker is reading any more
    try:
        # Ctrl-C held back while the workers are forked (the first submit forks them all):
        # a worker interrupted before its initializer ignores SIGINT would print a traceback
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            # submitted one by one, not by executor.map: map's iterator cancels the pending
            # futures when it is interrupted, and the pool's thread, seeing the workers killed
            # below, then fails setting an exception on a cancelled future (InvalidStateError,
            # fixed after 3.11.7: gh-107219) and can leave the exit waiting on its queue
            futures = [executor.submit(_read_chunk, chunk) for chunk in chunks]
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        shared = _SharedArrays()
        for start, future in zip(starts, futures, strict=True):
            chunk_results = future.result()
            idle = start == starts[-1]
            in_chunk: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            for (run_dir, _), got in zip(jobs[start : start + size], chunk_results, strict=True):
                if isinstance(got, str):
                    yield run_dir, ReadFailure(got)
                    continue
                arrays, names = got
                for name in names:
                    arrays[name] = shared.one(arrays[name], in_chunk)
                yield run_dir, arrays
    except BrokenProcessPool as err:
        raise EnvironmentFailure(
            f"a worker process reading predictions stopped ({err}): the machine may be out of "
            f"memory; run again with --workers 0 to read them in this process"
        ) from err
    except OSError as err:  # fork, pipes: the pool itself (a file's errors come as strings)
        raise EnvironmentFailure(
            f"could not run worker processes to read predictions ({type(err).__name__}: "
            f"{err}); run again with --workers 0 to read them in this process"
        ) from err
    finally:
        if not idle:
            _kill_workers(executor)
        executor.shutdown(wait=True, cancel_futures=True)


def _kill_workers(executor: Any) -> None:
    """SIGKILL and reap the executor's processes. Python 3.14 has
    ``ProcessPoolExecutor.kill_workers``; 3.11 keeps them in ``_processes`` only (None once
    shut down), which is read here for want of a public way."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join()


class _SharedArrays:
    """The arrays that runs share in a worker (a task's example ids and targets: read-only,
    own memory, see read_npz's ``shared``) made one read-only array again here, across
    chunks and workers: pickling keeps them one object within a chunk but makes them
    writable copies, which the checks downstream would hash run by run (their fast paths
    know a shared array by identity). At most ``_KEPT`` arrays are held; past that, anew."""

    _KEPT = 512

    def __init__(self) -> None:
        # keyed by the dtype itself: its .str is "|V8" for every 8-byte structured dtype
        self._by_bytes: dict[tuple[np.dtype, tuple[int, ...], bytes], np.ndarray] = {}

    def one(
        self, array: np.ndarray, in_chunk: dict[int, tuple[np.ndarray, np.ndarray]]
    ) -> np.ndarray:
        seen = in_chunk.get(id(array))
        if seen is not None:  # the same object again in this chunk (kept alive: id not reused)
            return seen[1]
        key = (array.dtype, array.shape, array.tobytes())
        kept = self._by_bytes.get(key)
        if kept is None:
            if len(self._by_bytes) >= self._KEPT:
                self._by_bytes.clear()
            kept = self._by_bytes[key] = array if array.base is None else array.copy()
            kept.setflags(write=False)
        in_chunk[id(array)] = (array, kept)
        return kept


def _fork_context():  # type: ignore[no-untyped-def]
    import multiprocessing

    return multiprocessing.get_context("fork")


def _worker_started(parent: int) -> None:
    """In each worker: Ctrl-C is the parent's to handle (the terminal sends SIGINT to the
    whole process group; the parent stops the pool), and the worker dies with its parent (a
    parent killed outright would otherwise leave workers waiting on their queue for good)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked while forking
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl: a worker outlives a parent killed outright
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _read_chunk(jobs: list[tuple[str, str]]) -> list[tuple[Arrays, list[str]] | str]:
    """Each job's arrays with the names of those the runs share (see :class:`_SharedArrays`),
    or why its files could not be read."""
    out: list[tuple[Arrays, list[str]] | str] = []
    for run_dir, kind in jobs:
        score_arrays = kind_analysis(kind).score_arrays
        if score_arrays is None:
            raise RuntimeError(f"kind {kind!r} has no score_arrays: it cannot be read here")
        try:
            arrays = score_arrays(Path(run_dir))
            out.append((arrays, [name for name, array in arrays.items() if is_shared(array)]))
        except (*READ_ERRORS, BenchError) as err:
            out.append(read_error_text(err))
    return out


def read_error_text(err: Exception) -> str:
    """How an unreadable run's problem row names its error, in a worker or not."""
    return f"{type(err).__name__}: {err}"
