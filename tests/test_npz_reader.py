"""benchmark.analysis.npz.read_npz gives what np.load(path, allow_pickle=False) gives: the same
arrays (dtype, shape, order, values, writable), and np.load's own errors for anything else."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from benchmark.analysis import npz
from benchmark.analysis.npz import READ_ERRORS, read_npz


def _np_load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_same_arrays_as_np_load(tmp_path: Path, save: object) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "logits": rng.normal(size=(7, 3)).astype(np.float32),
        "target": rng.integers(0, 3, size=7),
        "example_id": np.asarray([f"test/{i}" for i in range(7)]),
        "correct": rng.random(7) < 0.5,
        "scalar": np.asarray(3, np.int64),
        "fortran": np.asfortranarray(rng.normal(size=(4, 5))),
        "big_endian": np.arange(6, dtype=">i4").reshape(2, 3),
        "empty": np.zeros((0, 4)),
    }
    path = tmp_path / "predictions.npz"
    save(path, **arrays)  # type: ignore[operator]
    fast, reference = read_npz(path), _np_load(path)
    assert list(fast) == list(reference)
    for name, array in reference.items():
        got = fast[name]
        assert got.dtype == array.dtype and got.shape == array.shape, name
        assert got.flags.f_contiguous == array.flags.f_contiguous, name
        assert got.flags.writeable, name
        np.testing.assert_array_equal(got, array)
    # a second file with the same headers (the memoised path) reads its own values
    arrays["logits"] = arrays["logits"] + 1
    save(path, **arrays)  # type: ignore[operator]
    np.testing.assert_array_equal(read_npz(path)["logits"], arrays["logits"])


def _error(read: object, path: Path) -> tuple[type, str]:
    with pytest.raises(Exception) as info:  # noqa: PT011 - whichever np.load raises
        read(path)  # type: ignore[operator]
    return type(info.value), str(info.value)


def test_np_load_errors_for_everything_else(tmp_path: Path) -> None:
    cases = {"not-a-zip.npz": b"not a zip archive", "truncated.npz": b"PK\x03\x04" + b"\0" * 40}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    np.savez(tmp_path / "objects.npz", ok=np.arange(3), bad=np.asarray([{"a": 1}], dtype=object))
    with zipfile.ZipFile(tmp_path / "foreign.npz", "w") as archive:
        archive.writestr("notes.txt", "not an array")
    for name in [*cases, "objects.npz", "foreign.npz"]:
        path = tmp_path / name
        if name == "foreign.npz":  # np.load gives the member's bytes; so does the fallback
            assert read_npz(path) == _np_load(path)
            continue
        assert _error(read_npz, path) == _error(_np_load, path), name


def _arrays() -> dict[str, np.ndarray]:
    """Every kind of array a predictions file can hold, and a few more."""
    rng = np.random.default_rng(1)
    return {
        "logits": rng.normal(size=(5, 3)).astype(np.float32),
        "ids": np.asarray(["a", "bb", "ccc"]),
        "bytes": np.asarray([b"x", b"yz"]),
        "scalar": np.asarray(2.5),
        "empty": np.zeros((0,), np.int64),
        "fortran": np.asfortranarray(rng.normal(size=(3, 4))),
        "bools": rng.random(6) < 0.5,
        "record": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
    }


def _hand_written(path: Path, compression: int, version: tuple[int, int],
                  stream: bool = False) -> None:  # fmt: skip
    """An archive written by zipfile itself (no zip64 extras), with .npy headers of the given
    format version; ``stream``: through a non-seekable file, so every member has a data
    descriptor after its data and zeros in its local header."""

    class _Unseekable(io.RawIOBase):
        def __init__(self, sink: io.BufferedWriter) -> None:
            self.sink = sink

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            return self.sink.write(b)

    with path.open("wb") as sink:
        target = _Unseekable(sink) if stream else sink
        with zipfile.ZipFile(target, "w", compression) as archive:  # type: ignore[arg-type]
            for name, array in _arrays().items():
                member = io.BytesIO()
                npy_format.write_array(member, array, version=version)
                archive.writestr(f"{name}.npy", member.getvalue())


def _same_as_np_load(path: Path) -> None:
    reference = _np_load(path)
    fast = read_npz(path)
    assert list(fast) == list(reference)
    for name, array in reference.items():
        assert fast[name].dtype == array.dtype and fast[name].shape == array.shape, name
        assert fast[name].flags.f_contiguous == array.flags.f_contiguous, name
        np.testing.assert_array_equal(fast[name], array)


@pytest.mark.parametrize("writer", ["savez", "savez_compressed", "stored", "deflated",
                                    "deflated-v2", "streamed", "stored-v3"])  # fmt: skip
def test_fast_path_reads_what_numpy_and_zipfile_write(tmp_path: Path, writer: str) -> None:
    """np.savez's archives (zip64 extras in the local headers), zipfile's own (none; a data
    descriptor when written to a stream), .npy headers of versions 1 and 2 are read by the
    struct/zlib path itself, and give np.load's arrays; version 3 (np.load reads it) falls back."""
    path = tmp_path / "a.npz"
    if writer.startswith("savez"):
        getattr(np, writer)(path, **_arrays())
    else:
        method = zipfile.ZIP_STORED if writer.startswith("stored") else zipfile.ZIP_DEFLATED
        version = (3, 0) if writer.endswith("v3") else (2, 0) if writer.endswith("v2") else (1, 0)
        _hand_written(path, method, version, stream=writer == "streamed")
    _same_as_np_load(path)
    members = npz._members(path.read_bytes())  # the fast path's own reading: no _NotFast
    assert [name for name, _ in members] == list(_arrays())
    if writer.endswith("v3"):
        with pytest.raises(ValueError):  # not an .npy the fast path parses: np.load's turn
            npz._array(members[0][1], members[0][0])


