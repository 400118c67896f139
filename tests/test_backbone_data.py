"""What a backbone was pretrained on, declared for checkpoint files (``--backbone-data``) or in a
private registry (``BENCH_BACKBONES_FILE``, the README's example): kept in the record, and the
leaderboard pairs original with blurred without ``--pair``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision
from helpers import bench, read_json, run_dirs

from benchmark import leaderboard, paths
from benchmark.checkpoints import save_imagenet_example_checkpoint

FAST = ("--task", "cifar10", "--subset", "tiny", "--max-steps", "1", "--accelerator", "cpu",
        "--num-workers", "0")  # fmt: skip


def _checkpoint(path: Path, seed: int) -> Path:
    """A randomly initialised ResNet-18 in the paper's layout (different weights per seed)."""
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_imagenet_example_checkpoint(path, "resnet18",
                                            torchvision.models.resnet18().state_dict())


def _paired(results: Path) -> tuple[str, str]:
    board = leaderboard.build(results, n_boot=100)
    assert not [p for p in board.problems if p.what == "not compared"], board.problems
    (comparison,) = board.comparisons
    assert (comparison.a.data, comparison.b.data) == ("original", "blurred")
    assert comparison.a.arch == comparison.b.arch == "resnet18"
    return comparison.a.name, comparison.b.name


def test_declared_file_backbones_are_paired(
    tmp_path: Path, cifar_root: Path, capsys: pytest.CaptureFixture
) -> None:
    original = _checkpoint(tmp_path / "ckpt" / "r18_original.pth", 1)
    blurred = _checkpoint(tmp_path / "ckpt" / "r18_blurred.pth", 2)
    results = tmp_path / "results"
    common = (*FAST, "--data-root", cifar_root, "--results", results)
    assert bench("run", *common, "--backbone", original, "--backbone-data", "original") == 0
    assert bench("run", *common, "--backbone", blurred, "--backbone-data", "blurred") == 0
    records = {r["backbone"]["pretraining_data"]: r
               for r in (read_json(d / "record.json") for d in run_dirs(results))}  # fmt: skip
    assert set(records) == {"original", "blurred"}
    for record in records.values():
        assert record["backbone"]["pretraining_data_from"] == "--backbone-data"
        assert record["request"]["backbone_data"] == record["backbone"]["pretraining_data"]
        assert "pretraining_data" not in record["config"]["backbone"]  # not in the key
    a, b = _paired(results)
    assert (a, b) == (records["original"]["backbone"]["name"],
                      records["blurred"]["backbone"]["name"])  # fmt: skip

    # the same run asked again: already done with the same label, refused with another
    capsys.readouterr()
    assert bench("run", *common, "--backbone", blurred, "--backbone-data", "blurred") == 0
    assert "already done" in capsys.readouterr().out
    assert bench("run", *common, "--backbone", blurred, "--backbone-data", "overlayed") == 2
    err = capsys.readouterr().err.strip()
    assert "recorded with pretraining data 'blurred', not 'overlayed'" in err
    assert "--force" in err and "\n" not in err
    # not declaring is not contradicting: the file says nothing, the record answers
    assert bench("run", *common, "--backbone", blurred) == 0
    assert "already done" in capsys.readouterr().out
    assert len(run_dirs(results)) == 2


def test_the_readme_private_registry_pairs(
    tmp_path: Path, cifar_root: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """The README's BENCH_BACKBONES_FILE example, as printed there, with two checkpoints at the
    paths it names: both names run, and the leaderboard pairs them."""
    readme = (paths.PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index("**A private registry.**"):]
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example is not None
    registry = tmp_path / "lab" / "backbones.yaml"
    registry.parent.mkdir()
    registry.write_text(example.group(1))
    files = re.findall(r"path: (\S+)", example.group(1))
    names = re.findall(r"^  (\w+):$", example.group(1), re.M)
    assert len(files) == len(names) == 2
    for seed, relative in enumerate(files):
        _checkpoint(registry.parent / relative, seed)
    monkeypatch.setenv("BENCH_BACKBONES_FILE", str(registry))

    assert bench("list", "backbones") == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in names)
    results = tmp_path / "results"
    for name in names:
        assert bench("run", *FAST, "--data-root", cifar_root, "--results", results,
                     "--backbone", name) == 0  # fmt: skip
    assert _paired(results) == ("lab_original_r18", "lab_blurred_r18")

    # a registry backbone says its data: a declaration that contradicts it is one line
    capsys.readouterr()
    assert bench("run", *FAST, "--data-root", cifar_root, "--results", results,
                 "--backbone", "lab_original_r18", "--backbone-data", "blurred") == 2
    err = capsys.readouterr().err.strip()
    assert "--backbone-data blurred contradicts backbone 'lab_original_r18'" in err
    assert "\n" not in err
