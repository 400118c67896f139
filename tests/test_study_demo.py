"""`bench demo --study`, reduced: the same function as the full demo on a smaller StudyScale,
from drawn faces to the leaderboard, then read back like a user would read its files."""

from __future__ import annotations

import csv
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
    toy=ToyScale(categories=4, train_per_class=6, val_per_class=4, image_size=40),
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


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_blurred_copy_differs_inside_faces_only(study: tuple) -> None:
    outcome, _ = study
    table = read_annotations(outcome.toy.annotations)
    assert len(table) == outcome.toy.images == 4 * (6 + 4)
    with_faces = {url: boxes for url, boxes in table.items() if boxes}
    assert 0 < len(with_faces) < len(table)
    for url, boxes in with_faces.items():
        original, blurred = _pixels(outcome.toy.root / url), _pixels(outcome.blurred / url)
        near = np.zeros(original.shape[:2], dtype=bool)
        for b in boxes:
            margin = 0.1 * b.size + 4 * 0.1 * b.size + 2  # enlargement + blur reach
            near[max(0, int(b.y0 - margin)):int(b.y1 + margin) + 1,
                 max(0, int(b.x0 - margin)):int(b.x1 + margin) + 1] = True  # fmt: skip
            inside = np.abs(original - blurred)[int(b.y0):int(b.y1), int(b.x0):int(b.x1)]
            assert inside.mean() > 3.0, url  # the face's eyes, mouth and edges are smoothed
        far = np.abs(original - blurred)[~near]
        if far.size:  # only JPEG re-encoding (quality 75) out there, not the blur
            assert far.mean() < 0.5 * np.abs(original - blurred)[near].mean(), url
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
    for data, run_dir in outcome.eval_runs.items():
        record = read_json(run_dir / "record.json")
        assert record["protocol"] == "eval" and record["backbone"]["name"] == BACKBONES[data]
        assert record["backbone"]["pretraining_data"] == data
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
    for what in ("html", "markdown", "csv", "imagenet"):
        assert outcome.leaderboard[what].is_file()
    with outcome.leaderboard["csv"].open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["section"] == "comparison"]
    compared = {(r["task"], r["backbone"], r["compared_with"]) for r in rows}
    assert compared == {(task, BACKBONES["blurred"], BACKBONES["original"])
                        for task in (*SMALL.tasks, "imagenet")}  # fmt: skip
    markdown = outcome.leaderboard["imagenet"].read_text()
    assert markdown.startswith("## ImageNet per category: study_original_r18 (original)")
    assert "| object on a face | 2 |" in markdown and "| object alone | 2 |" in markdown


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
    assert text.count("already done, val top-1") == 2  # both pretrainings
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
