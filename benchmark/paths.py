"""Where blurbench finds its registries and data, and the one check for user-given path parts."""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from benchmark.errors import BenchError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where a wheel carries copies of the top-level registries (see setup.py's build_py).
PACKAGED_REGISTRY = "_registry"


def in_source_checkout() -> bool:
    """True when the package runs from the repository (an editable install or the checkout
    itself): there the top-level ``tasks/`` and ``checkpoints/`` are the ones people edit."""
    return (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "tasks").is_dir()


def registry_dir(name: str) -> Path:
    """The top-level registry folder ``name`` of the checkout, else the copy inside the
    installed package (found through importlib.resources, so a wheel needs no checkout)."""
    if in_source_checkout():
        return PROJECT_ROOT / name
    return Path(str(resources.files(__package__ or "benchmark") / PACKAGED_REGISTRY / name))


# The built-in task registry; user tasks are added from BENCH_TASKS_DIR and --tasks-dir
# (benchmark.tasks.task_sources).
TASKS_DIR = registry_dir("tasks")
# The backbone registry's folder (weights are cached in torch.hub's and the Hugging Face hub's
# caches, benchmark.checkpoint_cache); BENCH_BACKBONES_FILE, read per call in
# benchmark.backbones, overrides the file.
CHECKPOINTS_DIR = Path(os.environ.get("BENCH_CHECKPOINTS_DIR") or registry_dir("checkpoints"))
BACKBONES_FILE = CHECKPOINTS_DIR / "backbones.yaml"

_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


def default_data_root() -> Path:
    return Path(os.environ.get("BENCH_DATA_ROOT", "data"))


def safe_component(value: str, what: str) -> str:
    """Return ``value`` if it is safe as one directory name, else raise.

    Record directories are built from task, backbone and protocol names; a name such as
    ``../../etc`` must never become a path.
    """
    if not _SAFE_COMPONENT.match(value) or value in {".", ".."}:
        raise BenchError(
            f"{what} {value!r} cannot be used in a path: use letters, digits and '_.+-' only."
        )
    return value


def slug(value: str) -> str:
    """Turn free text (a checkpoint file name) into a safe directory name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.+-]+", "-", value).strip("-.") or "unnamed"
    return cleaned[:100]


def require_folder_path(path: Path, flag: str) -> None:
    """Refuse a folder argument that is, or lies under, an existing non-folder (a file).

    Checked before anything runs: otherwise a run trains first and then fails to write its
    record with ``NotADirectoryError``.
    """
    for candidate in [path, *path.parents]:
        if candidate.exists() or candidate.is_symlink():
            if not candidate.is_dir():
                where = "is" if candidate == path else f"is under {candidate}, which is"
                raise BenchError(f"{flag} {path} {where} not a folder; pass a folder path.")
            return
