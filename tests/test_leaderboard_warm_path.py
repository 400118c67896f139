"""What a warm `bench leaderboard` (unchanged runs, caches in place) spends its time on besides
reading the record cache: the comparison keys, the links and files it writes, and what the
process imports. Each shortcut here gives what the long way gives."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import bench
from synthetic_records import logits_with_correct, write_classification_run

from benchmark.leaderboard.collect import PER_RUN_FIELDS, READING_FIELDS, collect, group_settings
from benchmark.leaderboard.compare import new_comparison
from benchmark.leaderboard.model import Comparison
from benchmark.leaderboard.pairs import find_pairs

cache_module = importlib.import_module("benchmark.leaderboard.cache")
CLASSES = ["a", "b", "c", "d"]
TARGET = np.repeat(np.arange(4), 25)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    rng = np.random.default_rng(0)
    for seed in range(3):
        for name, data in (("original_r18", "original"), ("blurred_r18", "blurred")):
            logits = logits_with_correct(TARGET, rng.random(len(TARGET)) < 0.7, 4, rng)
            write_classification_run(results, name, "resnet18", data, seed, logits, TARGET,
                                     CLASSES)  # fmt: skip
    return results


def _comparison(results: Path, save: bool = False) -> tuple[Comparison, cache_module.RecordCache]:
    """The one comparison of ``results`` and the record cache that read its runs (``save``:
    written, for the next reading)."""
    readings = cache_module.RecordCache(results, READING_FIELDS, PER_RUN_FIELDS)
    runs, problems, _ = collect(results, readings)
    if save:
        readings.save()
    (setting, a, b, explicit), = find_pairs(group_settings(runs, problems, 0.95), [], problems)
    return new_comparison(setting, a, b, explicit), readings


def test_comparison_keys_reuse_the_record_stats_of_the_build(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key stats each run's predictions but not its record again: the record cache took that
    stat when it read (or found) the record. The key is the one fresh stats give."""
    assert bench("leaderboard", "--results", results, "--out", tmp_path / "a", "--no-plots",
                 "--n-boot", "200") == 0  # fmt: skip
    comp, readings = _comparison(results)  # a warm reading: every record from the cache
    assert readings.hits == 6
    statted: list[str] = []
    real = cache_module.file_stat

    def counting(path: str) -> cache_module.FileStat | None:
        statted.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(cache_module, "file_stat", counting)
    reused = cache_module.ComparisonCache(results, 200, 0.95, 0, readings).key(comp)
    assert statted == ["predictions.npz"] * 6
    statted.clear()
    fresh = cache_module.ComparisonCache(results, 200, 0.95, 0).key(comp)
    assert sorted(statted) == ["predictions.npz"] * 6 + ["record.json"] * 6
    assert reused == fresh


def test_a_record_changed_after_reading_changes_the_key(results: Path) -> None:
    """The stat in the key is the one of the record as this build read it: a record the
    record cache read again (new content) gives a new key, so its comparison is recomputed."""
    comp, readings = _comparison(results, save=True)  # cold: every record read, stat kept
    before = cache_module.ComparisonCache(results, 200, 0.95, 0, readings).key(comp)
    record = comp.b.runs[0].run_dir / "record.json"
    text = record.read_text()
    # still the same run, the same size (so every field of the stat must be in the key)
    record.write_text(text.replace('"task": ', '"task":', 1) + " ")
    assert len(record.read_text()) == len(text) and record.read_text() != text
    comp, readings = _comparison(results)
    assert readings.misses == 1  # read again
    after = cache_module.ComparisonCache(results, 200, 0.95, 0, readings).key(comp)
    assert after != before
    assert after == cache_module.ComparisonCache(results, 200, 0.95, 0).key(comp)


def _page(results: Path, out: Path) -> str:
    assert bench("leaderboard", "--results", results, "--out", out, "--no-plots",
                 "--n-boot", "200", "--no-cache") == 0  # fmt: skip
    return re.sub(r"Generated \S+ from", "Generated TIME from", (out / "index.html").read_text())


