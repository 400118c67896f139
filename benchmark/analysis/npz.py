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

import errno
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
    array = np.frombuffer(raw, dtype, count, start)
    array = array.reshape(shape[::-1]).transpose() if fortran_order else array.reshape(shape)
    return array.copy(order="K")  # writable, aligned and its own memory, as np.load's


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
# at most 16 MiB of members, as much again in their arrays, and their stored (compressed)
# bytes, about as many as the members' at most (deflate barely grows incompressible data)
_MEMO_ENTRIES = 256
# (method, crc, compressed size, size) -> [stored bytes, member bytes, its array or None]: a
# member is memoised the second time its key is seen, so a run's own logits (up to 64 KiB,
# seen once) are neither hashed nor kept: an lru_cache keyed by the stored bytes hashed each
# run's 7.5 KB of logits and evicted an entry for them, 2.6 us against 0.7 us for this lookup
# (slicing the bytes included)
_memo: dict[tuple[int, int, int, int], list] = {}
_seen_once: dict[tuple[int, int, int, int], None] = {}


def _inflate_checked(raw: bytes, method: int, crc: int, usize: int) -> bytes:
    """A member's bytes, checked against the CRC-32 and size its central directory records (a
    damaged file is never read as data). Never inflated past the declared size plus one byte,
    as :mod:`zipfile` caps it: a member that inflates to more (a zip bomb, a damaged header)
    goes to ``np.load``, which reads it as :mod:`zipfile` does (up to the declared size) or
    refuses it."""
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


def _remembered(key: tuple[int, int, int, int], raw: bytes) -> list | None:
    """The memo entry of a small member: the same stored bytes under the same method, CRC and
    sizes inflate to the same checked bytes (inflating a task's ids and targets again in every
    run cost 0.25 s of a cold 10,000-run build)."""
    entry = _memo.get(key)
    if entry is not None and entry[0] == raw:
        return entry
    if key[3] > _MEMO_BYTES:
        return None
    if key not in _seen_once:
        if len(_seen_once) >= 4 * _MEMO_ENTRIES:
            _seen_once.clear()
        _seen_once[key] = None
        return None
    method, crc, _, usize = key
    entry = [raw, _inflate_checked(raw, method, crc, usize), None]
    if len(_memo) >= _MEMO_ENTRIES:
        del _memo[next(iter(_memo))]  # the oldest
    _memo[key] = entry
    return entry


# the zip records np.savez writes (APPNOTE 4.3.7, 4.3.12): the fields read of a central
# directory file header (signature, version needed, flags, method, CRC-32, compressed and
# uncompressed size, name, extra and comment lengths, local header offset) and of a local
# file header (signature, name and extra lengths): fewer fields unpacked per member
_CENTRAL_READ = struct.Struct("<4s2xHHH4xLLLHHH8xL")
_LOCAL_READ = struct.Struct("<4s22xHH")


