"""Atomic file writes: a reader (or a killed run) never sees a half-written file.

The temporary file comes from ``mkstemp``, which creates it 0600 whatever the umask; it is
given the mode any other new file would get (0666 minus the umask) before the rename, so
records and leaderboards in a shared or published folder are as readable as everything else.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``); elsewhere
    by setting and restoring it (Python 3.11 has no ``os.getumask``)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes, tmp_dir: Path | None = None) -> Path:
    """Write via a temporary file and rename, so no reader sees half.

    The temporary file lies beside ``path`` unless ``tmp_dir`` (on the same file system) is
    given: a writer of many files (``bench blur``) keeps its leftovers from a killed run in one
    folder it can clear, instead of hidden files among the outputs.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())
