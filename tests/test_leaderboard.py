"""`bench leaderboard` on hand-made records: known differences are found, equal backbones are
not told apart, broken records are listed, and the three outputs agree."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import bench, bench_subprocess
from synthetic_records import (
    corrupt_record,
    logits_with_correct,
    write_classification_run,
    write_failed_run,
)

from benchmark import leaderboard

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
N = 400


def _target() -> np.ndarray:
    return np.repeat(np.arange(10), N // 10)


def _pair(results: Path, correct_a: list[np.ndarray], correct_b: list[np.ndarray], **kw) -> None:
    """An original/blurred resnet18 pair, one run per seed, with chosen correct examples."""
    rng = np.random.default_rng(1)
    target = _target()
    for seed, (ca, cb) in enumerate(zip(correct_a, correct_b, strict=True)):
        for name, data, correct in (("original_r18", "original", ca),
                                    ("blurred_r18", "blurred", cb)):
            logits = logits_with_correct(target, correct, 10, rng)
            write_classification_run(results, name, "resnet18", data, seed, logits, target,
                                     CLASSES, **kw)  # fmt: skip


def _correct(rate: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(N) < rate


def _comparison(board: leaderboard.Leaderboard):
    (comp,) = board.comparisons
    return comp, {m.metric: m for m in comp.metrics}


def test_identical_predictions_give_zero_delta(tmp_path: Path) -> None:
    same = [_correct(0.7, s) for s in range(3)]
    _pair(tmp_path, same, same)
    comp, metrics = _comparison(leaderboard.build(tmp_path, n_boot=500))
    assert (comp.a.name, comp.b.name, comp.subject) == ("original_r18", "blurred_r18", "blurred")
    top1 = metrics["top1"]
    assert top1.paired is not None and top1.paired.delta == 0.0
    assert top1.paired.low <= 0.0 <= top1.paired.high and top1.paired.p_value == 1.0
    assert top1.verdict == "top1: no detectable difference"
    assert metrics["mean_per_class_accuracy"].paired.delta == 0.0
    (per_class,) = comp.columns
    assert per_class.metric == "per_class_accuracy" and per_class.columns == CLASSES
    assert all(r.delta == 0.0 for r in per_class.results) and per_class.detected(0.05) == 0
    assert comp.n_examples == N and comp.seeds_paired == (3, 3)


def test_planted_difference_is_detected_where_it_was_planted(tmp_path: Path) -> None:
    """blurred gets every 'cat' (class 3) wrong on all seeds, otherwise the same predictions."""
    target = _target()
    a = [_correct(0.8, s) | (target == 3) for s in range(3)]
    b = [c & (target != 3) for c in a]
    _pair(tmp_path, a, b)
    comp, metrics = _comparison(leaderboard.build(tmp_path, n_boot=1000))
    top1 = metrics["top1"]
    assert top1.paired.delta == pytest.approx(-0.1)  # 40 of 400 examples flipped
    assert top1.paired.high < 0 and top1.paired.p_value < 0.01
    assert top1.verdict.startswith("top1: blurred lower by 10.0 points (p")
    assert metrics["mean_per_class_accuracy"].paired.delta == pytest.approx(-0.1)
    (per_class,) = comp.columns
    worst = per_class.most_affected(1)[0]
    assert per_class.columns[worst] == "cat" and per_class.results[worst].delta == -1.0
    assert per_class.p_holm[worst] < 0.05 and per_class.detected(0.05) == 1
    others = [r.delta for j, r in enumerate(per_class.results) if j != worst]
    assert others == [0.0] * 9


def test_example_order_does_not_matter(tmp_path: Path) -> None:
    """Runs may list their test examples in different orders: pairing is by example id."""
    target = _target()
    a = [_correct(0.7, 0)]
    b = [_correct(0.6, 1)]
    rng = np.random.default_rng(0)
    ordered, shuffled = tmp_path / "ordered", tmp_path / "shuffled"
    _pair(ordered, a, b)
    la = logits_with_correct(target, a[0], 10, rng)
    lb = logits_with_correct(target, b[0], 10, rng)
    ids = [f"test/{i}" for i in range(N)]
    perm = rng.permutation(N)
    write_classification_run(shuffled, "original_r18", "resnet18", "original", 0, la, target,
                             CLASSES, example_ids=ids)  # fmt: skip
    write_classification_run(shuffled, "blurred_r18", "resnet18", "blurred", 0, lb[perm],
                             target[perm], CLASSES, example_ids=[ids[i] for i in perm])  # fmt: skip
    one = _comparison(leaderboard.build(ordered, n_boot=300))[1]["top1"].paired
    two = _comparison(leaderboard.build(shuffled, n_boot=300))[1]["top1"].paired
    assert (one.delta, one.low, one.high, one.p_value) == pytest.approx(
        (two.delta, two.low, two.high, two.p_value)
    )


@pytest.fixture
def messy_results(tmp_path: Path) -> Path:
    """A pair on fixture data, a failed run, a corrupt record, a run whose predictions were
    deleted, and a blurred backbone with no original partner."""
    results = tmp_path / "results"
    _pair(results, [_correct(0.7, s) for s in range(2)], [_correct(0.7, s + 9) for s in range(2)],
          fixture=True)  # fmt: skip
    write_failed_run(results, "original_r50", 0, "RuntimeError: CUDA out of memory")
    rng = np.random.default_rng(3)
    broken = write_classification_run(results, "original_r34", "resnet34", "original", 0,
                                      logits_with_correct(_target(), _correct(0.5, 3), 10, rng),
                                      _target(), CLASSES)  # fmt: skip
    corrupt_record(broken)
    lonely = write_classification_run(results, "blurred_r101", "resnet101", "blurred", 0,
                                      logits_with_correct(_target(), _correct(0.5, 4), 10, rng),
                                      _target(), CLASSES)  # fmt: skip
    (lonely / "predictions.npz").unlink()
    return results


def test_broken_records_are_listed_never_dropped(messy_results: Path) -> None:
    board = leaderboard.build(messy_results, n_boot=200)
    problems = {(p.what, p.path.name if p.path.name.startswith("seed") else p.path.name)
                for p in board.problems}  # fmt: skip
    whats = sorted(p.what for p in board.problems)
    assert whats == ["failed run", "not compared", "unreadable record"], problems
    failed = next(p for p in board.problems if p.what == "failed run")
    assert "CUDA out of memory" in failed.message and failed.task == "cifar10"
    assert board.records_read == 7 and board.runs == 5
    assert "blurred_r101" in next(p.message for p in board.problems if p.what == "not compared")


def test_outputs_agree_and_link_every_run(messy_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert bench("leaderboard", "--results", messy_results, "--out", out, "--n-boot", "200") == 0
    markdown = (out / "leaderboard.md").read_text()
    html = (out / "index.html").read_text()
    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))

    # every completed run is linked, by a relative link that resolves to its record
    records = sorted(messy_results.glob("runs/*/*/*/*/record.json"))
    completed = [r for r in records if _is_json(r) and json.loads(r.read_text())["status"]
                 == "completed"]  # fmt: skip
    assert len(completed) == 5
    for record in completed:
        rel = record.relative_to(messy_results).as_posix()
        assert f"../results/{rel}" in markdown
        assert f'href="../results/{rel}"' in html
    for link in [r["links"] for r in rows if r["section"] == "backbone"]:
        for target in link.split():
            assert (out / target).is_file()

    # failed, unreadable and unpaired runs appear in all three outputs
    for text in ("failed run", "unreadable record", "not compared", "CUDA out of memory"):
        assert text in markdown and text in html
    assert {r["metric"] for r in rows if r["section"] == "problem"} == {
        "failed run", "unreadable record", "not compared"
    }
    # fixture runs are marked; reference rows are marked and carry the paper's numbers
    assert "FIXTURE DATA" in markdown and 'id="fixture-banner"' in html
    fixture_rows = [r for r in rows if r["section"] == "backbone" and r["fixture"] == "True"]
    assert {r["backbone"] for r in fixture_rows} == {"original_r18", "blurred_r18"}
    reference = {(r["backbone"], r["pretraining_data"]): float(r["value"])
                 for r in rows if r["section"] == "reference"}  # fmt: skip
    assert reference[("resnet50", "original")] == pytest.approx(0.75461)
    assert reference[("resnet50", "blurred")] == pytest.approx(0.75003)
    assert reference[("average of the 15 models", "blurred")] == pytest.approx(0.69368)
    # shown for the architectures run here (resnet18, resnet101), the others folded away
    shown, folded = markdown.split("## Reference")[1].split("<details>")
    assert "| resnet18 | 69.767 (s.d. 0.171) | 69.012 (s.d. 0.174) | -0.755 |" in shown
    assert "| resnet101 |" in shown and shown.count("| resnet") == 2
    assert "| resnet152 | 77.853 (s.d. 0.117) | 77.279 (s.d. 0.091) | -0.574 |" in folded
    assert "other 13 architectures and their average" in folded
    assert "Reference rows, not results of this benchmark" in html
    # the comparison is in the CSV with its interval, p-value and verdict
    (top1,) = [r for r in rows if r["section"] == "comparison" and r["metric"] == "top1"]
    assert top1["backbone"] == "blurred_r18" and top1["compared_with"] == "original_r18"
    assert float(top1["low"]) <= float(top1["value"]) <= float(top1["high"])
    assert 0 < float(top1["p_value"]) <= 1 and top1["verdict"].startswith("top1: ")
    per_class = [r for r in rows if r["section"] == "column"]
    assert sorted(r["column"] for r in per_class) == sorted(CLASSES)
    # the plot: a file beside the markdown, embedded in the page
    plot = markdown[markdown.index("](plots/") + 2 : markdown.index(".png)") + 4]
    assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert html.count('src="data:image/png;base64,') == 2  # the overview and the per-class plot


def _is_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except ValueError:
        return False
    return True


def test_text_is_escaped_everywhere(tmp_path: Path) -> None:
    """A class name is data, never markup, in any of the three outputs."""
    evil = ["<script>alert(1)</script>", "a|b", "=cmd()", "$x$", *CLASSES[4:]]
    rng = np.random.default_rng(0)
    target = _target()
    for name, data in (("original_r18", "original"), ("blurred_r18", "blurred")):
        write_classification_run(tmp_path / "r", name, "resnet18", data, 0,
                                 logits_with_correct(target, _correct(0.5, 7 + len(data)), 10, rng),
                                 target, evil)  # fmt: skip
    out = tmp_path / "site"
    board = leaderboard.build(tmp_path / "r", n_boot=200)
    leaderboard.write(board, out)
    html = (out / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # the one script element is the page's own sort script, nothing from the records
    from benchmark.leaderboard.render import _environment

    env = _environment()
    own = env.loader.get_source(env, "sort.js")[0]  # type: ignore[union-attr]
    assert re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S) == [own]
    markdown = (out / "leaderboard.md").read_text()
    assert "\\<script>alert(1)\\</script>" in markdown and "a\\|b" in markdown
    assert not re.search(r"(?<!\\)<script", markdown)  # only backslash-escaped tags
    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    columns = {r["column"] for r in rows if r["section"] == "column"}
    assert {"<script>alert(1)</script>", "a|b", "'=cmd()", "$x$"} <= columns


def test_missing_predictions_fall_back_to_seeds(tmp_path: Path) -> None:
    _pair(tmp_path, [_correct(0.9, s) for s in range(3)], [_correct(0.5, s) for s in range(3)])
    victim = next(tmp_path.glob("runs/cifar10/finetune/blurred_r18/seed1-*"))
    (victim / "predictions.npz").write_bytes(b"not a zip file")
    board = leaderboard.build(tmp_path, n_boot=300)
    comp, metrics = _comparison(board)
    assert comp.seeds_paired == (3, 2)  # the broken run is left out of the paired test only
    assert [p.what for p in board.problems] == ["unreadable predictions"]
    assert board.problems[0].path == victim
    assert metrics["top1"].paired is not None and metrics["top1"].paired.high < 0
    # the seed means still use all three runs
    assert metrics["top1"].mean_b == pytest.approx(np.mean(
        [_correct(0.5, s).mean() for s in range(3)]))  # fmt: skip


def test_predictions_that_disagree_with_the_record_are_not_used(tmp_path: Path) -> None:
    _pair(tmp_path, [_correct(0.7, 0)], [_correct(0.7, 1)])
    run = next(tmp_path.glob("runs/cifar10/finetune/blurred_r18/seed0-*"))
    record = json.loads((run / "record.json").read_text())
    record["metrics"]["top1"] = 0.99
    (run / "record.json").write_text(json.dumps(record))
    board = leaderboard.build(tmp_path, n_boot=200)
    (problem,) = board.problems
    assert problem.what == "predictions disagree with record" and "top1" in problem.message
    comp, metrics = _comparison(board)
    assert metrics["top1"].paired is None and "no paired test" in comp.notes[-1]
    assert "predictions unavailable" in metrics["top1"].verdict


def test_file_checkpoints_pair_only_when_asked(tmp_path: Path) -> None:
    """Records of checkpoint files say 'unknown' pretraining data: --pair names the pair."""
    rng = np.random.default_rng(0)
    target = _target()
    for name in ("file-orig-1234", "file-blur-5678"):
        for seed in (0, 1):
            write_classification_run(tmp_path, name, "resnet18", "unknown", seed,
                                     logits_with_correct(target, _correct(0.6, seed), 10, rng),
                                     target, CLASSES)  # fmt: skip
    assert leaderboard.build(tmp_path, n_boot=200).comparisons == []
    board = leaderboard.build(tmp_path, pairs=["file-orig-1234:file-blur-5678"], n_boot=200)
    (comp,) = board.comparisons
    assert comp.explicit and comp.a.name == "file-orig-1234" and comp.subject == "file-blur-5678"
    assert comp.metrics[0].verdict.startswith("top1: ")
    with pytest.raises(leaderboard.BenchError, match="'nope'"):  # unknown name: refused
        leaderboard.build(tmp_path, pairs=["nope:file-blur-5678"], n_boot=200)


def test_settings_are_kept_apart(tmp_path: Path) -> None:
    """Runs of the same task with another config are another table, never mixed."""
    same = [_correct(0.7, 0)]
    _pair(tmp_path, same, same)
    _pair(tmp_path, same, same, config_extra={"optim": {"lr": 0.1}})
    board = leaderboard.build(tmp_path, n_boot=200)
    assert len(board.settings) == 2 and len(board.comparisons) == 2
    assert all(len(row.runs) == 1 for s in board.settings for row in s.rows)


def test_duplicate_seed_is_listed(tmp_path: Path) -> None:
    _pair(tmp_path, [_correct(0.7, 0)], [_correct(0.7, 1)])
    run = next(tmp_path.glob("runs/cifar10/finetune/blurred_r18/seed0-*"))
    shutil.copytree(run, run.with_name(run.name.replace("seed0-", "seed0-copy")))
    board = leaderboard.build(tmp_path, n_boot=200)
    assert [p.what for p in board.problems] == ["duplicate run"]
    assert board.comparisons[0].b.runs[0].seed == 0 and len(board.comparisons[0].b.runs) == 1


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    proc = bench_subprocess("leaderboard", "--results", tmp_path / "nothing")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("bench: error: ") and "runs/" in proc.stderr
    (tmp_path / "runs").mkdir()
    proc = bench_subprocess("leaderboard", "--results", tmp_path, "--pair", "onlyone")
    assert proc.returncode == 2 and "--pair 'onlyone'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_seed_summaries_match_the_records(tmp_path: Path) -> None:
    rates = [0.6, 0.7, 0.8]
    _pair(tmp_path, [_correct(r, 5) for r in rates], [_correct(r, 5) for r in rates])
    board = leaderboard.build(tmp_path, n_boot=200)
    row = board.settings[0].rows[0]
    values = [run.metrics["top1"] for run in row.runs]
    summary = row.summaries["top1"]
    assert summary.mean == pytest.approx(np.mean(values)) and summary.n == 3
    half = 4.302652729911275 * np.std(values, ddof=1) / math.sqrt(3)  # t(0.975, df=2)
    assert summary.high - summary.mean == pytest.approx(half)


def test_unfinished_and_leftover_work_folders_are_listed(tmp_path: Path) -> None:
    _pair(tmp_path, [_correct(0.7, 0)], [_correct(0.7, 1)])
    done = next(tmp_path.glob("runs/cifar10/finetune/blurred_r18/seed0-*"))
    work = tmp_path / "runs" / ".work"
    (work / f"cifar10-{done.name.split('-')[1]}-s0" / "checkpoints").mkdir(parents=True)
    (work / "cifar10-0123456789ab-s4" / "checkpoints").mkdir(parents=True)
    (work / "cifar10-0123456789ab-s4" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    board = leaderboard.build(tmp_path, n_boot=200)
    found = {(p.what, p.path.name): p.message for p in board.problems}
    assert "safe to delete" in found[("leftover work folder", f"cifar10-{done.name[6:]}-s0")]
    unfinished = found[("unfinished run", "cifar10-0123456789ab-s4")]
    assert "resumes from its last checkpoint" in unfinished
    assert len(board.comparisons) == 1


def test_classes_with_few_test_examples_get_no_test(tmp_path: Path) -> None:
    """Five examples of a class, pooled over seeds, would give a zero-width interval: the
    leaderboard shows the delta but calls nothing."""
    target = np.repeat(np.arange(10), 5)
    rng = np.random.default_rng(0)
    for seed in range(3):
        a = rng.random(50) < 0.5
        b = a & (target != 3)
        for name, data, correct in (("original_r18", "original", a), ("blurred_r18", "blurred", b)):
            write_classification_run(tmp_path, name, "resnet18", data, seed,
                                     logits_with_correct(target, correct, 10, rng), target,
                                     CLASSES)  # fmt: skip
    (comp,) = leaderboard.build(tmp_path, n_boot=300).comparisons
    (view,) = comp.columns
    assert view.untested == 10 and view.detected(0.05) == 0
    assert all(math.isnan(r.p_value) and math.isfinite(r.delta) for r in view.results)
    from benchmark.leaderboard.render import _view_caption

    assert "10 with fewer than 10 test examples not tested" in _view_caption(view, 0.05)
