"""Predictions read by worker processes (``bench leaderboard --workers N``) give the leaderboard,
the caches and the problem rows of the in-process loop, and the pool never outlives a build:
not after an unreadable file, a dead worker, or an interrupted build."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import importlib
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import bench, bench_subprocess
from synthetic_records import logits_with_correct, write_classification_run

from benchmark.analysis import kinds
from benchmark.errors import EnvironmentFailure
from benchmark.leaderboard import workers
from benchmark.leaderboard.collect import collect
from benchmark.leaderboard.compare import RunScoreLoader
from benchmark.score_cache import ScoreArrayCache

build_module = importlib.import_module("benchmark.leaderboard.build")
MIN_RUNS = workers.MIN_RUNS  # the command's own, in a fresh process
CLASSES = [f"c{i}" for i in range(5)]
N = 60
TARGET = np.repeat(np.arange(5), N // 5)


@pytest.fixture(autouse=True)
def pool_for_few_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' folders hold a few dozen runs: below MIN_RUNS the pool would not start; and
    pytest's process keeps threads of other tests (tqdm's monitor, test HTTP servers), idle
    and unrelated to reading predictions, which a `bench leaderboard` process does not have.
    The real command, in a fresh process, is tested by
    test_the_command_reads_with_workers_and_writes_the_same_pages."""
    monkeypatch.setattr(workers, "MIN_RUNS", 1)
    monkeypatch.setattr(workers, "_other_python_threads", lambda: False)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Two backbones x 12 seeds, and four runs whose predictions are bad in different ways."""
    results = tmp_path / "results"
    for seed in range(12):
        for name, data, rate in (("original_r18", "original", 0.7),
                                 ("blurred_r18", "blurred", 0.6)):  # fmt: skip
            rng = np.random.default_rng(seed * 10 + int(rate * 100))
            logits = logits_with_correct(TARGET, rng.random(N) < rate, 5, rng)
            write_classification_run(results, name, "resnet18", data, seed, logits, TARGET,
                                     CLASSES)  # fmt: skip
    runs = sorted(p.parent for p in (results / "runs").glob("*/*/*/*/record.json"))
    (runs[1] / "predictions.npz").write_bytes(b"")  # empty
    (runs[4] / "predictions.npz").write_bytes(b"PK\x03\x04 not a zip")
    (runs[7] / "predictions.npz").unlink()
    other = np.load(runs[9] / "predictions.npz")  # another run's predictions: disagree
    np.savez_compressed(runs[10] / "predictions.npz", **{k: other[k] for k in other.files})
    return results


def _loader(
    results: Path, n_workers: int, cache: bool, used: int | None = None
) -> tuple[RunScoreLoader, list]:
    runs, problems, _ = collect(results, None)
    loader = RunScoreLoader(problems, ScoreArrayCache(results) if cache else None)
    # read by that many workers (or here: 0)
    assert loader.prefetch(runs, n_workers) == (n_workers if used is None else used)
    return loader, runs


@pytest.mark.parametrize("cache", [True, False])
def test_workers_give_the_scores_and_problems_of_the_loop(results: Path, cache: bool) -> None:
    pooled, runs = _loader(results, 2, cache)
    serial, _ = _loader(results, 0, cache)
    assert [(p.what, p.path, p.message) for p in pooled.problems] == \
        [(p.what, p.path, p.message) for p in serial.problems]  # fmt: skip
    assert {p.what for p in serial.problems} == {
        "unreadable predictions",
        "predictions disagree with record",
    }
    assert len(serial.problems) == 4
    for run in runs:
        got, want = pooled.get(run), serial.get(run)
        assert (got is None) == (want is None), run.run_dir
        if want is not None:
            assert np.array_equal(got.example_ids, want.example_ids)
            for name, scored in want.metrics.items():
                full = np.arange(want.n)[None, :]
                assert np.array_equal(got.metrics[name].compute(full), scored.compute(full))
        assert pooled.run_problems[run.run_dir] == serial.run_problems[run.run_dir]
    # the runs share their example ids: one read-only array across the workers' chunks, as
    # the loop's reader gives them (the checks know a shared array by identity); read_npz
    # shares a member from its second sighting, so each worker's first run has its own
    ids = [got.example_ids for run in runs if (got := pooled.get(run)) is not None]
    counts = Counter(id(a) for a in ids)
    common, count = counts.most_common(1)[0]
    assert count >= len(ids) - 2 and len(ids) == len(runs) - 4
    assert not next(a for a in ids if id(a) == common).flags.writeable
    if cache:  # what the workers read is stored in the score cache, as the loop stores it
        assert pooled.disk.save()
        # all but the three unreadable runs from the cache: those three files are one
        # chunk, read by one worker
        again, _ = _loader(results, 2, True, used=1)
        assert again.disk.hits == len(runs) - 3


def _pages(results: Path, out: Path, *extra: str) -> tuple[str, bytes]:
    assert bench("leaderboard", "--results", results, "--out", out, "--n-boot", "300",
                 "--no-plots", *extra) == 0  # fmt: skip
    markdown = re.sub(r"Generated \S+ from", "", (out / "leaderboard.md").read_text())
    return markdown, (out / "leaderboard.csv").read_bytes()


def test_the_pages_are_the_same_with_and_without_workers(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = []
    real = workers.read_score_arrays

    def counted(jobs, n_workers):  # type: ignore[no-untyped-def]
        started.append(n_workers)
        yield from real(jobs, n_workers)

    monkeypatch.setattr(importlib.import_module("benchmark.leaderboard.compare"),
                        "read_score_arrays", counted)  # fmt: skip
    pooled = _pages(results, tmp_path / "pooled", "--no-cache", "--workers", "2")
    assert started == [2]
    serial = _pages(results, tmp_path / "serial", "--no-cache", "--workers", "0")
    assert started == [2]  # --workers 0: in this process
    assert pooled == serial
    assert "unreadable predictions" in serial[0]


def test_a_negative_worker_count_is_the_users_mistake(results: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert bench("leaderboard", "--results", results, "--workers", "-1") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--workers -1" in err


def _replace_score_arrays(monkeypatch: pytest.MonkeyPatch, score_arrays) -> None:  # type: ignore[no-untyped-def]
    """The classification kind reads its arrays with ``score_arrays`` (the workers are forked,
    so they see the replacement too)."""
    spec = kinds.ANALYSES["classification"]
    monkeypatch.setitem(
        kinds.ANALYSES, "classification", dataclasses.replace(spec, score_arrays=score_arrays)
    )


def _jobs(results: Path) -> list[tuple[Path, str]]:
    return [(run.run_dir, run.kind) for run in collect(results, None)[0]]


def test_workers_ignore_ctrl_c_and_die_with_the_build(
    results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The terminal sends SIGINT to the whole process group: the build stops the pool, the
    workers print nothing; and a worker whose parent is killed outright is killed too."""

    def report(run_dir: Path) -> dict[str, np.ndarray]:
        libc = ctypes.CDLL(None, use_errno=True)
        death = ctypes.c_int(0)
        libc.prctl(2, ctypes.byref(death))  # PR_GET_PDEATHSIG
        return {
            "sigint_ignored": np.asarray(signal.getsignal(signal.SIGINT) == signal.SIG_IGN),
            "death_signal": np.asarray(death.value),
            "pid": np.asarray(os.getpid()),
        }

    _replace_score_arrays(monkeypatch, report)
    got = [arrays for _, arrays in workers.read_score_arrays(_jobs(results), 2)]
    assert all(bool(a["sigint_ignored"]) for a in got)
    assert all(int(a["death_signal"]) == signal.SIGKILL for a in got)
    assert {int(a["pid"]) for a in got} - {os.getpid()}  # read in other processes
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # this process: untouched
    assert not multiprocessing.active_children()  # the pool is gone after the last run


