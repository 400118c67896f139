"""`bench blur` / `bench obfuscate`: the paper's blur pixel for pixel, every method local to the
faces, a complete and resumable output, and annotation paths that cannot leave --dst."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from benchmark.cli import main
from benchmark.obfuscation import METHODS, FaceBox, obfuscate_dataset, read_annotations
from benchmark.obfuscation.methods import register_method

ROOT = Path(__file__).resolve().parent.parent


def paper_blur(img: Image.Image, bboxes: list[dict[str, float]]) -> Image.Image:
    """The reference: ``blur`` from the paper's experiments/blurring.py, kept as written there
    (independent of benchmark.obfuscation)."""
    mask = Image.new(mode="L", size=img.size, color="white")
    max_diagonal = 0
    for bbox in bboxes:
        if bbox["x0"] >= bbox["x1"] or bbox["y0"] >= bbox["y1"]:
            continue
        diagonal = max(bbox["x1"] - bbox["x0"], bbox["y1"] - bbox["y0"])
        max_diagonal = max(max_diagonal, diagonal)
        bbox = [
            bbox["x0"] - 0.1 * diagonal,
            bbox["y0"] - 0.1 * diagonal,
            bbox["x1"] + 0.1 * diagonal,
            bbox["y1"] + 0.1 * diagonal,
        ]
        draw = ImageDraw.Draw(mask)
        draw.rectangle(bbox, fill="black")
    blurred_img = img.filter(ImageFilter.GaussianBlur(0.1 * max_diagonal))
    blurred_mask = mask.filter(ImageFilter.GaussianBlur(0.1 * max_diagonal))
    return Image.composite(img, blurred_img, blurred_mask)


def _photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Noise over a gradient: every pixel differs from its neighbours, so any blur shows."""
    grad = np.linspace(0, 200, w)[None, :, None] + np.linspace(0, 50, h)[:, None, None]
    noise = rng.integers(0, 55, (h, w, 3))
    return Image.fromarray((grad + noise).clip(0, 255).astype(np.uint8))


# several faces, one crossing the left/top border, one past the right/bottom border, an
# inverted box and an empty one (both skipped), fractional coordinates
BOXES = {
    "train/n01440764/n01440764_1.png": [
        {"x0": 20, "y0": 30, "x1": 70, "y1": 95},
        {"x0": 150.5, "y0": 40.25, "x1": 180.75, "y1": 70},
        {"x0": -12, "y0": -8, "x1": 25, "y1": 20},
        {"x0": 190, "y0": 110, "x1": 260, "y1": 170},
        {"x0": 90, "y0": 60, "x1": 80, "y1": 90},
        {"x0": 100, "y0": 100, "x1": 130, "y1": 100},
    ],
    "train/n01440764/n01440764_2.png": [{"x0": 5, "y0": 5, "x1": 200, "y1": 140}],
    "val/ILSVRC2012_val_00000001.png": [{"x0": 40, "y0": 20, "x1": 60, "y1": 44}],
    "train/n01440764/n01440764_3.png": [],  # listed without a face: copied unchanged
}


def _dataset(tmp_path: Path) -> tuple[Path, Path]:
    """An ImageNet-like folder of PNGs (val in ImageFolder layout, as torchvision has it), a
    faceless JPEG, a non-image file, and the paper's annotation JSON."""
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    for url in BOXES:
        on_disk = url.replace("val/", "val/n01440764/")  # the paper's val urls name no class
        (src / on_disk).parent.mkdir(parents=True, exist_ok=True)
        _photo(rng, 220, 150).save(src / on_disk)
    (src / "train/n01443537").mkdir(parents=True)
    _photo(rng, 64, 48).save(src / "train/n01443537/n01443537_9.JPEG", quality=90)
    (src / "LOC_synset_mapping.txt").write_text("n01440764 tench\n")
    annotations = tmp_path / "face_annotations.json"
    annotations.write_text(json.dumps([{"url": u, "bboxes": b} for u, b in BOXES.items()]))
    return src, annotations


