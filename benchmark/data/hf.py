"""A Hugging Face ``datasets`` source for image classification and multi-label tasks.

torchvision's downloads are not always usable: CelebA's goes through Google Drive and often
fails on its quota, SUN397's is one 37 GB archive. A task can name a Hub dataset instead
(``data.hf`` in its YAML, chosen with ``--set data.source=hf``); it is loaded with
``datasets.load_dataset`` and its cache, and yields the same :class:`SplitData` as the
torchvision adapter, so carving, subsets, training and metrics are the same code either way.

``data.hf.columns`` maps our field names to the dataset's columns (each defaults to itself):
``image`` (an ``Image`` column), ``label`` (a ``ClassLabel`` column, single-label tasks), ``id``
(optional; stable example ids for the saved predictions), and for multi-label tasks one column
per attribute named by the adapter (bool, 0/1 or -1/1 values).

``data.hf.id`` is a Hub id (``owner/name``) or a local dataset directory written as a path
(absolute, or starting with ``./``, ``../`` or ``~``), which must exist. Offline use:
``HF_DATASETS_OFFLINE=1`` with a local directory or an already cached Hub dataset.

This module imports no torch (``datasets`` does not either): :func:`index_hf_split` is the
source's torch-free part, from which the run key's data identity is computed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import SplitData, SplitIndex, get_indexer
from benchmark.data.download import dataset_download
from benchmark.data.fixtures import read_manifest, verify_manifest, write_manifest
from benchmark.errors import BenchError
from benchmark.tasks import HFSource, Task

# Bump when what this source reads or how it labels changes (it is in the run key).
HF_SOURCE_VERSION = 1

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")
_LOCAL_PREFIXES = ("/", "./", "../", "~")


def resolve_dataset_id(value: str) -> str:
    """The id ``datasets`` should load: a Hub id as given, or a checked local directory.

    A local directory must be written as a path so that a Hub id can never silently load a
    same-named folder from the working directory, and it must exist and be a directory.
    """
    if value.startswith(_LOCAL_PREFIXES):
        path = Path(value).expanduser().resolve()
        if not path.is_dir():
            raise BenchError(
                f"data.hf.id {value!r}: {path} is not a directory; point it at a local "
                f"Hugging Face dataset folder (parquet files + README.md), or use a Hub id."
            )
        return str(path)
    if not _HUB_ID.match(value) or ".." in value:
        raise BenchError(
            f"data.hf.id {value!r}: expected a Hub id like 'owner/name', or a local directory "
            f"written as a path (/abs/dir or ./dir)."
        )
    if Path(value).exists():
        raise BenchError(
            f"data.hf.id {value!r} is both a Hub id and a local path here; write "
            f"./{value} to load the local directory."
        )
    return value


class HFImageDataset:
    """Items ``(PIL image, target)`` like torchvision's datasets; ``datasets`` decodes images.

    Only the image column is read per item; targets were read once, as whole columns. A plain
    map-style dataset (``__len__``, ``__getitem__``), which is all ``DataLoader`` needs, so this
    module imports torch only when an item is read.
    """

    def __init__(self, table: Any, image_column: str, targets: np.ndarray) -> None:
        self.table = table.select_columns([image_column])
        self.image_column = image_column
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image = self.table[int(index)][self.image_column]
        target = self.targets[index]
        if target.ndim == 0:
            return image, int(target)
        import torch

        return image, torch.from_numpy(np.array(target))


def load_hf_split(task: Task, split: str) -> SplitData:
    """One of the task's splits (our name) from its Hugging Face source, with its dataset."""
    index, table, image_column = _read_split(task, split)
    assert index.labels is not None
    fields = {f.name: getattr(index, f.name) for f in dataclasses.fields(SplitIndex)}
    return SplitData(dataset=HFImageDataset(table, image_column, index.labels), **fields)


def index_hf_split(task: Task, split: str) -> SplitIndex:
    """The split's examples, labels and content fingerprint (no image is decoded)."""
    return _read_split(task, split)[0]


