"""The Python API for notebooks and scripts: ``from benchmark.api import run, sweep, leaderboard``.

Each function is the matching ``bench`` command without the command line: keyword arguments
are the command's options (``max_steps=5`` for ``--max-steps 5``), errors are the same
:class:`~benchmark.errors.BenchError` with the same one-line message, and what the command prints
comes back as a value. ``import benchmark.api`` is cheap: torch and Lightning load on the first
call.

Why ``benchmark.api`` and not ``from benchmark import run, sweep, leaderboard``: ``benchmark.sweep``
and ``benchmark.leaderboard`` are modules. A package attribute of the same name would make
``from benchmark import leaderboard`` return the function or the module depending on which was
imported first, so the functions live in their own module under their natural names.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: importing these loads torch
    from benchmark.launchers import SweepResult
    from benchmark.leaderboard import Leaderboard
    from benchmark.runner import RunOutcome, RunRequest
    from benchmark.sweep import SweepItem

__all__ = ["SweepOutcome", "leaderboard", "run", "sweep"]

Overrides = Sequence[str] | Mapping[str, object]


def run(task: str, backbone: str, **options: Any) -> RunOutcome:
    """Fine-tune ``backbone`` on ``task`` (``bench run``) and return the outcome: ``.record`` (what
    ``record.json`` holds), ``.run_dir`` and ``.skipped`` (True when the record already existed).

    ``options`` are :class:`benchmark.runner.RunRequest`'s fields, passed through unchanged
    (``seed``, ``subset``, ``data_root``, ``results``, ``max_steps``, ``accelerator``, ...);
    ``overrides`` also takes a mapping, ``{"optim.lr": 0.01}`` for ``--set optim.lr=0.01``.
    """
    from benchmark.runner import execute

    return execute(_request(task=task, backbone=backbone, **options))


@dataclasses.dataclass
class SweepOutcome:
    """Every run of a sweep with the status it had when planned (``done``, ``resume``,
    ``to run``), and what the launcher did (empty for a dry run)."""

    planned: list[SweepItem]
    result: SweepResult


def sweep(
    backbones: str | Sequence[str],
    tasks: str | Sequence[str],
    seeds: int | str | Sequence[int] = 0,
    *,
    dry_run: bool = False,
    launcher: str = "local",
    slurm: Mapping[str, object] | None = None,
    wait: bool = False,
    overrides: Overrides = (),
    **options: Any,
) -> SweepOutcome:
    """Every backbone x task x seed (``bench sweep``): finished runs are skipped, interrupted
    ones resumed. Names may be patterns (``"blurred_*"``), tasks ``"all"``, seeds ``"0-4"``;
    ``options`` are the run options of :func:`run` shared by every run."""
    from benchmark.launchers import SweepResult, make_launcher
    from benchmark.sweep import build_spec, plan_sweep

    cli = {name: _as_path(name, value) for name, value in options.items()}
    cli.update(
        backbones=backbones, tasks=tasks, seeds=seeds, launcher=launcher, slurm=dict(slurm or {})
    )
    spec = build_spec(None, cli, _override_list(overrides))
    planned = plan_sweep(spec)
    if dry_run:
        return SweepOutcome(planned, SweepResult())
    chosen = make_launcher(spec.launcher, spec.template.results, spec.slurm, wait)
    return SweepOutcome(planned, chosen.run(planned))


def leaderboard(
    results: str | os.PathLike[str] = "results",
    *,
    out: str | os.PathLike[str] | None = None,
    write: bool = True,
    top: int = 10,
    **options: Any,
) -> Leaderboard:
    """Tables and comparisons from the records under ``results`` (``bench leaderboard``),
    written to ``out`` (default ``<results>/leaderboard``) unless ``write=False``.

    ``options`` go to :func:`benchmark.leaderboard.build`: ``pairs``, ``n_boot``,
    ``confidence``, ``rng_seed``, ``plots``, ``cache``, ``supercategories`` (a JSON file
    category -> supercategory, for the ImageNet per-category section), ``workers`` (processes
    that read predictions files; default 0, in this process: forking is for the CLI, see
    :mod:`benchmark.leaderboard.workers`).
    """
    from benchmark import leaderboard as board_module

    board = board_module.build(Path(results), **options)
    if write:
        board_module.write(board, Path(out) if out is not None else Path(results) / "leaderboard",
                           top=top)  # fmt: skip
    return board


def _request(**fields: Any) -> RunRequest:
    """A RunRequest from keyword arguments: path fields accept strings, ``overrides`` a
    mapping; everything else goes through as given, so RunRequest stays the one definition."""
    from benchmark.runner import RunRequest

    if "overrides" in fields:
        fields["overrides"] = _override_list(fields["overrides"])
    hints = typing.get_type_hints(RunRequest)
    for name, value in fields.items():
        if isinstance(value, str | os.PathLike) and _is_path(hints.get(name)):
            fields[name] = Path(value)
    return RunRequest(**fields)


def _is_path(hint: object) -> bool:
    return hint is Path or Path in typing.get_args(hint)


def _as_path(name: str, value: Any) -> Any:
    from benchmark.runner import RunRequest

    hint = typing.get_type_hints(RunRequest).get(name)
    return Path(value) if isinstance(value, str | os.PathLike) and _is_path(hint) else value


def _override_list(overrides: Overrides) -> list[str]:
    if isinstance(overrides, Mapping):
        import json

        return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]
    return list(overrides)
