"""Install the mmdet detection engine: mmcv 2.1.0 (built from source), mmengine 0.10.7, mmdet 3.3.0.

    python -m benchmark.engines.install_mmdet [--wheel-cache DIR | --wheel FILE] [--dry-run]

Why a script and not a plain extra: PyPI has mmcv 2.1.0 (the newest mmcv that mmdet 3.3.0, the
last mmdet release, accepts) only as a source distribution, and that source does not build
against torch 2.14 as it is: its ``setup.py`` hard-codes ``-std=c++17`` while torch's headers
need C++20 (CXXFLAGS cannot override it: the extension's own flags come last), and its build
imports ``pkg_resources`` (``setuptools<81``). So this script

1. uses an already built wheel when one is cached (``--wheel``, ``--wheel-cache``,
   ``$BENCH_WHEEL_CACHE``, else ``$BENCH_CACHE_DIR/wheels`` or ``~/.cache/blurbench/wheels``)
   and its sha256 is known: recorded in ``<wheel>.sha256`` when this script built it, else
   pinned below. A wheel whose bytes do not match is refused, never installed;
2. otherwise downloads mmcv's sdist with pip (``--require-hashes``: pip checks the pinned
   sha256), changes the one flag, builds the wheel with mmcv's C++ ops (CPU ops; CUDA ops too
   where ``nvcc`` and a GPU are present) against the installed torch, and caches it;
3. installs the wheel, mmengine and mmdet at their pins (``pip install '.[mmdet]'`` gives the
   last two; mmcv can only come from here), then checks that ``mmcv.ops`` runs.

``--dry-run`` does steps 1-2 up to the patched source and prints the build and install commands
without running them. Exit status: 0 done, 2 a refused wheel or a bad argument, 1 a failed
download, build or install (one line each; ``BENCH_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmark.atomic import atomic_write_text, current_umask
from benchmark.errors import BenchError, EnvironmentFailure

MMCV_VERSION = "2.1.0"
MMENGINE_VERSION = "0.10.7"
MMDET_VERSION = "3.3.0"
# The sdist on PyPI (pip checks it with --require-hashes).
MMCV_SDIST_SHA256 = "d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f"
# Wheels built exactly as this script builds them, by (file name, torch version, ops); a cached
# wheel under one of these names must have these bytes.
PINNED_WHEELS: dict[tuple[str, str, str], str] = {
    ("mmcv-2.1.0-cp311-cp311-linux_x86_64.whl", "2.14.1", "cpu"):
        "df23fedf35bcac0f90df7c106ddc65f011f5e1499201845e150d86361804abdc",
}  # fmt: skip
# The one change to mmcv 2.1.0's setup.py (see the module docstring).
CXX_FLAG_OLD, CXX_FLAG_NEW = "-std=c++17", "-std=c++20"
BUILD_REQUIREMENTS = ["setuptools<81", "wheel"]
SIDECAR_SUFFIX = ".sha256"  # <wheel>.sha256: JSON {sha256, torch, ops} of a wheel built here


@dataclass(frozen=True)
class Target:
    """The wheel this interpreter and torch need: its file name and what it was built for."""

    name: str
    torch: str
    ops: str  # "cpu" or "cuda"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_name() -> str:
    """mmcv's wheel name for this interpreter (cpXY, linux_x86_64 ...), as bdist_wheel names it."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"mmcv-{MMCV_VERSION}-{tag}-{tag}-{platform}.whl"


def cuda_ops_possible() -> bool:
    """CUDA ops are built where they can run: nvcc on PATH and a GPU torch can see."""
    import torch

    return shutil.which("nvcc") is not None and torch.cuda.is_available()


def current_target(ops: str | None = None) -> Target:
    import torch

    version = torch.__version__.split("+")[0]
    return Target(wheel_name(), version, ops or ("cuda" if cuda_ops_possible() else "cpu"))


def default_cache_dir() -> Path:
    """``$BENCH_WHEEL_CACHE``, else ``$BENCH_CACHE_DIR/wheels``, else ``~/.cache/blurbench/wheels``
    (``$XDG_CACHE_HOME`` respected)."""
    if os.environ.get("BENCH_WHEEL_CACHE"):
        return Path(os.environ["BENCH_WHEEL_CACHE"]).expanduser()
    if os.environ.get("BENCH_CACHE_DIR"):
        return Path(os.environ["BENCH_CACHE_DIR"]).expanduser() / "wheels"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "blurbench" / "wheels"


def expected_sha256(wheel: Path, target: Target) -> str | None:
    """The sha256 a cached wheel must have: the one recorded next to it when this script built
    it (builds are not bit-reproducible, so a wheel built here differs from the pinned one),
    else the pinned one."""
    sidecar = wheel.with_name(wheel.name + SIDECAR_SUFFIX)
    if sidecar.is_file():
        try:
            recorded = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            recorded = {}
        if recorded.get("torch") == target.torch and recorded.get("ops") == target.ops:
            return str(recorded.get("sha256"))
    return PINNED_WHEELS.get((wheel.name, target.torch, target.ops))


