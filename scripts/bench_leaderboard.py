"""How long `bench leaderboard` takes over many run records (default 10,000).

Writes a synthetic results folder once (records in the runner's layout and format, with or
without per-example predictions), then times ``leaderboard.build`` + ``leaderboard.write`` in
this process after the imports are warm, twice: a COLD build (the caches in
``<results>/.cache`` removed first, so every record and predictions file is read, every
comparison computed and the caches written) and a WARM rebuild (unchanged runs: record
readings and comparisons from the caches), and prints the time of each stage.

    python scripts/bench_leaderboard.py                       # 10,000 records, predictions
    python scripts/bench_leaderboard.py --no-predictions      # record-only leaderboard
    python scripts/bench_leaderboard.py --plots               # with the per-class plots
    python scripts/bench_leaderboard.py --no-cache            # both builds without the cache
    python scripts/bench_leaderboard.py --workers 2           # predictions read by 2 processes

``--process`` times what a user waits for instead: the whole ``bench leaderboard`` process,
imports included, over 8, 1k, 10k and 100k records (``--sizes``), cold (no cache, no
output folder: the first build) then warm (the same command again), with the child's CPU time
and peak memory (``getrusage``'s max RSS, through ``os.wait4``), as a markdown table. ``--code DIR``
times another checkout's code on the same records (``git archive <commit> | tar -x -C DIR``),
so before and after come from one machine and one set of records:

    python scripts/bench_leaderboard.py --process                      # this checkout
    python scripts/bench_leaderboard.py --process --code /tmp/lb-old   # an older commit

Layout: TASKS tasks x PAIRS (original, blurred) backbone pairs x SEEDS seeds = records
(20 x 10 x 2 x 25 = 10,000 by default), 10 classes, EXAMPLES test examples per task, so 200
comparisons of 3 scalar metrics and one per-class view each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from synthetic_records import classification_metrics, logits_with_correct  # noqa: E402

from benchmark.records import SCHEMA_VERSION, RunKey, config_hash  # noqa: E402

CLASSES = [f"class{i}" for i in range(10)]


def write_results(root: Path, tasks: int, pairs: int, seeds: int, examples: int,
                  predictions: bool) -> int:  # fmt: skip
    """Records written straight into their final folders (no fsync per file, unlike
    RunStore.write: the benchmark is the reading, not the writing)."""
    rng = np.random.default_rng(0)
    count = 0
    for t in range(tasks):
        task = f"task{t:02d}"
        target = np.repeat(np.arange(10), examples // 10)
        for p in range(pairs):
            for data in ("original", "blurred"):
                name = f"{data}_arch{p:02d}"
                rate = 0.7 + 0.01 * p - (0.005 if data == "blurred" else 0.0)
                for seed in range(seeds):
                    correct = rng.random(len(target)) < rate
                    logits = logits_with_correct(target, correct, 10, rng)
                    config = {
                        "task": {"name": task, "metrics": {"primary": "top1", "others": [
                            "mean_per_class_accuracy", "per_class_accuracy"]}},
                        "subset": "full",
                        "backbone": {"name": name, "arch": f"arch{p:02d}", "sha256": name},
                    }  # fmt: skip
                    digest = config_hash(config)
                    run_dir = root / RunKey(task, "finetune", name, seed, digest).relative_dir()
                    run_dir.mkdir(parents=True)
                    record = {
                        "schema": SCHEMA_VERSION, "task": task, "kind": "classification",
                        "protocol": "finetune", "seed": seed, "subset": "full",
                        "backbone": {"name": name, "arch": f"arch{p:02d}", "sha256": name,
                                     "pretraining_data": data},
                        "config": config, "config_hash": digest, "data": {"fixture": False},
                        "class_names": CLASSES, "status": "completed",
                        "metrics": classification_metrics(logits, target, CLASSES),
                        "primary_metric": "top1", "ended": "2026-01-01T00:00:00+00:00",
                        "training": {"steps": 200, "epochs_completed": 1,
                                     "losses": rng.random(200).round(4).tolist()},
                    }  # fmt: skip
                    (run_dir / "record.json").write_text(json.dumps(record, indent=1))
                    if predictions:
                        np.savez_compressed(
                            run_dir / "predictions.npz",
                            example_id=np.asarray([f"test/{i}" for i in range(len(target))]),
                            target=target, logits=logits,
                        )  # fmt: skip
                    count += 1
    return count


# records -> (tasks, pairs, seeds): tasks x pairs x (original, blurred) x seeds records
LAYOUTS = {8: (1, 2, 2), 1000: (2, 10, 25), 10_000: (20, 10, 25), 100_000: (200, 10, 25)}


def results_folder(workdir: Path, tasks: int, pairs: int, seeds: int, examples: int,
                   predictions: bool) -> Path:  # fmt: skip
    """The synthetic results folder of a layout, written the first time it is asked for."""
    tag = f"t{tasks}-p{pairs}-s{seeds}-n{examples}{'' if predictions else '-records'}"
    results = workdir / tag
    if not results.exists():
        t0 = time.perf_counter()
        partial = workdir / f"{tag}.partial"  # a killed writer leaves no half folder behind
        shutil.rmtree(partial, ignore_errors=True)
        n = write_results(partial, tasks, pairs, seeds, examples, predictions)
        partial.rename(results)
        print(f"wrote {n} synthetic records to {results} in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
    return results


def time_process(
    code: Path, results: Path, out: Path, extra: list[str]
) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB) and CPU seconds (user + system) of one ``bench
    leaderboard`` process, imports included. ``os.wait4`` gives this child's own rusage
    (``RUSAGE_CHILDREN`` would mix all children). On a shared machine the CPU time is the
    steadier figure: wall time grows with the other processes' load, CPU time much less."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, "-m", "benchmark.cli", "leaderboard", "--results", str(results),
           "--out", str(out), *extra]  # fmt: skip
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, cwd=code, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    err = child.stderr.read().decode() if child.stderr else ""
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {child.returncode}: {err.strip()[-500:]}")
    return seconds, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime  # RSS: KiB


def process_table(args: argparse.Namespace) -> None:
    from benchmark.score_cache import CACHE_DIR

    code = args.code.resolve()
    extra = [] if args.plots else ["--no-plots"]
    extra += ["--n-boot", str(args.n_boot)]
    if args.workers is not None:  # else the command's default (older checkouts lack the flag)
        extra += ["--workers", str(args.workers)]
    print(f"`bench leaderboard {' '.join(extra)}` process wall time, imports included; code: "
          f"{code}; {os.cpu_count()} CPUs, load average at start "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| records | cold (s) | warm (s) | cold CPU (s) | warm CPU (s) | peak RSS cold (MiB) "
          "| peak RSS warm (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        tasks, pairs, seeds = LAYOUTS[size]
        results = results_folder(args.workdir, tasks, pairs, seeds, args.examples,
                                 not args.no_predictions)  # fmt: skip
        out = args.workdir / f"{results.name}-site-{code.name}"
        shutil.rmtree(results / CACHE_DIR, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        cold = time_process(code, results, out, extra)
        warm = time_process(code, results, out, extra)
        print(f"| {size:,} | {cold[0]:.2f} | {warm[0]:.2f} | {cold[2]:.2f} | {warm[2]:.2f} "
              f"| {cold[1]:.0f} | {warm[1]:.0f} |", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-leaderboard"))
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--examples", type=int, default=200, help="test examples per task")
    parser.add_argument("--no-predictions", action="store_true")
    parser.add_argument("--plots", action="store_true")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--no-cache", action="store_true",
                        help="build without the score cache (as `bench leaderboard --no-cache`)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes reading predictions (default: in-process builds read "
                        "them in this process, --process uses the command's default)")
    parser.add_argument("--process", action="store_true",
                        help="time whole `bench leaderboard` processes over --sizes records")
    parser.add_argument("--sizes", type=lambda text: [int(x) for x in text.split(",")],
                        default=list(LAYOUTS), help=f"with --process: record counts, of "
                        f"{', '.join(map(str, LAYOUTS))}")
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="with --process: the checkout whose code is timed")
    args = parser.parse_args()
    if args.process:
        unknown = [s for s in args.sizes if s not in LAYOUTS]
        if unknown:
            parser.error(f"--sizes {unknown}: use some of {list(LAYOUTS)}")
        process_table(args)
        return

    tag = (f"t{args.tasks}-p{args.pairs}-s{args.seeds}-n{args.examples}"
           f"{'-records' if args.no_predictions else ''}")  # fmt: skip
    results = args.workdir / tag
    if args.regenerate and results.exists():
        shutil.rmtree(results)
    if not results.exists():
        t0 = time.perf_counter()
        n = write_results(results, args.tasks, args.pairs, args.seeds, args.examples,
                          not args.no_predictions)  # fmt: skip
        print(f"wrote {n} synthetic records to {results} in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    from benchmark import leaderboard

    if args.plots:
        import matplotlib.figure  # noqa: F401
    print(f"imports: {time.perf_counter() - t0:.2f} s (not counted below)")

    from benchmark.score_cache import CACHE_DIR

    out = args.workdir / f"{tag}-site"
    shutil.rmtree(results / CACHE_DIR, ignore_errors=True)
    totals = {}
    for label in ("cold", "warm"):
        t0 = time.perf_counter()
        board = leaderboard.build(results, n_boot=args.n_boot, plots=args.plots,
                                  cache=not args.no_cache, workers=args.workers or 0)  # fmt: skip
        leaderboard.write(board, out)
        totals[label] = time.perf_counter() - t0
        print(f"{label}: {board.records_read} records, {len(board.settings)} settings, "
              f"{len(board.comparisons)} comparisons, {len(board.problems)} problems")
        for stage, seconds in board.timings.items():
            print(f"  {stage:<26} {seconds:6.2f} s")
        print(f"{label} leaderboard build + write: {totals[label]:.2f} s")
    print("summary: " + ", ".join(f"{k} {v:.2f} s" for k, v in totals.items())
          + (" (no cache)" if args.no_cache else ""))


if __name__ == "__main__":
    main()
