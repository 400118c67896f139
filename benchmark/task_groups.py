"""Named task groups (``tasks/groups/*.yaml``): ``bench sweep --tasks kornblith12`` and the
leaderboard's summary of a backbone pair over a group read the same definition.

A group is data, like a task: its name, a description citing where the list comes from, and the
task names. Reading a group does not read or validate its tasks (a sweep checks each one); no
torch is imported.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchmark import paths
from benchmark.errors import BenchError
from benchmark.yaml_files import read_yaml

GROUPS_FOLDER = "groups"


class TaskGroup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    tasks: list[str] = Field(min_length=1)


def groups_dir() -> Path:
    return paths.TASKS_DIR / GROUPS_FOLDER


@cache
def _read(folder: Path) -> dict[str, TaskGroup]:
    out: dict[str, TaskGroup] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            group = TaskGroup.model_validate(read_yaml(path))
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise BenchError(f"{path}: field '{field}': {first['msg']}") from None
        if group.name != path.stem:
            raise BenchError(f"{path}: field 'name': {group.name!r} must match the file name.")
        if len(set(group.tasks)) != len(group.tasks):
            raise BenchError(f"{path}: field 'tasks' names a task twice.")
        out[group.name] = group
    return out


def task_groups() -> dict[str, TaskGroup]:
    """Every group of the built-in registry, by name."""
    return dict(_read(groups_dir()))
