"""The published page in a real browser: headless Debian Chromium (installed by .ci/run) loads
index.html with no console error (a script the Content-Security-Policy refused would log one),
its tables, reference rows and plots render, and its tables sort by a clicked column."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from synthetic_records import logits_with_correct, write_classification_run, write_failed_run

from benchmark import leaderboard

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1300,1800"]  # fmt: skip

pytestmark = pytest.mark.skipif(
    # CI installs them, so there a missing browser is a failure, not a skip
    not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()) and not os.environ.get("CI"),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them: "
    "apt-get install chromium chromium-driver)",
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Two paired backbones over 3 seeds on fixture data, a failed run, a hostile class name."""
    results = tmp_path / "results"
    rng = np.random.default_rng(0)
    names = ["<script>alert(1)</script>", *[f"class {i}" for i in range(1, 10)]]
    target = np.repeat(np.arange(10), 30)
    for seed in range(3):
        for backbone, data, rate in (("original_r50", "original", 0.8),
                                     ("blurred_r50", "blurred", 0.7)):  # fmt: skip
            correct = rng.random(len(target)) < rate
            write_classification_run(results, backbone, "resnet50", data, seed,
                                     logits_with_correct(target, correct, 10, rng), target,
                                     names, fixture=True)  # fmt: skip
    write_failed_run(results, "blurred_r18", 0, "RuntimeError: out of memory")
    out = tmp_path / "site"
    leaderboard.write(leaderboard.build(results, n_boot=300), out)
    return out


@pytest.fixture
def browser(tmp_path: Path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_renders_without_errors(site: Path, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get((site / "index.html").as_uri())
    assert browser.title == "blurbench leaderboard"
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []

    # tables: the comparison summary, the backbone table, the comparison, the most affected
    # classes, the reference rows and the problems
    ids = {t.get_attribute("id") for t in browser.find_elements(By.TAG_NAME, "table")}
    assert {"comparison-summary", "reference-table", "problem-table"} <= ids
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.backbones tr")) == 3
    summary = browser.find_element(By.ID, "comparison-summary").text
    assert "blurred_r50" in summary and "original_r50" in summary and "top1" in summary
    assert "Top-1 accuracy" in summary and "CIFAR-10 · fine-tune · full" in summary
    # the overview figure is the first picture on the page, and it shows
    first = browser.find_elements(By.TAG_NAME, "img")[0]
    assert first.get_attribute("id") == "overview-plot" and first.is_displayed()
    # the paper's row for the one architecture run is shown; the 15 others are folded away
    (shown,) = browser.find_elements(By.CSS_SELECTOR, "#reference-table tr.reference-row")
    assert "REFERENCE" in shown.text and "resnet50" in shown.text and "75.461" in shown.text
    folded = browser.find_elements(By.CSS_SELECTOR, "#reference-fold tr.reference-row")
    assert len(folded) == 15 and not any(r.is_displayed() for r in folded)
    browser.find_element(By.CSS_SELECTOR, "#reference-fold summary").click()
    assert all(r.is_displayed() and "REFERENCE" in r.text for r in folded)
    assert browser.find_element(By.ID, "fixture-banner").is_displayed()
    assert "out of memory" in browser.find_element(By.ID, "problem-table").text

    # plots decode and have a size; the hostile class name is text, not a script
    sizes = browser.execute_script(
        "return [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert sizes and all(done and w > 0 and h > 0 for done, w, h in sizes)
    assert browser.execute_script("return document.scripts.length") == 1  # the sort script
    assert "<script>alert(1)</script>" in browser.find_element(By.TAG_NAME, "body").text

    # every record link resolves to a record on disk
    hrefs = browser.execute_script("return [...document.links].map(a => a.href)")
    records = [Path(unquote(urlparse(h).path)) for h in hrefs if h.endswith("record.json")]
    assert len(records) == 6 and all(p.is_file() for p in records)

    shot = tmp_path / "leaderboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def _column(table, index: int) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.find_elements(By.TAG_NAME, "td")[index].text
            for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]  # fmt: skip


def test_tables_sort_by_the_clicked_column(site: Path, browser) -> None:
    from selenium.webdriver.common.by import By

    browser.get((site / "index.html").as_uri())
    affected = browser.find_element(By.CSS_SELECTOR, "table.affected")
    served = _column(affected, 1)  # most affected first: by |delta|, as in the markdown
    deltas = [float(d) for d in served]
    assert deltas != sorted(deltas) and len(deltas) == 10
    header = affected.find_elements(By.CSS_SELECTOR, "thead th")[1]
    assert header.text.startswith("delta")
    header.click()
    assert [float(d) for d in _column(affected, 1)] == sorted(deltas)
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert [float(d) for d in _column(affected, 1)] == sorted(deltas, reverse=True)
    assert header.get_attribute("aria-sort") == "descending"
    # text columns sort as text, rows move whole (a class keeps its own delta)
    pairs = dict(zip(_column(affected, 0), _column(affected, 1), strict=True))
    affected.find_elements(By.CSS_SELECTOR, "thead th")[0].click()
    names = _column(affected, 0)
    assert names == sorted(names, key=str.lower)
    assert dict(zip(names, _column(affected, 1), strict=True)) == pairs

    # the backbone table ranks by the primary metric; sorting by rank puts the best first
    backbones = browser.find_element(By.CSS_SELECTOR, "table.backbones")
    rank = backbones.find_elements(By.CSS_SELECTOR, "thead th")[0]
    assert rank.text.startswith("rank")
    rank.click()
    assert _column(backbones, 0) == ["1", "2"]
    top1 = [float(c.split(" ")[0]) for c in _column(backbones, 4)]
    assert top1 == sorted(top1, reverse=True)
    rank.click()
    assert _column(backbones, 0) == ["2", "1"]
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
