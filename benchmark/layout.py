"""``RunLayout``: where everything of a run lives in a results folder; the one module that
spells those paths.

The runner writes through it, the store locks and stages through it, the leaderboard lists
what it finds through it, so renaming a file or folder is one edit here. Torch-free (the
leaderboard imports it). The layout::

    <results>/runs/<task>/<protocol>/<backbone>/seed<seed>-<hash12>/
        record.json          the run record (benchmark.run_record.RunRecord)
        predictions.npz      the test predictions the metrics were computed from
        weights.safetensors  with --save-weights
        logs/<logger>/...    the loggers' files, moved here with the record
    <results>/runs/.work/<task>-<hash12>-s<seed>/    an unfinished run: logs/, checkpoints/last.ckpt
    <results>/runs/.locks/<sha>.lock (+ .json)       one run at a time per key
    <results>/runs/.staging/<uuid>/                  a run folder being written (one rename later)
"""

from __future__ import annotations

import hashlib
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.paths import safe_component

if TYPE_CHECKING:  # records imports this module: the key's type only, no import cycle
    from benchmark.records import RunKey

RECORD_FILE = "record.json"
PREDICTIONS_FILE = "predictions.npz"
RUN_WEIGHTS_FILE = "weights.safetensors"  # --save-weights: the run can be a --backbone later
LOGS = "logs"  # <work_dir>/logs/<logger>/ while training, <run_dir>/logs/<logger>/ after
LAST_CHECKPOINT = "last.ckpt"  # Lightning's ModelCheckpoint(save_last=True) name
_RUNS, _WORK, _LOCKS, _STAGING = "runs", ".work", ".locks", ".staging"
_CHECKPOINTS = "checkpoints"  # in a work folder


def run_relative_dir(key: RunKey) -> Path:
    """``runs/<task>/<protocol>/<backbone>/seed<seed>-<hash12>``, every part checked as a
    single safe folder name (a task or backbone called ``../x`` never becomes a path)."""
    return (
        Path(_RUNS)
        / safe_component(key.task, "task name")
        / safe_component(key.protocol, "protocol")
        / safe_component(key.backbone, "backbone name")
        / f"seed{int(key.seed)}-{key.config_hash[:12]}"
    )


def work_name(task: str, config_hash: str, seed: int) -> str:
    """An unfinished run's work folder name, ``<task>-<hash12>-s<seed>``."""
    return f"{task}-{config_hash[:12]}-s{int(seed)}"


@dataclass(frozen=True)
class WorkFolder:
    """An unfinished run's work folder, with what its name says."""

    path: Path
    task: str
    hash12: str
    seed: str

    @property
    def has_checkpoint(self) -> bool:
        return (self.path / _CHECKPOINTS / LAST_CHECKPOINT).is_file()


