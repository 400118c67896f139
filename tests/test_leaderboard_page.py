"""The page's reader-facing parts: the overview figure, the wide CSV, human names, ranks, the
sort script's Content-Security-Policy hash, reference rows, plots that would be empty."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
from synthetic_records import logits_with_correct, write_classification_run

from benchmark import leaderboard
from benchmark.leaderboard.plots import overview_data

CLASSES = [f"class {i}" for i in range(10)]
PNG = b"\x89PNG\r\n\x1a\n"


def _results(root: Path, tasks: tuple[str, ...] = ("cifar10", "sun397")) -> Path:
    """Two architectures, each original and blurred, over two seeds, in each task; the blurred
    backbones are planted to be worse by different amounts."""
    rng = np.random.default_rng(3)
    target = np.repeat(np.arange(10), 30)
    for t, task in enumerate(tasks):
        for arch, drop in (("resnet18", 0.05), ("resnet50", 0.15 + 0.05 * t)):
            for seed in range(2):
                for data, rate in (("original", 0.8), ("blurred", 0.8 - drop)):
                    correct = rng.random(len(target)) < rate
                    write_classification_run(root, f"{data}_{arch}", arch, data, seed,
                                             logits_with_correct(target, correct, 10, rng), target,
                                             CLASSES, task=task)  # fmt: skip
    return root


def test_overview_figure_comes_first_and_shows_the_table_deltas(tmp_path: Path) -> None:
    results = _results(tmp_path / "results")
    board = leaderboard.build(results, n_boot=200)
    out = tmp_path / "site"
    leaderboard.write(board, out)
    assert (out / "plots" / "overview.png").read_bytes()[:8] == PNG
    markdown = (out / "leaderboard.md").read_text()
    html = (out / "index.html").read_text()
    # referenced before the first table, in both faces
    assert markdown.index("](plots/overview.png)") < markdown.index("\n| ")
    first_image = html.index('src="data:image/png;base64,')
    assert html.index('id="overview-plot"') < first_image < html.index("<table")
    # one panel per task; each point is the comparison table's delta and interval, in points
    panels = overview_data(board.comparisons)
    assert [p.task for p in panels] == ["cifar10", "sun397"]
    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    table = {(r["task"], r["arch"]): r for r in rows
             if r["section"] == "comparison" and r["metric"] == "top1"}  # fmt: skip
    assert len(table) == 4
    for panel in panels:
        assert panel.metric == "top1" and len(panel.labels) == 2
        for label, delta, low, high in zip(panel.labels, panel.delta, panel.low, panel.high,
                                           strict=True):
            row = table[(panel.task, label.split(" ")[0])]
            assert delta == pytest.approx(100 * float(row["value"]))
            assert (low, high) == pytest.approx((100 * float(row["low"]),
                                                 100 * float(row["high"])))
            assert f"| {delta:+.2f} |" in markdown  # the summary table's rounding
    # the planted gaps are what the figure shows: resnet50 lost more than resnet18
    for panel in panels:
        assert panel.delta[1] < panel.delta[0] < 0


def test_overview_is_skipped_with_a_sentence(tmp_path: Path) -> None:
    results = _results(tmp_path / "results", tasks=("cifar10",))
    board = leaderboard.build(results, n_boot=200, plots=False)
    leaderboard.write(board, tmp_path / "off")
    assert not (tmp_path / "off" / "plots" / "overview.png").exists()
    markdown = (tmp_path / "off" / "leaderboard.md").read_text()
    assert "No overview figure: plots are off (--no-plots)." in markdown
    assert "plots are off" in (tmp_path / "off" / "index.html").read_text()

    lonely = tmp_path / "lonely"
    target = np.repeat(np.arange(10), 30)
    write_classification_run(lonely, "original_resnet18", "resnet18", "original", 0,
                             logits_with_correct(target, target >= 0, 10,
                                                 np.random.default_rng(0)), target, CLASSES)
    board = leaderboard.build(lonely, n_boot=200)
    assert board.overview_png == b""
    leaderboard.write(board, tmp_path / "none")
    assert ("No overview figure: there are no comparisons."
            in (tmp_path / "none" / "leaderboard.md").read_text())


def test_wide_csv_is_the_long_csv_pivoted_in_points(tmp_path: Path) -> None:
    results = _results(tmp_path / "results")
    leaderboard.write(leaderboard.build(results, n_boot=200, plots=False), tmp_path / "site")
    long = list(csv.DictReader(io.StringIO((tmp_path / "site" / "leaderboard.csv").read_text())))
    wide = list(csv.DictReader(io.StringIO(
        (tmp_path / "site" / "leaderboard_wide.csv").read_text())))
    key = ("task", "protocol", "subset", "setting", "backbone")
    by_key = {tuple(r[k] for k in key): r for r in wide}
    assert len(by_key) == len(wide) == 8  # 2 tasks x 2 architectures x original/blurred
    backbone_rows = [r for r in long if r["section"] == "backbone"]
    assert {tuple(r[k] for k in key) for r in backbone_rows} == set(by_key)
    metric_columns = [c for c in wide[0] if c not in (*key, "arch", "pretraining_data", "seeds",
                                                      "fixture")]  # fmt: skip
    assert metric_columns == ["top1", "mean_per_class_accuracy"]
    for r in backbone_rows:
        w = by_key[tuple(r[k] for k in key)]
        assert float(w[r["metric"]]) == pytest.approx(100 * float(r["value"]), abs=1e-9)
        assert w["seeds"] == r["n_seeds"] == "2"
        assert (w["arch"], w["pretraining_data"]) == (r["arch"], r["pretraining_data"])
    assert len(backbone_rows) == len(wide) * len(metric_columns)  # no cell left out


def _tables(markdown: str) -> list[list[str]]:
    tables, current = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_settings_and_metrics_read_as_names(tmp_path: Path) -> None:
    results = _results(tmp_path / "results", tasks=("cifar10",))
    target = np.repeat(np.arange(10), 30)
    rng = np.random.default_rng(5)
    for data in ("original", "blurred"):  # a second cifar10 setting: other options, same name
        write_classification_run(results, f"{data}_resnet18", "resnet18", data, 0,
                                 logits_with_correct(target, rng.random(300) < 0.7, 10, rng),
                                 target, CLASSES, config_extra={"lr": 0.5})  # fmt: skip
    board = leaderboard.build(results, n_boot=200, plots=False)
    leaderboard.write(board, tmp_path / "site")
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    html = (tmp_path / "site" / "index.html").read_text()
    first, second = board.settings
    # same task, protocol and subset: the name alone would not tell them apart, so the hash joins
    for s in (first, second):
        heading = f"## CIFAR-10 · fine-tune · full · setting {s.setting}"
        assert heading in markdown
        assert f"*setting {s.setting} (task cifar10, protocol finetune, subset full)*" in markdown
        assert f'title="setting {s.setting} (task cifar10, protocol finetune, subset full)"' in html
    # a setting alone under its name shows no hash in its heading, only in small print
    single = _results(tmp_path / "single", tasks=("sun397",))
    leaderboard.write(leaderboard.build(single, n_boot=200, plots=False), tmp_path / "one")
    one = (tmp_path / "one" / "leaderboard.md").read_text()
    assert "\n## SUN397 · fine-tune · full\n" in one and "\n*setting " in one
    # metric names in tables; identifiers stay in the CSV and the verdicts
    assert "| Top-1 accuracy |" in markdown and "| top1 |" not in markdown
    assert "Mean per-class accuracy" in markdown and ">Top-1 accuracy" in html
    assert "| top1: " in markdown  # a verdict
    long = (tmp_path / "site" / "leaderboard.csv").read_text()
    assert ",top1," in long and "Top-1 accuracy" not in long
    # every table that shows ± says once, in its header, what it means
    with_pm = [t for t in _tables(markdown) if any("±" in row for row in t[2:])]
    # the two-seed setting's backbones only: one seed has no interval, and the paper's
    # reference rows give their standard deviation as "(s.d. x)", so ± means one thing
    assert len(with_pm) == 1
    assert "77.853 (s.d. 0.117)" in markdown and "(s.d. 0.171)" in html
    for table in with_pm:
        assert table[0].count("±") == 1
    assert "mean ± half-width of the 95% interval over seeds" in with_pm[0][0]
    for table in re.findall(r"<table.*?</table>", html, flags=re.S):
        header = re.search(r"<tr>(.*?)</tr>", table, flags=re.S).group(1)
        if "±" in table.replace(header, ""):
            assert header.count("±") == 1, header


def _html_tables(html: str, css_class: str) -> list[list[list[str]]]:
    """Each table of the class, as rows of cell texts (tags stripped)."""
    out = []
    for table in re.findall(rf'<table class="{css_class}[^"]*">(.*?)</table>', html, flags=re.S):
        body = table.split("<tbody>")[1]
        out.append([[re.sub(r"<[^>]+>", "", c).strip()
                     for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
                    for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)])  # fmt: skip
    return out


def test_backbones_are_ranked_by_the_primary_metric(tmp_path: Path) -> None:
    results = _results(tmp_path / "results", tasks=("cifar10",))
    board = leaderboard.build(results, n_boot=200, plots=False)
    leaderboard.write(board, tmp_path / "site")
    (table,) = _html_tables((tmp_path / "site" / "index.html").read_text(), "backbones")
    (setting,) = board.settings
    assert [r[1] for r in table] == [row.label for row in setting.rows]  # the markdown's order
    means = {row.label: row.summaries["top1"].mean for row in setting.rows}
    by_rank = sorted(table, key=lambda r: int(r[0]))
    assert [int(r[0]) for r in by_rank] == [1, 2, 3, 4]
    assert [means[r[1]] for r in by_rank] == sorted(means.values(), reverse=True)
    # the planted drops: both originals above both blurred, resnet50's blurred last
    assert by_rank[-1][1] == "blurred_resnet50"

    # equal means share a rank
    from benchmark.leaderboard.render import _ranks

    tied = setting.rows[1].summaries["top1"]
    setting.rows[0].summaries["top1"] = tied
    ranks = _ranks(setting)
    assert ranks[0] == ranks[1] and sorted(ranks).count(ranks[0]) == 2


def test_the_sort_script_runs_by_its_hash_alone(tmp_path: Path) -> None:
    results = _results(tmp_path / "results", tasks=("cifar10",))
    leaderboard.write(leaderboard.build(results, n_boot=200, plots=False), tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text()
    (policy,) = re.findall(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', html)
    sources = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert sources["default-src"] == "'none'" and "unsafe" not in sources["script-src"]
    (script,) = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert sources["script-src"] == f"'sha256-{digest}'"
    assert "table.sortable" in script and html.count("<script") == 1
    # without the script the tables still have their rank column and data in the markdown order
    assert html.count('class="backbones sortable"') == 1 and "<th title=\"by the primary" in html


def test_reference_rows_only_for_the_architectures_run(tmp_path: Path) -> None:
    results = _results(tmp_path / "results", tasks=("cifar10",))
    leaderboard.write(leaderboard.build(results, n_boot=200, plots=False), tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text()
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    shown = html[html.index('id="reference-table"'):html.index('id="reference-fold"')]
    folded = html[html.index('id="reference-fold"'):html.index('id="problems"')]
    assert re.findall(r"<td>(\w+)<span", shown) == ["resnet18", "resnet50"]
    assert "<summary>The paper&#39;s other 13 architectures and their average" in folded
    assert folded.count('class="reference-row"') == 14 and "resnet152" in folded
    section = markdown[markdown.index("## Reference"):markdown.index("## Failed")]
    visible, hidden = section.split("<details>")
    assert visible.count("| resnet") == 2 and "| resnet50 | 75.461 (s.d. 0.198) |" in visible
    assert "| resnet152 |" in hidden and "| average of the 15 models |" in hidden
    # the CSV keeps every reference row: it is data, not a page
    rows = list(csv.DictReader(io.StringIO((tmp_path / "site" / "leaderboard.csv").read_text())))
    assert sum(1 for r in rows if r["section"] == "reference") == 32

    other = tmp_path / "other"  # no architecture of the paper: everything folded, said so
    target = np.repeat(np.arange(10), 30)
    write_classification_run(other, "original_vit", "vit_b_16", "original", 0,
                             logits_with_correct(target, target >= 0, 10,
                                                 np.random.default_rng(0)), target, CLASSES)
    leaderboard.write(leaderboard.build(other, n_boot=200, plots=False), tmp_path / "o")
    html = (tmp_path / "o" / "index.html").read_text()
    assert "None of the paper's architectures was run here." in html
    assert 'id="reference-table"' not in html and "other 15 architectures" in html


def test_plots_that_would_be_empty_are_not_drawn(tmp_path: Path) -> None:
    """Five test examples per class: no class has an interval, so the per-class plot would
    hold no point; it is not drawn and the page says why."""
    target = np.repeat(np.arange(10), 5)
    rng = np.random.default_rng(0)
    for seed in range(2):
        for data, rate in (("original", 0.7), ("blurred", 0.6)):
            write_classification_run(tmp_path / "results", f"{data}_r18", "resnet18", data, seed,
                                     logits_with_correct(target, rng.random(50) < rate, 10, rng),
                                     target, CLASSES)  # fmt: skip
    board = leaderboard.build(tmp_path / "results", n_boot=200)
    (comp,) = board.comparisons
    (view,) = comp.columns
    assert view.untested == 10 and view.plot_png == b"" and view.plot_file == ""
    why = "No plot: every column has fewer than 10 test examples, so none has an interval"
    assert view.plot_note.startswith(why)
    leaderboard.write(board, tmp_path / "site")
    assert sorted(p.name for p in (tmp_path / "site" / "plots").iterdir()) == ["overview.png"]
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    html = (tmp_path / "site" / "index.html").read_text()
    assert why in markdown and why in html
    assert html.count('src="data:image/png;base64,') == 1  # the overview only
    # with enough examples the same comparison has its plot
    assert _results(tmp_path / "enough", tasks=("cifar10",))
    enough = leaderboard.build(tmp_path / "enough", n_boot=200)
    assert all(v.plot_png[:8] == PNG and not v.plot_note
               for c in enough.comparisons for v in c.columns)
