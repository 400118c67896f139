"""benchmark.analysis.npz.read_npz gives what np.load(path, allow_pickle=False) gives: the same
arrays (dtype, shape, order, values, writable), and np.load's own errors for anything else."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from benchmark.analysis.npz import read_npz


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
