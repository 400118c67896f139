"""The leaderboard's section "ImageNet per-category comparison": built by `bench leaderboard`
from evaluation records (protocol eval) paired like every setting, every number equal to
`bench imagenet-compare`'s (compare_runs) on the same runs and to scipy's correlations computed
here from the predictions; escaped in markdown and HTML; its own CSV."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import test_browser
from helpers import bench
from scipy.stats import pearsonr, spearmanr
from test_browser import browser  # noqa: F401  (the fixture: headless Chromium)

from benchmark.analysis.imagenet import topk_correct
from benchmark.leaderboard.imagenet import compare_runs
from benchmark.records import SCHEMA_VERSION, RunKey, RunRecord, RunStore, config_hash

CATEGORIES = [f"n{index:08d}" for index in range(12)]
PER_CATEGORY = 10


def _eval_run(results: Path, backbone: str, data: str, seed: int, logits: np.ndarray,
              target: np.ndarray, names: list[str], has_face: np.ndarray,
              subset: str = "full", images: str = "none") -> Path:  # fmt: skip
    """One completed evaluation run written as evaluate.execute_eval writes it (RunStore, the
    same predictions.npz arrays, has_face included), from chosen logits."""
    top1 = topk_correct(logits, target, 1)
    per_class = [top1[target == c].mean() for c in range(len(names)) if (target == c).any()]
    config = {"task": {"name": "imagenet", "kind": "classification", "protocol": "eval",
                       "metrics": {"primary": "top1", "others": ["mean_per_class_accuracy"]}},
              "subset": subset, "data": {"kind": "imagefolder",  # a blurred copy: others
                                         "sha256": ("d" if images == "none" else "e") * 64},
              "backbone": {"name": backbone, "arch": "resnet18",
                           "sha256": hashlib.sha256(backbone.encode()).hexdigest()}}  # fmt: skip
    digest = config_hash(config)
    record = {
        "schema": SCHEMA_VERSION, "task": "imagenet", "kind": "classification",
        "protocol": "eval", "seed": seed, "subset": subset, "config": config,
        "config_hash": digest, "class_names": names, "status": "completed",
        "backbone": {"name": backbone, "arch": "resnet18", "pretraining_data": data,
                     "sha256": config["backbone"]["sha256"]},
        "data": {"fixture": True, "sizes": {"test": len(target)}, "obfuscation": images},
        "metrics": {"top1": float(top1.mean()),
                    "mean_per_class_accuracy": float(np.mean(per_class)),
                    "top5": float(topk_correct(logits, target, 5).mean())},
        "primary_metric": "top1", "started": "2026-01-01T00:00:00+00:00",
        "ended": f"2026-01-01T00:{seed:02d}:00+00:00",
    }  # fmt: skip
    ids = [f"val/{names[t]}/{i:05d}.JPEG" for i, t in enumerate(target)]

    def write_files(run_dir: Path) -> None:
        np.savez_compressed(run_dir / "predictions.npz", example_id=np.asarray(ids, np.str_),
                            target=target.astype(np.int64), logits=logits.astype(np.float32),
                            has_face=has_face)  # fmt: skip

    key = RunKey("imagenet", "eval", backbone, seed, digest)
    return RunStore(results).write(key, RunRecord.model_validate(record), write_files)


def _study(results: Path, names: list[str] = CATEGORIES) -> dict[tuple[str, int], Path]:
    """An original and a blurred ResNet-18 evaluated on the same images; the blurred one
    loses more in categories with more faces (the paper's finding, planted). Seeds 0 and 1 of
    the original, 1 and 2 of the blurred: the section must take seed 1 of both."""
    rng = np.random.default_rng(7)
    target = np.repeat(np.arange(len(names)), PER_CATEGORY)
    rank = np.tile(np.arange(PER_CATEGORY), len(names))  # position within its category
    share = np.linspace(0.0, 0.9, len(names))  # fraction of images with faces per category
    has_face = (rank < np.round(share * PER_CATEGORY)[target]).astype(np.float64)
    has_face[3] = np.nan  # one image the annotations do not list
    runs = {}
    for name, data, seeds, harm in (("original_r18", "original", (0, 1), 0.0),
                                    ("blurred_r18", "blurred", (1, 2), 0.6)):  # fmt: skip
        for seed in seeds:
            logits = rng.normal(size=(len(target), len(names))).astype(np.float32)
            right = rank < np.round((0.8 - harm * share) * PER_CATEGORY)[target] - seed % 2
            logits[np.arange(len(target)), target] += np.where(right, 4.0, -4.0)
            runs[(name, seed)] = _eval_run(results, name, data, seed, logits, target, names,
                                           has_face)  # fmt: skip
    return runs


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _leaderboard(results: Path, out: Path, *extra: str | Path) -> int:
    return bench("leaderboard", "--results", results, "--out", out, "--no-plots", "--n-boot",
                 "200", *extra)  # fmt: skip


def test_section_equals_compare_runs_and_scipy(tmp_path: Path) -> None:
    results, out = tmp_path / "results", tmp_path / "site"
    runs = _study(results)
    assert _leaderboard(results, out, "--top", "4") == 0
    reference = compare_runs(runs[("original_r18", 1)], runs[("blurred_r18", 1)])
    markdown = (out / "leaderboard.md").read_text()
    section = markdown.split("## ImageNet per-category comparison", 1)[1].split("\n## ", 1)[0]
    assert "### ImageNet · evaluation · full: blurred_r18 vs original_r18 **[fixture]**" in section
    assert "paired by architecture; seed 1 of both, the lowest they share;" in section
    assert f"{len(CATEGORIES) * PER_CATEGORY} images in {len(CATEGORIES)} categories" in section

    # the largest drops, in compare_runs' order and values (points), top 4 of them
    table = [line for line in section.splitlines() if line.startswith("| n0")]
    assert len(table) == 4
    for line, row in zip(table, reference.rows, strict=False):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == row["category"]
        assert float(cells[5]) == pytest.approx(100 * row["top1_drop"], abs=0.005)
        assert float(cells[2]) == pytest.approx(100 * row["faces"], abs=0.005)
    top1_a, top1_b = reference.overall["top1"]
    assert f"| Top-1 accuracy | {100 * top1_a:.2f} | {100 * top1_b:.2f} |" in section

    # every category and the correlations in the section's CSV, at full precision
    rows = _csv(out / "leaderboard_imagenet.csv")
    drops = {r["category"]: float(r["drop"]) for r in rows
             if r["section"] == "category" and r["metric"] == "top1"}  # fmt: skip
    assert drops == {r["category"]: r["top1_drop"] for r in reference.rows}
    assert {r["original_seed"] for r in rows} == {"1"} == {r["compared_seed"] for r in rows}
    corr = {r["metric"]: r for r in rows if r["section"] == "correlation"}
    for method in reference.correlations:
        assert float(corr[method.method]["value"]) == method.value
        assert float(corr[method.method]["low"]) == method.low

    # the same correlations, recomputed here from the predictions with scipy
    with np.load(runs[("original_r18", 1)] / "predictions.npz") as a, \
            np.load(runs[("blurred_r18", 1)] / "predictions.npz") as b:  # fmt: skip
        target, faces = a["target"], a["has_face"]
        hit_a, hit_b = a["logits"].argmax(1) == target, b["logits"].argmax(1) == target
    cats = range(len(CATEGORIES))
    x = [np.nanmean(faces[target == c]) for c in cats]
    y = [hit_a[target == c].mean() - hit_b[target == c].mean() for c in cats]
    assert float(corr["pearson"]["value"]) == pytest.approx(pearsonr(x, y).statistic, abs=1e-12)
    assert float(corr["spearman"]["value"]) == pytest.approx(spearmanr(x, y).statistic,
                                                             abs=1e-12)  # fmt: skip
    assert pearsonr(x, y).statistic > 0.5  # the planted effect is what the section reports
    assert f"| Pearson | {pearsonr(x, y).statistic:+.3f} |" in section
    # the ordinary setting of the eval runs stays, with its paired test, named for readers
    assert "## ImageNet · evaluation · full **[fixture]**" in markdown


def test_supercategory_means_and_a_bad_mapping(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    results, out = tmp_path / "results", tmp_path / "site"
    runs = _study(results)
    groups = {c: ("faces" if i >= 6 else "few faces") for i, c in enumerate(CATEGORIES[:-1])}
    (tmp_path / "groups.json").write_text(json.dumps(groups))
    assert _leaderboard(results, out, "--supercategories", tmp_path / "groups.json") == 0
    reference = compare_runs(runs[("original_r18", 1)], runs[("blurred_r18", 1)], groups)
    by_name = {r["category"]: r for r in reference.rows}
    faces = [by_name[c]["top1_drop"] for c in CATEGORIES[6:-1]]
    got = {g["supercategory"]: g for g in reference.supercategories}
    assert got["faces"]["top1_drop"] == pytest.approx(np.mean(faces))
    assert got["(unassigned)"]["categories"] == 1  # the last category is in no group
    markdown = (out / "leaderboard.md").read_text()
    assert f"| faces | 5 | {100 * got['faces']['top1_original']:.2f} |" in markdown
    rows = _csv(out / "leaderboard_imagenet.csv")
    assert {r["supercategory"] for r in rows if r["section"] == "category"} == \
        {"faces", "few faces", "(unassigned)"}  # fmt: skip

    (tmp_path / "bad.json").write_text("[1, 2]")
    assert _leaderboard(results, out, "--supercategories", tmp_path / "bad.json") == 2
    assert "expected a JSON object category -> name" in capsys.readouterr().err


def test_category_names_are_escaped_in_html_and_markdown(tmp_path: Path) -> None:
    results, out = tmp_path / "results", tmp_path / "site"
    names = ["<script>alert(1)</script>", *CATEGORIES[1:]]
    _study(results, names)
    assert _leaderboard(results, out, "--top", "20") == 0
    html = (out / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    # still one script, the sort script, allowed by its hash alone
    (policy,) = re.findall(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', html)
    (script,) = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and html.count("<script") == 1
    assert 'id="imagenet"' in html and 'class="imagenet-drops sortable"' in html
    markdown = (out / "leaderboard.md").read_text()
    assert "\\<script>alert(1)\\</script>" in markdown and "| <script>" not in markdown


def test_no_evaluation_pairs_no_section_and_no_stale_csv(tmp_path: Path) -> None:
    results, out = tmp_path / "results", tmp_path / "site"
    runs = _study(results)
    assert _leaderboard(results, out) == 0 and (out / "leaderboard_imagenet.csv").is_file()
    for key in (("blurred_r18", 1), ("blurred_r18", 2)):
        for path in runs[key].iterdir():
            path.unlink()
        runs[key].rmdir()
    assert _leaderboard(results, out) == 0
    assert "ImageNet per-category comparison" not in (out / "leaderboard.md").read_text()
    assert not (out / "leaderboard_imagenet.csv").exists()


def test_a_pair_that_cannot_be_compared_is_listed(tmp_path: Path) -> None:
    """Predictions of other images than the record's partner: a problem row, not a crash."""
    results, out = tmp_path / "results", tmp_path / "site"
    runs = _study(results)
    path = runs[("blurred_r18", 1)] / "predictions.npz"
    with np.load(path) as saved:
        arrays = {k: saved[k] for k in saved.files}
    arrays["example_id"] = np.asarray([f"other/{i}" for i in range(len(arrays["target"]))])
    np.savez_compressed(path, **arrays)
    assert _leaderboard(results, out) == 0
    markdown = (out / "leaderboard.md").read_text()
    assert "ImageNet per-category comparison of blurred_r18 with original_r18: the two runs " \
           "evaluated different images" in markdown  # fmt: skip


@test_browser.pytestmark  # skipped where Debian's chromium and chromium-driver are missing
def test_section_in_a_browser(tmp_path: Path, browser) -> None:  # noqa: ANN001, F811
    """Headless Chromium: no console error (the CSP still holds), the hostile category name is
    text, and the largest-drops table sorts by a clicked column with its rows whole."""
    from selenium.webdriver.common.by import By

    results, out = tmp_path / "results", tmp_path / "site"
    _study(results, ["<script>alert(1)</script>", *CATEGORIES[1:]])
    assert _leaderboard(results, out, "--top", "12") == 0
    browser.get((out / "index.html").as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
    assert browser.execute_script("return document.scripts.length") == 1
    drops = browser.find_element(By.CSS_SELECTOR, "#imagenet table.imagenet-drops")
    assert "<script>alert(1)</script>" in drops.text
    column = test_browser._column
    served = [float(v) for v in column(drops, 5)]
    assert served == sorted(served, reverse=True) and len(served) == 12
    pairs = dict(zip(column(drops, 0), column(drops, 5), strict=True))
    header = drops.find_elements(By.CSS_SELECTOR, "thead th")[5]
    assert header.text == "top-1 drop"
    header.click()
    assert [float(v) for v in column(drops, 5)] == sorted(served)
    assert dict(zip(column(drops, 0), column(drops, 5), strict=True)) == pairs


def test_each_backbone_on_its_own_images_as_in_table_4(tmp_path: Path) -> None:
    """The paper's Table 4: the original backbone on the original images vs the blurred one on
    their blurred copy (two settings: the data identities differ), beside the same-images pair
    of the blurred backbone evaluated on the original images."""
    results, out = tmp_path / "results", tmp_path / "site"
    rng = np.random.default_rng(3)
    target = np.repeat(np.arange(len(CATEGORIES)), PER_CATEGORY)
    faces = (rng.random(len(target)) < 0.5).astype(np.float64)
    runs = {}
    for name, data, images in (("original_r18", "original", "none"),
                               ("blurred_r18", "blurred", "none"),
                               ("blurred_r18", "blurred", "blur")):  # fmt: skip
        logits = rng.normal(size=(len(target), len(CATEGORIES))).astype(np.float32)
        runs[(name, images)] = _eval_run(results, name, data, 0, logits, target, CATEGORIES,
                                         faces, images=images)  # fmt: skip
    assert _leaderboard(results, out) == 0
    section = (out / "leaderboard.md").read_text().split("## ImageNet per-category", 1)[1]
    # two settings of one name: the headings carry the original images' setting id
    assert ": blurred_r18 vs original_r18 **[fixture]**" in section
    assert ": blurred_r18 (blurred on blur images) vs original_r18 **[fixture]**" in section
    assert "each on its own images (the paper's Table 4)" in section
    rows = [r for r in _csv(out / "leaderboard_imagenet.csv")
            if r["section"] == "category" and r["metric"] == "top1"]  # fmt: skip
    own = {r["category"]: float(r["drop"]) for r in rows if "/" in r["setting"]}
    same = {r["category"]: float(r["drop"]) for r in rows if "/" not in r["setting"]}
    reference = compare_runs(runs[("original_r18", "none")], runs[("blurred_r18", "blur")])
    assert own == {r["category"]: r["top1_drop"] for r in reference.rows}
    reference = compare_runs(runs[("original_r18", "none")], runs[("blurred_r18", "none")])
    assert same == {r["category"]: r["top1_drop"] for r in reference.rows} != own


def test_obfuscation_of_reads_bench_blurs_marker(tmp_path: Path) -> None:
    from benchmark.evaluate import obfuscation_of
    from benchmark.obfuscation.runner import SETTINGS_FILE

    root = tmp_path / "root"
    (root / "blurred" / "imagenet").mkdir(parents=True)
    (root / "plain" / "imagenet").mkdir(parents=True)
    (root / "blurred" / SETTINGS_FILE).write_text(json.dumps({"method": "blur"}))
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"method": "overlay"}))  # above the root
    assert obfuscation_of(root / "blurred" / "imagenet", root) == "blur"
    assert obfuscation_of(root / "plain" / "imagenet", root) == "none"
    (root / "plain" / "imagenet" / SETTINGS_FILE).write_text("{broken")
    assert obfuscation_of(root / "plain" / "imagenet", root) == "unknown"