def _entries(data: bytes) -> list[tuple[str, bytes, list | None]]:
    """``(name, uncompressed bytes, memo entry or None)`` of every member in central-directory
    order, each checked against the CRC-32 and size the central directory records (a damaged
    file is never read as data); :class:`_NotFast` for anything unexpected."""
    end = len(data) - _END.size
    if end < 0 or data[end:end + 4] != b"PK\x05\x06" \
            or data[end - 20:end - 16] == _ZIP64_LOCATOR:  # fmt: skip
        raise _NotFast  # an archive comment, zip64 records, or not a zip at all
    _, disk, cd_disk, count_here, count, cd_size, cd_offset, comment = _END.unpack_from(data, end)
    if disk or cd_disk or count_here != count or comment or cd_offset + cd_size != end:
        raise _NotFast  # several disks, or bytes before the archive (zipfile's "concat")
    members = []
    pos = cd_offset
    central, local = _CENTRAL_READ.unpack_from, _LOCAL_READ.unpack_from
    for _ in range(count):
        (sig, needed, flags, method, crc, csize, usize, name_len, extra_len, comment_len,
         offset) = central(data, pos)  # fmt: skip
        name_start = pos + _CENTRAL.size
        name_bytes = data[name_start:name_start + name_len]
        pos = name_start + name_len + extra_len + comment_len
        if sig != b"PK\x01\x02" or needed > _MAX_EXTRACT_VERSION \
                or flags & (_ENCRYPTED | _PATCHED | _STRONG_ENCRYPTION) \
                or method not in (_STORED, _DEFLATED) or 0xFFFFFFFF in (csize, usize, offset):
            raise _NotFast  # fmt: skip
        lsig, lname_len, lextra_len = local(data, offset)
        lname = offset + _LOCAL.size
        start = lname + lname_len + lextra_len
        if lsig != b"PK\x03\x04" or data[lname:lname + lname_len] != name_bytes:
            raise _NotFast
        raw = data[start:start + csize]
        if len(raw) != csize:
            raise _NotFast
        entry = _remembered((method, crc, csize, usize), raw)
        member = entry[1] if entry is not None else _inflate_checked(raw, method, crc, usize)
        name = name_bytes.decode("ascii")  # np.savez's names; any other: UnicodeDecodeError
        if not name.endswith(".npy") or "\0" in name:
            raise _NotFast
        members.append((name[:-4], member, entry))
    if pos != end:
        raise _NotFast
    return members


def _members(data: bytes) -> list[tuple[str, bytes]]:
    """``(name, uncompressed bytes)`` of every member in central-directory order, checked as
    :func:`_entries` checks them."""
    return [(name, member) for name, member, _ in _entries(data)]


def is_shared(array: np.ndarray) -> bool:
    """Whether ``array`` is shared as :func:`read_npz` (``shared``) shares one: read-only and
    its own memory, so nothing changes it and its identity may key a memo while it is held."""
    return not array.flags.writeable and array.base is None


def _shared_array(entry: list, name: str) -> np.ndarray:
    """The read-only array of a memoised member, parsed once (see :func:`read_npz`)."""
    array = entry[2]
    if array is None:
        array = _array(entry[1], name)
        array.setflags(write=False)
        entry[2] = array
    return array


# a first read of this size takes a predictions file whole (the 8.5 KB files of a 200-example
# task); only a larger one needs its size, and a second read
_FIRST_READ = 1 << 16
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def _read_file(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes by :func:`os.open` and :func:`os.read`: three system calls against nine
    for ``open(path, "rb").read()`` (two ``fstat``, ``ioctl``, two ``lseek``, two ``read``):
    14 -> 9 us per 8.5 KB file. A read cut short for any reason leaves an archive the fast
    path refuses, so ``np.load`` reads the file again itself."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        try:
            data = os.read(fd, _FIRST_READ)
        except IsADirectoryError:  # open() refuses a folder, and names it: so do we
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR),
                                    os.fspath(path)) from None
        if len(data) == _FIRST_READ:  # a larger file: read again whole by io's reader,
            # which sizes one buffer by fstat (joining chunks held the file twice at its peak)
            os.lseek(fd, 0, os.SEEK_SET)
            with open(fd, "rb", closefd=False) as fh:
                data = fh.read()
        return data
    finally:
        os.close(fd)


def read_npz(path: str | os.PathLike[str], shared: bool = False) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive by name, as ``np.load`` gives them. Anything the fast
    path does not expect (not a zip, a member that is not an ``.npy``, a damaged archive) goes
    through ``np.load`` itself, so edge cases and errors are its own (the few it raises beyond
    :data:`READ_ERRORS` become a ValueError).

    ``shared``: a small member read again (the example ids and targets every run of a task
    saves) comes back as the one read-only array already made of it, not a fresh writable
    copy, as the score cache serves its stored arrays: 2-3 us a member, and what the runs of a
    task share is then the same object."""
    data = _read_file(path)
    try:
        arrays = {}
        for name, member, entry in _entries(data):
            if entry is None:
                arrays[name] = _array(member, name)
            elif shared:
                arrays[name] = _shared_array(entry, name)
            else:  # np.load's own: writable, and the layout (C or Fortran) of the file's
                arrays[name] = _shared_array(entry, name).copy(order="K")
        return arrays
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
