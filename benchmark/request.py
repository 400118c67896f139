"""``RunRequest``: the one definition of every run option.

Each field carries its help text (and flag name, where it differs) in its metadata; the
``bench run`` and ``bench sweep`` flags, the sweep file's schema, the argv a launcher hands to a
``bench run`` subprocess and the ``request`` section of a run record are all derived from it,
so a new option is one field here. This module imports neither torch nor Lightning: building
the command line stays fast, and the runner checks the values (``benchmark.runner.plan_run``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from benchmark import paths
from benchmark.errors import BenchError
from benchmark.layout import RECORD_FILE, record_file
from benchmark.pretraining import PRETRAINING_DATA

if typing.TYPE_CHECKING:  # the record model (pydantic) is imported when a record is read
    from benchmark.run_record import RunRecord

Scope = Literal["run", "shared"]
LOGGERS = ("csv", "tensorboard", "wandb")


def option(
    help: str,
    default: Any = dataclasses.MISSING,
    *,
    factory: Any = dataclasses.MISSING,
    scope: Scope = "shared",
    flag: str | None = None,
    metavar: str | None = None,
    choices: tuple[str, ...] | None = None,
    shown_default: str | None = None,
    recorded: bool = True,
    yaml_type: Any = None,
) -> Any:
    """A RunRequest field with what the command line needs to know about it.

    ``scope``: ``shared`` options are flags of ``bench run`` and ``bench sweep`` and keys of a
    sweep file; ``run`` options only flags of ``bench run`` (a sweep has its own ``--tasks``,
    ``--backbones``, ``--seeds``, ``--dry-run``). ``recorded=False``: how to run, not what (not
    kept in the record's ``request``, not passed on to a launched run).
    """
    metadata = {"help": help, "scope": scope, "flag": flag, "metavar": metavar,
                "choices": choices, "shown_default": shown_default, "recorded": recorded,
                "yaml_type": yaml_type}  # fmt: skip
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunRequest:
    """What ``bench run`` asks for; the CLI, a sweep and the Python API only fill this in."""

    task: str = option("a task name from `bench list tasks` (required, unless --config)",
                       scope="run")
    backbone: str = option(
        "a name from `bench list backbones`, or a checkpoint path (required, unless --config)",
        scope="run",
    )
    seed: int = option("seeds Python, NumPy and torch (pl.seed_everything)", 0, scope="run")
    protocol: str | None = option(
        "finetune (every parameter trained) | linear (L-BFGS logistic regression on cached "
        "frozen features, C chosen on val) | linear_sgd (frozen backbone, SGD-trained head); "
        "the same as --set protocol=...", None, choices=("finetune", "linear", "linear_sgd"),
        shown_default="the task's",
    )
    arch: str | None = option("architecture of a checkpoint file that does not name its own", None)
    # Stored in the record's backbone provenance, not in the run key: it says what the weights
    # are, it does not change what training does (see benchmark.run_key.declare_pretraining_data)
    backbone_data: str | None = option(
        "what the backbone was pretrained on, for a checkpoint file that does not say (kept in "
        "the record; the leaderboard compares original with blurred/overlayed backbones of the "
        "same architecture); a registry backbone must agree with its entry",
        None, choices=PRETRAINING_DATA, shown_default="the registry's, else unknown",
    )
    subset: str = option("tiny | full | N examples per split", "full")
    data_root: Path = option("where datasets live", factory=paths.default_data_root,
                             shown_default="$BENCH_DATA_ROOT or data/")
    download: bool = option("fetch the dataset if it is missing", False)
    tasks_dirs: list[Path] = option(
        "a folder of your own task YAML files, added to the built-in tasks (repeatable; "
        "$BENCH_TASKS_DIR adds more)", factory=list, flag="--tasks-dir", metavar="DIR",
    )
    results: Path = option("where run records go", Path("results"))
    overrides: dict[str, Any] = option(
        "override a task field by dotted path, e.g. --set optim.lr=0.01 (repeatable)",
        factory=dict, flag="--set", metavar="KEY=VALUE", yaml_type=dict[str, Any] | list[str],
    )
    trainer: dict[str, Any] = option(
        "any other pytorch_lightning.Trainer argument, e.g. --trainer gradient_clip_val=1.0 "
        "(repeatable; checked against Trainer's signature; part of the run key)",
        factory=dict, metavar="NAME=VALUE",
    )
    devices: str = option("Lightning's devices: auto, 1, 2, 0,1 ...", "auto")
    accelerator: str = option("cpu | gpu | auto ...", "auto")
    precision: str = option("32-true | bf16-mixed | 16-mixed ...", "32-true")
    strategy: str = option("auto | ddp (multi-GPU: --devices N --strategy ddp) ...", "auto")
    max_epochs: int | None = option("train for N epochs", None, metavar="N",
                                    shown_default="the task's")
    max_steps: int | None = option("stop after N optimiser steps", None, metavar="N")
    num_workers: int | None = option("data loader workers", None, metavar="N",
                                     shown_default="the task's")
    loggers: list[str] = option(
        "Lightning logger(s), written to <run>/logs/<logger>/ (repeatable; not part of the key)",
        factory=lambda: ["csv"], flag="--logger", choices=LOGGERS,
    )
    # Lightning checkpoint into the run's work dir every N optimiser steps (None: every epoch),
    # so a killed or preempted run resumes; not part of the run key (it does not change results
    # beyond the dataloader restarting its epoch on resume).
    checkpoint_every_n_steps: int | None = option(
        "resumable checkpoint every N steps", None, metavar="N", shown_default="every epoch"
    )
    save_weights: bool = option(
        "keep the fine-tuned weights (weights.safetensors) in the run directory, so the run "
        "can be a --backbone later", False,
    )
    force: bool = option("run again even if a record exists", False, recorded=False)
    dry_run: bool = option(
        "resolve the run (backbone, data, key) and say whether it is done, to resume or to "
        "run, with its data identity; train nothing", False, scope="run", recorded=False,
    )

    def __post_init__(self) -> None:
        # ``--set`` pairs as on the command line are accepted too (the Python API, old callers)
        if isinstance(self.overrides, (list, tuple)):
            from benchmark.tasks import parse_overrides

            self.overrides = parse_overrides(list(self.overrides))
        self.data_root = Path(self.data_root)
        self.tasks_dirs = [Path(p) for p in self.tasks_dirs]
        self.results = Path(self.results)
        self.devices = str(self.devices)
        if self.backbone_data is not None and self.backbone_data not in PRETRAINING_DATA:
            raise BenchError(f"--backbone-data {self.backbone_data!r}: use one of "
                             f"{', '.join(PRETRAINING_DATA)}.")
        self.loggers = list(dict.fromkeys(self.loggers))  # repeated names: one logger
        unknown = [name for name in self.loggers if name not in LOGGERS]
        if unknown:
            raise BenchError(f"--logger {unknown[0]!r}: use one of {', '.join(LOGGERS)}.")

    def as_record(self) -> dict[str, Any]:
        """The options as given, JSON-ready: the record's ``request`` section, from which
        ``bench run --config`` repeats the run."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in run_fields("run")
                if f.metadata["recorded"]}  # fmt: skip

    @classmethod
    def from_record(cls, values: dict[str, Any]) -> RunRequest:
        """The inverse of :meth:`as_record`; an unknown option is one line (exit 2)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise BenchError(f"the request has unknown option(s) {', '.join(unknown)}: it was "
                             f"written by another version of blurbench.")
        try:
            return cls(**values)
        except TypeError as err:  # task or backbone missing
            raise BenchError(f"the request is incomplete: {err}.") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value


@cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(RunRequest)


def run_fields(scope: Scope) -> list[dataclasses.Field[Any]]:
    """The fields that are options of ``bench run`` (``run``) or also of a sweep (``shared``)."""
    fields = dataclasses.fields(RunRequest)
    return [f for f in fields if scope == "run" or f.metadata["scope"] == "shared"]


def flag_of(f: dataclasses.Field[Any]) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def yaml_key_of(f: dataclasses.Field[Any]) -> str:
    """The sweep file's key: the flag's name (``set:``, ``logger:``, ``max_steps:``)."""
    return flag_of(f).lstrip("-").replace("-", "_")


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``; ``list[str]`` -> ``list``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _base_type(args[0])
    return typing.get_origin(annotation) or annotation


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.metadata["shown_default"]:
        return f.metadata["shown_default"]
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        return ", ".join(map(str, value)) if isinstance(value, list) and value else ""
    if f.default is dataclasses.MISSING or f.default is None or f.default is False:
        return ""
    return str(f.default)


def add_options(parser: argparse.ArgumentParser, scope: Scope) -> None:
    """The flags of ``bench run`` (``run``) or ``bench sweep`` (``shared``), from the fields.

    Every default is None: what the user did not give stays unset, so a sweep file or a
    record (``--config``) can fill it, and RunRequest's own default applies last.
    """
    for f in run_fields(scope):
        if scope == "shared" and f.metadata["scope"] != "shared":
            continue
        kind = _base_type(_hints()[f.name])
        shown = _default_text(f)
        text = f.metadata["help"] + (f" (default: {shown})" if shown else "")
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": text}
        if kind is bool:
            kwargs.update(action="store_const", const=True)
        else:
            if kind in (list, dict):
                kwargs["action"] = "append"
            elif kind in (int, Path):
                kwargs["type"] = kind
            kwargs.update(metavar=f.metadata["metavar"], choices=f.metadata["choices"])
        parser.add_argument(flag_of(f), **kwargs)


def given_options(args: argparse.Namespace, scope: Scope) -> dict[str, Any]:
    """The run options the user gave on the command line, as RunRequest values."""
    from benchmark.tasks import parse_key_values, parse_overrides

    out: dict[str, Any] = {}
    for f in run_fields(scope):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if f.name == "overrides":
            value = parse_overrides(value)
        elif _base_type(_hints()[f.name]) is dict:
            value = parse_key_values(value, flag_of(f), f"expected NAME=VALUE, e.g. "
                                     f"{flag_of(f)} gradient_clip_val=1.0")
        out[f.name] = value
    return out


def merge_options(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win; mappings (``--set``, ``--trainer``) merge key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for name, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(name), dict):
                value = {**out[name], **value}
            out[name] = value
    return out


def sweep_file_fields() -> dict[str, tuple[Any, Any]]:
    """The run options a sweep file may set (pydantic field definitions, by YAML key)."""
    out: dict[str, tuple[Any, Any]] = {}
    for f in run_fields("shared"):
        annotation = f.metadata["yaml_type"] or _hints()[f.name]
        out[yaml_key_of(f)] = (annotation | None, None)
    return out


def from_sweep_file(values: dict[str, Any]) -> dict[str, Any]:
    """Sweep file keys -> RunRequest values (unset keys left out)."""
    by_key = {yaml_key_of(f): f for f in run_fields("shared")}
    out = {}
    for key, value in values.items():
        f = by_key.get(key)
        if f is None or value is None:
            continue
        if f.name == "overrides" and isinstance(value, list):
            from benchmark.tasks import parse_overrides

            value = parse_overrides(value)
        out[f.name] = value
    return out


def request_argv(request: RunRequest) -> list[str]:
    """The ``bench run`` arguments that make the same request (same key)."""
    argv = ["run"]
    for f in run_fields("run"):
        value = getattr(request, f.name)
        if not f.metadata["recorded"] and f.name != "force":  # a launched run runs
            continue
        flag = flag_of(f)
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, dict):
            for key, item in value.items():  # JSON is YAML: the value reads back the same
                argv += [flag, f"{key}={item if isinstance(item, str) else json.dumps(item)}"]
        elif isinstance(value, list):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv


@dataclass(frozen=True)
class PrintedConfig:
    """``bench run --print-config`` output read back: the request and the key's contents it
    resolved to (what :func:`benchmark.runner.check_same_run` compares, as in a record)."""

    request: dict[str, Any]
    config: dict[str, Any]
    config_hash: str | None


def read_request_file(path: Path) -> tuple[RunRequest, RunRecord | PrintedConfig]:
    """A run's request from its record (``record.json`` or the run folder) or from
    ``bench run --print-config`` output, with what the rerun must match. A record is read as a
    :class:`RunRecord` (older schemas migrated; a broken one is one line, exit 2)."""
    path = Path(path)
    if path.is_dir():
        path = record_file(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"--config {path}: no such file (give a run folder or its "
                         f"{RECORD_FILE}).") from None
    except (OSError, ValueError) as err:
        raise BenchError(f"--config {path}: not a readable JSON record ({err}).") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise BenchError(f"--config {path}: the record holds no 'request' (it was written "
                         f"before records kept their options); run it with its flags instead.")
    from benchmark.run_record import RecordError, RunRecord

    recorded: RunRecord | PrintedConfig
    if "schema" in raw:  # a run record
        try:
            recorded = RunRecord.from_dict(raw, path)
        except RecordError as err:
            raise BenchError(f"--config {err}") from None
        assert recorded.request is not None
    else:  # --print-config output
        config = raw.get("config")
        if not isinstance(config, dict):
            raise BenchError(f"--config {path}: no 'config' section: give a run folder, its "
                             f"{RECORD_FILE} or `bench run --print-config` output.")
        digest = raw.get("config_hash")
        recorded = PrintedConfig(raw["request"], config, digest if isinstance(digest, str)
                                 else None)  # fmt: skip
    return RunRequest.from_record(recorded.request), recorded
