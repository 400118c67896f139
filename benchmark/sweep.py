"""``bench sweep``: backbones x tasks x seeds, each a ``bench run``, resumable and idempotent.

A sweep is planned before anything runs: every (task, backbone, seed) is resolved to the key
``bench run`` would give it (``benchmark.runner.plan_run``: same task overrides, same backbone
sha256), so the plan knows which runs are done (a completed record with that key), which were
interrupted (a Lightning checkpoint in the run's work folder, resumed from), and which are to
run. Running a sweep again therefore continues where it stopped and never duplicates a run; a
changed hyperparameter is a new key, hence new runs.

The sweep is described by command-line options, a small YAML file (``--file``), or both (the
command line wins). Launchers (:mod:`benchmark.launchers`) then run the missing runs: one after
the other here (default), or as a SLURM job array through submitit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import ConfigDict, Field, ValidationError, create_model

from benchmark.errors import BenchError
from benchmark.request import (
    RunRequest,
    from_sweep_file,
    merge_options,
    run_fields,
    sweep_file_fields,
)
from benchmark.runner import BackboneIdentity, PlannedRun, describe_data_identity, plan_run
from benchmark.yaml_files import read_yaml

LauncherName = Literal["local", "slurm", "submitit-local", "submitit-debug"]

# The run options a sweep may set, by RunRequest field name (derived: benchmark.request).
RUN_OPTIONS = tuple(f.name for f in run_fields("shared"))

SweepFile = create_model(
    "SweepFile",
    __config__=ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True),
    __doc__="The YAML form of a sweep; every key is optional and the command line overrides it. "
    "Beside the sweep's own keys, every run option RunRequest shares with `bench sweep`, under "
    "its flag's name (set:, trainer:, logger:, max_steps: ...).",
    backbones=(list[str] | str | None, None),
    tasks=(list[str] | str | None, None),
    seeds=(list[int] | int | str | None, None),
    launcher=(LauncherName | None, None),
    slurm=(dict[str, Any], Field(default_factory=dict)),
    **sweep_file_fields(),
)


def read_sweep_file(path: Path) -> SweepFile:
    raw = read_yaml(Path(path))
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: expected a mapping (backbones:, tasks:, seeds:, ...).")
    try:
        return SweepFile.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        known = ", ".join(SweepFile.model_fields)
        raise BenchError(f"{path}: {where}: {msg} (keys: {known}).") from None


@dataclass
class SweepSpec:
    """A resolved sweep: names, seeds, the request every run starts from, the launcher."""

    backbones: list[str]
    tasks: list[str]
    seeds: list[int]
    template: RunRequest
    launcher: str = "local"
    slurm: dict[str, Any] = dataclasses.field(default_factory=dict)


def split_list(value: Sequence[str] | str | None) -> list[str]:
    """``"a,b"`` or ``["a", "b,c"]`` -> ``["a", "b", "c"]`` (blank items dropped)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def parse_seeds(value: Sequence[int] | int | str | None) -> list[int]:
    """``"0,1,2"``, ``"0-4"``, ``3`` or ``[0, 1]`` -> distinct seeds in the given order."""
    if value is None:
        return [0]
    items: list[Any] = [value] if isinstance(value, (int, str)) else list(value)
    seeds: list[int] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                if "-" in part[1:]:
                    lo, hi = part.split("-", 1) if not part.startswith("-") else ("", "")
                    chunk = list(range(int(lo), int(hi) + 1))
                    if not chunk:
                        raise ValueError
                else:
                    chunk = [int(part)]
            except ValueError:
                raise BenchError(
                    f"--seeds: {part!r} is not a seed; use e.g. 0,1,2 or 0-4."
                ) from None
            seeds += [s for s in chunk if s not in seeds]
    if not seeds:
        raise BenchError("--seeds: no seed given; use e.g. --seeds 0,1,2.")
    return seeds


