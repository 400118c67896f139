"""Reading a run's ``predictions.npz`` fast: what ``np.load(path, allow_pickle=False)`` returns,
for many small files.

Written by hand on top of :mod:`zipfile` and :mod:`numpy.lib.format` because a cold leaderboard
of 10,000 runs spent most of its time in ``np.load``'s per-file overhead, not in the data:
it opens the archive once per member and parses every member's header with
``ast.literal_eval`` (about a third of its time). Here the file is read once, and each distinct
header (the runs of a task share theirs) is parsed once, by numpy's own header readers. No
pickle: an object dtype is refused as ``np.load`` refuses it without ``allow_pickle``.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

_MAGIC = b"\x93NUMPY"


@lru_cache(maxsize=1024)
def _header(prefix: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of an ``.npy`` header (magic included), parsed by
    numpy; memoised by its bytes."""
    fp = io.BytesIO(prefix)
    version = npy_format.read_magic(fp)
    if version == (1, 0):
        return npy_format.read_array_header_1_0(fp)
    if version == (2, 0):
        return npy_format.read_array_header_2_0(fp)
    raise ValueError(f"unsupported .npy format version {version}")


def _array(raw: bytes, name: str) -> np.ndarray:
    if raw[:6] != _MAGIC or len(raw) < 10:
        raise ValueError(f"{name} is not an .npy array")
    if raw[6] == 1:
        start = 10 + int.from_bytes(raw[8:10], "little")
    elif raw[6] == 2:
        start = 12 + int.from_bytes(raw[8:12], "little")
    else:
        raise ValueError(f"{name}: unsupported .npy format version {raw[6]}")
    shape, fortran_order, dtype = _header(raw[:start])
    if dtype.hasobject:
        raise ValueError(f"{name}: object arrays cannot be loaded when allow_pickle=False")
    count = 1
    for size in shape:
        count *= size
    if len(raw) - start != count * dtype.itemsize:
        raise ValueError(f"{name}: the data does not match its header's shape and dtype")
    array = np.frombuffer(bytearray(raw[start:]), dtype, count)  # writable, as np.load's
    return array.reshape(shape[::-1]).transpose() if fortran_order else array.reshape(shape)


# what reading a run's predictions can raise when the file is missing, damaged or not what its
# kind expects: the leaderboard lists such a run as a problem instead of stopping
READ_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, KeyError, IndexError,
                                            zipfile.BadZipFile)  # fmt: skip


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive by name, as ``np.load`` gives them. Anything the fast
    path does not expect (not a zip, a member that is not an ``.npy``, a damaged archive) goes
    through ``np.load`` itself, so errors and edge cases are exactly its own."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            out = {}
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    if not info.filename.endswith(".npy"):
                        raise ValueError(info.filename)
                    out[info.filename[:-4]] = _array(archive.read(info), info.filename)
            return out
        except Exception:  # noqa: BLE001, S110 - np.load below says what is wrong, in its words
            pass
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy (or pickle): not an archive
        raise ValueError(f"{path} is not an .npz archive")
    with loaded as npz:
        try:
            return {k: npz[k] for k in npz.files}
        except zlib.error as err:  # damaged deflate data (np.savez_compressed): not a crash
            raise ValueError(f"{path}: damaged compressed data ({err})") from None
