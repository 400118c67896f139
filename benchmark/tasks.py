"""The task registry: ``tasks/*.yaml`` read into validated, typed :class:`Task` objects.

A task is data, not code: it names a dataset adapter (registered in :mod:`benchmark.data`), its
splits, metrics (registered in :mod:`benchmark.metrics`) and protocol defaults. Every field is
checked when the file is read, so a typo fails before any data is touched, with one line that
names the file and the field.
"""

from __future__ import annotations

import copy
import os
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
        _check_adapter_args(self.adapter, self.args)
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
    ``GeneralizedRCNNTransform`` and mmdet's ``Resize(keep_ratio=True)`` take: the shorter side
    (one value, or a list to pick from at random per batch when training) and a cap on the
    longer side. The detector resizes inside its forward pass and maps its boxes back to the
    original image, so the data stays unresized."""

    train_min_size: Annotated[int, Field(ge=16)] | list[Annotated[int, Field(ge=16)]] = 600
    train_max_size: Annotated[int, Field(ge=16)] = 1000
    test_min_size: Annotated[int, Field(ge=16)] = 600
    test_max_size: Annotated[int, Field(ge=16)] = 1000
    trainable_backbone_layers: Annotated[int, Field(ge=0, le=5)] = 3  # of conv1, layer1..layer4
    horizontal_flip: bool = True  # training augmentation, boxes flipped with the image
    # Whose Faster R-CNN: torchvision's, or mmdetection's (the paper's; an optional install,
    # benchmark.models.mmdet_detection). Part of the run key, like every task field.
    engine: Literal["torchvision", "mmdet"] = "torchvision"


class ResourceSpec(_Strict):
    """What one run of the task asks a cluster for (``bench sweep --launcher slurm``). Not part
    of the run key: a longer time limit does not change a result."""

    gpus: Annotated[int, Field(ge=0)] = 1  # per run; --devices N asks for N
    cpus: Annotated[int, Field(ge=1)] = 8  # per run, for the data loaders
    mem_gb: Annotated[int, Field(ge=1)] = 32
    timeout_min: Annotated[int, Field(ge=1)] = 240  # a run cut off resumes from its checkpoint


class ProbeSpec(_Strict):
    """The linear probe (``protocol: linear``, Kornblith et al. 2019): L2-regularised logistic
    regression on frozen features, its inverse strength C chosen on validation from
    ``c_count`` log-spaced values between ``c_min`` and ``c_max`` (Kornblith's 45 from 1e-6 to
    1e5). Part of the run key only for the linear protocol."""

    c_min: Annotated[float, Field(gt=0)] = 1e-6
    c_max: Annotated[float, Field(gt=0)] = 1e5
    c_count: Annotated[int, Field(ge=1)] = 45
    max_iter: Annotated[int, Field(ge=1)] = 1000  # L-BFGS iterations per C
    tol: Annotated[float, Field(gt=0)] = 1e-4  # scikit-learn's default stopping tolerance

    @model_validator(mode="after")
    def _ordered(self) -> ProbeSpec:
        if self.c_min > self.c_max:
            raise ValueError(f"probe.c_min {self.c_min} is above probe.c_max {self.c_max}")
        return self


# finetune: every parameter trained (the paper's protocol); linear: the L-BFGS probe on cached
# frozen features (Kornblith et al.); linear_sgd: frozen backbone, SGD-trained head with the
# task's augmentation (VISSL/MMPretrain "linear eval").
Protocol = Literal["finetune", "linear", "linear_sgd", "eval"]


class SmokeSpec(_Strict):
    """The tiny subset CI runs: examples per split, plus field overrides (small images)."""

    train: Annotated[int, Field(ge=1)]
    val: Annotated[int, Field(ge=1)]
    test: Annotated[int, Field(ge=1)]
    set: dict[str, Any] = Field(default_factory=dict)


class FixtureSpec(_Strict):
    """How ``bench data fixture`` writes the task's tiny dataset (generic adapters): images per
    class in each of the dataset's own splits (``all`` for a dataset without splits), and their
    size. The layout is the real dataset's (:mod:`benchmark.data.fixture_writer`). Not part of
    the run key: a run on a fixture is marked as one by its data identity."""

    per_class: dict[str, Annotated[int, Field(ge=1)]]
    image_size: Annotated[int, Field(ge=8)] = 32


class Task(_Strict):
    name: str
    kind: TaskKind
    description: str = ""
    data: DataSpec
    splits: Splits
    num_classes: Annotated[int, Field(ge=1)]
    metrics: MetricSpec
    # eval: the backbone is evaluated as it is, head included (tasks/imagenet.yaml)
    protocol: Protocol = "finetune"
    optim: OptimSpec
    schedule: ScheduleSpec = ScheduleSpec()
    train: TrainSpec
    input: InputSpec | None = None  # required unless kind is detection (see ``detection``)
    detection: DetectionSpec | None = None  # required for kind detection
    smoke: SmokeSpec
    groups: dict[str, list[str]] = Field(default_factory=dict)  # e.g. CelebA attribute regions
    resources: ResourceSpec = ResourceSpec()
    probe: ProbeSpec = ProbeSpec()
    fixture: FixtureSpec | None = None
    # A user task (--tasks-dir, BENCH_TASKS_DIR) with a built-in task's name must say so.
    replace: bool = False

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
        resources, the fixture spec and ``replace`` aside: they do not change a result; the
        probe's options only for the probe, so the keys of other protocols do not change with
        them)."""
        exclude = {"resources", "fixture", "replace"}
        if self.protocol != "linear":
            exclude.add("probe")
        return self.model_dump(mode="json", by_alias=True, exclude=exclude)

