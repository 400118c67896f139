"""A backbone pair over a task group (``tasks/groups/``, e.g. ``kornblith12``): one line of
summary per pair, protocol and subset.

Per task the comparison's primary-metric delta (compared - original) and its paired-bootstrap
p-value come from :mod:`.compare`; here they are only summarised:

* the mean delta over the group's tasks with a Student-t interval that treats the tasks as a
  sample of transfer tasks (Kornblith et al. 2019 average over their suite the same way); the
  uncertainty of each task's own delta is in that task's row, not in this interval;
* how many tasks differ after Holm's correction over the group's tasks
  (:func:`benchmark.stats.holm_adjust`) at alpha = 1 - confidence.

Deltas are in points. Numbers only, no torch: the leaderboard stays importable without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from benchmark.errors import BenchError
from benchmark.leaderboard.model import Comparison, Leaderboard
from benchmark.stats import holm_adjust, seed_interval


@dataclass
class GroupSummary:
    group: str
    description: str
    a: str  # the original backbone's label
    b: str  # the compared one
    protocol: str
    subset: str
    tasks: list[str]  # the group's tasks this pair has a comparison on, in the group's order
    deltas: list[float]  # points, per task
    p_values: list[float]
    p_holm: list[float]
    mean: float
    low: float  # NaN with fewer than two tasks
    high: float
    differ: int  # tasks whose Holm-adjusted p < alpha
    missing: list[str] = field(default_factory=list)  # group tasks without a comparison
    fixture: bool = False


def summarise_groups(board: Leaderboard) -> list[GroupSummary]:
    """Every group x (pair, protocol, subset) with a comparison on at least one of its tasks."""
    from benchmark.task_groups import task_groups

    try:
        groups = task_groups()
    except BenchError:  # a broken group file must not take the leaderboard down
        return []
    by_pair: dict[tuple[str, str, str, str], dict[str, Comparison]] = {}
    for comp in board.comparisons:
        key = (comp.a.name, comp.b.name, comp.setting.protocol, comp.setting.subset)
        by_pair.setdefault(key, {}).setdefault(comp.setting.task, comp)  # first setting wins
    out = []
    for group in groups.values():
        for (_, _, protocol, subset), comps in sorted(by_pair.items()):
            present = [t for t in group.tasks if t in comps]
            if not present:
                continue
            deltas, p_values = [], []
            for task in present:
                comp = comps[task]
                metric = next(m for m in comp.metrics if m.metric == comp.setting.primary)
                deltas.append(100.0 * metric.delta)
                p_values.append(metric.paired.p_value if metric.paired is not None else math.nan)
            finite = [d for d in deltas if math.isfinite(d)]
            summary = seed_interval(finite, board.confidence) if finite else None
            p = np.asarray(p_values, dtype=np.float64)
            adjusted = np.full(len(p), np.nan)
            tested = np.isfinite(p)
            if tested.any():
                adjusted[tested] = holm_adjust(p[tested])
            first = comps[present[0]]
            out.append(GroupSummary(
                group=group.name, description=group.description, a=first.a.label or first.a.name,
                b=first.b.label or first.b.name, protocol=protocol, subset=subset, tasks=present,
                deltas=deltas, p_values=p_values, p_holm=adjusted.tolist(),
                mean=summary.mean if summary else math.nan,
                low=summary.low if summary else math.nan,
                high=summary.high if summary else math.nan,
                differ=int(np.sum(np.nan_to_num(adjusted, nan=1.0) < board.alpha)),
                missing=[t for t in group.tasks if t not in comps],
                fixture=any(comps[t].a.fixture or comps[t].b.fixture for t in present),
            ))  # fmt: skip
    return out


def _num(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}f}" if math.isfinite(value) else "n/a"


def group_rows(board: Leaderboard) -> list[dict[str, str]]:
    """The table's cells (markdown and HTML show the same)."""
    rows = []
    for s in summarise_groups(board):
        interval = (f"[{_num(s.low)}, {_num(s.high)}]" if math.isfinite(s.low)
                    else "n/a (one task)")  # fmt: skip
        rows.append({
            "group": s.group, "setting": f"{s.protocol} · {s.subset}", "a": s.a, "b": s.b,
            "tasks": f"{len(s.tasks)} of {len(s.tasks) + len(s.missing)}",
            "mean": _num(s.mean), "interval": interval,
            "differ": f"{s.differ} of {len(s.tasks)}",
            "missing": ", ".join(s.missing), "fixture": "yes" if s.fixture else "",
        })  # fmt: skip
    return rows


GROUP_HEADER = ["group", "protocol · subset", "original", "compared", "tasks",
                "mean delta (points)", "interval", "tasks differing (Holm)", "missing tasks"]


def group_note(confidence_text: str, alpha: float) -> str:
    return (f"Mean over the group's tasks of the primary-metric delta (compared − original), "
            f"with a {confidence_text} Student-t interval over tasks; tasks differing: paired "
            f"bootstrap p-values Holm-adjusted over the group's tasks, below {alpha:g}.")