def test_archives_the_fast_path_leaves_to_np_load(tmp_path: Path) -> None:
    """A comment, a bzip2 member, bytes before the archive, member counts that disagree with
    the central directory: np.load's answer, whatever it is."""
    arrays = {"a": np.arange(4), "b": np.ones((2, 2))}
    np.savez(tmp_path / "plain.npz", **arrays)
    data = (tmp_path / "plain.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "comment.npz", "w") as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(f"{name}.npy", member.getvalue())
        archive.comment = b"a comment"
    with zipfile.ZipFile(tmp_path / "bzip2.npz", "w", zipfile.ZIP_BZIP2) as archive:
        member = io.BytesIO()
        np.save(member, arrays["a"])
        archive.writestr("a.npy", member.getvalue())
    (tmp_path / "prefixed.npz").write_bytes(b"PK\x03\x04" + data)  # np.load: "not a zip"
    end = data.rindex(b"PK\x05\x06")  # both member counts edited to 1: zipfile reads the
    counts = data[:end + 8] + b"\x01\x00\x01\x00" + data[end + 12:]  # directory by its size
    (tmp_path / "counts.npz").write_bytes(counts)
    for name in ["comment.npz", "bzip2.npz", "prefixed.npz", "counts.npz"]:
        with pytest.raises(npz._NotFast):
            npz._members((tmp_path / name).read_bytes())
        assert _outcome(read_npz, tmp_path / name) == _outcome(_np_load, tmp_path / name), name


def _outcome(read: object, path: Path) -> tuple[str, object]:
    """The arrays (by value) or the error (type and message) a reader gives."""
    try:
        got = read(path)  # type: ignore[operator]
    except Exception as err:  # noqa: BLE001 - comparing whichever error each raises
        return "error", (type(err), str(err))
    return "arrays", {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in got.items()}


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_every_flipped_byte_and_every_truncation(tmp_path: Path, save: object) -> None:
    """Damage anywhere in a file (one byte flipped, or the file cut short): the same arrays as
    np.load, or an error the leaderboard lists as a problem (np.load's own where it is one of
    READ_ERRORS). A flipped byte in a member's data fails its CRC-32 as in zipfile, so damaged
    data is never read as numbers; so does a flipped CRC in the central directory after the
    same member bytes were read intact (the inflate memo is keyed by the CRC too)."""
    original = tmp_path / "original.npz"
    save(original, logits=np.arange(12, dtype=np.float32).reshape(4, 3),  # type: ignore[operator]
         target=np.arange(4), example_id=np.asarray(["a", "b", "c", "d"]))  # fmt: skip
    data = original.read_bytes()
    path = tmp_path / "damaged.npz"
    damaged = [data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:] for i in range(len(data))]
    damaged += [data[:i] for i in range(0, len(data), 7)]
    for case, content in enumerate(damaged):
        path.write_bytes(content)
        fast, reference = _outcome(read_npz, path), _outcome(_np_load, path)
        if reference[0] == "arrays":
            assert fast == reference, case
            continue
        assert fast[0] == "error" and issubclass(fast[1][0], READ_ERRORS), (case, fast)
        if issubclass(reference[1][0], READ_ERRORS):
            assert fast == reference, case


