"""install_mmdet's decisions, without network or a 29-minute build: which cached wheel it
trusts (sha256, pinned or recorded at build time), which it refuses, and the one-flag patch."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from benchmark.engines import install_mmdet as im
from benchmark.errors import BenchError, EnvironmentFailure

TARGET = im.Target("mmcv-2.1.0-cp311-cp311-linux_x86_64.whl", "2.14.1", "cpu")


def _wheel(folder: Path, content: bytes = b"a wheel") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TARGET.name
    path.write_bytes(content)
    return path


def test_a_pinned_wheel_is_used_only_with_its_pinned_bytes(tmp_path, monkeypatch) -> None:
    good = b"the pinned build"
    pins = {(TARGET.name, "2.14.1", "cpu"): hashlib.sha256(good).hexdigest()}
    monkeypatch.setattr(im, "PINNED_WHEELS", pins)
    wheel = _wheel(tmp_path / "cache", good)
    assert im.find_cached_wheel([tmp_path / "empty", tmp_path / "cache"], TARGET) == wheel
    wheel.write_bytes(b"the pinned build, truncated or tampered with")
    with pytest.raises(BenchError, match=r"sha256 .* is not the expected .*delete it"):
        im.find_cached_wheel([tmp_path / "cache"], TARGET)
    # the pin is for CPU ops and torch 2.14.1: a CUDA or other-torch target does not trust it
    wheel.write_bytes(good)
    for other in (im.Target(TARGET.name, "2.14.1", "cuda"), im.Target(TARGET.name, "2.9.0", "cpu")):
        with pytest.raises(BenchError, match="no known sha256"):
            im.checked_wheel(wheel, other)


def test_the_shipped_pin_is_the_shared_wheel() -> None:
    """The pinned sha256 is the one the issue gives for the wheel built from PyPI's source."""
    assert im.PINNED_WHEELS[(TARGET.name, "2.14.1", "cpu")] == (
        "df23fedf35bcac0f90df7c106ddc65f011f5e1499201845e150d86361804abdc"
    )


def test_a_wheel_built_here_is_trusted_through_its_sidecar(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(im, "PINNED_WHEELS", {})
    wheel = _wheel(tmp_path, b"built on this machine")
    with pytest.raises(BenchError, match="no known sha256"):
        im.checked_wheel(wheel, TARGET)  # neither pinned nor recorded
    sidecar = tmp_path / (TARGET.name + ".sha256")
    record = {"sha256": hashlib.sha256(b"built on this machine").hexdigest(), "torch": "2.14.1",
              "ops": "cpu"}  # fmt: skip
    sidecar.write_text(json.dumps(record))
    assert im.checked_wheel(wheel, TARGET) == wheel
    wheel.write_bytes(b"built on this machine, then damaged")
    with pytest.raises(BenchError, match="is not the expected"):
        im.checked_wheel(wheel, TARGET)
    # a build's record wins over the pin for the same name (builds are not bit-reproducible)
    wheel.write_bytes(b"built on this machine")
    monkeypatch.setattr(im, "PINNED_WHEELS", {(TARGET.name, "2.14.1", "cpu"): "0" * 64})
    assert im.checked_wheel(wheel, TARGET) == wheel


def test_cli_refuses_a_mismatching_wheel_in_one_line(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(im, "current_target", lambda ops=None: TARGET)
    monkeypatch.setattr(im, "pip", lambda *a, **k: pytest.fail("nothing may be installed"))
    wheel = _wheel(tmp_path / "cache", b"not the pinned bytes")
    assert im.main(["--wheel", str(wheel)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"install_mmdet: {wheel}: sha256 ")
    assert im.main(["--wheel-cache", str(tmp_path / "cache")]) == 2  # the cache: same check
    other = tmp_path / "mmcv-2.1.0-cp310-cp310-linux_x86_64.whl"
    other.write_bytes(b"x")
    assert im.main(["--wheel", str(other)]) == 2
    assert f"needs {TARGET.name}" in capsys.readouterr().err


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("BENCH_WHEEL_CACHE", raising=False)
    monkeypatch.delenv("BENCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert im.default_cache_dir() == tmp_path / "xdg" / "blurbench" / "wheels"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "bench"))
    assert im.default_cache_dir() == tmp_path / "bench" / "wheels"
    monkeypatch.setenv("BENCH_WHEEL_CACHE", str(tmp_path / "wheels"))
    assert im.default_cache_dir() == tmp_path / "wheels"


def _sdist(path: Path, setup_py: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        data = setup_py.encode()
        info = tarfile.TarInfo(f"mmcv-{im.MMCV_VERSION}/setup.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_the_patch_changes_the_cxx_standard_and_nothing_else(tmp_path) -> None:
    original = ("args['cxx'] = ['-std=c++17']\nwin = ['/std:c++17']\n"
                "args['cxx'] = ['-Wall', '-std=c++17']\nnvcc += ['-std=c++17']\n")  # fmt: skip
    sdist = _sdist(tmp_path / "mmcv-2.1.0.tar.gz", original)
    source = im.patch_source(sdist, tmp_path / "src")
    patched = (source / "setup.py").read_text()
    assert patched == original.replace("-std=c++17", "-std=c++20")
    assert "-std=c++17" not in patched and "/std:c++17" in patched  # MSVC's flag is left alone
    other = _sdist(tmp_path / "other.tar.gz", "print('no flag here')\n")
    with pytest.raises(EnvironmentFailure, match="no -std=c\\+\\+17 to change"):
        im.patch_source(other, tmp_path / "src2")


def test_build_environment_asks_for_the_ops(monkeypatch) -> None:
    monkeypatch.setenv("MAX_JOBS", "3")
    assert im.build_environment(TARGET) == {"MMCV_WITH_OPS": "1", "FORCE_CUDA": "0",
                                            "MAX_JOBS": "3"}  # fmt: skip
    cuda = im.Target(TARGET.name, "2.14.1", "cuda")
    assert im.build_environment(cuda)["FORCE_CUDA"] == "1"
