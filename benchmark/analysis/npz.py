"""Reading a run's ``predictions.npz`` fast: what ``np.load(path, allow_pickle=False)`` returns,
for many small files.

Written by hand on top of :mod:`struct`, :mod:`zlib` and :mod:`numpy.lib.format` because a cold
leaderboard of 10,000 runs spent most of its time in the per-file overhead of ``np.load`` and
:mod:`zipfile`, not in the data: ``np.load`` opens the archive once per member and parses every
member's header with ``ast.literal_eval``, and even one ``zipfile.ZipFile`` per file cost more
than the inflating (``ZipFile.__init__`` and ``ZipFile.open`` about 3.3 of the 7 s that reading
10,000 files took under the profiler). The 10,000 files of the synthetic benchmark took
1.1-1.3 s of CPU this way against 2.9-3.0 s through one ``zipfile.ZipFile`` each; ``np.load``
took 1.3 s for 2,000 (a loaded 2-core machine, same process, back to back). Here the file is
read once, its central directory parsed with :mod:`struct`, each member inflated with one
``zlib`` inflate (never past its declared size) and checked against its CRC-32 and size, and
each distinct ``.npy`` header (the runs of a task share theirs) parsed once, by numpy's own
header readers.

Only the archives ``np.savez`` / ``np.savez_compressed`` write take this path (one disk, no
archive comment, no zip64 central directory, stored or deflated ``.npy`` members); anything
else, and anything damaged, goes through ``np.load`` itself, so edge cases and errors are its
own. No pickle: an object dtype is refused as ``np.load`` refuses it without
``allow_pickle``.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from functools import lru_cache

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
    array = np.frombuffer(raw, dtype, count, start).copy()  # writable and aligned, as np.load's
    return array.reshape(shape[::-1]).transpose() if fortran_order else array.reshape(shape)


# what reading a run's predictions can raise when the file is missing, damaged or not what its
# kind expects: the leaderboard lists such a run as a problem instead of stopping
READ_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, KeyError, IndexError,
                                            zipfile.BadZipFile)  # fmt: skip


# the zip records np.savez writes (APPNOTE 4.3.7, 4.3.12, 4.3.16): local file header, central
# directory file header, end of central directory
_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_END = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = b"PK\x06\x07"
_STORED, _DEFLATED = 0, 8
_ENCRYPTED, _PATCHED, _STRONG_ENCRYPTION = 0x1, 0x20, 0x40
_MAX_EXTRACT_VERSION = 63  # zipfile refuses archives that need a newer version


class _NotFast(Exception):
    """The archive is not one the fast path reads: ``np.load`` reads it (or says why not)."""


# members up to this size are memoised (a task's ids and targets: the same bytes in every run's
# file); larger ones, a large test set's logits, would hold hundreds of MB in the memo
_MEMO_BYTES = 1 << 16


def _inflate(raw: bytes, method: int, crc: int, usize: int) -> bytes:
    """A member's bytes, checked against the CRC-32 and size its central directory records (a
    damaged file is never read as data). Never inflated past the declared size plus one byte,
    as :mod:`zipfile` caps it: a member that inflates to more (a zip bomb, a damaged header)
    goes to ``np.load``, which reads it as :mod:`zipfile` does (up to the declared size) or
    refuses it. Small members are memoised by their stored bytes:
    inflating a task's ids and targets again in every run cost 0.25 s of a cold 10,000-run
    build."""
    if usize <= _MEMO_BYTES:
        return _inflate_small(raw, method, crc, usize)
    return _inflate_checked(raw, method, crc, usize)


@lru_cache(maxsize=256)
def _inflate_small(raw: bytes, method: int, crc: int, usize: int) -> bytes:
    return _inflate_checked(raw, method, crc, usize)


def _inflate_checked(raw: bytes, method: int, crc: int, usize: int) -> bytes:
    if method == _STORED:
        member = raw
    else:
        inflater = zlib.decompressobj(-15)
        try:
            member = inflater.decompress(raw, usize + 1)  # at most one byte past the size
        except zlib.error:
            raise _NotFast from None
        if not inflater.eof:  # longer than declared, or cut short
            raise _NotFast
    if len(member) != usize or zlib.crc32(member) != crc:
        raise _NotFast
    return member


def _members(data: bytes) -> list[tuple[str, bytes]]:
    """``(name, uncompressed bytes)`` of every member in central-directory order, each checked
    against the CRC-32 and size the central directory records (a damaged file is never read
    as data); :class:`_NotFast` for anything unexpected."""
    end = len(data) - _END.size
    if end < 0 or data[end:end + 4] != b"PK\x05\x06" \
            or data[end - 20:end - 16] == _ZIP64_LOCATOR:  # fmt: skip
        raise _NotFast  # an archive comment, zip64 records, or not a zip at all
    _, disk, cd_disk, count_here, count, cd_size, cd_offset, comment = _END.unpack_from(data, end)
    if disk or cd_disk or count_here != count or comment or cd_offset + cd_size != end:
        raise _NotFast  # several disks, or bytes before the archive (zipfile's "concat")
    members = []
    pos = cd_offset
    for _ in range(count):
        (sig, _made, needed, flags, method, _time, _date, crc, csize, usize, name_len,
         extra_len, comment_len, _disk, _internal, _external, offset) = _CENTRAL.unpack_from(
            data, pos)  # fmt: skip
        name_bytes = data[pos + _CENTRAL.size:pos + _CENTRAL.size + name_len]
        pos += _CENTRAL.size + name_len + extra_len + comment_len
        if sig != b"PK\x01\x02" or needed > _MAX_EXTRACT_VERSION \
                or flags & (_ENCRYPTED | _PATCHED | _STRONG_ENCRYPTION) \
                or method not in (_STORED, _DEFLATED) or 0xFFFFFFFF in (csize, usize, offset):
            raise _NotFast  # fmt: skip
        (lsig, _needed, _flags, _method, _time, _date, _crc, _csize, _usize, lname_len,
         lextra_len) = _LOCAL.unpack_from(data, offset)  # fmt: skip
        start = offset + _LOCAL.size + lname_len + lextra_len
        if lsig != b"PK\x03\x04" or data[offset + _LOCAL.size:start - lextra_len] != name_bytes:
            raise _NotFast
        raw = data[start:start + csize]
        if len(raw) != csize:
            raise _NotFast
        member = _inflate(raw, method, crc, usize)
        name = name_bytes.decode("ascii")  # np.savez's names; any other: UnicodeDecodeError
        if not name.endswith(".npy") or "\0" in name:
            raise _NotFast
        members.append((name[:-4], member))
    if pos != end:
        raise _NotFast
    return members


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive by name, as ``np.load`` gives them. Anything the fast
    path does not expect (not a zip, a member that is not an ``.npy``, a damaged archive) goes
    through ``np.load`` itself, so edge cases and errors are its own (the few it raises beyond
    :data:`READ_ERRORS` become a ValueError)."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return {name: _array(member, name) for name, member in _members(data)}
    except (_NotFast, ValueError, struct.error):  # np.load below says what is wrong, in its words
        pass
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy (or pickle): no archive
            raise ValueError(f"{path} is not an .npz archive")
        with loaded as npz:
            return {k: npz[k] for k in npz.files}
    except (EOFError, RuntimeError, zlib.error) as err:
        # what np.load raises beyond READ_ERRORS for a damaged file: an empty file (EOFError),
        # damaged deflate data (zlib.error), a member zipfile cannot read (NotImplementedError,
        # an encrypted member's RuntimeError); a problem to list, not a crash
        raise ValueError(f"{path}: unreadable archive ({type(err).__name__}: {err})") from None
