"""sha256 of files, cached across processes by ``(path, size, mtime_ns, inode)``.

A run key holds the sha256 of its backbone checkpoint and of the files that define its data;
hashing a 100 MB checkpoint or CIFAR-10's batches on every `bench run` would cost more than
deciding the run is already done. The cache is ``$XDG_CACHE_HOME/blurbench/file-digests.json``
(default ``~/.cache/blurbench``), written atomically; a file whose size, mtime or inode changed is
hashed again. It is an optimisation only: an unreadable or unwritable cache is ignored.

Beside a digest, an entry can keep facts read from the file's content (a checkpoint's own
``arch`` field), forgotten with the digest when the file changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from benchmark.atomic import atomic_write_text

_UNKNOWN = object()


def digest_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "blurbench" / "file-digests.json"


class FileDigests:
    """sha256 of files, remembered by ``(path, size, mtime_ns, inode)`` across processes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = digest_cache_path() if path is None else path
        self._table: dict[str, dict[str, Any]] | None = None
        self._dirty = False

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._table is None:
            try:
                table = json.loads(self.path.read_text())
                self._table = table if isinstance(table, dict) else {}
            except (OSError, ValueError):
                self._table = {}
        return self._table

    def _entry(self, file: Path) -> tuple[str, list[int], dict[str, Any] | None]:
        """The file's cache key, its current stamp and its entry if that stamp matches."""
        resolved = Path(file).resolve()
        st = resolved.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        entry = self._load().get(str(resolved))
        fresh = isinstance(entry, dict) and entry.get("stamp") == stamp
        return str(resolved), stamp, entry if fresh else None

    def sha256(self, file: Path) -> str:
        key, stamp, entry = self._entry(file)
        if entry is not None and isinstance(entry.get("sha256"), str):
            return entry["sha256"]
        with open(key, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        self._load()[key] = {"stamp": stamp, "sha256": digest}
        self._dirty = True
        return digest

    def note(self, file: Path, name: str, value: Any) -> None:
        """Keep a JSON-able fact about the file's current content (after :meth:`sha256`)."""
        key, _, entry = self._entry(file)
        if entry is None:
            self.sha256(file)
            key, _, entry = self._entry(file)
        assert entry is not None
        entry.setdefault("facts", {})[name] = value
        self._dirty = True

    def noted(self, file: Path, name: str, default: Any = _UNKNOWN) -> Any:
        """A fact kept by :meth:`note` while the file is unchanged; ``default`` (or KeyError)
        when there is none."""
        _, _, entry = self._entry(file)
        facts = (entry or {}).get("facts") or {}
        if name in facts:
            return facts[name]
        if default is _UNKNOWN:
            raise KeyError(name)
        return default

    def save(self) -> None:
        if not self._dirty or self._table is None:
            return
        try:
            atomic_write_text(self.path, json.dumps(self._table, sort_keys=True))
            self._dirty = False
        except OSError:
            pass  # a cache: an unwritable home only costs hashing again next time