def _read_split(task: Task, split: str) -> tuple[SplitIndex, Any, str]:
    """The split's index, its table and the image column."""
    spec = task.data.hf
    if spec is None:  # DataSpec's validator already refuses this; kept for type narrowing
        raise BenchError(f"task {task.name}: data.source is 'hf' but there is no data.hf.")
    source = resolve_dataset_id(spec.id)
    hf_split = spec.splits.get(split, split)
    manifest = None
    local = Path(source).is_absolute()
    if local:
        spec = spec.model_copy(update={"revision": None})  # a folder has no Hub revision
        manifest = read_manifest(Path(source), f"{task.data.adapter}-hf")
        if manifest is not None:
            verify_manifest(Path(source), manifest)
    table = _load(spec, source, hf_split)
    columns = dict(spec.columns)
    image_column = columns.pop("image", "image")
    id_column = columns.pop("id", None)
    if task.kind == "classification":
        targets, class_names = _single_label(task, table, columns.pop("label", "label"))
    elif task.kind == "multilabel":
        targets, class_names = _multi_label(task, table, columns)
        columns = {}
    else:
        raise BenchError(
            f"task {task.name}: data.source 'hf' serves classification and multilabel tasks, "
            f"not {task.kind!r}."
        )
    if columns:
        raise BenchError(
            f"data.hf.columns: unknown field(s) {sorted(columns)}; known: image, id, "
            + ("label." if task.kind == "classification" else "and the attribute names.")
        )
    _require_columns(spec, table, [image_column] + ([id_column] if id_column else []))
    if id_column:
        example_ids = [str(v) for v in table[id_column]]
        if len(set(example_ids)) != len(example_ids):
            raise BenchError(
                f"data.hf.columns.id {id_column!r}: values repeat in split {hf_split!r} of "
                f"{spec.id}; example ids must be unique."
            )
    else:
        example_ids = [f"{hf_split}/{i:06d}" for i in range(len(targets))]
    index = SplitIndex(
        example_ids=example_ids,
        class_names=class_names,
        labels=targets,
        is_fixture=manifest is not None,
        source={"hf": {"id": spec.id, "config": spec.config, "revision": spec.revision}},
        content_id=getattr(table, "_fingerprint", None),  # datasets' hash of the tables' content
    )
    return index, table, image_column


def _load(spec: HFSource, source: str, hf_split: str) -> Any:
    import datasets

    cache = os.environ.get("HF_DATASETS_CACHE") or datasets.config.HF_DATASETS_CACHE
    where = Path(source) if Path(source).is_absolute() else Path(cache)
    manual = "load it once with network into that cache, or --set data.hf.id=/a/local/copy."
    # a lost network is the environment (exit 1); with offline mode asked for, a dataset missing
    # from the cache is the user's setting, and like a wrong id or split it stays a BenchError
    network = () if _offline() else (ConnectionError, TimeoutError)
    try:
        with dataset_download(f"Hugging Face dataset {spec.id!r}", where, manual, network):
            table = datasets.load_dataset(
                source,
                name=spec.config,
                revision=spec.revision,
                split=hf_split,
                # read at call time (``datasets`` reads its own variable only at import)
                cache_dir=os.environ.get("HF_DATASETS_CACHE") or None,
            )
    except (ValueError, OSError, datasets.exceptions.DatasetsError) as err:
        detail = " ".join(str(err).split())[:300]
        raise BenchError(
            f"could not load Hugging Face dataset {spec.id!r} (config {spec.config!r}, split "
            f"{hf_split!r}): {type(err).__name__}: {detail}. Check data.hf in the task (or "
            f"--set data.hf.id=...); offline, the dataset must already be in the cache."
        ) from None
    if not isinstance(table, datasets.Dataset):
        raise BenchError(f"Hugging Face dataset {spec.id!r} split {hf_split!r} is not a table.")
    return table


def _offline() -> bool:
    switches = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(value.upper() in {"1", "ON", "YES", "TRUE"} for value in switches)


def _require_columns(spec: HFSource, table: Any, names: list[str]) -> None:
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise BenchError(
            f"Hugging Face dataset {spec.id!r} has no column(s) {missing} (it has "
            f"{table.column_names}); map them with --set data.hf.columns.<field>=<column>."
        )


