"""Dataset adapters, one module per dataset family, behind one registry.

An adapter turns ``(root, split)`` into a :class:`SplitData` through the dataset's own loader
(torchvision's classes, which check the files they read), and writes a tiny fixture of the
dataset in its real on-disk format for tests and the demo. The LightningDataModules in
:mod:`benchmark.data.classification` (and the detection one) do the rest: validation carving,
subsets, transforms and loaders.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch.utils.data import Dataset

from benchmark.errors import BenchError, closest_names


@dataclass
class SplitData:
    """One split of a dataset as its loader sees it.

    ``labels`` are used for stratified selection (single-label: [N] ints; multi-label [N, K];
    ``None`` when there is nothing to stratify on). ``example_ids`` name each example stably
    (they go into the saved predictions, so results from two backbones can be paired).
    """

    dataset: Dataset
    example_ids: list[str]
    class_names: list[str]
    labels: np.ndarray | None = None
    is_fixture: bool = False
    source: dict[str, Any] = field(default_factory=dict)  # provenance for the run record
    # The files that define the examples and their labels (index, split and annotation files;
    # CIFAR-10's batches), hashed into the run key's data identity (benchmark.data.identity).
    files: list[Path] = field(default_factory=list)
    # What else identifies the content when there are no such files (a Hugging Face
    # dataset's own fingerprint of its tables).
    content_id: str | None = None

    def __post_init__(self) -> None:
        if len(self.example_ids) != len(self.dataset):  # type: ignore[arg-type]
            raise ValueError("example_ids and dataset differ in length")


class DatasetAdapter(Protocol):
    """What a dataset family provides; see :mod:`benchmark.data.cifar` for an example."""

    name: str
    splits: Sequence[str]
    version: int  # bump when what the adapter reads or how it labels changes (in the run key)

    def load_split(self, root: Path, split: str, download: bool, **args: Any) -> SplitData: ...

    def write_fixture(self, root: Path, **args: Any) -> Path: ...


_ADAPTERS: dict[str, Callable[[], DatasetAdapter]] = {}
_ADAPTER_MODULES = ("cifar", "sun397", "celeba", "voc", "imagenet_folder")


def register_adapter(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.name = name
        if not hasattr(cls, "version"):
            cls.version = 1
        _ADAPTERS[name] = cls
        return cls

    return deco


def _import_adapters() -> None:
    for module in _ADAPTER_MODULES:
        try:
            importlib.import_module(f"benchmark.data.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"benchmark.data.{module}":
                raise


def adapter_names() -> list[str]:
    _import_adapters()
    return sorted(_ADAPTERS)


def get_adapter(name: str) -> DatasetAdapter:
    _import_adapters()
    if name not in _ADAPTERS:
        raise BenchError(
            f"unknown dataset adapter {name!r}." + closest_names(name, list(_ADAPTERS))
        )
    return _ADAPTERS[name]()
