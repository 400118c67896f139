"""Task kind -> how its saved predictions are read back: a static table, no registration.

The training side (:mod:`benchmark.kinds`) says which DataModule and LightningModule serve a
kind and which arrays it saves; this table says what those arrays mean to whoever reads them
later (the runner's own metrics, the leaderboard's paired bootstrap). Importing it imports
numpy code only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.analysis.classification import (
    classification_score_arrays,
    classification_scores,
    classification_scores_from_arrays,
    logit_metric_inputs,
)
from benchmark.analysis.detection import detection_scores, detections_from_arrays
from benchmark.analysis.multilabel import multilabel_scores
from benchmark.scores import RunScores

if TYPE_CHECKING:  # the type only: pydantic (through run_record) costs a warm leaderboard,
    # which reads no record, 0.1 s of start-up
    from benchmark.run_record import RunRecord


@dataclass(frozen=True)
class KindAnalysis:
    # saved arrays -> (predictions, targets) as the kind's registered metrics take them
    metric_inputs: Callable[[dict[str, np.ndarray]], tuple[Any, Any]]
    # (run_dir, record) -> per-example scores for the leaderboard's paired bootstrap, read from
    # the saved predictions; None: that kind's runs are compared by seed means only.
    scores: Callable[[Path, RunRecord], RunScores] | None = None
    # Optional split of ``scores`` that lets the leaderboard cache per-run arrays on disk
    # (benchmark.score_cache): ``score_arrays`` reads the predictions into a few plain arrays
    # (no object dtypes), ``scores_from_arrays`` builds the RunScores from them and the record.
    # ``score_arrays`` takes the run folder alone: its arrays are cached under the folder's
    # stat, so they may depend on its files only (and a worker process reads them without the
    # record: benchmark.leaderboard.workers).
    score_arrays: Callable[[Path], dict[str, np.ndarray]] | None = None
    scores_from_arrays: Callable[[dict[str, np.ndarray], RunRecord], RunScores] | None = None


ANALYSES: dict[str, KindAnalysis] = {
    "classification": KindAnalysis(
        metric_inputs=logit_metric_inputs,
        scores=classification_scores,
        score_arrays=classification_score_arrays,
        scores_from_arrays=classification_scores_from_arrays,
    ),
    "multilabel": KindAnalysis(metric_inputs=logit_metric_inputs, scores=multilabel_scores),
    "detection": KindAnalysis(metric_inputs=detections_from_arrays, scores=detection_scores),
}


def kind_analysis(kind: str) -> KindAnalysis:
    """The reader of ``kind``'s predictions; KeyError for a kind this version does not know."""
    return ANALYSES[kind]
