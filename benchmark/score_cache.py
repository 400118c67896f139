"""On-disk cache of what the leaderboard derives from each run's predictions.

A leaderboard of 10,000 runs spends most of a rebuild opening 10,000 ``predictions.npz`` files
(zip archives: the per-file overhead, not the data, dominates). The arrays a task kind derives
from them (``KindAnalysis.score_arrays``: e.g. example ids, targets and per-example correctness) are
small, so one consolidated file per results folder, ``<results>/.cache/leaderboard-scores.npz``,
holds them for every run; a rebuild with unchanged runs reads that one file instead.

* Keyed per run by its folder relative to the results folder plus ``(size, mtime_ns, ctime_ns,
  inode)`` of its ``record.json`` and ``predictions.npz`` (and the task kind), the whole file by
  the package's source (:mod:`benchmark.source_digest`): a changed or replaced run is read
  again, and arrays older code computed are never served; entries of runs that no longer
  exist are dropped when the cache is written.
* No pickle: an ``.npz`` (read with ``allow_pickle=False``) of one JSON index and one byte buffer;
  arrays with object dtypes are never stored. Identical arrays (the test set's example ids and
  targets, shared by every run of a task) are stored once.
* Written atomically (:mod:`benchmark.atomic`); a missing, corrupt or unreadable cache is
  ignored and rebuilt, never an error, and a cache that cannot be written is skipped.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.layout import PREDICTIONS_FILE, RECORD_FILE
from benchmark.source_digest import source_digest

CACHE_DIR = ".cache"
CACHE_FILE = "leaderboard-scores.npz"
# Bump when the stored layout, or what a kind's score_arrays returns, changes meaning.
FORMAT = 1
_ALIGN = 16

StatKey = tuple[int, ...]
Arrays = dict[str, np.ndarray]
FileStat = tuple[int, int, int, int]


def stat_identity(st: os.stat_result) -> FileStat:
    """``(size, mtime_ns, ctime_ns, inode)``: what every leaderboard cache keys a file by. The
    change time and inode catch what size and mtime miss: a file replaced by a copy that keeps
    its mtime (``cp -p``, ``rsync -a``, ``tar``) or made readable by ``chmod``."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def file_stat(path: str) -> FileStat | None:
    """:func:`stat_identity` of a file, None when it is missing (a string path: pathlib costs
    more than the stat at 10,000 runs)."""
    try:
        return stat_identity(os.stat(path))
    except OSError:
        return None


def _version() -> str:
    """The stored format and the code that computed the arrays (a kind's ``score_arrays``):
    arrays of older code are never served to newer code."""
    return f"{FORMAT}-{source_digest()}"


_RECORD_TAIL, _PREDICTIONS_TAIL = os.sep + RECORD_FILE, os.sep + PREDICTIONS_FILE


def stat_key(run_dir: Path | str) -> StatKey | None:
    """:func:`stat_identity` of the record and of the predictions, one after the other; None
    when either is missing. Joined by hand and stat'ed in one try, not by os.path.join and
    file_stat: 7.9 -> 6.0 us a run."""
    folder = os.fspath(run_dir)
    try:
        rec = os.stat(folder + _RECORD_TAIL)
        pred = os.stat(folder + _PREDICTIONS_TAIL)
    except OSError:
        return None
    return stat_identity(rec) + stat_identity(pred)


class ScoreArrayCache:
    """The per-run score arrays of one results folder: :meth:`get` before reading a run's
    predictions, :meth:`put` after, :meth:`save` once at the end of a build."""

    def __init__(self, results: Path) -> None:
        self.results = Path(results)
        self.path = self.results / CACHE_DIR / CACHE_FILE
        self._prefix = os.path.join(os.fspath(self.results), "")
        self._old: dict[str, tuple[StatKey, str, Arrays]] | None = None
        self._new: dict[str, tuple[StatKey, str, Arrays]] = {}
        self.hits = 0
        self.misses = 0

    def _rel(self, run_dir: Path) -> str | None:
        """``run_dir`` relative to the results folder, POSIX-style (by string: see stat_key)."""
        folder = os.fspath(run_dir)
        if not folder.startswith(self._prefix):
            return None
        return folder[len(self._prefix):].replace(os.sep, "/")

    def get(self, run_dir: Path, kind: str) -> tuple[Arrays | None, StatKey | None]:
        """The cached arrays of a run (None when absent or stale) and the run's current key,
        to pass to :meth:`put` (taken before its files are read, so a run rewritten while it
        is read is not cached under its new key)."""
        if self._old is None:
            self._old = _read(self.path)
        key = stat_key(run_dir)
        rel = self._rel(run_dir)
        entry = self._old.get(rel) if rel is not None else None
        if key is not None and entry is not None and entry[0] == key and entry[1] == kind:
            self._new[rel] = entry  # type: ignore[index]
            self.hits += 1
            return entry[2], key
        self.misses += 1
        return None, key

    def put(self, run_dir: Path, kind: str, key: StatKey | None, arrays: Arrays) -> None:
        """Store a run's arrays under the key :meth:`get` took before its files were read. Not
        stat'ed again: a run rewritten while it was read has a new ``ctime_ns`` (any write or
        rename sets it), so its entry, stored under the old key, is never served; a second
        stat per run cost 0.12-0.17 s of CPU in a cold 10,000-run build."""
        rel = self._rel(run_dir)
        if rel is None or key is None:
            return
        if any(not isinstance(a, np.ndarray) or a.dtype.hasobject for a in arrays.values()):
            return  # not storable without pickle: read from the predictions every time
        self._new[rel] = (key, kind, dict(arrays))

    def save(self) -> bool:
        """Write the cache when it changed: new entries, or entries of runs that were not
        looked up this time (kept while their files are unchanged, dropped otherwise).
        Returns whether a file was written; a write that fails is skipped."""
        old = self._old if self._old is not None else _read(self.path)
        changed = any(old.get(rel) is not entry for rel, entry in self._new.items())
        for rel, entry in old.items():
            if rel in self._new:
                continue
            if stat_key(os.path.join(self._prefix, rel)) == entry[0]:
                self._new[rel] = entry
            else:
                changed = True  # a run that was removed or changed: drop its entry
        if not changed:
            return False
        try:
            from benchmark.atomic import atomic_write_bytes

            atomic_write_bytes(self.path, _encode(self._new))
        except OSError:
            return False
        self._old = dict(self._new)
        return True


