"""Numbers a researcher can publish: the leaderboard's intervals are at the asked-for level and
say so, tiny test sets get no verdict, and a --pair that names nothing is refused."""

from __future__ import annotations

import csv
import html
import io
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from synthetic_records import logits_with_correct, write_classification_run

from benchmark import leaderboard
from benchmark.cli import main
from benchmark.leaderboard.plots import plot_data
from benchmark.stats import MIN_TEST_EXAMPLES, DeltaResult, bootstrap_indices, verdict

CLASSES = [f"class{i}" for i in range(10)]
TOO_FEW = f"too few test examples to test (N < {MIN_TEST_EXAMPLES})"


def _write_pair(results: Path, n: int, seeds: int, rate_b: float = 0.6) -> tuple[np.ndarray, ...]:
    """original_r18 / blurred_r18 on ``n`` test examples; returns their 0/1 correctness."""
    rng = np.random.default_rng(3)
    target = np.arange(n) % len(CLASSES)
    correct_a = rng.random((seeds, n)) < 0.7
    correct_b = rng.random((seeds, n)) < rate_b
    for seed in range(seeds):
        for name, data, correct in (("original_r18", "original", correct_a[seed]),
                                    ("blurred_r18", "blurred", correct_b[seed])):
            write_classification_run(results, name, "resnet18", data, seed,
                                     logits_with_correct(target, correct, 10, rng), target,
                                     CLASSES)  # fmt: skip
    return correct_a.astype(float), correct_b.astype(float)


def _csv_rows(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))


# --------------------------------------------------------------------------- --confidence


def test_confidence_reaches_every_interval_and_label(tmp_path: Path) -> None:
    results, out = tmp_path / "results", tmp_path / "board"
    correct_a, correct_b = _write_pair(results, n=200, seeds=3)
    code = main(["leaderboard", "--results", str(results), "--out", str(out), "--confidence",
                 "0.9", "--n-boot", "400", "--no-plots"])  # fmt: skip
    assert code == 0
    rows = _csv_rows(out)

    # per-backbone seed summary: scipy's Student-t interval at 0.9
    summary = next(r for r in rows if r["section"] == "backbone" and r["metric"] == "top1"
                   and r["backbone"] == "original_r18")  # fmt: skip
    values = correct_a.mean(axis=1)
    low, high = scipy.stats.t.interval(0.9, df=2, loc=values.mean(), scale=scipy.stats.sem(values))
    assert (float(summary["low"]), float(summary["high"])) == pytest.approx((low, high))
    assert float(summary["confidence"]) == 0.9

    # paired bootstrap: the 5th and 95th percentiles of the replicate deltas
    top1 = next(r for r in rows if r["section"] == "comparison" and r["metric"] == "top1")
    idx = np.concatenate(list(bootstrap_indices(200, 400, rng_seed=0)))
    deltas = correct_b[:, idx].mean(axis=2).mean(axis=0) - correct_a[:, idx].mean(axis=2).mean(0)
    want = np.quantile(deltas, [0.05, 0.95])
    assert (float(top1["low"]), float(top1["high"])) == pytest.approx(tuple(want), abs=1e-12)
    assert float(top1["confidence"]) == 0.9
    # Welch interval over seeds at 0.9, written out here from the textbook formula
    va, vb = correct_a.mean(axis=1).var(ddof=1) / 3, correct_b.mean(axis=1).var(ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    half = scipy.stats.t.ppf(0.95, df) * math.sqrt(va + vb)
    delta = correct_b.mean() - correct_a.mean()
    assert (float(top1["seeds_low"]), float(top1["seeds_high"])) == pytest.approx(
        (delta - half, delta + half)
    )

    for name in ("leaderboard.md", "index.html"):
        text = html.unescape((out / name).read_text())
        assert "90%" in text and "95%" not in text, name
        assert "p < 0.1" in text and "p < 0.05" not in text, name  # the verdict's alpha
    assert "95%" not in (out / "leaderboard.csv").read_text()


def test_plots_and_verdicts_follow_the_confidence(tmp_path: Path) -> None:
    _write_pair(tmp_path, n=200, seeds=2)
    board = leaderboard.build(tmp_path, n_boot=200, confidence=0.8, plots=False)
    (comp,) = board.comparisons
    data = plot_data(comp, comp.columns[0], board.confidence)
    assert data.level == "80%"
    # alpha = 1 - confidence: p = 0.15 with an interval excluding 0 is a difference at 80%
    at_80 = DeltaResult(0.02, 0.01, 0.03, 0.15, 2000, 500, confidence=0.8)
    assert verdict(at_80, "top1").startswith("top1: blurred higher by 2.0 points")
    at_95 = DeltaResult(0.02, 0.01, 0.03, 0.15, 2000, 500, confidence=0.95)
    assert verdict(at_95, "top1") == "top1: no detectable difference"


# --------------------------------------------------------------------------- tiny test sets


@pytest.mark.parametrize("n", [1, MIN_TEST_EXAMPLES - 1, MIN_TEST_EXAMPLES])
def test_too_few_test_examples_get_no_verdict(tmp_path: Path, n: int) -> None:
    results, out = tmp_path / "results", tmp_path / "board"
    _write_pair(results, n=n, seeds=2, rate_b=0.0)  # blurred wrong everywhere
    board = leaderboard.build(results, n_boot=200, plots=False)
    leaderboard.write(board, out)
    (comp,) = board.comparisons
    texts = [html.unescape((out / name).read_text()) for name in (
        "leaderboard.md", "index.html", "leaderboard.csv")]
    for m in comp.metrics:
        assert m.paired is not None and math.isfinite(m.paired.delta)
        if n < MIN_TEST_EXAMPLES:
            assert m.verdict == f"{m.metric}: {TOO_FEW}"
            assert math.isnan(m.paired.p_value) and math.isnan(m.paired.low)
        else:
            assert TOO_FEW not in m.verdict and math.isfinite(m.paired.p_value)
    for text in texts:
        assert (TOO_FEW in text) == (n < MIN_TEST_EXAMPLES)


# --------------------------------------------------------------------------- --pair


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("orignal_r18:blurred_r18", ["'orignal_r18'", "Did you mean: original_r18",
                                     "Known backbones: blurred_r18, original_r18"]),
        ("foo:bar", ["'foo' or 'bar'", "Known backbones: blurred_r18, original_r18"]),
        ("onlyone", ["--pair 'onlyone'", "REFERENCE:COMPARED"]),
        ("original_r18:original_r18", ["--pair 'original_r18:original_r18'"]),
    ],
)
def test_bad_pairs_exit_2_with_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, words: list[str]
) -> None:
    results, out = tmp_path / "results", tmp_path / "board"
    _write_pair(results, n=20, seeds=1)
    capsys.readouterr()
    code = main(["leaderboard", "--results", str(results), "--out", str(out), "--pair", spec,
                 "--n-boot", "100", "--no-plots"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: --pair ")
    for word in words:
        assert word in lines[0]
    assert not out.exists() and not (results / ".cache").exists()
