"""`detection.engine` without the mmdet install: a typed task field, part of the run key, named
on the leaderboard, and a one-line error naming the install command when mmdet is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import bench

from benchmark.engines import availability
from benchmark.errors import BenchError
from benchmark.leaderboard.names import setting_name
from benchmark.tasks import apply_overrides, get_task

RUN = ("run", "--task", "voc", "--subset", "tiny", "--max-steps", "1", "--accelerator", "cpu",
       "--num-workers", "0")  # fmt: skip


def test_engine_is_a_typed_task_field() -> None:
    assert get_task("voc").detection.engine == "torchvision"
    assert apply_overrides(get_task("voc"), {"detection.engine": "mmdet"}).detection.engine == (
        "mmdet"
    )
    with pytest.raises(BenchError, match="detection.engine"):
        apply_overrides(get_task("voc"), {"detection.engine": "detectron2"})


def test_engine_is_part_of_the_run_key(tmp_path, voc_root: Path, paper_resnet18: Path,
                                       capsys) -> None:  # fmt: skip
    configs = {}
    for engine in ("torchvision", "mmdet"):
        assert bench(*RUN, "--backbone", paper_resnet18, "--data-root", voc_root, "--results",
                     tmp_path, "--set", f"detection.engine={engine}", "--print-config") == 0
        configs[engine] = json.loads(capsys.readouterr().out)  # fmt: skip
    assert configs["mmdet"]["config"]["task"]["detection"]["engine"] == "mmdet"
    assert configs["torchvision"]["config_hash"] != configs["mmdet"]["config_hash"]
    assert configs["torchvision"]["run_dir"] != configs["mmdet"]["run_dir"]


def test_missing_mmdet_is_one_line_naming_the_install(tmp_path, voc_root: Path,
                                                      paper_resnet18: Path, capsys,
                                                      monkeypatch) -> None:  # fmt: skip
    monkeypatch.setattr(availability, "mmdet_missing_reason",
                        lambda: "ModuleNotFoundError: No module named 'mmcv'")  # fmt: skip
    results = tmp_path / "results"
    code = bench(*RUN, "--backbone", paper_resnet18, "--data-root", voc_root, "--results",
                 results, "--set", "detection.engine=mmdet")  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "detection.engine=mmdet needs mmcv 2.1.0" in err[0]
    assert availability.INSTALL_COMMAND in err[0] and "No module named 'mmcv'" in err[0]
    assert not (results / "runs").exists() or not any((results / "runs").rglob("record.json"))


def test_leaderboard_setting_names_the_engine() -> None:
    assert setting_name("voc", "finetune", "tiny", "mmdet") == (
        "PASCAL VOC · fine-tune · mmdetection Faster R-CNN · tiny"
    )
    assert setting_name("voc", "finetune", "full", "torchvision") == (
        "PASCAL VOC · fine-tune · torchvision Faster R-CNN · full"
    )
    assert setting_name("cifar10", "linear", "tiny") == "CIFAR-10 · linear probe (L-BFGS) · tiny"