def _encode(entries: dict[str, tuple[StatKey, str, Arrays]]) -> bytes:
    """The cache file's bytes. An array is stored once however many runs hold it: keyed by its
    dtype, shape and bytes themselves (Python hashes the bytes once and compares them only on a
    match): 0.20-0.31 s against 0.37-0.97 s with a blake2b digest per array (40,000 arrays)."""
    blobs: list[list[Any]] = []
    seen: dict[tuple[str, tuple[int, ...], bytes], int] = {}
    # the same array object again (the runs of a task share their ids and targets, see
    # read_npz's shared): its blob without copying and hashing its bytes (the stage took
    # 0.16 -> 0.11 s of CPU at 10,000 runs); the entries hold every array meanwhile, so no
    # id is reused
    same: dict[int, int] = {}
    chunks: list[bytes] = []
    offset = 0
    runs: dict[str, Any] = {}
    for rel in sorted(entries):
        key, kind, arrays = entries[rel]
        refs = {}
        for name, array in arrays.items():
            ref = same.get(id(array))
            if ref is not None:
                refs[name] = ref
                continue
            data = array.tobytes()  # C order, whatever the array's own
            ident = (array.dtype.str, array.shape, data)
            ref = seen.get(ident)
            if ref is None:
                pad = -offset % _ALIGN
                chunks += (b"\0" * pad, data)
                offset += pad
                ref = seen[ident] = len(blobs)
                blobs.append([array.dtype.str, list(array.shape), offset, len(data)])
                offset += len(data)
            same[id(array)] = ref
            refs[name] = ref
        runs[rel] = {"key": list(key), "kind": kind, "arrays": refs}
    index = json.dumps({"format": _version(), "blobs": blobs, "runs": runs}).encode()
    out = io.BytesIO()
    np.savez(out, index=np.frombuffer(index, np.uint8),
             data=np.frombuffer(b"".join(chunks), np.uint8))  # fmt: skip
    return out.getvalue()


def _read(path: Path) -> dict[str, tuple[StatKey, str, Arrays]]:
    """The stored entries; empty when the file is missing or anything about it is wrong (a
    cache is only ever an optimisation, so any failure means: read the predictions)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            index = json.loads(npz["index"].tobytes())
            data = npz["data"]
        if index.get("format") != _version() or data.dtype != np.uint8:
            return {}
        arrays = []
        for dtype_str, shape, offset, nbytes in index["blobs"]:
            dtype = np.dtype(dtype_str)
            count = int(np.prod(shape, dtype=np.int64))
            if dtype.hasobject or offset < 0 or offset + nbytes > data.size \
                    or count * dtype.itemsize != nbytes:  # fmt: skip
                return {}
            array = np.frombuffer(data, dtype, count, offset).reshape(shape)
            array.setflags(write=False)  # shared by every run that stored the same array
            arrays.append(array)
        out = {}
        for rel, entry in index["runs"].items():
            key = tuple(int(v) for v in entry["key"])
            if len(key) != 8 or not isinstance(entry["kind"], str):
                return {}
            refs = {str(n): int(i) for n, i in entry["arrays"].items()}
            if any(not 0 <= i < len(arrays) for i in refs.values()):
                return {}
            out[str(rel)] = (key, entry["kind"], {n: arrays[i] for n, i in refs.items()})
        return out  # type: ignore[return-value]
    except Exception:  # noqa: BLE001 - corrupt/unreadable/foreign file: ignored, rebuilt
        return {}