@dataclass(frozen=True)
class RunLayout:
    """The folders and files under one results folder."""

    root: Path

    @property
    def runs(self) -> Path:
        return Path(self.root) / _RUNS

    @property
    def locks(self) -> Path:
        return self.runs / _LOCKS

    @property
    def staging(self) -> Path:
        return self.runs / _STAGING

    @property
    def work(self) -> Path:
        return self.runs / _WORK

    # ---- one run
    def run_dir(self, key: RunKey) -> Path:
        return Path(self.root) / run_relative_dir(key)

    def work_dir(self, key: RunKey) -> Path:
        """Scratch space of an unfinished run (logs, resumable checkpoint); removed once its
        record is written."""
        return self.work / work_name(key.task, key.config_hash, key.seed)

    def checkpoint_dir(self, key: RunKey) -> Path:
        return self.work_dir(key) / _CHECKPOINTS

    def last_checkpoint(self, key: RunKey) -> Path:
        return self.checkpoint_dir(key) / LAST_CHECKPOINT

    def lock_file(self, key: RunKey) -> Path:
        """The key's lock file: named by a hash of the whole key, so a lock never depends on
        which names a file system accepts."""
        parts = (key.task, key.protocol, key.backbone, f"s{int(key.seed)}", key.config_hash)
        name = hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:32]
        return self.locks / f"{name}.lock"

    def new_staging_dir(self) -> Path:
        """A fresh, not yet created folder to build a run folder in before its one rename."""
        return self.staging / uuid.uuid4().hex

    def set_aside_dir(self) -> Path:
        """Where a replaced run folder goes for the moment between two renames."""
        return self.staging / f"old-{uuid.uuid4().hex}"

    # ---- what is on disk
    def record_files(self) -> list[Path]:
        """Every ``record.json`` of a run folder (not of work or staging folders), sorted."""
        return [Path(folder) / RECORD_FILE for folder, _ in self.record_folders()]

    def record_folders(self) -> list[tuple[str, os.stat_result]]:
        """The folders of :meth:`record_files`, as strings, each with the ``os.stat`` of its
        record that found it, so a reader keys its cache by that stat instead of taking a
        second one."""
        if not self.runs.is_dir():
            return []
        # what runs.glob("*/*/*/*/record.json") finds, in the same (Path) order, by os.scandir
        # and one stat per run folder: glob's pathlib objects cost half a second at 10,000 runs
        found = []
        for parts, folder in _folders_below(os.fspath(self.runs), 4):
            try:
                st = os.stat(folder + os.sep + RECORD_FILE)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.append((parts, folder, st))
        found.sort(key=lambda item: item[0])
        return [(folder, st) for _, folder, st in found]

    def finished_run_dirs(self, folder: WorkFolder) -> list[Path]:
        """Run folders with a record whose key gave this work folder's name (a run killed
        between writing its record and removing its work folder)."""
        pattern = f"{folder.task}/*/*/seed{folder.seed}-{folder.hash12}/{RECORD_FILE}"
        return [p.parent for p in sorted(self.runs.glob(pattern))] if folder.task else []

    def work_folders(self) -> list[WorkFolder]:
        """The work folders present, their names read back (see :func:`work_name`)."""
        if not self.work.is_dir():
            return []
        out = []
        for entry in sorted(self.work.iterdir()):
            task, hash12, seed = ([""] * 3 + entry.name.rsplit("-", 2))[-3:]
            out.append(WorkFolder(entry, task, hash12, seed[1:] if seed.startswith("s") else ""))
        return out

    def incomplete_writes(self) -> list[Path]:
        return sorted(self.staging.iterdir()) if self.staging.is_dir() else []


def _folders_below(root: str, depth: int) -> list[tuple[tuple[str, ...], str]]:
    """The folders ``depth`` levels below ``root``: their name parts and paths (``DirEntry.path``:
    no joining), hidden names included, as Python 3.11's ``Path.glob("*")`` includes them."""
    level: list[tuple[tuple[str, ...], str]] = [((), root)]
    for _ in range(depth):
        below = []
        for parts, path in level:
            try:
                with os.scandir(path) as entries:
                    below += [((*parts, e.name), e.path) for e in entries if e.is_dir()]
            except OSError:
                continue
        level = below
    return level


def record_file(run_dir: Path) -> Path:
    return Path(run_dir) / RECORD_FILE


def predictions_file(run_dir: Path) -> Path:
    return Path(run_dir) / PREDICTIONS_FILE


@dataclass(frozen=True)
class PretrainLayout:
    """``bench pretrain``'s output: ``<out>/<name>/`` (weights and ``pretrain.json``), built in
    ``<out>/.<name>.staging-*`` and renamed once; ``<out>/<name>.work/`` keeps the resumable
    checkpoint while training."""

    out: Path
    name: str

    @property
    def folder(self) -> Path:
        return self.out / self.name

    @property
    def work_dir(self) -> Path:
        return self.out / f"{self.name}{_WORK}"

    @property
    def checkpoint_dir(self) -> Path:
        return self.work_dir / _CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / LAST_CHECKPOINT

    def staging_prefix(self) -> str:
        """The name prefix of a staging folder (``tempfile.mkdtemp(prefix=...)`` in ``out``)."""
        return f".{self.name}{_STAGING}-"
