"""Dataset adapters, one family per module, behind one static registry.

An adapter has two parts, so that a run key can be computed without torch:

* its **index** (:class:`SplitIndexer`, in a torch-free module ``<name>_index.py``): which
  examples make a split (ids, labels, the files that define them), read straight from the
  dataset's own index files. The run key's data identity is computed from this alone
  (``benchmark.data.splits.index_identity``), so `bench run` can answer "already done" without
  importing torch.
* its **loader** (:class:`DatasetAdapter`, a subclass of the index class): the same split as a
  dataset, through the dataset's own loader (torchvision's classes, which check the files they
  read), and a tiny fixture of the dataset in its real on-disk format for tests and the demo.

Both parts must name the same examples in the same order with the same labels and files; the
tests check the identity computed either way on every adapter's fixture. The
LightningDataModules in :mod:`benchmark.data.classification` (and the detection one) do the
rest: validation carving, subsets, transforms and loaders.

The registry is a table of module paths, imported only when an adapter is used: validating a
task YAML imports no dataset library.

Two adapters are generic: ``torchvision`` (:mod:`.torchvision_adapter`, any class of
:mod:`.tv_datasets`) and ``imagefolder`` (:mod:`.imagefolder`) take typed arguments
(:mod:`.adapter_args`) and share one fixture writer (:mod:`.fixture_writer`), so a dataset
torchvision reads is a task YAML, not a module. Their index part is not split off yet (the table
names the loader for both parts): a run on them is keyed the full way, with torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from benchmark.errors import BenchError, closest_names


@dataclass
class SplitIndex:
    """One split of a dataset as its index files define it, read without torch.

    ``labels`` are used for stratified selection (single-label: [N] ints; multi-label [N, K];
    ``None`` when there is nothing to stratify on). ``example_ids`` name each example stably
    (they go into the saved predictions, so results from two backbones can be paired).
    """

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


@dataclass(kw_only=True)
class SplitData(SplitIndex):
    """A split with its dataset (items ``(image, target)``), as the loader part gives it."""

    dataset: Any  # a torch Dataset (map-style: __len__ and __getitem__)

    def __post_init__(self) -> None:
        if len(self.example_ids) != len(self.dataset):
            raise ValueError("example_ids and dataset differ in length")


class SplitIndexer(Protocol):
    """The torch-free part of an adapter: what a new adapter must provide at least.

    Its module may import numpy, PIL-free parsers and the standard library, never torch,
    torchvision or Lightning (a test imports each one alone and checks). ``index_split`` reads
    only the dataset's index files (no images), and returns the examples in the order the
    loader part uses them, with the same labels and ``files``; a missing or broken dataset may
    raise anything (the caller then loads the data the full way, which names the problem).
    """

    name: str
    splits: Sequence[str]
    version: int  # bump when what the adapter reads or how it labels changes (in the run key)

    def index_split(self, root: Path, split: str, **args: Any) -> SplitIndex: ...


class DatasetAdapter(SplitIndexer, Protocol):
    """The loader part (may import torch): the split as a dataset, and a fixture writer.
    See :mod:`benchmark.data.cifar` for an example."""

    def load_split(self, root: Path, split: str, download: bool, **args: Any) -> SplitData: ...

    def write_fixture(self, root: Path, **args: Any) -> Path: ...


@dataclass(frozen=True)
class AdapterEntry:
    """Where an adapter's two parts live, as ``module:Class`` paths (imported when used)."""

    index: str
    loader: str


_ADAPTERS: dict[str, AdapterEntry] = {}


def register_adapter(name: str, index: str, loader: str) -> None:
    """Add an adapter to the table; a second adapter of the same name is refused (a silent
    overwrite would make a task read other data than it names)."""
    if name in _ADAPTERS:
        raise BenchError(
            f"dataset adapter {name!r} is already registered ({_ADAPTERS[name].loader}); "
            f"choose another name for {loader}."
        )
    _ADAPTERS[name] = AdapterEntry(index, loader)


register_adapter("cifar10", "benchmark.data.cifar_index:CIFAR10Index",
                 "benchmark.data.cifar:CIFAR10Adapter")  # fmt: skip
register_adapter("sun397", "benchmark.data.sun397_index:SUN397Index",
                 "benchmark.data.sun397:SUN397Adapter")  # fmt: skip
register_adapter("celeba", "benchmark.data.celeba_index:CelebAIndex",
                 "benchmark.data.celeba:CelebAAdapter")  # fmt: skip
register_adapter("voc", "benchmark.data.voc_index:VOCIndex", "benchmark.data.voc:VOCAdapter")
register_adapter("imagenet_folder", "benchmark.data.imagenet_folder:ImageNetFolderAdapter",
                 "benchmark.data.imagenet_folder:ImageNetFolderAdapter")  # fmt: skip
# generic adapters, loader for both parts until their index part is split off (see above)
register_adapter("torchvision", "benchmark.data.torchvision_adapter:TorchvisionAdapter",
                 "benchmark.data.torchvision_adapter:TorchvisionAdapter")  # fmt: skip
register_adapter("imagefolder", "benchmark.data.imagefolder:ImageFolderAdapter",
                 "benchmark.data.imagefolder:ImageFolderAdapter")  # fmt: skip


def adapter_names() -> list[str]:
    return sorted(_ADAPTERS)


def _entry(name: str) -> AdapterEntry:
    if name not in _ADAPTERS:
        raise BenchError(
            f"unknown dataset adapter {name!r}." + closest_names(name, list(_ADAPTERS))
        )
    return _ADAPTERS[name]


def _instance(path: str, name: str) -> Any:
    module, _, attribute = path.partition(":")
    adapter = getattr(importlib.import_module(module), attribute)()
    adapter.name = name
    return adapter


def get_indexer(name: str) -> SplitIndexer:
    """The torch-free part of adapter ``name``."""
    return _instance(_entry(name).index, name)


def get_adapter(name: str) -> DatasetAdapter:
    """Adapter ``name`` with its loader (imports the dataset library, torchvision)."""
    return _instance(_entry(name).loader, name)


def write_task_fixture(task: Any, root: Path) -> Path:
    """``bench data fixture``: the tiny fixture of ``task`` (a :class:`benchmark.tasks.Task`)
    under ``root``, in its dataset's real on-disk format; where it was written."""
    adapter = get_adapter(task.data.adapter)
    if hasattr(adapter, "write_task_fixture"):  # generic adapters: generated from the YAML
        return Path(adapter.write_task_fixture(task, root))
    return Path(adapter.write_fixture(root))
