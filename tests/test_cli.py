"""The command line behaves like other tools: --version, defaults and an example in every --help,
errors that name the missing command, `bench list` with patterns, a header row and --json."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import bench, bench_subprocess

import benchmark
from benchmark import paths
from benchmark.cli import build_parser


def test_version_names_the_package_and_the_commit_in_a_checkout() -> None:
    done = bench_subprocess("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"blurbench {benchmark.__version__}")
    if shutil.which("git") and (paths.PROJECT_ROOT / ".git").exists():
        git = ["git", "-C", str(paths.PROJECT_ROOT), "rev-parse", "HEAD"]
        head = subprocess.run(git, capture_output=True, text=True, check=True).stdout.strip()
        assert f"(git {head}" in done.stdout


def _subparsers(parser):
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            for name, child in action.choices.items():
                yield name, child
                yield from _subparsers(child)


def test_every_help_has_an_example_and_shows_defaults() -> None:
    for name, child in _subparsers(build_parser()):
        text = child.format_help()
        if name in {"fixture", "inspect", "fetch"}:
            continue  # leaves of `bench data` / `bench checkpoints`, whose help has the example
        assert "example:\n  bench " in text, name
    run_help = dict(_subparsers(build_parser()))["run"].format_help()
    assert re.search(r"--seed SEED\s+[^-]*\(default: 0\)", run_help)
    assert "(default: results)" in run_help and "(default: None)" not in run_help


@pytest.mark.parametrize(
    ("argv", "names"),
    [((), "COMMAND"), (("data",), "{fixture}"), (("checkpoints",), "{inspect,fetch}"),
     (("list",), "{tasks,backbones}")],
)
def test_a_missing_subcommand_is_named_not_its_internal_dest(argv, names) -> None:
    done = bench_subprocess(*argv)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(f"arguments are required: {names}")
    assert "_command" not in done.stderr


def _table(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if not line.startswith("    ")]


def test_list_backbones_pattern_header_notes_and_json(capsys: pytest.CaptureFixture) -> None:
    assert bench("list", "backbones", "blurred_r*") == 0
    rows = _table(capsys.readouterr().out)
    assert rows[0] == ["NAME", "ARCH", "DATA", "SOURCE", "CACHED", "SHA256"]
    assert [r[0] for r in rows[1:]] == [f"blurred_r{n}" for n in (18, 34, 50, 101, 152)]

    registry = yaml.safe_load(paths.BACKBONES_FILE.read_text())["backbones"]
    assert bench("list", "backbones", "original_r50", "-v") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[0] == "original_r50"
    assert lines[2] == f"    {registry['original_r50']['note']}"

    assert bench("list", "backbones", "blurred_r18", "orig*_r18", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert {e["name"] for e in listed} == {"blurred_r18", "original_r18"}
    assert all({"arch", "data", "source", "cached", "sha256", "note"} <= set(e) for e in listed)


def test_list_tasks_header_patterns_and_json(capsys: pytest.CaptureFixture) -> None:
    assert bench("list", "tasks") == 0
    rows = _table(capsys.readouterr().out)
    assert rows[0] == ["NAME", "KIND", "CLASSES", "PRIMARY_METRIC", "SOURCE", "DESCRIPTION"]
    assert sorted(r[0] for r in rows[1:]) == sorted(p.stem for p in paths.TASKS_DIR.glob("*.yaml"))
    assert bench("list", "tasks", "c*", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert {(t["name"], t["primary_metric"], t["source"]) for t in listed} == {
        ("cifar10", "top1", "built-in"), ("cifar100", "top1", "built-in"),
        ("caltech101", "mean_per_class_accuracy", "built-in"),
        ("celeba", "mean_attribute_accuracy", "built-in")}  # fmt: skip


def test_a_pattern_matching_nothing_is_the_users_mistake(capsys: pytest.CaptureFixture) -> None:
    assert bench("list", "tasks", "cifar1000") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: no task matches 'cifar1000'") and "\n" not in err
    assert "Did you mean: cifar10" in err


def test_an_empty_registry_is_an_error_not_an_empty_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(paths, "TASKS_DIR", tmp_path / "tasks")
    assert bench("list", "tasks") == 2
    err = capsys.readouterr().err
    assert f"task registry {tmp_path / 'tasks'} does not exist" in err
    (tmp_path / "tasks").mkdir()
    assert bench("list", "tasks") == 2
    assert "holds no *.yaml task file" in capsys.readouterr().err

    empty = tmp_path / "backbones.yaml"
    empty.write_text("backbones: {}\n")
    monkeypatch.setenv("BENCH_BACKBONES_FILE", str(empty))
    assert bench("list", "backbones") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"bench: error: {empty}: the backbone registry lists no backbones."


def test_demo_ends_with_its_record_and_the_numbers_that_matter(tmp_path: Path) -> None:
    """From a folder outside the checkout, with the default --workdir (./demo)."""
    done = subprocess.run(
        [*bench_subprocess_prefix(), "demo"], cwd=tmp_path, capture_output=True, text=True,
        timeout=600, env=_env_with_checkout(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-2:]
    (record_path,) = (tmp_path / "demo" / "results" / "runs").glob("*/*/*/*/record.json")
    assert last[1] == f"record: {Path('demo') / record_path.relative_to(tmp_path / 'demo')}"
    record = json.loads(record_path.read_text())
    losses = record["training"]["losses"]
    assert record["training"]["steps"] == 5
    assert last[0] == (
        f"cifar10 top1 = {record['metrics']['top1']:.4f} after 5 training steps, "
        f"train loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    )
    assert "{" not in done.stdout  # no JSON dump


def bench_subprocess_prefix() -> list[str]:
    return [sys.executable, "-m", "benchmark.cli"]


def _env_with_checkout() -> dict[str, str]:
    """The checkout's package, also from another folder (as an editable install would give)."""
    return {**os.environ, "PYTHONPATH": str(paths.PROJECT_ROOT)}