def test_flipped_data_byte_is_a_crc_error(tmp_path: Path) -> None:
    """In a stored member the data is the array's bytes: only the CRC-32 tells a flipped byte."""
    path = tmp_path / "a.npz"
    np.savez(path, values=np.zeros(64))
    data = bytearray(path.read_bytes())
    data[data.index(b"\n", data.index(b"NUMPY")) + 10] ^= 0x01  # in the floats after the header
    path.write_bytes(bytes(data))
    with pytest.raises(zipfile.BadZipFile, match="Bad CRC-32"):
        read_npz(path)


def test_empty_and_encrypted_files_are_value_errors(tmp_path: Path) -> None:
    """np.load raises EOFError for an empty file and NotImplementedError for an archive that
    needs a newer zip version: outside READ_ERRORS, so they become ValueError."""
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="EOFError"):
        read_npz(empty)
    np.savez(tmp_path / "v.npz", a=np.arange(3))
    data = bytearray((tmp_path / "v.npz").read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 6] = 99  # "version needed to extract": 9.9
    (tmp_path / "v.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="NotImplementedError"):
        read_npz(tmp_path / "v.npz")


def test_a_member_that_inflates_past_its_declared_size_is_refused_without_inflating_it(
    tmp_path: Path,
) -> None:
    """A zip bomb: 64 MiB of zeros declared as 80 bytes. The fast path stops one byte past the
    declared size and hands the file to np.load, whose zipfile refuses it (BadZipFile); neither
    inflates the whole member (found by review: the first reader inflated everything)."""
    import struct
    import tracemalloc

    payload = np.arange(10, dtype=np.float64)
    good = tmp_path / "good.npz"
    np.savez_compressed(good, x=payload)
    data = bytearray(good.read_bytes())
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = bomb.compress(b"\0" * (64 << 20)) + bomb.flush()
    # rebuild the archive by hand: one member whose stored data is the bomb
    name = b"x.npy"
    crc = zlib.crc32(bytes(data))  # any CRC: the size check fails first
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(raw), 80,
                        len(name), 0) + name  # fmt: skip
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(raw), 80,
                          len(name), 0, 0, 0, 0, 0, 0) + name  # fmt: skip
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(raw), 0)  # fmt: skip
    path = tmp_path / "bomb.npz"
    path.write_bytes(local + raw + central + end)
    tracemalloc.start()  # sees the bytes objects zlib returns
    try:
        with pytest.raises(READ_ERRORS):
            read_npz(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak allocation {peak / 2**20:.0f} MiB"


def _savez_with(save: object, path: Path, logits: np.ndarray) -> None:
    """A run's file: its own logits, the task's ids, targets and a Fortran-order array."""
    target = np.arange(6) % 3
    save(path, logits=logits, target=target,  # type: ignore[operator]
         example_id=np.asarray([f"test/{i}" for i in range(6)]),
         fortran=np.asfortranarray(np.arange(12.0).reshape(3, 4)))  # fmt: skip


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_members_read_again_are_np_load_arrays_or_one_shared_array(
    tmp_path: Path, save: object
) -> None:
    """A small member seen in an earlier file (a task's ids and targets) is memoised: without
    ``shared`` each read still gives np.load's arrays (writable, own memory, the file's C or
    Fortran layout, a new object); with ``shared`` the one read-only array made of it. A
    run's own member (its logits) is never shared."""
    npz._memo.clear()
    npz._seen_once.clear()
    rng = np.random.default_rng(2)
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"run{i}.npz")
        _savez_with(save, paths[-1], rng.normal(size=(6, 3)).astype(np.float32))
    plain = [read_npz(p) for p in paths]
    for path, got in zip(paths, plain, strict=True):
        reference = _np_load(path)
        assert list(got) == list(reference)
        for name, array in reference.items():
            assert got[name].dtype == array.dtype and got[name].shape == array.shape
            assert got[name].flags.writeable and got[name].flags.owndata, name
            assert got[name].flags.f_contiguous == array.flags.f_contiguous, name
            np.testing.assert_array_equal(got[name], array)
    assert plain[2]["target"] is not plain[3]["target"]
    plain[2]["target"][0] = 99  # a caller's edit reaches no other read
    assert read_npz(paths[3])["target"][0] == 0
    for path in paths:  # new logits, the same ids and targets
        _savez_with(save, path, rng.normal(size=(6, 3)).astype(np.float32))
    shared = [read_npz(p, shared=True) for p in paths]
    for name in ("target", "example_id", "fortran"):
        assert shared[0][name] is shared[1][name] is shared[3][name], name
        assert not shared[3][name].flags.writeable, name
        np.testing.assert_array_equal(shared[3][name], _np_load(paths[3])[name])
    assert shared[3]["fortran"].flags.f_contiguous
    assert shared[3]["logits"].flags.writeable
    assert shared[2]["logits"] is not shared[3]["logits"]
    np.testing.assert_array_equal(shared[3]["logits"], _np_load(paths[3])["logits"])