def test_bench_leaderboard_does_not_build_the_run_options(results: Path, tmp_path: Path) -> None:
    """`bench leaderboard` lists `run` and `sweep` without their options: their RunRequest
    (benchmark.request) is start-up time no other command needs. `bench run` still has them."""
    argv = ["leaderboard", "--results", str(results), "--out", str(tmp_path / "site"),
            "--no-plots", "--n-boot", "200"]  # fmt: skip
    code = ("import sys, benchmark.cli; rc = benchmark.cli.main({argv!r}); assert rc == 0; "
            "assert 'benchmark.request' not in sys.modules, 'benchmark.request was imported'")
    proc = subprocess.run([sys.executable, "-c", code.format(argv=argv)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    from benchmark.cli import build_parser

    for command in ("run", "sweep", None, "--help"):
        assert "--seed" in _subcommand_help(build_parser(command), "run" if command is None
                                            or command.startswith("-") else command)
    assert "--seed" not in _subcommand_help(build_parser("leaderboard"), "run")


def _subcommand_help(parser: argparse.ArgumentParser, name: str) -> str:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name].format_help()


@pytest.mark.parametrize("safe", ["/.-_~", "/.-_~#"])
def test_url_quote_is_urllib_quote(safe: str) -> None:
    """The shortcut for links that need no quoting gives what quote() gives, for every link."""
    from urllib.parse import quote

    from benchmark.leaderboard.render import url_quote

    rng = np.random.default_rng(0)
    alphabet = list("aZ09_.-~/") + list(" #%?&<>\"'|[]()éß\\\n\t:;=+@") + ["日", "\U0001f600"]
    hrefs = ["runs/cifar10/finetune/blurred_r50/seed0-0123abcd/record.json", "", "a b", "é",
             "../results/runs/x#y/record.json", "~user/a.b-c_d"]  # fmt: skip
    hrefs += ["".join(rng.choice(alphabet, size=rng.integers(0, 12))) for _ in range(500)]
    for href in hrefs:
        assert url_quote(href, safe) == quote(href, safe=safe), href


def test_only_entries_that_hold_a_full_stat_give_one(tmp_path: Path) -> None:
    """An entry of another shape (another layout of the record cache, a hand-edited file) gives
    no stat, so the key takes its own instead of a wrong one."""
    readings = cache_module.RecordCache(tmp_path, READING_FIELDS, PER_RUN_FIELDS)
    readings.keep("runs/a", [1, 2, 3, 4, "group", 0, "2026", {}])  # size, mtime, ctime, inode
    readings.keep("runs/b", [[1, 2, 3, 4], ["reading"]])  # the layout before groups
    readings.keep("runs/c", [1, 2.0, 3, 4, "group"])
    readings.keep("runs/d", [1, 2, 3])
    readings.keep("runs/e", [True, 2, 3, 4, "group"])
    readings.keep("runs/f", [])
    assert readings.record_stats() == {"runs/a": [1, 2, 3, 4]}


def test_a_warm_bench_leaderboard_imports_no_pydantic(results: Path, tmp_path: Path) -> None:
    """A warm rebuild takes every record from the record cache, so it validates none and needs
    no pydantic (0.1 s of its start-up); a cold build, which reads the records, imports it."""
    argv = ["leaderboard", "--results", str(results), "--out", str(tmp_path / "site"),
            "--no-plots", "--n-boot", "200"]  # fmt: skip
    code = ("import sys, benchmark.cli; rc = benchmark.cli.main({argv!r}); assert rc == 0; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic')[:1])")
    seen = []
    for _ in ("cold", "warm"):
        proc = subprocess.run([sys.executable, "-c", code.format(argv=argv)],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        seen.append(proc.stdout.strip().splitlines()[-1])
    assert seen == ["['pydantic']", "[]"]
