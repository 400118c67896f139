"""The feature cache: frozen-backbone features of one split, stored once and memory-mapped after.

A linear probe is cheap next to reading and encoding the images, so the second probe on the
same backbone and data (another C grid, another seed) should not encode them again. An entry is
keyed by the sha256 of everything that decides the features (:func:`entry_key`: backbone
weights, architecture, task, split, subset, data identity, transform, layer, dtype, extractor
version) and holds plain ``.npy`` arrays (no pickle; read with ``mmap_mode="r"``) plus a JSON
manifest, which is written last and names each array's shape, dtype and size in bytes:

    <cache>/features/<key>/{features.npy, targets.npy, example_ids.npy, manifest.json}

An entry is built in a temporary folder beside it and renamed into place in one step, under a
per-key file lock, so a reader never sees half an entry and two processes extracting the same
entry leave one (the second waits, then reads the first's). An entry whose files do not match
its manifest (truncated, a file missing) is removed and computed again.

Where: ``$BENCH_CACHE_DIR/features`` when set (the one folder to copy to a cluster, beside its
``torch/`` and ``hf/``), else ``$XDG_CACHE_HOME/blurbench/features`` (default
``~/.cache/blurbench/features``, beside the data digests). This module imports numpy and
filelock only: ``bench cache list`` loads no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from benchmark.atomic import atomic_write_text, current_umask

MANIFEST = "manifest.json"
FORMAT = "blurbench-features-v1"
ARRAYS = ("features", "targets", "example_ids")
_TMP_PREFIX = ".tmp-"


def cache_root() -> Path:
    """The features folder in effect, read per call (a test or notebook may change the env)."""
    override = os.environ.get("BENCH_CACHE_DIR")
    if override:
        return Path(override).expanduser() / "features"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "blurbench" / "features"


def entry_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the key's parts: any change in any part is a new entry."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class CachedFeatures:
    """One split's features (memory-mapped when read from the cache), targets and example ids."""

    features: np.ndarray
    targets: np.ndarray
    example_ids: np.ndarray
    key: str
    hit: bool  # read from the cache (True) or computed by this call (False)
    path: Path | None = None


@dataclass
class Entry:
    """What ``bench cache list`` shows about one entry."""

    key: str
    path: Path
    bytes: int
    manifest: dict[str, Any] | None  # None: incomplete or unreadable
    valid: bool


# the cache's own lock folder (not the results folder's, which benchmark.layout owns)
LOCKS_DIR = "_locks"


class FeatureCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = cache_root() if root is None else Path(root)

    def entry_dir(self, key: str) -> Path:
        return self.root / key

    def _lock(self, key: str) -> FileLock:
        locks = self.root / LOCKS_DIR
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(locks / f"{key}.lock")

    def read(self, key: str) -> CachedFeatures | None:
        """The entry if it is complete and matches its manifest, else None."""
        folder = self.entry_dir(key)
        manifest = _read_manifest(folder)
        if manifest is None or manifest.get("key") != key:
            return None
        arrays: dict[str, np.ndarray] = {}
        try:
            for name in ARRAYS:
                spec = manifest["files"][name]
                path = folder / f"{name}.npy"
                if path.stat().st_size != spec["bytes"]:
                    return None  # truncated or replaced
                # mmap: a 400 MB feature matrix costs no read until the probe touches it; a
                # truncated file fails here too (numpy checks the size against the header)
                array = np.load(path, mmap_mode="r", allow_pickle=False)
                if list(array.shape) != spec["shape"] or str(array.dtype) != spec["dtype"]:
                    return None
                arrays[name] = array if name == "features" else np.asarray(array)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return CachedFeatures(arrays["features"], arrays["targets"], arrays["example_ids"], key,
                              hit=True, path=folder)  # fmt: skip

    def get_or_compute(
        self,
        parts: dict[str, Any],
        compute: Callable[[], dict[str, np.ndarray]],
    ) -> CachedFeatures:
        """The cached entry for ``parts``, or ``compute()``'s arrays stored under it.

        Under the key's lock: a second process asking for the same entry waits for the first
        and reads what it wrote, so the features are computed once and no write interleaves.
        """
        key = entry_key(parts)
        found = self.read(key)  # the common case takes no lock
        if found is not None:
            return found
        with self._lock(key):
            found = self.read(key)
            if found is not None:
                return found
            stale = self.entry_dir(key)
            if stale.exists():  # partial, truncated or from a crashed writer: recompute
                shutil.rmtree(stale, ignore_errors=True)
            t0 = time.perf_counter()
            arrays = compute()
            self._write(key, parts, arrays, time.perf_counter() - t0)
        found = self.read(key)
        if found is None:  # written and unreadable at once: the disk, not the user
            raise OSError(f"feature cache entry {self.entry_dir(key)} is unreadable after "
                          f"writing it")  # fmt: skip
        found.hit = False
        return found

    def _write(self, key: str, parts: dict[str, Any], arrays: dict[str, np.ndarray],
               seconds: float) -> None:  # fmt: skip
        """Arrays, then the manifest, into a temporary folder; then one rename."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f"{_TMP_PREFIX}{key[:16]}-"))
        try:
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it 0700 whatever the umask
            files: dict[str, Any] = {}
            for name in ARRAYS:
                array = np.ascontiguousarray(arrays[name])
                path = tmp / f"{name}.npy"
                with open(path, "wb") as fh:
                    np.save(fh, array, allow_pickle=False)
                    fh.flush()
                    os.fsync(fh.fileno())
                files[name] = {"shape": list(array.shape), "dtype": str(array.dtype),
                               "bytes": path.stat().st_size}  # fmt: skip
            manifest = {
                "format": FORMAT, "key": key, "parts": parts, "files": files,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "compute_seconds": round(seconds, 3),
            }  # fmt: skip
            atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=1, default=str))
            os.replace(tmp, self.entry_dir(key))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def entries(self) -> list[Entry]:
        """Every entry (and leftover temporary folder) under the root, oldest first."""
        if not self.root.is_dir():
            return []
        out = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != LOCKS_DIR):
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            manifest = _read_manifest(folder)
            key = folder.name
            valid = not key.startswith(_TMP_PREFIX) and self.read(key) is not None
            out.append(Entry(key, folder, size, manifest, valid))
        return sorted(out, key=lambda e: str((e.manifest or {}).get("created", "")))

    def clear(self, keep: Callable[[Entry], bool] | None = None) -> tuple[int, int]:
        """Remove entries (all, or those ``keep`` does not keep): (count, bytes) removed.

        Each removal takes the entry's lock, so no writer is mid-rename into it.
        """
        count = size = 0
        for entry in self.entries():
            if keep is not None and keep(entry):
                continue
            with self._lock(entry.key):
                shutil.rmtree(entry.path, ignore_errors=True)
            count, size = count + 1, size + entry.bytes
        return count, size


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
