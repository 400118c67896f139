"""Fixture manifests: how blurbench's tiny datasets pass the real loaders' integrity checks.

torchvision verifies dataset files against md5 tables of the real releases. A fixture cannot
match those, and skipping the check would leave the tested code path different from the real
one. Instead the fixture writer leaves a manifest beside the files with their md5s, and the
adapter hands that table to the same torchvision loader, which then checks the fixture files as
strictly as it checks the real ones (a truncated fixture file still fails). Runs on fixture data
are marked as such in their records, so they can never pass for real results.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from benchmark.atomic import atomic_write_text
from benchmark.errors import BenchError

MANIFEST_NAME = "blurbench_fixture.json"


def md5_of(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def verify_manifest(folder: Path, md5: dict[str, str], names: list[str] | None = None) -> None:
    """Check fixture files against the md5s their writer recorded (all, or ``names``).

    For loaders that check only the real dataset's downloaded archives (VOC, SUN397's text
    files, Hugging Face folders), this is the integrity check the fixture gets instead.
    """
    for name in md5 if names is None else names:
        path = folder / name
        if not path.is_file() or md5.get(name) != md5_of(path):
            raise BenchError(
                f"{path}: missing or changed since the fixture was written (md5 mismatch with "
                f"{folder / MANIFEST_NAME}); write it again with `bench data fixture`."
            )


def write_manifest(directory: Path, dataset: str, files: list[Path]) -> Path:
    """Record the md5 of each fixture file (paths relative to ``directory``)."""
    table = {str(f.relative_to(directory)): md5_of(f) for f in sorted(files)}
    manifest = {"dataset": dataset, "generator": "blurbench fixture", "md5": table}
    return atomic_write_text(directory / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")


def read_manifest(directory: Path, dataset: str) -> dict[str, str] | None:
    """The fixture md5 table in ``directory``, or ``None`` for a real dataset.

    The manifest replaces the official checksums, so it is read strictly: a table that is not
    file name -> md5 is refused rather than skipped, and loaders accept it only for the files
    it lists (see :func:`require_listed`).
    """
    path = directory / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise BenchError(f"{path}: unreadable fixture manifest ({type(err).__name__}).") from None
    if not isinstance(manifest, dict) or manifest.get("dataset") != dataset:
        return None
    table = manifest.get("md5")
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) == 32 for k, v in table.items()
    ):
        raise BenchError(f"{path}: 'md5' must map file names to md5 hex digests.")
    return dict(table)


def require_listed(folder: Path, md5: dict[str, str], names: list[str]) -> None:
    """A manifest vouches only for the files it lists: one that leaves out a file the loader
    reads would otherwise let that file through unchecked (or fail with a vague message)."""
    missing = [name for name in names if name not in md5]
    if missing:
        raise BenchError(
            f"{folder / MANIFEST_NAME} lists no md5 for {', '.join(missing)}; a fixture manifest "
            f"must list every file it stands for (delete it to check the official md5s)."
        )