def checked_wheel(wheel: Path, target: Target) -> Path:
    """The wheel, if its bytes are the known ones; a mismatch or an unknown wheel is refused."""
    if wheel.name != target.name:
        raise BenchError(
            f"{wheel}: this interpreter needs {target.name}; pass that wheel or no --wheel."
        )
    expected = expected_sha256(wheel, target)
    if expected is None:
        raise BenchError(
            f"{wheel}: no known sha256 for an mmcv wheel with {target.ops} ops for torch "
            f"{target.torch}; delete it (it is rebuilt) or pass another --wheel-cache."
        )
    actual = sha256_file(wheel)
    if actual != expected:
        raise BenchError(
            f"{wheel}: sha256 {actual[:16]}... is not the expected {expected[:16]}...: the file "
            f"is damaged or another build; delete it and run again to rebuild it."
        )
    return wheel


def find_cached_wheel(caches: list[Path], target: Target) -> Path | None:
    """The first cache folder holding the target's wheel (checked: a mismatch is refused)."""
    for folder in caches:
        candidate = folder / target.name
        if candidate.is_file():
            return checked_wheel(candidate, target)
    return None


def pip(*args: str, env: dict[str, str] | None = None, quiet: bool = True) -> None:
    """Run this interpreter's pip; a failure is an environment failure, in one line."""
    command = [sys.executable, "-m", "pip", *(["-q"] if quiet else []), *args]
    print("+ " + " ".join(command), flush=True)
    done = subprocess.run(command, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise EnvironmentFailure(
            f"`pip {' '.join(args)[:120]}` failed with status {done.returncode} (its output is "
            f"above); fix that and run python -m benchmark.engines.install_mmdet again."
        )


def download_sdist(into: Path) -> Path:
    """mmcv's sdist through pip (``--require-hashes``: pip checks the pinned sha256). pip
    prepares its metadata, which imports torch and pkg_resources: hence the build requirements
    and ``--no-build-isolation`` first."""
    requirements = into / "mmcv-sdist.txt"
    requirements.write_text(f"mmcv=={MMCV_VERSION} --hash=sha256:{MMCV_SDIST_SHA256}\n")
    pip("download", "--no-deps", "--no-binary", "mmcv", "--no-build-isolation",
        "--require-hashes", "-r", str(requirements), "-d", str(into))  # fmt: skip
    (sdist,) = into.glob(f"mmcv-{MMCV_VERSION}.tar.gz")
    return sdist


def patch_source(sdist: Path, into: Path) -> Path:
    """Unpack the sdist and change the one flag; refuse a source where it is not found."""
    with tarfile.open(sdist) as tar:
        tar.extractall(into, filter="data")
    source = into / f"mmcv-{MMCV_VERSION}"
    setup_py = source / "setup.py"
    text = setup_py.read_text()
    count = text.count(CXX_FLAG_OLD)
    if count == 0:
        raise EnvironmentFailure(f"{setup_py}: no {CXX_FLAG_OLD} to change; not mmcv "
                                 f"{MMCV_VERSION}'s source as pinned.")
    setup_py.write_text(text.replace(CXX_FLAG_OLD, CXX_FLAG_NEW))
    print(f"patched {setup_py}: {CXX_FLAG_OLD} -> {CXX_FLAG_NEW} ({count}x)", flush=True)
    return source


def build_environment(target: Target) -> dict[str, str]:
    return {
        "MMCV_WITH_OPS": "1",
        "FORCE_CUDA": "1" if target.ops == "cuda" else "0",
        "MAX_JOBS": os.environ.get("MAX_JOBS") or str(max(1, len(os.sched_getaffinity(0)))),
    }


def build_wheel(source: Path, cache: Path, target: Target) -> Path:
    """Build into a temporary folder, then move the wheel and its sidecar into the cache (a
    killed build leaves no half wheel there)."""
    env = build_environment(target)
    with tempfile.TemporaryDirectory(dir=source.parent) as out:
        pip("wheel", "--no-deps", "--no-build-isolation", "-w", out, str(source), env=env,
            quiet=False)  # fmt: skip
        built = Path(out) / target.name
        if not built.is_file():
            raise EnvironmentFailure(f"the build wrote no {target.name} into {out}.")
        cache.mkdir(parents=True, exist_ok=True)
        digest = sha256_file(built)
        wheel = cache / target.name
        os.replace(built, wheel)
        os.chmod(wheel, 0o666 & ~current_umask())  # the umask, as any new file
    atomic_write_text(
        wheel.with_name(wheel.name + SIDECAR_SUFFIX),
        json.dumps({"sha256": digest, "torch": target.torch, "ops": target.ops}) + "\n",
    )
    print(f"built {wheel} (sha256 {digest})", flush=True)
    return wheel


def install_commands(wheel: Path, constraint: Path | None) -> list[str]:
    pins = [f"mmengine=={MMENGINE_VERSION}", f"mmdet=={MMDET_VERSION}"]
    return ["install", *(["-c", str(constraint)] if constraint else []), str(wheel), *pins]


def check_installed() -> str:
    """mmcv's compiled ops run (nms on two boxes), and the three versions are the pinned ones."""
    code = (
        "import torch, mmcv, mmengine, mmdet; from mmcv.ops import nms; "
        "b = torch.tensor([[0., 0, 10, 10], [1, 1, 10, 10]]); "
        "keep = nms(b, torch.tensor([0.9, 0.8]), 0.5)[1]; assert keep.tolist() == [0], keep; "
        "print(mmcv.__version__, mmengine.__version__, mmdet.__version__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EnvironmentFailure(f"the installed mmcv does not work: {last}")
    versions = done.stdout.split()
    if versions != [MMCV_VERSION, MMENGINE_VERSION, MMDET_VERSION]:
        raise EnvironmentFailure(f"installed mmcv/mmengine/mmdet are {'/'.join(versions)}, "
                                 f"not the pinned {MMCV_VERSION}/{MMENGINE_VERSION}/"
                                 f"{MMDET_VERSION}.")  # fmt: skip
    return " ".join(versions)


def install(
    wheel: Path | None,
    caches: list[Path],
    constraint: Path | None,
    dry_run: bool = False,
    rebuild: bool = False,
) -> Path | None:
    """Steps 1-3 of the module docstring; returns the installed wheel (None on a dry run)."""
    target = current_target()
    print(f"mmcv {MMCV_VERSION} wheel for {target.name}, torch {target.torch}, {target.ops} "
          f"ops; cache: {', '.join(map(str, caches))}", flush=True)  # fmt: skip
    if wheel is not None:
        found: Path | None = checked_wheel(wheel, target)
    else:
        found = None if rebuild else find_cached_wheel(caches, target)
    if found is not None:
        print(f"using {found} (sha256 checked)", flush=True)
    else:
        cache = caches[0]
        # also on a dry run: pip's download prepares the sdist's metadata with them
        pip("install", *(["-c", str(constraint)] if constraint else []), *BUILD_REQUIREMENTS)
        work = Path(tempfile.mkdtemp(prefix="mmcv-build-"))
        try:
            source = patch_source(download_sdist(work), work)
            if dry_run:
                env = " ".join(f"{k}={v}" for k, v in build_environment(target).items())
                print(f"would build: {env} {sys.executable} -m pip wheel --no-deps "
                      f"--no-build-isolation -w {cache} {source}")  # fmt: skip
                planned = install_commands(cache / target.name, constraint)
                print(f"would install: pip {' '.join(planned)}")
                print(f"patched source kept in {work}", flush=True)
                return None
            found = build_wheel(source, cache, target)
        finally:
            if not dry_run:
                shutil.rmtree(work, ignore_errors=True)
    if dry_run:
        print(f"would install: pip {' '.join(install_commands(found, constraint))}")
        return None
    pip(*install_commands(found, constraint))
    print(f"installed mmcv/mmengine/mmdet {check_installed()}; mmcv.ops works", flush=True)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.engines.install_mmdet",
        description="Install mmcv (built from source, cached), mmengine and mmdet at the pins "
        "the mmdet detection engine needs.",
    )
    parser.add_argument("--wheel", type=Path, help="an mmcv wheel to install (sha256 checked)")
    parser.add_argument(
        "--wheel-cache", type=Path, action="append", default=None, metavar="DIR",
        help="a folder of cached wheels, read in order, the first also written (repeatable; "
        f"default {default_cache_dir()}, from $BENCH_WHEEL_CACHE or $BENCH_CACHE_DIR/wheels)",
    )  # fmt: skip
    parser.add_argument("-c", "--constraint", type=Path,
                        help="a pip constraints file (the checkout's constraints.txt)")
    parser.add_argument("--rebuild", action="store_true", help="build even if a wheel is cached")
    parser.add_argument("--dry-run", action="store_true",
                        help="download and patch the source, print the build and install "
                        "commands, run neither")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.monotonic()
    try:
        caches = args.wheel_cache or [default_cache_dir()]
        install(args.wheel, caches, args.constraint, args.dry_run, args.rebuild)
    except BenchError as err:
        if os.environ.get("BENCH_DEBUG") == "1":
            raise
        print(f"install_mmdet: {err}", file=sys.stderr)
        return 2
    except EnvironmentFailure as err:
        if os.environ.get("BENCH_DEBUG") == "1":
            raise
        print(f"install_mmdet: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("install_mmdet: interrupted", file=sys.stderr)
        return 130
    print(f"install_mmdet finished in {time.monotonic() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
