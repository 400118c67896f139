"""The backbone registry file (``checkpoints/backbones.yaml`` or ``$BENCH_BACKBONES_FILE``):
its entries, validated, and what names a checkpoint file rather than an entry.

Torch-free, so that listing the registry and computing a run key need no deep-learning stack;
:mod:`benchmark.backbones` turns an entry into a network.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from benchmark import paths
from benchmark.errors import BenchError, closest_names
from benchmark.pretraining import PretrainingData
from benchmark.yaml_files import read_yaml

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")
TIMM_PREFIX = "timm:"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


class BackboneEntry(BaseModel):
    """One registry entry. Which fields a source needs is checked here, so a typo in the YAML
    is one line at `bench list backbones`, not a failure halfway into a cluster job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    arch: str
    data: PretrainingData
    source: Literal["hub", "torchvision", "timm", "file", "url"]
    weights: str | None = None  # torchvision: the weights enum member; null = random init
    url: str | None = None  # url: a checkpoint file, cached in torch.hub's cache like torchvision's
    repo: str | None = None  # hub
    filename: str | None = None  # hub
    revision: str = "main"  # hub: a branch, tag or commit
    path: str | None = None  # file: relative to the registry file's folder
    sha256: str | None = None
    note: str = ""
    # written by `bench pretrain` (benchmark.pretrain): the identity of the data it was
    # trained on (sha256 of its file names and sizes) and the record of that training
    data_identity: str | None = None
    pretrain_record: str | None = None

    @model_validator(mode="after")
    def _fields_for_source(self) -> BackboneEntry:
        if not _NAME.match(self.name):
            raise ValueError("names use letters, digits and '_.+-' only (they become folders)")
        needed = {"hub": ("repo", "filename"), "file": ("path",), "url": ("url",)}.get(
            self.source, ()
        )
        for name in needed:
            if getattr(self, name) is None:
                raise ValueError(f"source '{self.source}' needs '{name}'")
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError("sha256 must be 64 lowercase hex digits, or null until verified")
        return self


def registry_file() -> Path:
    """``$BENCH_BACKBONES_FILE`` (read per call, for a private registry) or the project's."""
    override = os.environ.get("BENCH_BACKBONES_FILE")
    return Path(override) if override else paths.BACKBONES_FILE


def user_registry_file() -> Path:
    """Where ``bench pretrain`` registers the backbones it trains, read after the project's
    registry: ``$BENCH_USER_BACKBONES_FILE``, else ``$XDG_CONFIG_HOME/blurbench/backbones.yaml``
    (``~/.config/...``). Kept apart so the project's commented registry is never rewritten."""
    override = os.environ.get("BENCH_USER_BACKBONES_FILE")
    if override:
        return Path(override)
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "blurbench" / "backbones.yaml"


def read_registry_file(path: Path) -> list[BackboneEntry]:
    """The entries of one registry file, each validated (a typo is one line naming it)."""
    raw = read_yaml(path) or {}
    entries = []
    for name, fields in (raw.get("backbones") or {}).items():
        try:
            entries.append(BackboneEntry.model_validate({"name": name, **(fields or {})}))
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            where = f" field '{loc}'" if loc else ""
            message = str(first["msg"]).removeprefix("Value error, ")
            raise BenchError(f"{path}: backbone {name!r}{where}: {message}") from None
    return entries


def list_backbones() -> list[BackboneEntry]:
    path = registry_file()
    entries = read_registry_file(path)
    if not entries:  # an install that lost its registry must not look like an empty benchmark
        raise BenchError(f"{path}: the backbone registry lists no backbones.")
    user = user_registry_file()
    if user.is_file():
        known = {e.name for e in entries}
        for entry in read_registry_file(user):
            if entry.name in known:  # refused, never silently shadowed (torchvision's rule)
                raise BenchError(
                    f"{user}: backbone {entry.name!r} is already in {path}; rename it in {user}."
                )
            entries.append(entry)
    return entries


def get_entry(name: str) -> BackboneEntry:
    entries = {e.name: e for e in list_backbones()}
    if name not in entries:
        raise BenchError(
            f"unknown backbone {name!r}; `bench list backbones` shows the registered ones, or "
            f"pass a checkpoint path, a run directory or timm:<model>."
            + closest_names(name, list(entries))
        )
    return entries[name]


def looks_like_path(spec: str) -> bool:
    return spec.endswith(CHECKPOINT_SUFFIXES) or "/" in spec or Path(spec).is_file()