def test_a_member_seen_once_is_not_kept() -> None:
    """Only a member whose key comes back is memoised: a run's own logits (seen once) cost
    no hashing and hold no memory."""
    npz._memo.clear()
    npz._seen_once.clear()
    key = (npz._STORED, zlib.crc32(b"abc"), 3, 3)
    assert npz._remembered(key, b"abc") is None and key not in npz._memo
    entry = npz._remembered(key, b"abc")
    assert entry is not None and entry[1] == b"abc" and key in npz._memo
    with pytest.raises(npz._NotFast):  # other bytes under the same key: checked, not served
        npz._remembered(key, b"abd")


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_a_file_larger_than_the_first_read_is_read_whole(tmp_path: Path, save: object) -> None:
    path = tmp_path / "large.npz"
    rng = np.random.default_rng(3)
    save(path, logits=rng.normal(size=(300, 100)), target=np.arange(300))  # type: ignore[operator]
    assert path.stat().st_size > npz._FIRST_READ
    assert npz._read_file(path) == path.read_bytes()
    _same_as_np_load(path)


def _open_and_read(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def test_a_folder_is_refused_as_open_refuses_it(tmp_path: Path) -> None:
    """The file is read by os.open and os.read: a folder or a missing file raises what
    ``open()`` raises, with the same message (a problem row quotes it)."""
    folder = tmp_path / "predictions.npz"
    folder.mkdir()
    assert _error(read_npz, folder) == _error(_open_and_read, folder)
    missing = tmp_path / "missing.npz"
    assert _error(read_npz, missing) == _error(_open_and_read, missing)


def test_a_large_file_is_held_once_while_read(tmp_path: Path) -> None:
    """Past the first 64 KiB read, the file is read again whole into one buffer: joining
    chunks held it twice at the peak (ImageNet-size logits, times the worker count)."""
    import tracemalloc

    path = tmp_path / "large.npz"
    size = 8 << 20
    path.write_bytes(np.random.default_rng(0).bytes(size))
    tracemalloc.start()
    try:
        data = npz._read_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data == path.read_bytes()
    assert peak < 1.25 * size, peak