def parse_key_values(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """``["partition=gpu", "array_parallelism=8"]`` -> a mapping (launcher options)."""
    from benchmark.tasks import parse_key_values as parse

    return parse(pairs, flag, f"expected KEY=VALUE, e.g. {flag} partition=gpu")


def expand_tasks(names: list[str], extra: Sequence[Path] = ()) -> list[str]:
    """Task names, with ``all`` for every registered task and a group's name
    (``kornblith12``, ``tasks/groups/``) for its tasks; each name is checked."""
    from benchmark.task_groups import task_groups
    from benchmark.tasks import get_task, list_tasks

    if not names:
        raise BenchError("no tasks: pass --tasks NAME[,NAME...], a group or --tasks all.")
    groups = task_groups()
    out: list[str] = []
    for name in names:
        if name in groups:
            for member in groups[name].tasks:
                get_task(member, extra)
                if member not in out:
                    out.append(member)
        elif name == "all":
            tasks, broken = list_tasks(extra)
            if broken:
                first = next(iter(broken.values()))
                raise BenchError(f"--tasks all: {len(broken)} task file(s) do not validate; "
                                 f"fix them first: {first}")
            out += [t.name for t in tasks if t.name not in out]
        else:
            get_task(name, extra)  # unknown names fail here, with suggestions
            if name not in out:
                out.append(name)
    return out


def expand_backbones(specs: list[str]) -> list[str]:
    """Backbone names, shell patterns over the registry (``'blurred_*'``), or checkpoint paths."""
    from benchmark.backbones import looks_like_path, select_entries

    if not specs:
        raise BenchError("no backbones: pass --backbones NAME[,NAME...] (or a sweep --file).")
    out: list[str] = []
    for spec in specs:
        is_pattern = any(c in spec for c in "*?[") and not looks_like_path(spec)
        names = [e.name for e in select_entries([spec])] if is_pattern else [spec]
        out += [n for n in names if n not in out]
    return out


def build_spec(
    file: Path | None, cli: dict[str, Any], overrides: list[str] | None = None
) -> SweepSpec:
    """Merge the sweep file and the command line (``cli`` holds only options the user gave,
    as RunRequest values; ``overrides``: more ``--set`` pairs)."""
    from benchmark.tasks import parse_overrides

    sweep = read_sweep_file(file) if file is not None else SweepFile()
    given = {name: cli[name] for name in RUN_OPTIONS if cli.get(name) is not None}
    if overrides:
        given["overrides"] = {**given.get("overrides", {}), **parse_overrides(overrides)}
    options = merge_options(from_sweep_file(sweep.model_dump()), given)
    template = RunRequest(task="", backbone="", **options)
    backbones = split_list(cli.get("backbones") or sweep.backbones)
    tasks = split_list(cli.get("tasks") or sweep.tasks)
    seeds = parse_seeds(cli.get("seeds") if cli.get("seeds") is not None else sweep.seeds)
    slurm = {**sweep.slurm, **(cli.get("slurm") or {})}
    launcher = cli.get("launcher") or sweep.launcher or "local"
    return SweepSpec(expand_backbones(backbones), expand_tasks(tasks, template.tasks_dirs), seeds,
                     template, launcher, slurm)


# --------------------------------------------------------------------------- plan

Status = Literal["done", "resume", "to run"]


@dataclass
class SweepItem:
    request: RunRequest
    plan: PlannedRun
    status: Status

    @property
    def label(self) -> str:
        return f"{self.plan.task.name} × {self.plan.backbone.name} × seed {self.request.seed}"


def resolve_backbones(specs: list[str], arch: str | None) -> dict[str, BackboneIdentity]:
    """Each backbone once: weights located (downloaded into the cache if missing, as every run
    needs them anyway) and verified, so each run key holds the real sha256. The network is
    dropped straight away: a sweep plan keeps no weights in memory."""
    from benchmark.backbones import create_backbone

    out = {}
    for spec in specs:
        loaded = create_backbone(spec, arch)
        out[spec] = BackboneIdentity(loaded.name, loaded.arch, loaded.provenance)
        del loaded
    return out


def plan_sweep(spec: SweepSpec) -> list[SweepItem]:
    """Every run of the sweep with its key and status; seeds outermost, so an interrupted
    sweep has whole seeds of every comparison first."""
    identities = resolve_backbones(spec.backbones, spec.template.arch)
    data_identities: dict[str, dict[str, Any]] = {}  # each task's data is read once
    items: list[SweepItem] = []
    seen: dict[Any, SweepItem] = {}
    for seed in spec.seeds:
        for task in spec.tasks:
            for backbone in spec.backbones:
                request = dataclasses.replace(spec.template, task=task, backbone=backbone,
                                              seed=seed)
                plan = plan_run(request, identities[backbone], data_identities)
                if plan.key in seen:  # the same backbone under two names: one run
                    continue
                status = cast(Status, plan.status(bool(request.force)))
                item = SweepItem(request, plan, status)
                seen[plan.key] = item
                items.append(item)
    return items


def describe_plan(spec: SweepSpec, items: list[SweepItem]) -> list[str]:
    counts = {s: sum(1 for i in items if i.status == s) for s in ("done", "resume", "to run")}
    lines = [
        f"sweep: {len(spec.backbones)} backbone(s) × {len(spec.tasks)} task(s) × "
        f"{len(spec.seeds)} seed(s) = {len(items)} runs: {counts['done']} done, "
        f"{counts['resume']} interrupted (resume from their checkpoint), "
        f"{counts['to run']} to run; results in {spec.template.results}"
    ]
    described: set[str] = set()
    for item in items:  # which data each task's keys stand for (fixture or real, fingerprint)
        if item.plan.task.name not in described:
            described.add(item.plan.task.name)
            lines.append(f"  data {item.plan.task.name}: "
                         f"{describe_data_identity(item.plan.data_identity)}")
    width = max((len(i.label) for i in items), default=0)
    for item in items:
        where = item.plan.last_checkpoint if item.status == "resume" else item.plan.run_dir
        lines.append(f"  [{item.status:>6}]  {item.label:<{width}}  {where}")
    return lines
