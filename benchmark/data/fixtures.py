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

MANIFEST_NAME = "blurbench_fixture.json"


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path, dataset: str, files: list[Path]) -> Path:
    """Record the md5 of each fixture file (paths relative to ``directory``)."""
    table = {str(f.relative_to(directory)): md5_of(f) for f in sorted(files)}
    manifest = {"dataset": dataset, "generator": "blurbench fixture", "md5": table}
    return atomic_write_text(directory / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")


def read_manifest(directory: Path, dataset: str) -> dict[str, str] | None:
    """The fixture md5 table in ``directory``, or ``None`` for a real dataset."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("dataset") != dataset:
        return None
    return dict(manifest["md5"])