def test_categories_without_images_are_left_out(tmp_path: Path) -> None:
    """An evaluation on a subset smaller than the number of categories leaves some of them
    without images: they have no accuracy, so they must neither sort anywhere in the drops
    table nor turn the supercategory means into NaN (found by review: NaN in the sort key
    left the table unsorted and hid the largest drop)."""
    rng = np.random.default_rng(3)
    present = np.arange(0, 12, 2)  # six of the twelve categories have 5 images each
    target = np.repeat(present, 5)
    rank = np.tile(np.arange(5), len(present))
    has_face = np.zeros(len(target))
    runs = []
    # the original gets every image right; the blurred one 5, 4, ... 0 of the 5 in the six
    # categories in turn (drops of 0, 20, ... 100 points)
    for name, data, right in (("original_r18", "original", rank < 5),
                              ("blurred_r18", "blurred",
                               rank < 5 - np.searchsorted(present, target))):  # fmt: skip
        logits = rng.normal(size=(len(target), 12)).astype(np.float32)
        logits[np.arange(len(target)), target] += np.where(right, 6.0, -6.0)
        runs.append(_eval_run(tmp_path / "results", name, data, 0, logits, target, CATEGORIES,
                              has_face))  # fmt: skip
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({c: "all" for c in CATEGORIES}))
    out = compare_runs(runs[0], runs[1], {c: "all" for c in CATEGORIES})
    assert [r["category"] for r in out.rows] == [CATEGORIES[c] for c in present[::-1]]
    drops = [r["top1_drop"] for r in out.rows]
    assert drops == sorted(drops, reverse=True) and not np.isnan(drops).any()
    assert len(out.rows) == 6 and any("6 of 12 categories have no image" in n for n in out.notes)
    (mean,) = out.supercategories
    assert mean["categories"] == 6 and mean["top1_drop"] == pytest.approx(np.mean(drops))
    assert _leaderboard(tmp_path / "results", tmp_path / "lb", "--top", "3",
                        "--supercategories", groups) == 0  # fmt: skip
    section = (tmp_path / "lb" / "leaderboard.md").read_text().split("Largest top-1 drops")[1]
    assert out.rows[0]["top1_drop"] == pytest.approx(1.0)
    assert CATEGORIES[present[-1]] in section.split("\n\n")[1]  # first row of the top 3
