"""Named task groups (``tasks/groups/*.yaml``): ``bench sweep --tasks kornblith12`` and the
leaderboard's summary of a backbone pair over a group read the same definition.

A group is data, like a task: its name, a description citing where the list comes from, and the
task names. Reading a group does not read or validate its tasks (a sweep checks each one); no
torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from benchmark import paths
from benchmark.errors import BenchError
from benchmark.yaml_files import read_yaml

GROUPS_FOLDER = "groups"


@dataclass(frozen=True)
class TaskGroup:
    """A group as its file says: validated by :func:`_validated`."""

    name: str
    description: str
    tasks: list[str]


@cache
def _schema() -> Any:
    """The pydantic model of a group file, built when a file fails the plain check of
    :func:`_validated` (for pydantic's verdict and message): importing pydantic and building a
    model was 0.1 s of a warm `bench leaderboard` (1.05 s), which reads no record and would
    import pydantic for this alone."""
    from pydantic import BaseModel, ConfigDict, Field

    class TaskGroupFile(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        name: str
        description: str = ""
        tasks: list[str] = Field(min_length=1)

    return TaskGroupFile


_KEYS = frozenset({"name", "description", "tasks"})


def _validated(raw: Any, path: Path) -> TaskGroup:
    """``raw`` as a group, or BenchError naming ``path`` and the first wrong field. What the
    plain check passes (exact types, as YAML gives them) pydantic accepts unchanged; anything
    else goes through pydantic, so its lax conversions and its messages stay the same."""
    if type(raw) is dict and raw.keys() <= _KEYS and type(raw.get("name")) is str \
            and type(raw.get("description", "")) is str and type(raw.get("tasks")) is list \
            and raw["tasks"] and all(type(t) is str for t in raw["tasks"]):  # fmt: skip
        return TaskGroup(raw["name"], raw.get("description", ""), list(raw["tasks"]))
    from pydantic import ValidationError

    try:
        model = _schema().model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise BenchError(f"{path}: field '{field}': {first['msg']}") from None
    return TaskGroup(model.name, model.description, list(model.tasks))


def groups_dir() -> Path:
    return paths.TASKS_DIR / GROUPS_FOLDER


@cache
def _read(folder: Path) -> dict[str, TaskGroup]:
    out: dict[str, TaskGroup] = {}
    for path in sorted(folder.glob("*.yaml")):
        group = _validated(read_yaml(path), path)
        if group.name != path.stem:
            raise BenchError(f"{path}: field 'name': {group.name!r} must match the file name.")
        if len(set(group.tasks)) != len(group.tasks):
            raise BenchError(f"{path}: field 'tasks' names a task twice.")
        out[group.name] = group
    return out


def task_groups() -> dict[str, TaskGroup]:
    """Every group of the built-in registry, by name."""
    return dict(_read(groups_dir()))
