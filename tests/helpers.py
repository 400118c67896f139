"""Running the CLI the way a user does, in-process (fast) or as a subprocess (exit codes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
