"""Data identity: which data a run read, as part of its key.

Two runs that differ only in their data must not answer for each other: a run on the tiny
fixture must not be "already done" for the real dataset, nor a run on one copy of a dataset for
another copy (with or without a file, or tampered with). The identity says whether the data is a
fixture, which adapter (and adapter version) read it, and a fingerprint of what was read: the
example ids and labels of every split the run uses, in the order it uses them, and the sha256 of
the files that define them (the adapters' index, split and annotation files, and for CIFAR-10
the batch files that hold the images). Image files of image-folder datasets are not hashed
(hundreds of thousands of files); their names and labels are, through the ids.

Hashing is cheap after the first time: file digests are cached by path, size, mtime and inode
(:mod:`benchmark.file_digests`, shared with the checkpoints' sha256).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.file_digests import FileDigests

__all__ = ["IDENTITY_VERSION", "FileDigests", "data_identity"]

# Bump when the fingerprint's recipe changes, so that old and new keys cannot collide.
IDENTITY_VERSION = 1


def data_identity(
    adapter: str,
    adapter_version: int,
    source: str,
    fixture: bool,
    splits: Mapping[str, tuple[list[str], np.ndarray | None]],
    files: Iterable[Path],
    root: Path,
    extra: Mapping[str, Any] | None = None,
    digests: FileDigests | None = None,
) -> dict[str, Any]:
    """The identity of a run's data (a JSON-able dict that goes into the run key).

    ``splits`` maps each split the run uses to its example ids and labels (or None) in the order
    used; ``files`` are the files that define them, named relative to ``root`` in the hash (a
    dataset moved to another folder keeps its identity). ``extra`` holds what else identifies
    the data (a Hugging Face dataset's fingerprint and revision).
    """
    digests = digests or FileDigests()
    h = hashlib.sha256(f"blurbench-data-identity-v{IDENTITY_VERSION}\n".encode())
    for name in sorted(splits):
        ids, labels = splits[name]
        h.update(f"split {name} {len(ids)}\n".encode())
        h.update("\n".join(ids).encode())
        if labels is not None:
            arr = np.ascontiguousarray(np.asarray(labels, dtype=np.int64))
            h.update(f"\nlabels {arr.shape}\n".encode())
            h.update(arr.tobytes())
        h.update(b"\n")
    root = Path(root).resolve()
    named = sorted({_relative(Path(f), root): Path(f) for f in files}.items())
    for name, path in named:
        h.update(f"file {name} {digests.sha256(path)}\n".encode())
    if extra:
        h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    digests.save()
    return {
        "fixture": bool(fixture),
        "adapter": adapter,
        "adapter_version": int(adapter_version),
        "source": source,
        "files": len(named),
        "examples": {name: len(splits[name][0]) for name in sorted(splits)},
        "fingerprint": h.hexdigest(),
    }


def _relative(path: Path, root: Path) -> str:
    resolved = path.resolve()
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        return resolved.as_posix()
