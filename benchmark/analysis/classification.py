"""Single-label classification, analysis side: the saved logits read back, and the per-example
scores the leaderboard's paired bootstrap resamples. numpy only, so reading records never imports
torch or Lightning."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark.analysis.npz import is_shared, read_npz
from benchmark.layout import PREDICTIONS_FILE
from benchmark.scores import (
    ExampleScores,
    MadeExampleScores,
    RunScores,
    array_key,
    mean_per_class_accuracy_metric,
    per_class_accuracy_scores,
)

if TYPE_CHECKING:  # the type only: pydantic (through run_record) costs a warm leaderboard,
    # which reads no record, 0.1 s of start-up
    from benchmark.run_record import RunRecord


def logit_metric_inputs(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return arrays["logits"], arrays["target"]


def load_logit_predictions(run_dir: Path) -> dict[str, np.ndarray]:
    """The saved arrays, as np.load gives them (faster over many runs), except that a small
    array already read from another run's file (a task's example ids and targets) is the one
    read-only array made of it (:func:`benchmark.analysis.npz.read_npz`'s ``shared``)."""
    # the path joined as a string: layout.predictions_file's Path cost 1.6 us a run
    return read_npz(os.fspath(run_dir) + os.sep + PREDICTIONS_FILE, shared=True)


# What the runs of a task share, by the shared (read-only) target array read_npz gave:
# id(saved target) -> [saved target, its int64 read-only copy, merge key or None, in range or
# not by class count (see _in_range)]; and the same entry by id(int64 copy), for
# classification_scores_from_arrays. An entry holds both arrays, so neither id is reused
# while it is kept. Converting and hashing the targets again in every run cost 4.1 us a run,
# against 0.3 us for the two lookups.
_TARGETS: dict[int, list] = {}
_TARGETS_KEPT = 512


def _int64_target(saved: np.ndarray) -> np.ndarray:
    entry = _TARGETS.get(id(saved))
    if entry is not None and entry[0] is saved:
        return entry[1]
    target = saved.astype(np.int64)
    if not is_shared(saved):
        return target  # it may change, so nothing is kept by its identity
    target.setflags(write=False)
    _keep(saved, target)
    return target


def _registered_target(target: np.ndarray) -> np.ndarray:
    """Register int64 targets that are shared (read-only, own memory) but were not converted
    here: those a worker process read (benchmark.leaderboard.workers hands its shared arrays
    over as one read-only array each), so the lookups below serve them too."""
    entry = _TARGETS.get(id(target))
    known = entry is not None and entry[1] is target
    if not known and target.dtype == np.int64 and is_shared(target):
        _keep(target, target)
    return target


def _keep(saved: np.ndarray, target: np.ndarray) -> None:
    """A new _TARGETS entry for a shared target array and its int64 form (the same array when
    it was int64 already), under both ids."""
    if len(_TARGETS) >= _TARGETS_KEPT:
        _TARGETS.clear()
    _TARGETS[id(saved)] = _TARGETS[id(target)] = [saved, target, None, {}]


def _merge_key(target: np.ndarray) -> str:
    """:func:`benchmark.scores.array_key` of the targets, once per shared target array."""
    entry = _TARGETS.get(id(target))
    if entry is None or entry[1] is not target:
        return array_key(target)
    if entry[2] is None:
        entry[2] = array_key(target)
    return entry[2]


def record_class_names(record: RunRecord, count: int) -> list[str]:
    """The run's class (or attribute) names: the record's ``class_names`` (schema-1 records
    without them get them from a per-class metric when read), else the keys of a per-class
    metric of that many classes, else ``class 0..``."""
    names = record.class_names
    if names is not None and len(names) == count:
        return list(names)
    for value in (record.metrics or {}).values():
        if isinstance(value, dict) and len(value) == count:
            return [str(n) for n in value]
    return [f"class {i}" for i in range(count)]


def classification_score_arrays(run_dir: Path) -> dict[str, np.ndarray]:
    """What the leaderboard needs from the saved logits (argmax, as the top1 metric takes it):
    example ids, targets, per-example correctness and the class count; small enough to cache."""
    saved = load_logit_predictions(run_dir)
    logits, target = saved["logits"], _int64_target(saved["target"])
    return {
        "example_id": saved["example_id"],
        "target": target,
        "correct": logits.argmax(axis=1) == target,
        "num_classes": np.asarray(logits.shape[1], np.int64),
    }


def classification_scores_from_arrays(
    arrays: dict[str, np.ndarray], record: RunRecord
) -> RunScores:
    """top1 (0/1 per example), per-class accuracy (its class's column) and mean per-class
    accuracy (recomputed per resample), from :func:`classification_score_arrays`."""
    target = _registered_target(arrays["target"])
    num_classes = int(arrays["num_classes"])
    correct = arrays["correct"].astype(np.float64)
    names = tuple(record_class_names(record, num_classes))
    return RunScores(
        example_ids=arrays["example_id"],
        metrics={
            "top1": ExampleScores(correct),
            "per_class_accuracy": _per_class_accuracy(correct, target, num_classes, names),
            "mean_per_class_accuracy": mean_per_class_accuracy_metric(
                correct, target, num_classes, _merge_key(target)
            ),
        },
    )


def _per_class_accuracy(
    correct: np.ndarray, target: np.ndarray, num_classes: int, names: tuple[str, ...]
) -> ExampleScores:
    """Per-class accuracy's scores (:func:`benchmark.scores.per_class_accuracy_scores`), made
    when used (:class:`benchmark.scores.MadeExampleScores`). Made here at once when they could
    not be made later (targets out of range, lengths that differ), so the error is raised
    while reading the run, as before, and lists it as a problem."""
    n = len(target)
    if len(correct) != n or target.ndim != 1 or not _in_range(target, num_classes):
        return ExampleScores(per_class_accuracy_scores(correct, target, num_classes), names)
    return MadeExampleScores(lambda: per_class_accuracy_scores(correct, target, num_classes),
                             (n, num_classes), names)  # fmt: skip


def _in_range(target: np.ndarray, num_classes: int) -> bool:
    """Whether every target indexes a column of ``num_classes`` (as numpy indexes: from
    ``-num_classes``); once per shared target array and class count."""
    entry = _TARGETS.get(id(target))
    shared = entry is not None and entry[1] is target
    if shared and num_classes in entry[3]:
        return entry[3][num_classes]
    ok = target.dtype.kind in "iu" and (
        not len(target) or (-num_classes <= target.min() and target.max() < num_classes))
    if shared:
        entry[3][num_classes] = bool(ok)
    return bool(ok)


def classification_scores(run_dir: Path, record: RunRecord) -> RunScores:
    """The leaderboard's per-example scores of a classification run, from its saved logits."""
    return classification_scores_from_arrays(classification_score_arrays(run_dir), record)
