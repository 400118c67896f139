"""The run store: runs keyed by what decides their outcome, locked, and written atomically.

A run's folder is keyed by task, protocol, backbone, seed and the hash of everything that
decides its outcome (the resolved task, subset, data identity, trainer limits, checkpoint
sha256), so changing a hyperparameter makes a new run instead of finding an old one "already
done". Where things go is :mod:`benchmark.layout`'s; what a record holds is
:mod:`benchmark.run_record`'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from benchmark.atomic import atomic_write_text
from benchmark.errors import BenchError
from benchmark.layout import PREDICTIONS_FILE, RECORD_FILE, RunLayout, run_relative_dir
from benchmark.run_record import SCHEMA_VERSION, RecordError, RunRecord, read_record

# names other modules import from here (the store's public face)
__all__ = [
    "PREDICTIONS_FILE", "RECORD_FILE", "SCHEMA_VERSION", "RecordError", "RunInProgress",
    "RunKey", "RunRecord", "RunStore", "config_hash", "read_record",
]  # fmt: skip


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
        """The run folder under the results folder (:func:`benchmark.layout.run_relative_dir`)."""
        return run_relative_dir(self)


class RunInProgress(BenchError):
    """Another process holds this run's lock (a double start, a requeued cluster job)."""


class RunStore:
    """The records under one results directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.layout = RunLayout(self.root)

    def run_dir(self, key: RunKey) -> Path:
        return self.layout.run_dir(key)

    @contextmanager
    def lock(self, key: RunKey) -> Iterator[None]:
        """Hold the run's lock: one process at a time trains (and writes) a given key.

        ``flock`` locks are released by the kernel when their process dies, so a lock left by a
        killed run never blocks the next one. Beside the lock file, who holds it (host, pid,
        since when) for the message another process gets.
        """
        path = self.layout.lock_file(key)
        path.parent.mkdir(parents=True, exist_ok=True)
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

    def completed(self, key: RunKey) -> RunRecord | None:
        """The record of a finished, successful run with this key, if there is one (a broken
        record is none: the run is done again and replaces it)."""
        try:
            record = read_record(self.run_dir(key))
        except RecordError:
            return None
        return record if record.completed else None

    def write(
        self, key: RunKey, record: RunRecord, write_files: Callable[[Path], None]
    ) -> Path:
        """Build the run directory in a staging area, then move it into place in one rename.

        A run killed while writing leaves only a staging directory (ignored by every reader),
        never a half-written run directory; a previous run with the same key is replaced only
        once the new one is complete.
        """
        final = self.run_dir(key)
        staging = self.layout.new_staging_dir()
        staging.mkdir(parents=True)
        try:
            write_files(staging)
            atomic_write_text(staging / RECORD_FILE, record.to_json())
            final.parent.mkdir(parents=True, exist_ok=True)
            old = None
            if final.exists():
                old = self.layout.set_aside_dir()
                os.replace(final, old)
            os.replace(staging, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final

    def records(self) -> list[tuple[Path, RunRecord | RecordError]]:
        """Every run folder with its record, or why it cannot be read."""
        out: list[tuple[Path, RunRecord | RecordError]] = []
        for path in self.layout.record_files():
            try:
                out.append((path.parent, read_record(path.parent)))
            except RecordError as err:
                out.append((path.parent, err))
        return out


def _describe_holder(holder: Path) -> str:
    try:
        info = json.loads(holder.read_text())
        return f"host {info['host']}, pid {info['pid']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown: it is just starting"