def _single_label(task: Task, table: Any, label_column: str) -> tuple[np.ndarray, list[str]]:
    import datasets

    spec = task.data.hf
    assert spec is not None
    _require_columns(spec, table, [label_column])
    feature = table.features[label_column]
    if not isinstance(feature, datasets.ClassLabel):
        raise BenchError(
            f"Hugging Face dataset {spec.id!r}: column {label_column!r} is "
            f"{type(feature).__name__}, not a ClassLabel, so it does not name its classes."
        )
    if feature.num_classes != task.num_classes:
        raise BenchError(
            f"Hugging Face dataset {spec.id!r}: column {label_column!r} has "
            f"{feature.num_classes} classes, task {task.name} has {task.num_classes}."
        )
    labels = np.asarray(table.with_format("numpy")[label_column], dtype=np.int64)
    return labels, list(feature.names)


def _multi_label(task: Task, table: Any, columns: dict[str, str]) -> tuple[np.ndarray, list[str]]:
    """Attribute columns -> an [N, K] 0/1 matrix, attributes in the adapter's order."""
    spec = task.data.hf
    assert spec is not None
    names = list(getattr(get_indexer(task.data.adapter), "attribute_names", []))
    if len(names) != task.num_classes:
        raise BenchError(
            f"adapter {task.data.adapter!r} names {len(names)} attributes, task {task.name} "
            f"has {task.num_classes}; data.source 'hf' needs the adapter's attribute names."
        )
    unknown = sorted(set(columns) - set(names))
    if unknown:
        raise BenchError(
            f"data.hf.columns: unknown field(s) {unknown}; known: image, id and the "
            f"attribute names."
        )
    wanted = [columns.get(name, name) for name in names]
    _require_columns(spec, table, wanted)
    numeric = table.select_columns(wanted).with_format("numpy")
    matrix = np.stack([np.asarray(numeric[c]).astype(np.int64) for c in wanted], axis=1)
    for k, column in enumerate(wanted):
        values = set(np.unique(matrix[:, k]).tolist())
        if values <= {-1, 1} and -1 in values:
            matrix[:, k] = (matrix[:, k] + 1) // 2  # CelebA's own -1/1 coding
        elif not values <= {0, 1}:
            raise BenchError(
                f"Hugging Face dataset {spec.id!r}: attribute column {column!r} holds "
                f"{sorted(values)[:5]}, expected bool, 0/1 or -1/1 values."
            )
    return matrix, names


def write_hf_fixture(
    folder: Path,
    dataset: str,
    splits: dict[str, dict[str, list[Any]]],
    features: Any,
    config: str | None = None,
) -> Path:
    """Write tiny split tables as a local Hub-style dataset: parquet shards plus a README whose
    ``configs`` block maps split names to files, as Hub datasets declare them. Image columns
    take encoded bytes. A manifest marks the folder as a fixture (and pins its md5s)."""
    import datasets
    import yaml

    from benchmark.atomic import atomic_write_text

    folder = Path(folder)
    subdir = config or "data"
    (folder / subdir).mkdir(parents=True, exist_ok=True)
    written = []
    for split, values in splits.items():
        rows = {
            name: [{"bytes": v, "path": None} for v in col]
            if isinstance(features[name], datasets.Image)
            else col
            for name, col in values.items()
        }
        table = datasets.Dataset.from_dict(rows, features=features)
        path = folder / subdir / f"{split}-00000-of-00001.parquet"
        quiet = datasets.utils.are_progress_bars_disabled()
        datasets.utils.disable_progress_bars()  # a bar per tiny shard is noise
        try:
            table.to_parquet(str(path))  # stores the features (ClassLabel names) with the data
        finally:
            if not quiet:
                datasets.utils.enable_progress_bars()
        written.append(path)
    card = {
        "configs": [
            {
                "config_name": config or "default",
                "data_files": [{"split": s, "path": f"{subdir}/{s}-*"} for s in splits],
            }
        ]
    }
    readme = atomic_write_text(
        folder / "README.md",
        "---\n" + yaml.safe_dump(card, sort_keys=False) + "---\n"
        f"Tiny synthetic {dataset} fixture written by blurbench (not real data).\n",
    )
    write_manifest(folder, f"{dataset}-hf", [*written, readme])
    return folder
