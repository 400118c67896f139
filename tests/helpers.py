"""Running the CLI the way a user does, in-process (fast) or as a subprocess (exit codes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.cli import main


def bench(*argv: str | Path) -> int:
    return main([str(a) for a in argv])


def bench_subprocess(
    *argv: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmark.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def run_dirs(results: Path) -> list[Path]:
    return sorted(p.parent for p in (results / "runs").glob("*/*/*/*/record.json"))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, timeout: float = 240) -> None:
    """Poll ``predicate`` until it holds; fail if ``proc`` ends first or time runs out."""
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended (exit {proc.returncode}) too early")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"timed out after {timeout} s")
        time.sleep(0.05)
