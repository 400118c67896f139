#!/usr/bin/env bash
# GPU check for sweeps and the leaderboard (the `device` tool: a lent H100/H200 with its own
# torch, no network; pure-Python packages missing there travel as wheels in .whl/):
# a 4-run sweep on the GPU (bf16) killed with SIGKILL half-way and run again (CUDA checkpoints
# resume), then the leaderboard's build time over 10,000 synthetic records on 16 cores.
set -uo pipefail
source scripts/device_env.sh
nproc
timeout 140 python3 scripts/sweep_kill_resume.py --workdir /tmp/skr --accelerator gpu \
  --precision bf16-mixed --seeds 0 --max-steps 20 --kill-after 2 2>&1 | head -60
timeout 80 python3 scripts/bench_leaderboard.py --plots --workdir /tmp/bl 2>&1 | tail -10
