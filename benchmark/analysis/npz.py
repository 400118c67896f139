"""Reading a run's ``predictions.npz`` fast: what ``np.load(path, allow_pickle=False)`` returns,
for many small files.

Written by hand on top of :mod:`zlib` and :mod:`numpy.lib.format` because a cold leaderboard
of 10,000 runs spent most of its time in ``np.load``'s per-file overhead, not in the data:
it opens the archive once per member and parses every member's header with
``ast.literal_eval`` (about a third of its time), and :mod:`zipfile`'s own Python overhead was
then half of what was left. Here the file is read once, its central directory is read by
:mod:`struct` (:func:`_members`, CRC-32 checked as :mod:`zipfile` checks it; anything unusual
goes to :mod:`zipfile`, then to ``np.load``), and each distinct header (the runs of a task share
theirs) is parsed once, by numpy's own header readers. No pickle: an object dtype is refused as
``np.load`` refuses it without ``allow_pickle``.
"""

from __future__ import annotations

import io
import struct
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


_END = struct.Struct("<4s4H2LH")  # end of central directory record
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory file header
_ZIP64_MAX = 0xFFFFFFFF


def _zip64_values(extra: bytes, wanted: int) -> list[int] | None:
    """The first ``wanted`` 8-byte values of a central header's zip64 extra field."""
    pos = 0
    while pos + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, pos)
        if kind == 1 and size >= 8 * wanted:
            return list(struct.unpack_from(f"<{wanted}Q", extra, pos + 4))
        pos += 4 + size
    return None


def _members(data: bytes) -> list[tuple[str, bytes]] | None:
    """The members of a zip archive (name, uncompressed bytes) in central-directory order, as
    ``zipfile`` reads them (CRC-32 checked), for the plain archives ``np.savez`` writes: one
    disk, stored or deflated, zip64 extras per member. None for anything else (the caller
    then lets ``zipfile`` and ``np.load`` read it). By hand because at 10,000 small files
    ``zipfile``'s per-archive and per-member Python overhead was half of the reading time."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - _END.size - 0xFFFF))
    if end < 0 or end + _END.size > len(data):
        return None
    _, disk, cd_disk, _, count, cd_size, cd_offset, comment = _END.unpack_from(data, end)
    if disk or cd_disk or count == 0xFFFF or cd_offset + cd_size != end \
            or end + _END.size + comment != len(data):  # fmt: skip
        return None  # multi-disk, zip64 end record, prefixed data, or a comment that lies
    out = []
    pos = cd_offset
    for _ in range(count):
        if pos + _CENTRAL.size > end:
            return None
        (sig, _, _, flags, method, _, _, crc, csize, usize, nlen, xlen, clen, _, _, _,
         offset) = _CENTRAL.unpack_from(data, pos)  # fmt: skip
        if sig != b"PK\x01\x02" or flags & 0x1 or method not in (0, 8):
            return None  # encrypted or compressed in a way np.savez never writes
        name_bytes = data[pos + 46:pos + 46 + nlen]
        extra = data[pos + 46 + nlen:pos + 46 + nlen + xlen]
        pos += 46 + nlen + xlen + clen
        big = [v == _ZIP64_MAX for v in (usize, csize, offset)]
        if any(big):
            values = _zip64_values(extra, sum(big))
            if values is None:
                return None
            it = iter(values)
            usize = next(it) if big[0] else usize
            csize = next(it) if big[1] else csize
            offset = next(it) if big[2] else offset
        if data[offset:offset + 4] != b"PK\x03\x04":
            return None
        lnlen, lxlen = struct.unpack_from("<HH", data, offset + 26)
        start = offset + 30 + lnlen + lxlen
        raw = data[start:start + csize]
        if len(raw) != csize:
            return None
        try:
            content = zlib.decompress(raw, -15) if method == 8 else raw
        except zlib.error:
            return None
        if len(content) != usize or zlib.crc32(content) != crc:
            return None
        out.append((name_bytes.decode("utf-8" if flags & 0x800 else "cp437"), content))
    return out


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive by name, as ``np.load`` gives them. Anything the fast
    path does not expect (not a zip, a member that is not an ``.npy``, a damaged archive) goes
    through ``zipfile`` and then ``np.load`` itself, so errors and edge cases are exactly its
    own."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            members = _members(data)
            if members is not None and all(name.endswith(".npy") for name, _ in members):
                return {name[:-4]: _array(raw, name) for name, raw in members}
        except Exception:  # noqa: BLE001, S110 - read below, by zipfile and np.load
            pass
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
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