def _check_adapter_args(adapter: str, args: dict[str, Any]) -> None:
    """Typed ``data.args`` (:mod:`benchmark.data.adapter_args`), reported under ``data.args``."""
    from benchmark.data.adapter_args import typed_args

    try:
        typed_args(adapter, args)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(["data", "args", *(str(p) for p in first["loc"])])
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown field"
        raise ValueError(f"{where}: {msg}") from None


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


BUILT_IN = "built-in"


def user_task_dirs(extra: Sequence[Path] = ()) -> list[Path]:
    """Folders of user tasks: ``BENCH_TASKS_DIR`` (``os.pathsep``-separated), then
    ``--tasks-dir``."""
    env = [Path(p) for p in os.environ.get("BENCH_TASKS_DIR", "").split(os.pathsep) if p]
    out: list[Path] = []
    for folder in [*env, *(Path(p) for p in extra)]:
        if not folder.is_dir():
            raise BenchError(f"task folder {folder} does not exist or is not a folder "
                             f"(--tasks-dir / BENCH_TASKS_DIR): pass a folder of task YAML files.")
        if folder.resolve() not in [o.resolve() for o in out]:
            out.append(folder)
    return out


def task_sources(extra: Sequence[Path] = ()) -> dict[str, tuple[Path, str]]:
    """Every task's file and where it comes from (``built-in`` or the user folder).

    User folders add to the built-in registry; a user task with a built-in name replaces it
    only if it says ``replace: true`` (a name clash is otherwise a mistake, refused in one line);
    two user folders defining one name are refused as well. Missing or empty built-in registry
    is an error, never an empty listing (an install without its registry used to print nothing).
    """
    builtin = {p.stem: p for p in sorted(paths.TASKS_DIR.glob("*.yaml"))}
    if not builtin:
        where = "does not exist" if not paths.TASKS_DIR.is_dir() else "holds no *.yaml task file"
        raise BenchError(
            f"the task registry {paths.TASKS_DIR} {where}: reinstall blurbench "
            f"(user tasks go in a folder given with --tasks-dir or BENCH_TASKS_DIR)."
        )
    out: dict[str, tuple[Path, str]] = {n: (p, BUILT_IN) for n, p in builtin.items()}
    for folder in user_task_dirs(extra):
        for path in sorted(folder.glob("*.yaml")):
            name = path.stem
            if name in out and out[name][1] != BUILT_IN:
                raise BenchError(f"task {name!r} is defined twice: {out[name][0]} and {path}; "
                                 f"rename one.")  # fmt: skip
            if name in out and not _says_replace(path):
                raise BenchError(f"{path}: task {name!r} has the name of a built-in task "
                                 f"({out[name][0]}); rename it, or add 'replace: true' to "
                                 f"replace the built-in one.")  # fmt: skip
            out[name] = (path, str(folder))
    return out


def _says_replace(path: Path) -> bool:
    raw = read_yaml(path)
    return isinstance(raw, dict) and raw.get("replace") is True


def task_files(extra: Sequence[Path] = ()) -> dict[str, Path]:
    """Every task file: the built-in registry plus the user folders (see :func:`task_sources`)."""
    return {name: path for name, (path, _) in task_sources(extra).items()}


def load_task_file(path: Path) -> Task:
    task = task_from_dict(read_yaml(path), str(path))
    if task.name != path.stem:
        raise BenchError(f"{path}: field 'name': {task.name!r} must match the file name.")
    return task


def get_task(name: str, extra: Sequence[Path] = ()) -> Task:
    files = task_files(extra)
    if name not in files:
        raise BenchError(
            f"unknown task {name!r}; `bench list tasks` shows the registered ones."
            + closest_names(name, list(files))
        )
    return load_task_file(files[name])


def list_tasks(extra: Sequence[Path] = ()) -> tuple[list[Task], dict[str, str]]:
    """All tasks that validate, and for the others the reason they do not."""
    ok: list[Task] = []
    broken: dict[str, str] = {}
    for name, path in task_files(extra).items():
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
    return parent in (["data", "args"], ["data", "args", "options"], ["groups"],
                      ["smoke", "set"]) or (
        len(parent) == 3 and parent[:2] == ["data", "hf"]
    )


def for_subset(task: Task, subset: str) -> Task:
    """The task as a ``--subset`` run sees it: ``tiny`` applies the smoke overrides."""
    if subset == "tiny":
        return apply_overrides(task, task.smoke.set, source=f"{task.name} smoke.set")
    return task
