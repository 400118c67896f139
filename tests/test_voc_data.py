"""The VOC adapter and the detection DataModule on the fixture: real layout, strict annotations,
07+12, boxes that follow the image through flips, and one-line errors naming the bad file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import bench

from benchmark.data import get_adapter
from benchmark.data.detection import (
    DetectionDataModule,
    DetectionSplit,
    collate_detection,
    continuous_to_voc,
)
from benchmark.data.fixtures import MANIFEST_NAME
from benchmark.data.splits import SelectedSplit
from benchmark.detection.voc_annotations import VOC_CLASSES, parse_voc_annotation
from benchmark.errors import BenchError
from benchmark.tasks import for_subset, get_task


def test_fixture_has_the_real_voc_layout(voc_root: Path) -> None:
    voc07 = voc_root / "VOCdevkit" / "VOC2007"
    main = voc07 / "ImageSets" / "Main"
    for name in ("train", "val", "trainval", "test", "dog_trainval", "dog_test"):
        assert (main / f"{name}.txt").is_file()
    trainval = (main / "trainval.txt").read_text().split()
    test = (main / "test.txt").read_text().split()
    assert len(trainval) == 40 and len(test) == 20 and not set(trainval) & set(test)
    assert (
        trainval
        == (main / "train.txt").read_text().split() + (main / "val.txt").read_text().split()
    )
    xml = (voc07 / "Annotations" / f"{test[0]}.xml").read_text()
    for tag in ("<size>", "<width>", "<depth>3</depth>", "<difficult>", "<truncated>", "<pose>"):
        assert tag in xml
    assert (voc07 / "JPEGImages" / f"{test[0]}.jpg").is_file()
    assert (voc_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main" / "trainval.txt").is_file()
    # every class has a non-difficult object in the test set, so every AP is defined on it
    test_classes = {
        o.name
        for i in test
        for o in parse_voc_annotation(voc07 / "Annotations" / f"{i}.xml").objects
        if not o.difficult
    }
    assert test_classes == set(VOC_CLASSES)
    # the per-class lists agree with the XML: 1 present, -1 absent, 0 only difficult
    lines = dict(line.split() for line in (main / "dog_test.txt").read_text().splitlines())
    for image_id, flag in lines.items():
        objs = parse_voc_annotation(voc07 / "Annotations" / f"{image_id}.xml").objects
        dogs = [o for o in objs if o.name == "dog"]
        expected = -1 if not dogs else (1 if any(not o.difficult for o in dogs) else 0)
        assert int(flag) == expected


def test_adapter_reads_splits_and_07_plus_12(voc_root: Path) -> None:
    adapter = get_adapter("voc")
    test = adapter.load_split(voc_root, "test", download=False)
    assert len(test.example_ids) == 20 and test.example_ids[0] == "VOC2007/000041"
    assert test.class_names == list(VOC_CLASSES) and test.is_fixture
    image, ann = test.dataset[0]
    assert image.mode == "RGB" and image.size == (ann.width, ann.height)
    assert any(o.difficult for a in test.dataset.annotations for o in a.objects)  # kept

    trainval = adapter.load_split(voc_root, "trainval", download=False)
    both = adapter.load_split(voc_root, "trainval", download=False, trainval_years=[2007, 2012])
    assert len(trainval.example_ids) == 40 and len(both.example_ids) == 50
    assert both.example_ids[:40] == trainval.example_ids
    assert both.example_ids[-1] == "VOC2012/2008_000010"
    assert both.source == {"voc_trainval_years": [2007, 2012]}
    # stratification label: a class the image contains (rarest first)
    for label, ann in zip(trainval.labels, trainval.dataset.annotations, strict=True):
        assert VOC_CLASSES[label] in {o.name for o in ann.objects if not o.difficult}
    with pytest.raises(BenchError, match=r"trainval_years \[2009\]"):
        adapter.load_split(voc_root, "trainval", download=False, trainval_years=[2009])


def test_tiny_subset_is_spread_over_classes(voc_root: Path) -> None:
    task = for_subset(get_task("voc"), "tiny")
    dm = DetectionDataModule(task, voc_root, "tiny", num_workers=0)
    dm.setup()
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 16, "val": 4, "test": 8}
    assert not set(dm.splits["train"].example_ids) & set(dm.splits["val"].example_ids)
    # stratified on each image's rarest class: 8 test images, 8 different such classes
    assert len(set(dm.splits["test"].labels().tolist())) == 8
    # the val carve depends on the task only: a second datamodule carves the same images
    again = DetectionDataModule(task, voc_root, "tiny", num_workers=0)
    again.setup()
    assert again.splits["val"].example_ids == dm.splits["val"].example_ids


def test_batches_keep_original_sizes_and_flip_boxes(voc_root: Path) -> None:
    data = get_adapter("voc").load_split(voc_root, "test", download=False)
    split = SelectedSplit(data, np.arange(4))
    plain = DetectionSplit(split, horizontal_flip=False)
    images, targets, positions = collate_detection([plain[i] for i in range(4)])
    assert positions.tolist() == [0, 1, 2, 3]
    for image, target, ann in zip(images, targets, data.dataset.annotations, strict=False):
        assert image.shape == (3, ann.height, ann.width) and image.dtype == torch.float32
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        voc = np.array([o.bbox for o in ann.objects])
        # continuous coordinates cover exactly the annotated pixels; back to VOC is exact
        assert torch.equal(continuous_to_voc(target["boxes"]), torch.tensor(voc).float())
        assert target["labels"].tolist() == [VOC_CLASSES.index(o.name) + 1 for o in ann.objects]
        assert target["difficult"].tolist() == [o.difficult for o in ann.objects]
        assert type(target["boxes"]) is torch.Tensor
    # flipping: with p=0.5 some draw flips; a flipped box is mirrored, the image too
    flipping = DetectionSplit(split, horizontal_flip=True)
    torch.manual_seed(0)
    seen_flip = False
    for _ in range(10):
        image, target, _ = flipping[0]
        boxes, width = targets[0]["boxes"], images[0].shape[-1]
        if torch.equal(image, images[0]):
            assert torch.equal(target["boxes"], boxes)
        else:
            seen_flip = True
            assert torch.equal(image, images[0].flip(-1))
            mirrored = torch.stack(
                [width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1
            )
            assert torch.allclose(target["boxes"], mirrored)
    assert seen_flip


def _copy_without_manifest(voc_root: Path, tmp_path: Path) -> Path:
    """A copy that reads like a real download (no fixture manifest), to damage."""
    root = tmp_path / "data"
    shutil.copytree(voc_root / "VOCdevkit", root / "VOCdevkit")
    for year in ("VOC2007", "VOC2012"):
        (root / "VOCdevkit" / year / MANIFEST_NAME).unlink()
    return root


def _first_test_xml(root: Path) -> Path:
    voc07 = root / "VOCdevkit" / "VOC2007"
    first = (voc07 / "ImageSets" / "Main" / "test.txt").read_text().split()[0]
    return voc07 / "Annotations" / f"{first}.xml"


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda xml: xml.write_text(xml.read_text().replace("<xmax>", "<xmax>9", 1)),
         "lies outside the"),
        (lambda xml: xml.write_text(
            re.sub(r"<name>\w+</name>", "<name>unicorn</name>", xml.read_text(), count=1)),
         "unknown class name 'unicorn'"),
        (lambda xml: xml.unlink(), "annotation file not found"),
    ],
    ids=["box-outside-image", "unknown-class", "missing-xml"],
)  # fmt: skip
def test_malformed_annotations_fail_on_one_line_naming_the_file(
    voc_root: Path, tmp_path: Path, paper_resnet18: Path, capsys, damage, expected
) -> None:
    root = _copy_without_manifest(voc_root, tmp_path)
    xml = _first_test_xml(root)
    damage(xml)
    results = tmp_path / "results"
    code = bench("run", "--task", "voc", "--backbone", paper_resnet18, "--subset", "tiny",
                 "--max-steps", "1", "--data-root", root, "--results", results,
                 "--accelerator", "cpu")  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and err.startswith(f"bench: error: {xml}:") and expected in err
    assert not results.exists()  # nothing written for a run that never started


def test_missing_dataset_and_changed_fixture_files(voc_root: Path, tmp_path: Path) -> None:
    adapter = get_adapter("voc")
    with pytest.raises(BenchError, match=r"VOC2007 test not found .*--download"):
        adapter.load_split(tmp_path / "empty", "test", download=False)
    root = tmp_path / "fixture"
    shutil.copytree(voc_root / "VOCdevkit", root / "VOCdevkit")
    jpg = sorted((root / "VOCdevkit" / "VOC2007" / "JPEGImages").glob("*.jpg"))[0]
    jpg.write_bytes(jpg.read_bytes()[:100])  # truncated
    with pytest.raises(BenchError, match=rf"{jpg}: missing or changed .*md5"):
        adapter.load_split(root, "trainval", download=False)


def test_image_that_does_not_match_its_annotation(voc_root: Path, tmp_path: Path) -> None:
    root = _copy_without_manifest(voc_root, tmp_path)
    xml = _first_test_xml(root)
    jpg = xml.parent.parent / "JPEGImages" / f"{xml.stem}.jpg"
    from PIL import Image

    Image.new("RGB", (33, 44)).save(jpg)
    data = get_adapter("voc").load_split(root, "test", download=False)
    with pytest.raises(BenchError, match=rf"{xml}: <size> says .* is 33x44"):
        data.dataset[0]
