"""The run record: one directory per run under ``<results>/runs/``, written atomically.

A run's directory is keyed by task, protocol, backbone, seed and the hash of everything that
decides its outcome (the resolved task, subset, trainer limits, checkpoint sha256), so changing
a hyperparameter makes a new run instead of finding an old one "already done".
Layout: ``runs/<task>/<protocol>/<backbone>/seed<seed>-<hash12>/{record.json, predictions.npz}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from benchmark.atomic import atomic_write_text
from benchmark.errors import BenchError
from benchmark.paths import safe_component

RECORD_FILE = "record.json"
PREDICTIONS_FILE = "predictions.npz"
# 2: the config (hence the key) holds the data identity (benchmark.data.identity)
SCHEMA_VERSION = 2


def config_hash(config: dict[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class RunKey:
    task: str
    protocol: str
    backbone: str
    seed: int
    config_hash: str

    def relative_dir(self) -> Path:
        return (
            Path("runs")
            / safe_component(self.task, "task name")
            / safe_component(self.protocol, "protocol")
            / safe_component(self.backbone, "backbone name")
            / f"seed{int(self.seed)}-{self.config_hash[:12]}"
        )

    def lock_name(self) -> str:
        parts = (self.task, self.protocol, self.backbone, f"s{int(self.seed)}", self.config_hash)
        return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:32]


class RunInProgress(BenchError):
    """Another process holds this run's lock (a double start, a requeued cluster job)."""


class RunStore:
    """The records under one results directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def run_dir(self, key: RunKey) -> Path:
        return self.root / key.relative_dir()

    @contextmanager
    def lock(self, key: RunKey) -> Iterator[None]:
        """Hold the run's lock: one process at a time trains (and writes) a given key.

        ``flock`` locks are released by the kernel when their process dies, so a lock left by a
        killed run never blocks the next one. Beside the lock file, who holds it (host, pid,
        since when) for the message another process gets.
        """
        locks = self.root / "runs" / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        path = locks / f"{key.lock_name()}.lock"
        holder = path.with_suffix(".json")
        lock = FileLock(path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunInProgress(
                f"run {self.run_dir(key)} is in progress elsewhere ({_describe_holder(holder)}): "
                f"wait for it to finish, then run this command again (it will answer "
                f"'already done' or resume)."
            ) from None
        try:
            info = {"host": socket.gethostname(), "pid": os.getpid(),
                    "since": datetime.now(UTC).isoformat(timespec="seconds")}
            atomic_write_text(holder, json.dumps(info) + "\n")
            yield
        finally:
            holder.unlink(missing_ok=True)
            lock.release()

    def completed(self, key: RunKey) -> dict[str, Any] | None:
        """The record of a finished, successful run with this key, if there is one."""
        record = read_record(self.run_dir(key))
        return record if record and record.get("status") == "completed" else None

    def write(
        self, key: RunKey, record: dict[str, Any], write_files: Callable[[Path], None]
    ) -> Path:
        """Build the run directory in a staging area, then move it into place in one rename.

        A run killed while writing leaves only a staging directory (ignored by every reader),
        never a half-written run directory; a previous run with the same key is replaced only
        once the new one is complete.
        """
        final = self.run_dir(key)
        staging_root = self.root / "runs" / ".staging"
        staging = staging_root / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            write_files(staging)
            text = json.dumps(record, indent=1, default=str) + "\n"
            atomic_write_text(staging / RECORD_FILE, text)
            final.parent.mkdir(parents=True, exist_ok=True)
            old = None
            if final.exists():
                old = staging_root / f"old-{uuid.uuid4().hex}"
                os.replace(final, old)
            os.replace(staging, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final

    def records(self) -> list[tuple[Path, dict[str, Any] | None]]:
        """Every run directory with its record, ``None`` where the record is unreadable."""
        runs = self.root / "runs"
        if not runs.is_dir():
            return []
        out = []
        for record_path in sorted(runs.glob(f"*/*/*/*/{RECORD_FILE}")):
            out.append((record_path.parent, read_record(record_path.parent)))
        return out


def _describe_holder(holder: Path) -> str:
    try:
        info = json.loads(holder.read_text())
        return f"host {info['host']}, pid {info['pid']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown: it is just starting"


def read_record(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
