"""A screenshot of the leaderboard page in headless Chromium, as a reader first sees it.

Builds a small leaderboard from synthetic records (two tasks; ResNet-18 and ResNet-50, each
original and blurred, three seeds; the blurred ones planted a little worse), opens its
index.html in Debian's chromium through chromedriver (as tests/test_browser.py does), sorts
the first backbone table by its rank column, and saves a full-page PNG.

    python scripts/leaderboard_screenshot.py                       # /tmp/leaderboard_screenshot.png
    python scripts/leaderboard_screenshot.py --out shot.png --height 2400
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from synthetic_records import logits_with_correct, write_classification_run  # noqa: E402

from benchmark import leaderboard  # noqa: E402

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]  # fmt: skip


def write_records(results: Path) -> None:
    rng = np.random.default_rng(7)
    target = np.repeat(np.arange(10), 40)
    for task, drops in (("cifar10", (0.01, 0.03)), ("sun397", (0.02, 0.0))):
        for arch, drop, base in (("resnet18", drops[0], 0.78), ("resnet50", drops[1], 0.84)):
            for seed in range(3):
                for data, rate in (("original", base), ("blurred", base - drop)):
                    correct = rng.random(len(target)) < rate
                    write_classification_run(results, f"{data}_{arch}", arch, data, seed,
                                             logits_with_correct(target, correct, 10, rng),
                                             target, CLASSES, task=task)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/leaderboard_screenshot.png"))
    parser.add_argument("--width", type=int, default=1300)
    parser.add_argument("--height", type=int, default=1800)
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    work = Path(tempfile.mkdtemp(prefix="leaderboard-shot-"))
    try:
        write_records(work / "results")
        leaderboard.write(leaderboard.build(work / "results", n_boot=1000), work / "site")
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", f"--window-size={args.width},"
                     f"{args.height}", f"--user-data-dir={work / 'profile'}"):  # fmt: skip
            options.add_argument(flag)
        service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
        driver = webdriver.Chrome(service=service, options=options)
        try:
            driver.get((work / "site" / "index.html").as_uri())
            driver.find_element(By.CSS_SELECTOR, "table.backbones thead th").click()  # rank
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
