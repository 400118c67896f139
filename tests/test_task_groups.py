"""Task groups: `bench sweep --tasks kornblith12` expands the group, and the leaderboard
summarises a backbone pair over it (mean delta with its interval, tasks differing after Holm)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from synthetic_records import logits_with_correct, write_classification_run

import benchmark.task_groups as task_groups_module
from benchmark import leaderboard
from benchmark.errors import BenchError
from benchmark.leaderboard.groups import summarise_groups
from benchmark.leaderboard.render import render_html, render_markdown
from benchmark.stats import seed_interval
from benchmark.sweep import expand_tasks
from benchmark.task_groups import _schema, _validated, task_groups

KORNBLITH = ["food101", "cifar10", "cifar100", "sun397", "stanford_cars", "fgvc_aircraft",
             "voc2007_cls", "dtd", "oxford_pets", "caltech101", "flowers102"]  # fmt: skip


def test_groups_expand_to_their_tasks() -> None:
    groups = task_groups()
    assert groups["kornblith12"].tasks == KORNBLITH
    assert expand_tasks(["kornblith12"]) == KORNBLITH
    assert expand_tasks(["paper4", "cifar10"]) == ["cifar10", "sun397", "celeba", "voc"]


def _holm_reject(p: list[float], alpha: float) -> int:
    """Holm's step-down procedure as stated (Holm 1979): reject in order of p while
    p_(i) <= alpha / (m - i); the reference the summary's count is checked against."""
    m, rejected = len(p), 0
    for i, value in enumerate(sorted(p)):
        if value > alpha / (m - i):
            break
        rejected += 1
    return rejected


def test_group_summary_over_a_backbone_pair(tmp_path: Path) -> None:
    """Four of the group's tasks, blurred worse by 0, 0, 10 and 20 points of 400 examples."""
    classes = [f"c{i}" for i in range(10)]
    target = np.repeat(np.arange(10), 40)
    rng = np.random.default_rng(0)
    planted = {"cifar10": 0, "dtd": 0, "food101": 40, "caltech101": 80}
    for task, drop in planted.items():
        correct_a = rng.random(400) < 0.8
        correct_b = correct_a.copy()
        correct_b[np.flatnonzero(correct_a)[:drop]] = False
        for name, data, correct in (("original_r18", "original", correct_a),
                                    ("blurred_r18", "blurred", correct_b)):
            logits = logits_with_correct(target, correct, 10, rng)
            write_classification_run(tmp_path, name, "resnet18", data, 0, logits, target,
                                     classes, task=task)  # fmt: skip
    board = leaderboard.build(tmp_path, n_boot=500, plots=False, cache=False)
    (summary,) = [s for s in summarise_groups(board) if s.group == "kornblith12"]
    assert summary.tasks == ["food101", "cifar10", "dtd", "caltech101"]  # the group's order
    assert set(summary.missing) == set(KORNBLITH) - set(planted)
    by_task = {c.setting.task: c for c in board.comparisons}
    deltas = [100 * next(m for m in by_task[t].metrics if m.metric == "top1").delta
              for t in summary.tasks]  # fmt: skip
    assert np.allclose(summary.deltas, deltas)
    assert np.allclose(deltas, [-10.0, 0.0, 0.0, -20.0])
    expected = seed_interval(deltas, 0.95)
    assert math.isclose(summary.mean, -7.5) and math.isclose(summary.low, expected.low)
    assert summary.low < summary.mean < summary.high
    assert summary.differ == _holm_reject(summary.p_values, 0.05)
    assert summary.differ == 2  # the 10- and 20-point drops
    markdown = render_markdown(board, tmp_path / "out")
    assert "## Task groups" in markdown and "| kornblith12 | finetune · full |" in markdown
    assert "| 4 of 11 | -7.50 |" in markdown and "| 2 of 4 |" in markdown
    html = render_html(board, tmp_path / "out")
    assert 'id="group-summary"' in html


GOOD_GROUPS = [
    {"name": "g", "tasks": ["cifar10"]},
    {"name": "g", "description": "from a paper", "tasks": ["cifar10", "dtd"]},
]
BAD_GROUPS = [
    {"name": "g"},  # no tasks
    {"name": "g", "tasks": []},
    {"name": "g", "tasks": "cifar10"},
    {"name": "g", "tasks": ["cifar10", 7]},
    {"name": 3, "tasks": ["cifar10"]},
    {"name": "g", "description": None, "tasks": ["cifar10"]},
    {"name": "g", "tasks": ["cifar10"], "extra": 1},
    {"tasks": ["cifar10"]},
    ["not", "a", "mapping"],
    None,
]


@pytest.mark.parametrize("raw", GOOD_GROUPS + BAD_GROUPS)
def test_group_files_are_read_as_pydantic_reads_them(raw: object, tmp_path: Path) -> None:
    """The plain check that spares a leaderboard pydantic accepts what the pydantic model
    accepts, with the same values, and refuses the rest with pydantic's own message."""
    from pydantic import ValidationError

    path = tmp_path / "g.yaml"
    try:
        model = _schema().model_validate(raw)
        expected: object = (model.name, model.description, model.tasks)
    except ValidationError as err:
        first = err.errors()[0]
        expected = f"field '{'.'.join(str(p) for p in first['loc']) or '(top level)'}'"
    try:
        group = _validated(raw, path)
        got: object = (group.name, group.description, group.tasks)
    except BenchError as err:
        assert str(err).startswith(f"{path}: ")
        got = str(err)
    if isinstance(expected, str):
        assert isinstance(got, str) and expected in got and raw in BAD_GROUPS
    else:
        assert got == expected and raw in GOOD_GROUPS


def test_a_broken_group_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_text("name: g\ntasks: []\n")
    with pytest.raises(BenchError, match=r"g\.yaml: field 'tasks': List should have at least"):
        task_groups_module._read(tmp_path)
