"""The backbone registry: a name or a checkpoint path -> an ImageNet network + its provenance.

``checkpoints/backbones.yaml`` names the backbones; ``create_backbone`` is the one door in (as
timm's ``create_model``): it builds the torchvision architecture, loads the weights completely
(:func:`benchmark.checkpoints.load_backbone_state`) and says where they came from, so the run
record can pin them by sha256.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torchvision
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from benchmark import paths
from benchmark.checkpoints import CHECKPOINT_SUFFIXES, load_backbone_state, read_checkpoint
from benchmark.errors import BenchError, closest_names
from benchmark.yaml_files import read_yaml


class BackboneEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    arch: str
    data: Literal["original", "blurred", "overlayed", "none"]
    source: Literal["torchvision", "file"]
    weights: str | None = None
    path: str | None = None
    sha256: str | None = None
    note: str = ""


@dataclass
class Backbone:
    """An ImageNet network with its weights loaded, before the head is replaced."""

    name: str
    arch: str
    model: nn.Module
    provenance: dict[str, Any] = field(default_factory=dict)


def registry_file() -> Path:
    return paths.CHECKPOINTS_DIR / "backbones.yaml"


def list_backbones() -> list[BackboneEntry]:
    path = registry_file()
    raw = read_yaml(path) or {}
    entries = []
    for name, fields in (raw.get("backbones") or {}).items():
        try:
            entries.append(BackboneEntry.model_validate({"name": name, **(fields or {})}))
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise BenchError(f"{path}: backbone {name!r} field '{loc}': {first['msg']}") from None
    return entries


def architectures() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_architecture(arch: str) -> nn.Module:
    """A randomly initialised torchvision ImageNet classifier (1000 classes)."""
    if arch not in architectures():
        raise BenchError(
            f"unknown architecture {arch!r}; torchvision classification models are accepted."
            + closest_names(arch, architectures())
        )
    return torchvision.models.get_model(arch, weights=None)


def looks_like_path(spec: str) -> bool:
    return spec.endswith(CHECKPOINT_SUFFIXES) or "/" in spec or Path(spec).is_file()


def create_backbone(spec: str, arch: str | None = None) -> Backbone:
    """Resolve ``spec`` (a registry name or a checkpoint path) into a loaded :class:`Backbone`."""
    if looks_like_path(spec):
        return _from_file(Path(spec), arch, name=None, data="unknown")
    entries = {e.name: e for e in list_backbones()}
    if spec not in entries:
        raise BenchError(
            f"unknown backbone {spec!r}; `bench list backbones` shows the registered ones, or "
            f"pass a checkpoint path." + closest_names(spec, list(entries))
        )
    entry = entries[spec]
    if arch is not None and arch != entry.arch:
        raise BenchError(f"--arch {arch} contradicts backbone {spec!r}, which is {entry.arch}.")
    if entry.source == "file":
        assert entry.path is not None
        return _from_file(paths.PROJECT_ROOT / entry.path, entry.arch, entry.name, entry.data)
    return _from_torchvision(entry)


def _from_file(path: Path, arch: str | None, name: str | None, data: str) -> Backbone:
    raw = read_checkpoint(path)
    if arch and raw.arch and arch != raw.arch:
        raise BenchError(f"--arch {arch} contradicts {path}, whose 'arch' field is {raw.arch}.")
    arch = arch or raw.arch
    if arch is None:
        raise BenchError(f"{path} does not say its architecture: pass --arch (e.g. resnet50).")
    model = build_architecture(arch)
    skipped = load_backbone_state(model, raw.state_dict, str(path))
    return Backbone(
        name=name or f"file-{paths.slug(path.stem)}-{raw.sha256[:8]}",
        arch=arch,
        model=model,
        provenance={
            "source": "file",
            "path": str(path),
            "sha256": raw.sha256,
            "layout": raw.layout,
            "pretraining_data": data,
            "checkpoint_meta": raw.meta,
            "head_keys_dropped": skipped,
        },
    )


def _from_torchvision(entry: BackboneEntry) -> Backbone:
    model = build_architecture(entry.arch)
    provenance: dict[str, Any] = {
        "source": "torchvision",
        "weights": entry.weights,
        "pretraining_data": entry.data,
        "sha256": None,
    }
    if entry.weights is not None:
        weights = torchvision.models.get_model_weights(entry.arch)[entry.weights]
        try:
            state = weights.get_state_dict(progress=False, check_hash=True)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise BenchError(
                f"backbone {entry.name}: could not fetch torchvision weights {weights} from "
                f"{weights.url} ({str(err).splitlines()[0][:120]}); check the network or the "
                f"torch hub cache (TORCH_HOME)."
            ) from None
        load_backbone_state(model, state, f"torchvision weights {weights}")
        provenance["url"] = weights.url
        provenance["sha256_prefix"] = Path(weights.url).stem.rsplit("-", 1)[-1]
    return Backbone(name=entry.name, arch=entry.arch, model=model, provenance=provenance)