def test_an_interrupted_build_leaves_no_worker_behind(results: Path) -> None:
    stream = workers.read_score_arrays(_jobs(results), 2)
    next(stream)
    assert multiprocessing.active_children()
    with pytest.raises(KeyboardInterrupt):
        stream.throw(KeyboardInterrupt())
    assert not multiprocessing.active_children()


def test_a_worker_killed_is_an_environment_failure(
    results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = os.getpid()

    def killed(run_dir: Path) -> dict[str, np.ndarray]:
        if os.getpid() == parent:  # read in this process after all: fail, do not kill pytest
            raise AssertionError("the predictions were not read by workers")
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
        raise AssertionError("unreachable")

    _replace_score_arrays(monkeypatch, killed)
    with pytest.raises(EnvironmentFailure, match="--workers 0"):
        build_module.build(results, n_boot=200, plots=False, cache=False, workers=2)
    assert not multiprocessing.active_children()


def test_no_fork_while_another_thread_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real check, and MIN_RUNS
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert workers._other_python_threads()
        assert not workers.workers_usable(2, 1000)
    finally:
        stop.set()
        thread.join()
    monkeypatch.setattr(workers, "_other_python_threads", lambda: False)
    assert workers.workers_usable(2, workers.MIN_RUNS)
    assert not workers.workers_usable(0, 1000)
    assert not workers.workers_usable(2, workers.MIN_RUNS - 1)


def test_the_command_reads_with_workers_and_writes_the_same_pages(tmp_path: Path) -> None:
    """`bench leaderboard` as a user runs it, in a fresh process, over MIN_RUNS runs (one of
    them unreadable): read by two workers (its timing line says so), the pages are those of
    --workers 0, problem row included."""
    results = tmp_path / "results"
    rng = np.random.default_rng(0)
    target = np.repeat(np.arange(5), 4)
    for seed in range(MIN_RUNS // 2):
        for name, data in (("original_r18", "original"), ("blurred_r18", "blurred")):
            logits = logits_with_correct(target, rng.random(len(target)) < 0.7, 5, rng)
            run = write_classification_run(
                results, name, "resnet18", data, seed, logits, target, CLASSES
            )
    (run / "predictions.npz").write_bytes(b"")
    pages = []
    for n_workers, says in (("2", "read predictions (2 workers)"), ("0", "read predictions ")):
        out = tmp_path / f"site-{n_workers}"
        done = bench_subprocess(
            "leaderboard",
            "--results",
            results,
            "--out",
            out,
            "--n-boot",
            "200",
            "--no-plots",
            "--no-cache",
            "--workers",
            n_workers,
        )
        assert done.returncode == 0, done.stderr
        assert says in done.stdout and "problem(s) listed" in done.stdout
        markdown = re.sub(r"Generated \S+ from", "", (out / "leaderboard.md").read_text())
        pages.append((markdown, (out / "leaderboard.csv").read_bytes()))
    assert pages[0] == pages[1]
    assert "unreadable predictions" in pages[0][0]


def test_a_pool_that_cannot_fork_is_an_environment_failure(
    results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fork() refused (EAGAIN: a pids cgroup limit, ulimit -u): one line, exit 1 in the CLI;
    not a problem row for the run being read, nor a StopIteration for the next one."""

    def no_fork() -> int:
        raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    monkeypatch.setattr(os, "fork", no_fork)
    with pytest.raises(EnvironmentFailure, match="--workers 0"):
        build_module.build(results, n_boot=200, plots=False, cache=False, workers=2)


def test_a_pool_that_starts_half_way_does_not_hang_the_exit(tmp_path: Path, results: Path) -> None:
    """The second worker's fork refused: the first worker is killed, the command exits 1 with
    one line (multiprocessing's exit would otherwise wait for that worker for good)."""
    script = tmp_path / "fork2.py"
    script.write_text(
        "import errno, os, sys\n"
        "from benchmark.leaderboard import workers\n"
        "workers.MIN_RUNS = 1\n"
        "real, calls = os.fork, []\n"
        "def fork():\n"
        "    calls.append(1)\n"
        "    if len(calls) == 2:\n"
        "        raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))\n"
        "    return real()\n"
        "os.fork = fork\n"
        "from benchmark.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), "leaderboard", "--results", str(results), "--out",
         str(tmp_path / "out"), "--no-plots", "--no-cache", "--workers", "2"],
        start_new_session=True, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("still running 30 s later")
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 1, err
    assert len(err.strip().splitlines()) == 1 and "--workers 0" in err


def test_ctrl_c_stops_a_build_whose_worker_is_blocked(results: Path) -> None:
    """A worker blocked in a read (a FIFO here; a hung network mount in life) ignores SIGINT:
    the command kills its workers and exits 130, as it does reading in its own process."""
    runs = sorted(p.parent for p in (results / "runs").glob("*/*/*/*/record.json"))
    (runs[5] / "predictions.npz").unlink()
    os.mkfifo(runs[5] / "predictions.npz")
    code = (
        "import sys; from benchmark.leaderboard import workers; workers.MIN_RUNS = 1; "
        "from benchmark.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    ended = {}
    for n in ("0", "2"):
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "leaderboard", "--results", str(results), "--out",
             str(results.parent / f"out{n}"), "--no-plots", "--no-cache", "--workers", n],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(2)  # blocked on the FIFO by now
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole group
        try:
            proc.wait(timeout=15)
            ended[n] = proc.returncode
        except subprocess.TimeoutExpired:
            ended[n] = "still running 15 s after Ctrl-C"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if n == "2":  # every worker is gone with it (same session, new group)
            left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True)
            assert left.stdout == b""
    assert ended == {"0": 130, "2": 130}


def test_ctrl_c_with_chunks_still_queued_prints_nothing_and_exits(tmp_path: Path) -> None:
    """Interrupted while many chunks wait in the pool's queue (long run paths, so the queue's
    pipe is full): the read stops at once, no pool thread prints a traceback, and the process
    exits (an executor.map whose futures were cancelled made the pool's thread fail on 3.11.7
    and could leave the exit waiting on its queue)."""
    script = tmp_path / "interrupted.py"
    script.write_text(
        "import dataclasses, signal, time\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from benchmark.analysis import kinds\n"
        "from benchmark.leaderboard import workers\n"
        "def slow(run_dir):\n"
        "    time.sleep(0.005)\n"
        "    return {'x': np.zeros(3)}\n"
        "spec = kinds.ANALYSES['classification']\n"
        "kinds.ANALYSES['classification'] = dataclasses.replace(spec, score_arrays=slow)\n"
        "jobs = [(Path('/nowhere/' + 'd' * 150 + f'/{i}'), 'classification')\n"
        "        for i in range(10000)]\n"
        "def interrupt(*_):\n"
        "    raise KeyboardInterrupt\n"
        "signal.signal(signal.SIGALRM, interrupt)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.5)\n"
        "read = 0\n"
        "try:\n"
        "    for _ in workers.read_score_arrays(jobs, 2):\n"
        "        read += 1\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted after', read)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0 and "interrupted after" in done.stdout, done.stderr
    assert int(done.stdout.split()[-1]) < 10000
    assert done.stderr == ""


def test_shared_arrays_of_other_structured_dtypes_stay_apart() -> None:
    """Equal bytes under two 8-byte structured dtypes (both "|V8" as dtype.str) are two arrays."""
    a = np.zeros(2, dtype=[("id", "<i4"), ("y", "<i4")])
    b = np.zeros(2, dtype=[("seed", "<i8")])
    shared = workers._SharedArrays()
    got_a, got_b = shared.one(a, {}), shared.one(b, {})
    assert got_a.dtype == a.dtype and got_b.dtype == b.dtype
    assert shared.one(a.copy(), {}) is got_a  # the same bytes and dtype: one array
