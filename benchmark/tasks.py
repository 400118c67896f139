"""The task registry: ``tasks/*.yaml`` read into validated, typed :class:`Task` objects.

A task is data, not code: it names a dataset adapter (registered in :mod:`benchmark.data`), its
splits, metrics (registered in :mod:`benchmark.metrics`) and protocol defaults. Every field is
checked when the file is read, so a typo fails before any data is touched, with one line that
names the file and the field.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from benchmark import paths
from benchmark.errors import BenchError, closest_names
from benchmark.yaml_files import read_yaml

TaskKind = Literal["classification", "multilabel", "detection"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HFSource(_Strict):
    """A Hugging Face ``datasets`` alternative to the torchvision loader."""

    id: str
    revision: str | None = None
    config: str | None = None
    splits: dict[str, str] = Field(default_factory=dict)  # our split name -> HF split name
    columns: dict[str, str] = Field(default_factory=dict)  # our field name -> HF column


class DataSpec(_Strict):
    adapter: str
    args: dict[str, Any] = Field(default_factory=dict)
    source: Literal["torchvision", "hf"] = "torchvision"
    hf: HFSource | None = None

    @model_validator(mode="after")
    def _hf_needs_spec(self) -> DataSpec:
        if self.source == "hf" and self.hf is None:
            raise ValueError("data.source is 'hf' but the task has no data.hf section")
        return self


class CarvedSplit(_Strict):
    """A validation split carved from another split, stratified and seeded independently of the
    run seed, so every run of a task sees the same validation examples."""

    from_split: str = Field(alias="from")
    fraction: Annotated[float, Field(gt=0, lt=1)]
    seed: int = 0


class Splits(_Strict):
    train: str
    val: str | CarvedSplit
    test: str


class MetricSpec(_Strict):
    primary: str
    others: list[str] = Field(default_factory=list)


class OptimSpec(_Strict):
    name: Literal["sgd", "adamw"] = "sgd"
    lr: Annotated[float, Field(gt=0)]
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = True
    weight_decay: Annotated[float, Field(ge=0)] = 0.0


class ScheduleSpec(_Strict):
    name: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: Annotated[float, Field(ge=0)] = 0.0
    step_epochs: list[int] = Field(default_factory=list)  # for "step": epochs at which lr *= gamma
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.1


class TrainSpec(_Strict):
    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)]
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    num_workers: Annotated[int, Field(ge=0)] = 2


class InputSpec(_Strict):
    image_size: Annotated[int, Field(ge=8)]
    resize_size: Annotated[int, Field(ge=8)] | None = None  # eval resize before the centre crop
    augmentation: Literal["random_resized_crop_flip", "flip", "none"] = "random_resized_crop_flip"


class DetectionSpec(_Strict):
    """Detector options (kind ``detection`` only). Sizes are what torchvision's
    ``GeneralizedRCNNTransform`` takes: the shorter image side (one value, or a list to pick from
    at random per batch when training) and a cap on the longer side. The detector resizes inside
    its forward pass and maps its boxes back to the original image, so the data stays unresized."""

    train_min_size: Annotated[int, Field(ge=16)] | list[Annotated[int, Field(ge=16)]] = 600
    train_max_size: Annotated[int, Field(ge=16)] = 1000
    test_min_size: Annotated[int, Field(ge=16)] = 600
    test_max_size: Annotated[int, Field(ge=16)] = 1000
    trainable_backbone_layers: Annotated[int, Field(ge=0, le=5)] = 3  # of conv1, layer1..layer4
    horizontal_flip: bool = True  # training augmentation, boxes flipped with the image


class ResourceSpec(_Strict):
    """What one run of the task asks a cluster for (``bench sweep --launcher slurm``). Not part
    of the run key: a longer time limit does not change a result."""

    gpus: Annotated[int, Field(ge=0)] = 1  # per run; --devices N asks for N
    cpus: Annotated[int, Field(ge=1)] = 8  # per run, for the data loaders
    mem_gb: Annotated[int, Field(ge=1)] = 32
    timeout_min: Annotated[int, Field(ge=1)] = 240  # a run cut off resumes from its checkpoint


class SmokeSpec(_Strict):
    """The tiny subset CI runs: examples per split, plus field overrides (small images)."""

    train: Annotated[int, Field(ge=1)]
    val: Annotated[int, Field(ge=1)]
    test: Annotated[int, Field(ge=1)]
    set: dict[str, Any] = Field(default_factory=dict)


class Task(_Strict):
    name: str
    kind: TaskKind
    description: str = ""
    data: DataSpec
    splits: Splits
    num_classes: Annotated[int, Field(ge=1)]
    metrics: MetricSpec
    # eval: the backbone is evaluated as it is, head included (tasks/imagenet.yaml)
    protocol: Literal["finetune", "linear", "eval"] = "finetune"
    optim: OptimSpec
    schedule: ScheduleSpec = ScheduleSpec()
    train: TrainSpec
    input: InputSpec | None = None  # required unless kind is detection (see ``detection``)
    detection: DetectionSpec | None = None  # required for kind detection
    smoke: SmokeSpec
    groups: dict[str, list[str]] = Field(default_factory=dict)  # e.g. CelebA attribute regions
    resources: ResourceSpec = ResourceSpec()

    @model_validator(mode="after")
    def _check_registries(self) -> Task:
        from benchmark import data, metrics

        adapters = data.adapter_names()
        if self.data.adapter not in adapters:
            raise ValueError(
                f"unknown adapter {self.data.adapter!r} (known: {', '.join(adapters)})"
            )
        known = metrics.metric_names(self.kind)
        for name in [self.metrics.primary, *self.metrics.others]:
            if name not in known:
                raise ValueError(
                    f"metric {name!r} is not defined for kind {self.kind!r} "
                    f"(known: {', '.join(known)})"
                )
        if self.kind == "detection":
            if self.detection is None:
                raise ValueError("a detection task needs a 'detection' section (image sizes)")
            if self.input is not None:
                raise ValueError("'input' is not used by detection tasks; sizes go in 'detection'")
        else:
            if self.input is None:
                raise ValueError(f"a {self.kind} task needs an 'input' section")
            if self.detection is not None:
                raise ValueError("'detection' is only for tasks of kind detection")
        return self

    def resolved(self) -> dict[str, Any]:
        """The full config as plain JSON data: what the record stores and hashes (cluster
        resources aside: they do not change a result)."""
        return self.model_dump(mode="json", by_alias=True, exclude={"resources"})


def _format_validation_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        msg = "required field is missing"
    elif first["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling against tasks/README or another task)"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: field '{field}': {msg}{more}"


def task_from_dict(raw: Any, source: str) -> Task:
    if not isinstance(raw, dict):
        raise BenchError(f"{source}: expected a mapping of task fields at the top level.")
    try:
        return Task.model_validate(raw)
    except ValidationError as err:
        raise BenchError(_format_validation_error(source, err)) from None


def task_files() -> dict[str, Path]:
    """Every ``*.yaml`` in the task registry; none at all is an error, never an empty listing
    (an install without its registry used to print nothing and exit 0)."""
    files = {p.stem: p for p in sorted(paths.TASKS_DIR.glob("*.yaml"))}
    if not files:
        where = "does not exist" if not paths.TASKS_DIR.is_dir() else "holds no *.yaml task file"
        raise BenchError(
            f"the task registry {paths.TASKS_DIR} {where}: reinstall blurbench, or point "
            f"BENCH_TASKS_DIR at a folder of task YAML files."
        )
    return files


def load_task_file(path: Path) -> Task:
    task = task_from_dict(read_yaml(path), str(path))
    if task.name != path.stem:
        raise BenchError(f"{path}: field 'name': {task.name!r} must match the file name.")
    return task


def get_task(name: str) -> Task:
    files = task_files()
    if name not in files:
        raise BenchError(
            f"unknown task {name!r}; `bench list tasks` shows the registered ones."
            + closest_names(name, list(files))
        )
    return load_task_file(files[name])


def list_tasks() -> tuple[list[Task], dict[str, str]]:
    """All tasks that validate, and for the others the reason they do not."""
    ok: list[Task] = []
    broken: dict[str, str] = {}
    for name, path in task_files().items():
        try:
            ok.append(load_task_file(path))
        except BenchError as err:
            broken[name] = str(err)
    return ok, broken


def parse_key_values(pairs: Sequence[str], flag: str, usage: str) -> dict[str, Any]:
    """``["a.b=0.01"]`` -> ``{"a.b": 0.01}`` for repeatable ``KEY=VALUE`` options; values are
    YAML scalars (safe_load). ``usage`` completes the error for a pair without ``=``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BenchError(f"{flag} {pair!r}: {usage}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise BenchError(f"{flag} {pair!r}: the value is not a valid YAML scalar.") from None
    return out


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["optim.lr=0.01"]`` -> ``{"optim.lr": 0.01}``: the ``--set`` task overrides."""
    return parse_key_values(pairs, "--set", "expected key=value, for example --set optim.lr=0.01")


def apply_overrides(task: Task, overrides: dict[str, Any], source: str = "--set") -> Task:
    """Set fields by dotted path and validate the result exactly like a task file."""
    if not overrides:
        return task
    raw = task.model_dump(mode="json", by_alias=True)
    for dotted, value in overrides.items():
        node = raw
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node and depth < len(parts) - 1:
                here = ".".join(parts[: depth + 1])
                options = list(node) if isinstance(node, dict) else []
                raise BenchError(
                    f"{source} {dotted}: task {task.name!r} has no field {here!r}."
                    + closest_names(part, options)
                )
            if depth == len(parts) - 1:
                if part not in node and not _is_free_mapping(parts[:-1]):
                    raise BenchError(
                        f"{source} {dotted}: task {task.name!r} has no field {dotted!r}."
                        + closest_names(part, list(node))
                    )
                node[part] = copy.deepcopy(value)
            else:
                node = node[part]
    return task_from_dict(raw, f"{source} on task {task.name}")


def _is_free_mapping(parent: list[str]) -> bool:
    """Fields whose keys are user-chosen (adapter args, attribute groups, HF columns)."""
    return parent in (["data", "args"], ["groups"], ["smoke", "set"]) or (
        len(parent) == 3 and parent[:2] == ["data", "hf"]
    )


def for_subset(task: Task, subset: str) -> Task:
    """The task as a ``--subset`` run sees it: ``tiny`` applies the smoke overrides."""
    if subset == "tiny":
        return apply_overrides(task, task.smoke.set, source=f"{task.name} smoke.set")
    return task
