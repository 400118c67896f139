"""End-to-end check of a sweep that is killed (SIGKILL) half-way and run again.

2 backbones (two ResNet-18s in the paper's checkpoint layout, registered as original- and
blurred-data in a private registry) x 2 tasks (CIFAR-10 and SUN397 fixtures) x 3 seeds = 12
runs on this machine's CPU. The sweep is killed with SIGKILL once 6 runs are recorded and the
7th has a Lightning checkpoint; the same command is run again, and the script checks that it
ends with all 12 records, none twice, one of them resumed. Then it builds the leaderboard and
prints its markdown. The test suite runs a 4-run version (tests/test_sweep.py).

    python scripts/sweep_kill_resume.py [--workdir /tmp/sweep-kill-resume]
    python scripts/sweep_kill_resume.py --accelerator gpu --precision bf16-mixed --seeds 0 \
        --max-steps 20 --kill-after 2        # the GPU check: 4 runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchvision

from benchmark.checkpoints import save_imagenet_example_checkpoint
from benchmark.data.cifar import write_cifar10_fixture
from benchmark.data.sun397 import write_sun397_fixture


def bench(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmark.cli", *args]


def progress_lines(text: str) -> str:
    keep = ("[", "sweep", "resolving", "  [", "resuming")
    return "\n".join(line for line in text.splitlines() if line.startswith(keep))


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("runs/*/*/*/*/record.json"))]


def unfinished_checkpoint(results: Path) -> bool:
    for ckpt in (results / "runs" / ".work").glob("*/checkpoints/last.ckpt"):
        task, digest, seed = ckpt.parent.parent.name.rsplit("-", 2)
        if not list(results.glob(f"runs/{task}/*/*/seed{seed[1:]}-{digest}/record.json")):
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sweep-kill-resume"))
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tasks", default="cifar10,sun397")
    parser.add_argument("--max-steps", default="3")
    parser.add_argument("--kill-after", type=int, default=6, help="records before the kill")
    args = parser.parse_args()
    total = 2 * len(args.tasks.split(",")) * len(args.seeds.split(","))
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    (work / "checkpoints").mkdir(parents=True)
    for seed, data in enumerate(("original", "blurred")):
        torch.manual_seed(seed)
        save_imagenet_example_checkpoint(work / "checkpoints" / f"resnet18_{data}_ILSVRC.pth",
                                         "resnet18", torchvision.models.resnet18().state_dict())
    registry = work / "checkpoints" / "backbones.yaml"
    registry.write_text(
        "backbones:\n"
        "  demo_original_r18: {arch: resnet18, data: original, source: file,"
        " path: resnet18_original_ILSVRC.pth}\n"
        "  demo_blurred_r18: {arch: resnet18, data: blurred, source: file,"
        " path: resnet18_blurred_ILSVRC.pth}\n"
    )
    write_cifar10_fixture(work / "data")
    if "sun397" in args.tasks:
        write_sun397_fixture(work / "data")
    results = work / "results"
    env = {**os.environ, "BENCH_BACKBONES_FILE": str(registry), "PYTHONUNBUFFERED": "1"}
    sweep = bench("sweep", "--backbones", "demo_original_r18,demo_blurred_r18",
                  "--tasks", args.tasks, "--seeds", args.seeds, "--subset", "tiny",
                  "--max-steps", args.max_steps, "--checkpoint-every-n-steps", "1",
                  "--accelerator", args.accelerator, "--precision", args.precision,
                  "--num-workers", "0", "--data-root", str(work / "data"),
                  "--results", str(results))  # fmt: skip
    print("$", " ".join(["bench", *sweep[3:]]))

    t0 = time.monotonic()
    log = (work / "first.log").open("w")
    proc = subprocess.Popen(sweep, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    while not (len(records(results)) >= args.kill_after and unfinished_checkpoint(results)):
        if proc.poll() is not None:
            raise SystemExit(f"the sweep ended (exit {proc.returncode}) before it was killed")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    print(progress_lines((work / "first.log").read_text()))
    print(f"--- kill -9 after {time.monotonic() - t0:.0f} s: exit {proc.returncode}, "
          f"{len(records(results))} records on disk, work folders: "
          f"{sorted(p.name for p in (results / 'runs' / '.work').iterdir())}")

    print("$", " ".join(["bench", *sweep[3:]]), "   # the same command again")
    again = subprocess.run(sweep, env=env, capture_output=True, text=True, check=False)
    print(progress_lines(again.stdout))
    done = records(results)
    keys = [(r["task"], r["backbone"]["name"], r["seed"]) for r in done]
    resumed = [r for r in done if r["training"]["resumed_from_step"] is not None]
    print(f"--- exit {again.returncode}: {len(done)} records, {len(set(keys))} distinct "
          f"(task, backbone, seed); resumed: "
          + ", ".join(f"{r['task']} x {r['backbone']['name']} x seed {r['seed']} from step "
                      f"{r['training']['resumed_from_step']}" for r in resumed))
    assert again.returncode == 0 and len(done) == total and len(set(keys)) == total
    assert len(resumed) == 1

    third = subprocess.run(sweep, env=env, capture_output=True, text=True, check=False)
    print("$ (third time)", progress_lines(third.stdout).splitlines()[1])

    board = work / "leaderboard"
    subprocess.run(bench("leaderboard", "--results", str(results), "--out", str(board)),
                   env=env, check=True, capture_output=True)  # fmt: skip
    print(f"--- {board / 'leaderboard.md'} (records on {done[0]['accelerator']}, "
          f"{done[0]['hardware'].get('gpus') or 'no GPU'}):\n")
    print((board / "leaderboard.md").read_text())


if __name__ == "__main__":
    main()