def test_bench_blur_matches_the_papers_code_pixel_for_pixel(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    src, annotations = _dataset(tmp_path)
    dst = tmp_path / "dst"
    assert main(["blur", "--annotations", str(annotations), "--src", str(src), "--dst",
                 str(dst), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "3 obfuscated" in out and "3 copied unchanged" in out
    assert "6 faces, 2 degenerate boxes skipped" in out
    for url, boxes in BOXES.items():
        on_disk = url.replace("val/", "val/n01440764/")
        original = Image.open(src / on_disk)
        expected = np.asarray(paper_blur(original.convert("RGB"), boxes))
        got = np.asarray(Image.open(dst / on_disk))
        assert got.shape == expected.shape
        assert np.array_equal(got, expected), url
        if boxes:  # the blur did something
            assert not np.array_equal(got, np.asarray(original))
    for rel in ("train/n01440764/n01440764_3.png", "train/n01443537/n01443537_9.JPEG",
                "LOC_synset_mapping.txt"):
        assert (dst / rel).read_bytes() == (src / rel).read_bytes(), rel  # byte-identical copy


def test_jpeg_is_saved_as_the_papers_img_save_did(tmp_path: Path) -> None:
    """The paper's script saved with ``img.save(target_path)`` (.jpg): PIL's default JPEG
    encoding, quality 75; ``--quality`` changes it."""
    src = tmp_path / "src"
    src.mkdir()
    image = _photo(np.random.default_rng(1), 200, 150)
    image.save(src / "a.JPEG", quality=95)
    boxes = [{"x0": 30, "y0": 20, "x1": 90, "y1": 100}]
    table = {"a.JPEG": [FaceBox(**b) for b in boxes]}
    reference = io.BytesIO()
    paper_blur(Image.open(src / "a.JPEG").convert("RGB"), boxes).save(reference, "JPEG")
    obfuscate_dataset(table, src, tmp_path / "q75", workers=1, progress=False)
    assert (tmp_path / "q75/a.JPEG").read_bytes() == reference.getvalue()
    obfuscate_dataset(table, src, tmp_path / "q95", workers=1, quality=95, progress=False)
    assert (tmp_path / "q95/a.JPEG").stat().st_size > len(reference.getvalue())


def _far_from_faces(size: tuple[int, int], boxes: list[FaceBox], margin: float) -> np.ndarray:
    """True where a pixel is more than ``margin`` pixels outside every enlarged box."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    far = np.ones((h, w), bool)
    for b in boxes:
        if b.degenerate:
            continue
        e = 0.1 * b.size + margin
        far &= ~((xs >= b.x0 - e) & (xs <= b.x1 + e) & (ys >= b.y0 - e) & (ys <= b.y1 + e))
    return far


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_changes_the_faces_and_nothing_far_from_them(method: str,
                                                                  tmp_path: Path) -> None:
    src, annotations = _dataset(tmp_path)
    dst = tmp_path / method
    assert main(["obfuscate", "--method", method, "--annotations", str(annotations), "--src",
                 str(src), "--dst", str(dst), "--workers", "1"]) == 0
    table = read_annotations(annotations)
    for url, boxes in table.items():
        on_disk = url.replace("val/", "val/n01440764/")
        before = np.asarray(Image.open(src / on_disk).convert("RGB")).astype(int)
        after = np.asarray(Image.open(dst / on_disk)).astype(int)
        valid = [b for b in boxes if not b.degenerate]
        # the blur's Gaussian reaches about 3 radii (PIL: three box blurs), radius 0.1 x max d
        radius = 0.1 * max((b.size for b in valid), default=0)
        far = _far_from_faces((before.shape[1], before.shape[0]), boxes, 4 * radius + 2)
        assert np.array_equal(after[far], before[far]), (method, url)
        for b in valid:  # the middle of each face is changed
            cx, cy = int((b.x0 + b.x1) / 2), int((b.y0 + b.y1) / 2)
            if 0 <= cx < before.shape[1] and 0 <= cy < before.shape[0]:
                patch = np.s_[max(cy - 3, 0):cy + 3, max(cx - 3, 0):cx + 3]
                assert not np.array_equal(after[patch], before[patch]), (method, url, b)


def test_pixelate_block_and_overlay_fill(tmp_path: Path) -> None:
    image = _photo(np.random.default_rng(2), 64, 64)
    box = [FaceBox(10, 10, 50, 50)]  # enlarged by 4: pixels 6..54
    filled = np.asarray(METHODS["overlay"](image, box, fill=(255, 0, 10)))
    assert (filled[6:55, 6:55] == [255, 0, 10]).all() and (filled[6:55, 5] != [255, 0, 10]).any()
    mosaic = np.asarray(METHODS["pixelate"](image, box, block=8))
    square = mosaic[8:16, 8:16].reshape(-1, 3)
    assert (square == square[0]).all()  # one colour per 8x8 square of the grid
    mean = np.asarray(image)[8:16, 8:16].reshape(-1, 3).mean(0)
    assert np.abs(square[0] - mean).max() <= 1


def test_csv_annotations_give_the_same_output_as_json(tmp_path: Path) -> None:
    src, annotations = _dataset(tmp_path)
    csv = tmp_path / "faces.csv"
    rows = ["path,x0,y0,x1,y1"] + [
        f"{url},{b['x0']},{b['y0']},{b['x1']},{b['y1']}" for url, boxes in BOXES.items()
        for b in boxes
    ]  # fmt: skip
    csv.write_text("\n".join(rows) + "\n")
    a = obfuscate_dataset(annotations, src, tmp_path / "a", workers=1, progress=False)
    b = obfuscate_dataset(csv, src, tmp_path / "b", workers=1, progress=False)
    assert (a.faces, a.skipped_boxes, b.faces, b.skipped_boxes) == (6, 2, 6, 2)
    for path in (tmp_path / "a").rglob("*.png"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


@pytest.mark.parametrize("url", ["../escape.png", "/etc/passwd", "train/../../x.png",
                                 "a\\..\\b.png", "./a.png"])
def test_annotation_paths_cannot_leave_the_dataset(url: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    src, _ = _dataset(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"url": url, "bboxes": []}]))
    assert main(["blur", "--annotations", str(bad), "--src", str(src), "--dst",
                 str(tmp_path / "dst")]) == 2
    err = capsys.readouterr().err
    assert "must be relative to the dataset root" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "dst").exists() and not (tmp_path / "escape.png").exists()


def test_user_mistakes_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src, annotations = _dataset(tmp_path)
    dst = str(tmp_path / "dst")
    common = ["--annotations", str(annotations), "--src", str(src), "--dst", dst]
    assert main(["obfuscate", "--method", "blur", "--block", "4", *common]) == 2
    assert "does not take --block" in capsys.readouterr().err
    assert main(["blur", *common[:-2], "--dst", str(src / "inside")]) == 2
    assert "overlap" in capsys.readouterr().err
    assert main(["blur", *common, "--workers", "1"]) == 0
    capsys.readouterr()
    # the same folder with another method would mix two obfuscations: refused
    assert main(["obfuscate", "--method", "pixelate", *common]) == 2
    assert "holds the output of other settings" in capsys.readouterr().err
    moved = tmp_path / "elsewhere.json"
    moved.write_text(json.dumps([{"url": "nowhere/x.png", "bboxes": []}]))
    assert main(["blur", "--annotations", str(moved), "--src", str(src), "--dst",
                 str(tmp_path / "d2")]) == 2
    assert "none of the 1 annotated images is under --src" in capsys.readouterr().err
    assert not (tmp_path / "d2").exists()  # refused before anything is written


def test_outputs_respect_the_umask(tmp_path: Path) -> None:
    src, annotations = _dataset(tmp_path)
    old = os.umask(0o027)
    try:
        obfuscate_dataset(annotations, src, tmp_path / "dst", workers=1, progress=False)
    finally:
        os.umask(old)
    modes = {p.stat().st_mode & 0o777 for p in (tmp_path / "dst").rglob("*") if p.is_file()}
    assert modes == {0o640}


def test_a_second_method_under_a_taken_name_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_method("blur")(lambda image, boxes: image)


def test_rerun_after_kill_9_keeps_finished_outputs_and_completes(tmp_path: Path) -> None:
    """Kill the process hard mid-run; the rerun leaves every finished file as it was (same
    inode and mtime) and writes the rest, and no half-written file is left behind."""
    rng = np.random.default_rng(3)
    src = tmp_path / "src"
    (src / "train/n1").mkdir(parents=True)
    entries = []
    n = 120
    for i in range(n):
        _photo(rng, 160, 120).save(src / f"train/n1/{i:03d}.png")
        entries.append({"url": f"train/n1/{i:03d}.png",
                        "bboxes": [{"x0": 10, "y0": 10, "x1": 150, "y1": 110}]})
    annotations = tmp_path / "a.json"
    annotations.write_text(json.dumps(entries))
    dst = tmp_path / "dst"
    command = [sys.executable, "-m", "benchmark.cli", "blur", "--annotations", str(annotations),
               "--src", str(src), "--dst", str(dst), "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(dst.glob("train/n1/*.png"))) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in dst.glob("train/n1/*.png")}
    assert 5 <= len(finished) < n, "the run must be killed part-way for this test to mean much"
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{len(finished)} already done" in result.stdout
    assert f"{n - len(finished)} obfuscated" in result.stdout
    for path, identity in finished.items():
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == identity, path
    outputs = sorted(dst.glob("train/n1/*.png"))
    assert len(outputs) == n
    for path in outputs:  # every output is whole and right, including the one being written
        expected = paper_blur(Image.open(src / path.relative_to(dst)).convert("RGB"),
                              entries[0]["bboxes"])
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(expected))
    leftovers = [p for p in dst.rglob("*") if p.is_file() and p.suffix != ".png"]
    assert [p.name for p in leftovers] == [".blurbench-obfuscation.json"]


def test_a_symlink_planted_in_dst_cannot_send_outputs_elsewhere(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src, annotations = _dataset(tmp_path)
    dst, outside = tmp_path / "dst", tmp_path / "outside"
    args = ["blur", "--annotations", str(annotations), "--src", str(src), "--dst", str(dst),
            "--workers", "1"]
    assert main(args) == 0
    capsys.readouterr()
    shutil.rmtree(dst / "train/n01440764")
    outside.mkdir()
    (dst / "train/n01440764").symlink_to(outside)
    assert main(args) == 2
    assert "leads outside --dst" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


def test_reencode_faceless_resaves_listed_images_as_the_papers_script_did(tmp_path: Path) -> None:
    src, _ = _dataset(tmp_path)
    faceless = "train/n01443537/n01443537_9.JPEG"  # saved at quality 90
    table = {faceless: [], "train/n01440764/n01440764_2.png": []}
    obfuscate_dataset(table, src, tmp_path / "copied", workers=1, progress=False)
    assert (tmp_path / "copied" / faceless).read_bytes() == (src / faceless).read_bytes()
    obfuscate_dataset(table, src, tmp_path / "resaved", workers=1, reencode_faceless=True,
                      progress=False)
    reference = io.BytesIO()  # the paper: blur(img, url) with no box, then img.save(path)
    paper_blur(Image.open(src / faceless).convert("RGB"), []).save(reference, "JPEG")
    assert (tmp_path / "resaved" / faceless).read_bytes() == reference.getvalue()
    assert reference.getvalue() != (src / faceless).read_bytes()


def test_an_unreadable_image_is_listed_and_the_rest_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src, annotations = _dataset(tmp_path)
    broken = src / "train/n01440764/n01440764_2.png"
    broken.write_bytes(broken.read_bytes()[:200])  # truncated mid-file
    dst = tmp_path / "dst"
    assert main(["blur", "--annotations", str(annotations), "--src", str(src), "--dst",
                 str(dst), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "FAILED train/n01440764/n01440764_2.png" in err and "1 file(s) could not" in err
    assert not (dst / "train/n01440764/n01440764_2.png").exists()
    assert (dst / "train/n01440764/n01440764_1.png").is_file()
