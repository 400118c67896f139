"""`bench faces detect` / `bench faces stats`: offline detection on a face photo that ships in an
installed package (matplotlib's Grace Hopper), the paper's JSON out, and the statistics."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import matplotlib.cbook
import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main

GRACE_HOPPER = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
FACE_CENTRE = (265, 230)  # her face in the 512x600 photo (eyes at y ~200, mouth at y ~275)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "people").mkdir(parents=True)
    (src / "plain").mkdir()
    shutil.copy(GRACE_HOPPER, src / "people" / "hopper.jpg")
    gradient = np.linspace(0, 255, 300 * 200).reshape(200, 300).astype(np.uint8)
    Image.fromarray(gradient).save(src / "plain" / "gradient.png")
    (src / "plain" / "notes.txt").write_text("not an image\n")
    return src


def test_detect_finds_the_face_and_writes_the_papers_json(photos: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "faces.json"
    draw = tmp_path / "drawn"
    assert main(["faces", "detect", "--src", str(photos), "--out", str(out),
                 "--draw", str(draw)]) == 0
    assert "2 images, 1 with faces, 1 faces" in capsys.readouterr().out
    entries = {e["url"]: e["bboxes"] for e in json.loads(out.read_text())}
    assert entries["plain/gradient.png"] == []  # faceless images are listed, as in the paper
    [face] = entries["people/hopper.jpg"]
    assert face["x0"] < FACE_CENTRE[0] < face["x1"] and face["y0"] < FACE_CENTRE[1] < face["y1"]
    assert 0 <= face["x0"] < face["x1"] <= 512 and 0 <= face["y0"] < face["y1"] <= 600
    assert 120 < face["x1"] - face["x0"] < 350  # a face, not the whole portrait
    drawn = np.asarray(Image.open(draw / "people" / "hopper.png"))
    assert tuple(drawn[int(face["y0"]) + 1, int(face["x0"]) + 20]) == (255, 0, 0)

    # the draft feeds `bench blur` unchanged: the face is blurred, the corner is not
    dst = tmp_path / "blurred"
    assert main(["blur", "--annotations", str(out), "--src", str(photos), "--dst", str(dst),
                 "--workers", "1"]) == 0
    before = np.asarray(Image.open(photos / "people/hopper.jpg")).astype(int)
    after = np.asarray(Image.open(dst / "people/hopper.jpg")).astype(int)
    cx, cy = FACE_CENTRE
    assert np.abs(after[cy - 20:cy + 20, cx - 20:cx + 20] - before[cy - 20:cy + 20,
                                                                  cx - 20:cx + 20]).mean() > 5
    assert np.abs(after[560:, :40] - before[560:, :40]).mean() < 3  # JPEG re-encoding only


def test_threshold_drops_low_scores(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "faces.json"
    assert main(["faces", "detect", "--src", str(photos), "--out", str(out),
                 "--threshold", "1000"]) == 0
    assert all(e["bboxes"] == [] for e in json.loads(out.read_text()))


def test_without_opencv_one_line_and_exit_2(photos: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # what an install without the extra sees
    assert main(["faces", "detect", "--src", str(photos), "--out",
                 str(tmp_path / "f.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs OpenCV" in err and "[faces]" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "f.json").exists()


def test_stats_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    box = {"x0": 0, "y0": 0, "x1": 40, "y1": 20}  # d = 40
    big = {"x0": 0, "y0": 0, "x1": 10, "y1": 100}  # d = 100
    entries = [
        {"url": "train/n01/a.JPEG", "bboxes": [box, big, {"x0": 5, "y0": 5, "x1": 5, "y1": 9}]},
        {"url": "train/n01/b.JPEG", "bboxes": []},
        {"url": "train/n02/c.JPEG", "bboxes": [box]},
        {"url": "train/n02/d.JPEG", "bboxes": [box]},
        {"url": "val/e.JPEG", "bboxes": []},
    ]
    annotations = tmp_path / "faces.json"
    annotations.write_text(json.dumps(entries))
    plot = tmp_path / "stats.png"
    assert main(["faces", "stats", str(annotations), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "with faces        3 (60.0%)" in out
    assert "faces             4 (1 degenerate boxes not counted)" in out
    assert "faces per image   1.33 mean over images with faces, max 2" in out
    assert "min 40  p25 40  median 40  p75 55  max 100" in out
    assert "images by faces   1: 2  2: 1" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if line.startswith(("n01 ", "n02 ", "val "))}  # fmt: skip
    assert rows == {"n01": ["2", "1", "50.0%", "2"], "n02": ["2", "2", "100.0%", "2"],
                    "val": ["1", "0", "0.0%", "0"]}
    assert Image.open(plot).format == "PNG" and Image.open(plot).size[0] > 1000
