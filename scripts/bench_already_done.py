"""How long `bench run` takes to answer "already done", process wall time, imports included.

Makes the demo's inputs in a temporary folder (a CIFAR-10 fixture, an untrained ResNet-18 in
the paper's checkpoint layout), runs the tiny run once to write its record, then starts
``python -m benchmark.cli run ...`` for the same run REPEAT times and reports the median wall
time, and the CPU time the process used (user + system: what a loaded shared machine inflates
least). With ``--before REV`` (default ``main``) the same is timed on the code of that git
revision (exported with ``git archive`` into the temporary folder, run from there), on the same
record: both must answer "already done", which also checks that this code computes the key the
older code computed.

    python scripts/bench_already_done.py                 # this checkout and main, median of 5
    python scripts/bench_already_done.py --before none   # this checkout only
    python scripts/bench_already_done.py --repeat 9 --before HEAD~3
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def prepare(work: Path) -> list[str]:
    """The demo's data and checkpoint, and the `bench run` arguments of its tiny run."""
    import torch

    from benchmark.backbones import build_architecture
    from benchmark.checkpoints import save_imagenet_example_checkpoint
    from benchmark.data.cifar import write_cifar10_fixture

    write_cifar10_fixture(work / "data")
    checkpoint = work / "resnet18_demo_untrained.pth"
    torch.manual_seed(0)
    state = build_architecture("resnet18").state_dict()
    save_imagenet_example_checkpoint(checkpoint, "resnet18", state, epoch=0)
    return ["run", "--task", "cifar10", "--backbone", str(checkpoint), "--subset", "tiny",
            "--data-root", str(work / "data"), "--results", str(work / "results"),
            "--max-steps", "2", "--accelerator", "cpu", "--devices", "1",
            "--num-workers", "0"]  # fmt: skip


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_run(code: Path, argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """One `bench run` process from the code in ``code``: (wall s, CPU s, stdout)."""
    cpu, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmark.cli", *argv], cwd=code, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"bench run failed in {code} (exit {proc.returncode}):\n{proc.stderr}")
    return wall, cpu, proc.stdout


def export(revision: str, into: Path) -> Path:
    """The tree of ``revision`` as plain files (no worktree, nothing in the repository)."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], check=True,
                             capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", default="main",
                        help="git revision to compare with, or 'none' (default: main)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-already-done-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "xdg-cache"),
               "PYTHONPATH": ""}  # fmt: skip
        argv = prepare(work)
        codes = {"after (this checkout)": REPO}
        if args.before != "none":
            codes = {f"before ({args.before})": export(args.before, work / "before"), **codes}
        first, _, out = bench_run(REPO, argv, env)  # trains once and writes the record
        print(f"first run (trains {argv[argv.index('--max-steps') + 1]} steps): {first:.1f} s")
        rows = []
        for label, code in codes.items():
            walls, cpus = [], []
            for _ in range(args.repeat):
                wall, cpu, out = bench_run(code, argv, env)
                if not out.startswith("already done:"):
                    raise SystemExit(f"{label}: expected 'already done', got: {out!r}")
                walls.append(wall)
                cpus.append(cpu)
            rows.append((label, statistics.median(walls), min(walls), max(walls),
                         statistics.median(cpus)))  # fmt: skip
        print(f"\n`bench run` answering 'already done', process wall time, {args.repeat} runs "
              f"each ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}):")  # fmt: skip
        print("| code | median wall s | min | max | median CPU s |\n|---|---:|---:|---:|---:|")
        for label, median, low, high, cpu in rows:
            print(f"| {label} | {median:.2f} | {low:.2f} | {high:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
