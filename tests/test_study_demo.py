"""`bench demo --study`, reduced: the same function as the full demo on a smaller StudyScale,
from drawn faces to the leaderboard, then read back like a user would read its files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from helpers import bench, read_json
from PIL import Image

from benchmark.backbone_registry import read_registry_file
from benchmark.data.toy_faces import CATEGORIES, ToyScale
from benchmark.obfuscation import read_annotations
from benchmark.study_demo import BACKBONES, StudyScale, run_study, summary_lines

SMALL = StudyScale(
    toy=ToyScale(categories=4, train_per_class=6, val_per_class=4, image_size=64),
    image_size=32, epochs=1, batch_size=8, tasks=("cifar10", "celeba"), transfer_steps=2,
    n_boot=200,
)  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    import os

    workdir = tmp_path_factory.mktemp("study")
    lines: list[str] = []
    before = os.environ.get("BENCH_USER_BACKBONES_FILE")
    outcome = run_study(workdir, SMALL, echo=lines.append)
    # the demo's registry is its own, and the caller's setting is restored afterwards
    assert os.environ.get("BENCH_USER_BACKBONES_FILE") == before
    return outcome, lines


def _pixels(source: Path | io.BytesIO) -> np.ndarray:
    with Image.open(source) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def _reencoded(path: Path) -> np.ndarray:
    """The original as `bench blur` writes a pixel it leaves alone: decoded, re-encoded as a
    JPEG at quality 75 (the paper's), decoded."""
    buffer = io.BytesIO()
    with Image.open(path) as image:
        image.convert("RGB").save(buffer, format="JPEG", quality=75)
    return _pixels(buffer)


def _grown_to_jpeg_blocks(mask: np.ndarray, cell: int = 16) -> np.ndarray:
    """Every 16 x 16 JPEG block (4:2:0 MCU) that ``mask`` touches, and its neighbours: a block
    is encoded on its own, but chroma upsampling reads across the block's edge."""
    rows, cols = -(-mask.shape[0] // cell), -(-mask.shape[1] // cell)
    touched = np.zeros((rows + 2, cols + 2), dtype=bool)
    for r in range(rows):
        for c in range(cols):
            if mask[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell].any():
                touched[r:r + 3, c:c + 3] = True
    grown = np.repeat(np.repeat(touched[1:-1, 1:-1], cell, 0), cell, 1)
    return grown[: mask.shape[0], : mask.shape[1]]


def test_blurred_copy_differs_inside_faces_only(study: tuple) -> None:
    outcome, _ = study
    table = read_annotations(outcome.toy.annotations)
    assert len(table) == outcome.toy.images == 4 * (6 + 4)
    with_faces = {url: boxes for url, boxes in table.items() if boxes}
    assert 0 < len(with_faces) < len(table)
    far_pixels = 0
    for url, boxes in with_faces.items():
        reference, blurred = _reencoded(outcome.toy.root / url), _pixels(outcome.blurred / url)
        diff = np.abs(reference - blurred)
        near = np.zeros(diff.shape[:2], dtype=bool)
        for b in boxes:
            margin = 0.1 * b.size + 4 * 0.1 * b.size + 2  # enlargement + blur reach
            near[max(0, int(b.y0 - margin)):int(b.y1 + margin) + 1,
                 max(0, int(b.x0 - margin)):int(b.x1 + margin) + 1] = True  # fmt: skip
            inside = diff[int(b.y0):int(b.y1), int(b.x0):int(b.x1)]
            assert inside.mean() > 3.0, url  # the face's eyes, mouth and edges are smoothed
        far = diff[~_grown_to_jpeg_blocks(near)]
        far_pixels += far.size // 3
        assert far.size == 0 or far.max() == 0, url  # untouched blocks: only the re-encoding
    assert far_pixels > 1000  # the check above saw enough of the images
    for url in set(table) - set(with_faces):  # faceless images are copied byte for byte
        assert (outcome.blurred / url).read_bytes() == (outcome.toy.root / url).read_bytes()


def test_both_backbones_registered_with_their_pretraining_data(study: tuple) -> None:
    outcome, _ = study
    entries = {e.name: e for e in read_registry_file(outcome.registry)}
    assert set(entries) == set(BACKBONES.values())
    for data, name in BACKBONES.items():
        assert entries[name].data == data and entries[name].arch == "resnet18"
        record = read_json(outcome.workdir / "pretrained" / name / "pretrain.json")
        trained_on = outcome.toy.root if data == "original" else outcome.blurred
        assert record["data"]["path"] == str(trained_on.resolve())
        assert entries[name].data_identity == f"sha256:{record['data']['sha256']}"
        assert record["training"]["steps"] == 3  # 4 x 6 images, batch 8, one epoch
    assert read_json(outcome.workdir / "pretrained" / BACKBONES["original"] / "pretrain.json")[
        "data"]["sha256"] != read_json(outcome.workdir / "pretrained" / BACKBONES["blurred"]
                                       / "pretrain.json")["data"]["sha256"]  # fmt: skip


def test_per_category_evaluations_with_faces(study: tuple) -> None:
    outcome, _ = study
    expected = sorted(c.name for c in CATEGORIES[:4])
    assert sorted(outcome.eval_runs) == ["blurred on blurred", "blurred on original",
                                         "original on original"]  # fmt: skip
    for label, run_dir in outcome.eval_runs.items():
        data, _, images = label.split()
        record = read_json(run_dir / "record.json")
        assert record["protocol"] == "eval" and record["backbone"]["name"] == BACKBONES[data]
        assert record["backbone"]["pretraining_data"] == data
        folder = outcome.toy.root if images == "original" else outcome.blurred
        assert record["data"]["test"]["folder"] == str(folder)
        per = record["metrics"]["per_category"]
        assert sorted(per) == expected == record["class_names"]
        assert all(row["images"] == 4 for row in per.values())
        # the generator's shares, as the annotations say them: 1 on the object, some, none
        assert (per["mask"]["faces"], per["ball"]["faces"], per["tree"]["faces"]) == (1, 0.5, 0)
        assert (run_dir / "per_category.md").is_file()


def test_transfer_runs_and_leaderboard_pair_the_two_backbones(study: tuple) -> None:
    outcome, lines = study
    assert len(outcome.transfer_runs) == 4
    for run_dir in outcome.transfer_runs:
        record = read_json(run_dir / "record.json")
        assert record["status"] == "completed" and record["task"] in SMALL.tasks
        assert record["backbone"]["name"] in BACKBONES.values()
        assert record["training"]["steps"] == 2
    for what in ("html", "markdown", "csv", "imagenet csv"):
        assert outcome.leaderboard[what].is_file()
    with outcome.leaderboard["csv"].open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["section"] == "comparison"]
    compared = {(r["task"], r["backbone"], r["compared_with"]) for r in rows}
    assert compared == {(task, BACKBONES["blurred"], BACKBONES["original"])
                        for task in (*SMALL.tasks, "imagenet")}  # fmt: skip
    section = outcome.imagenet_section
    assert section.startswith("## ImageNet per-category comparison")
    assert section in outcome.leaderboard["markdown"].read_text()
    assert "blurred on blur images" in section  # the paper's Table 4 pairing as well
    assert "| object on a face | 2 |" in section and "| object alone | 2 |" in section


def test_progress_lines_and_the_toy_data_warning(study: tuple) -> None:
    outcome, lines = study
    assert lines[0].startswith("TOY DATA:") and "says nothing about face blurring" in lines[0]
    stages = [line for line in lines if line.startswith("[")]
    assert [s.split("]")[0] + "]" for s in stages] == [f"[{i}/7]" for i in range(1, 8)]
    assert all(s.endswith(" s)") for s in stages)
    summary = summary_lines(outcome, SMALL)
    assert summary[-1].startswith("TOY DATA:")
    assert any(str(outcome.leaderboard["html"]) in line for line in summary)
    assert any(str(outcome.leaderboard["markdown"]) in line for line in summary)
    assert set(outcome.stage_seconds) == {"images", "blur", "pretrain original",
                                          "pretrain blurred", "evaluate", "transfer",
                                          "leaderboard"}  # fmt: skip


def test_rerun_is_already_done(study: tuple) -> None:
    outcome, _ = study
    weights = {n: (outcome.workdir / "pretrained" / n / "model.safetensors").read_bytes()
               for n in BACKBONES.values()}  # fmt: skip
    lines: list[str] = []
    again = run_study(outcome.workdir, SMALL, echo=lines.append)
    text = "\n".join(lines)
    assert "toy image set" in text and "(already done)" in text
    assert "0 obfuscated, 0 copied unchanged, 43 already done" in text  # bench blur: 40 images
    assert text.count("images): already done, train loss") == 2  # both pretrainings
    assert not any(line.strip().endswith(": running") for line in lines)  # no transfer run again
    assert again.transfer_runs == outcome.transfer_runs
    for name, data in weights.items():
        assert (outcome.workdir / "pretrained" / name / "model.safetensors").read_bytes() == data


def test_cli_mistakes_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("demo", "--study", "--results", tmp_path / "r", "--workdir", tmp_path) == 2
    assert "--results is for the plain demo" in capsys.readouterr().err
    other = tmp_path / "other"
    (other / "data" / "imagenet").mkdir(parents=True)  # something else already lives there
    (other / "data" / "imagenet" / "notes.txt").write_text("mine")
    assert bench("demo", "--study", "--workdir", other) == 2
    err = capsys.readouterr().err
    assert "is not this toy set" in err and len(err.strip().splitlines()) == 1
    assert (other / "data" / "imagenet" / "notes.txt").read_text() == "mine"
