"""What a leaderboard is made of: runs, rows (a backbone in a setting), settings, comparisons.

Plain dataclasses filled by :mod:`.collect` and :mod:`.compare` and read by :mod:`.render`;
every other module of the package imports this one and this one imports none of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.pretraining import COMPARED_DATA as COMPARED_DATA  # pairs and compare use it
from benchmark.pretraining import PRETRAINING_DATA
from benchmark.stats import DeltaResult, SeedSummary

if TYPE_CHECKING:  # imported when a record is read: pydantic (through run_record) is 0.1 s
    # of a warm leaderboard's start-up, and a warm build reads no record
    from benchmark.run_record import RunRecord

DATA_ORDER = {name: i for i, name in enumerate(PRETRAINING_DATA)}  # table order


@dataclass
class Problem:
    """A record the leaderboard could not use (or used only in part), shown on the page."""

    what: str
    path: Path
    message: str
    task: str = ""


@dataclass
class Run:
    """One completed run as the leaderboard reads it (from its record, or from the record
    cache, :mod:`benchmark.leaderboard.cache`)."""

    run_dir: Path
    task: str
    kind: str
    protocol: str
    subset: str
    setting: str
    backbone: str
    arch: str
    data: str
    sha256: str | None
    seed: int
    fixture: bool
    ended: str
    metrics: dict[str, Any]
    primary_metric: str
    task_config: dict[str, Any]  # the record's config["task"] ({} when not a mapping)
    loaded: RunRecord | None = None  # the record (kept_record), when read in this build

    @property
    def record(self) -> RunRecord:
        """The record (as :func:`kept_record` keeps it): kept from collecting, or read on first
        use for a run that came from the record cache (only a comparison computed again needs
        it)."""
        if self.loaded is None:
            from benchmark.run_record import read_record

            self.loaded = kept_record(read_record(self.run_dir))
        return self.loaded


def kept_record(record: RunRecord) -> RunRecord:
    """``record`` as a :class:`Run` keeps it, for the comparisons (class names, config,
    metrics): without its training history, which no leaderboard step reads (a loss per step:
    200 floats a run in the 10,000-run benchmark, thousands in a real run). Kept for every run,
    it was 81-83 MiB of that cold build's peak memory (621 -> 540 MiB at b54e05d, 373 -> 290 MiB
    at 211e102) and about 0.3 s of its CPU at b54e05d (6.9 -> 6.6 s, 2 cores, load 1.7). The
    file is not changed; ``read_record`` reads it all."""
    record.training = None
    return record


@dataclass
class Row:
    """One backbone in one setting: its runs (one per seed) and the seed summaries."""

    name: str
    arch: str
    data: str
    sha256: str | None
    runs: list[Run] = field(default_factory=list)
    summaries: dict[str, SeedSummary | None] = field(default_factory=dict)
    label: str = ""

    @property
    def fixture(self) -> bool:
        return any(r.fixture for r in self.runs)

    def values(self, metric: str) -> list[float]:
        out = []
        for run in self.runs:
            value = run.metrics.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                out.append(float(value))
        return out


@dataclass
class Setting:
    """Runs that may be compared: same task, protocol, subset and config but the backbone."""

    task: str
    kind: str
    protocol: str
    subset: str
    setting: str
    primary: str
    scalar_metrics: list[str]
    column_metrics: list[str]
    rows: list[Row]

    @property
    def fixture(self) -> bool:
        return any(row.fixture for row in self.rows)

    @property
    def engine(self) -> str | None:
        """A detection setting's ``detection.engine`` (records from before the field existed
        ran torchvision's detector); None for other kinds."""
        if self.kind != "detection" or not self.rows or not self.rows[0].runs:
            return None
        detection = self.rows[0].runs[0].task_config.get("detection")
        engine = detection.get("engine") if isinstance(detection, dict) else None
        return str(engine or "torchvision")

    @property
    def title(self) -> str:
        return f"{self.task} · {self.protocol} · subset {self.subset} · setting {self.setting}"

    @property
    def anchor(self) -> str:
        return f"{self.task}-{self.protocol}-{self.subset}-{self.setting}"


@dataclass
class MetricDelta:
    """One metric of one comparison. ``paired`` is the bootstrap over test examples (None when
    the predictions cannot be paired); ``seeds`` the Welch interval over training seeds."""

    metric: str
    mean_a: float
    mean_b: float
    paired: DeltaResult | None
    seeds: SeedSummary | None
    verdict: str

    @property
    def delta(self) -> float:
        return self.paired.delta if self.paired is not None else self.mean_b - self.mean_a


@dataclass
class ColumnDeltas:
    """Per-class / per-attribute / per-group deltas of one column metric, Holm-adjusted."""

    metric: str
    columns: list[str]
    results: list[DeltaResult]
    p_holm: np.ndarray
    plot_file: str = ""
    plot_png: bytes = b""
    untested: int = 0  # columns with too few examples for an interval (MIN_TEST_EXAMPLES)
    plot_note: str = ""  # why there is no plot although plots are on

    def most_affected(self, top: int) -> list[int]:
        finite = [j for j, r in enumerate(self.results) if math.isfinite(r.delta)]
        return sorted(finite, key=lambda j: (-abs(self.results[j].delta), self.columns[j]))[:top]

    def detected(self, alpha: float) -> int:
        return int(np.sum(np.nan_to_num(self.p_holm, nan=1.0) < alpha))


@dataclass
class Comparison:
    setting: Setting
    a: Row  # the reference (original data)
    b: Row  # the compared backbone (blurred, overlayed, or the right side of --pair)
    subject: str  # how the verdict names b
    explicit: bool
    metrics: list[MetricDelta] = field(default_factory=list)
    columns: list[ColumnDeltas] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_examples: int | None = None
    seeds_paired: tuple[int, int] = (0, 0)

    @property
    def anchor(self) -> str:
        return f"{self.setting.anchor}-{self.b.name}-vs-{self.a.name}"


@dataclass
class Leaderboard:
    results: Path
    generated: str
    settings: list[Setting]
    comparisons: list[Comparison]
    problems: list[Problem]
    records_read: int
    confidence: float
    n_boot: int
    timings: dict[str, float] = field(default_factory=dict)
    overview_png: bytes = b""  # the forest plot of every comparison (empty: none drawn)
    overview_file: str = ""
    overview_note: str = ""  # why there is no overview figure
    # the section "ImageNet per-category comparison": :class:`.imagenet.ImageNetPair` items
    # (typed Any because .imagenet imports this module, and this module imports none)
    imagenet: list[Any] = field(default_factory=list)

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    @property
    def runs(self) -> int:
        return sum(len(row.runs) for s in self.settings for row in s.rows)

    @property
    def fixture(self) -> bool:
        return any(s.fixture for s in self.settings)
