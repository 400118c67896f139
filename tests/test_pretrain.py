"""`bench pretrain`: trains on an ImageNet-layout folder, saves safetensors, registers the
backbone so `bench run` and `bench list backbones` know it, with its pretraining data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from helpers import bench, read_json
from safetensors.torch import load_file

from benchmark import backbones
from benchmark.data.imagenet_folder import folder_identity, write_fixture
from benchmark.pretrain import apply_recipe_overrides, default_recipe

TOY = ["--arch", "resnet18", "--image-size", "32", "--set", "train.batch_size=8",
       "--num-workers", "0", "--accelerator", "cpu", "--logger", "csv"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fixture(tmp_path_factory.mktemp("toy") / "toy")


def test_recipe_defaults_are_the_papers_and_overridable() -> None:
    r18, vgg = default_recipe("resnet18"), default_recipe("vgg16")
    assert (r18.optim.lr, vgg.optim.lr, default_recipe("alexnet").optim.lr) == (0.1, 0.01, 0.01)
    assert (r18.optim.momentum, r18.optim.weight_decay, r18.optim.nesterov) == (0.9, 1e-4, False)
    schedule = r18.schedule
    assert (schedule.name, schedule.step_epochs, schedule.gamma) == ("step", [30, 60], 0.1)
    assert (r18.train.epochs, r18.train.batch_size) == (90, 256)
    assert (r18.input.image_size, r18.input.resize_size) == (224, 256)
    assert apply_recipe_overrides(r18, {"optim.lr": 0.05}).optim.lr == 0.05


def test_pretrain_registers_a_backbone_that_bench_run_loads(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pretrained"
    assert bench("pretrain", "--data", toy, "--name", "toy_blurred_r18", "--out", out,
                 "--pretrain-data", "blurred", "--max-steps", "2", *TOY) == 0
    record = read_json(out / "toy_blurred_r18" / "pretrain.json")
    assert record["training"]["steps"] == 2 and len(record["training"]["losses"]) == 2
    assert record["class_names"] == sorted(p.name for p in (toy / "train").iterdir())
    assert record["data"]["sha256"] == folder_identity(toy)["sha256"]
    assert record["pretraining_data"] == "blurred" and 0 <= record["metrics"]["val_top1"] <= 1
    weights = load_file(out / "toy_blurred_r18" / "model.safetensors")
    assert weights["fc.weight"].shape == (3, 512)  # a head for the data's classes
    assert not list(out.glob(".*staging*")) and not (out / "toy_blurred_r18.work").exists()

    capsys.readouterr()
    assert bench("list", "backbones", "toy_*", "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["data"], row["source"]) == ("toy_blurred_r18", "blurred", "file")
    assert row["data_identity"] == f"sha256:{record['data']['sha256']}"

    loaded = backbones.create_backbone("toy_blurred_r18")
    assert loaded.provenance["pretraining_data"] == "blurred"
    assert loaded.provenance["data_identity"] == row["data_identity"]
    assert loaded.provenance["sha256_check"].startswith("matches the sha256 pinned")
    assert torch.equal(loaded.model.state_dict()["conv1.weight"], weights["conv1.weight"])

    # the same name again needs --force; a name the project registry has is refused
    assert bench("pretrain", "--data", toy, "--name", "toy_blurred_r18", "--out", out, *TOY) == 2
    assert bench("pretrain", "--data", toy, "--name", "random_r18", "--out", out, *TOY) == 2


def test_changed_weights_are_refused(toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "pretrained"
    assert bench("pretrain", "--data", toy, "--name", "toy_r18", "--out", out,
                 "--max-steps", "1", *TOY) == 0
    path = out / "toy_r18" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match="sha256 mismatch"):
        backbones.create_backbone("toy_r18")


@pytest.mark.parametrize("argv, message", [
    (["--arch", "resnet1800"], "unknown architecture"),
    (["--arch", "resnet18", "--set", "optim.lrr=0.1"], "has no field 'lrr'"),
    (["--arch", "resnet18", "--set", "optim.lr=-1"], "optim.lr"),
    (["--arch", "resnet18", "--name", "../x"], "cannot be used in a path"),
])
def test_user_mistakes_exit_2_before_training(
    toy: Path, tmp_path: Path, argv: list[str], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = [] if "--name" in argv else ["--name", "x"]
    assert bench("pretrain", "--data", toy, "--out", tmp_path, *name, *argv) == 2
    assert message in capsys.readouterr().err
    assert not os.environ["BENCH_USER_BACKBONES_FILE"] or not Path(
        os.environ["BENCH_USER_BACKBONES_FILE"]).exists()


def test_data_without_val_folder_is_one_line(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    write_fixture(tmp_path / "d", per_class={"train": 2})
    assert bench("pretrain", "--data", tmp_path / "d", "--name", "x", "--out", tmp_path,
                 *TOY) == 2
    assert "val is not a folder" in capsys.readouterr().err


def test_user_registry_cannot_shadow_the_project_registry() -> None:
    Path(os.environ["BENCH_USER_BACKBONES_FILE"]).write_text(
        "backbones:\n  random_r18: {arch: resnet18, data: none, source: torchvision}\n")
    with pytest.raises(Exception, match="already in"):
        backbones.list_backbones()
