"""Run options from one definition (RunRequest), Lightning's loggers, any Trainer argument,
and runs repeated from their record.

One tiny fixture run with all three loggers serves the whole module (module-scoped)."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from helpers import bench, read_json, run_dirs

from benchmark.checkpoints import save_imagenet_example_checkpoint

FAST = ("--task", "cifar10", "--subset", "tiny", "--accelerator", "cpu", "--num-workers", "0")
STEPS = 5  # fewer than Lightning's logging interval (10): only the last step is logged


@pytest.fixture(scope="module")
def wandb_offline(tmp_path_factory: pytest.TempPathFactory):
    """W&B offline, with no account, and its settings and caches kept out of $HOME."""
    home = tmp_path_factory.mktemp("wandb-home")
    saved = {k: os.environ.get(k) for k in ("WANDB_MODE", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR",
                                            "WANDB_DATA_DIR", "WANDB_SILENT")}  # fmt: skip
    os.environ.update(WANDB_MODE="offline", WANDB_CONFIG_DIR=str(home / "config"),
                      WANDB_CACHE_DIR=str(home / "cache"), WANDB_DATA_DIR=str(home / "data"),
                      WANDB_SILENT="true")  # fmt: skip
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory, cifar_root: Path, paper_resnet18: Path, wandb_offline):
    results = tmp_path_factory.mktemp("results")
    assert bench("run", *FAST, "--backbone", paper_resnet18, "--data-root", cifar_root,
                 "--results", results, "--max-steps", str(STEPS), "--logger", "csv",
                 "--logger", "tensorboard", "--logger", "wandb") == 0  # fmt: skip
    (run_dir,) = run_dirs(results)
    return run_dir, read_json(run_dir / "record.json")


# ------------------------------------------------------------------------------ loggers


def test_record_links_each_logger_folder_inside_the_run(logged_run) -> None:
    run_dir, record = logged_run
    assert set(record["logs"]) == {"csv", "tensorboard", "wandb"}
    for where in record["logs"].values():
        assert where.startswith("logs/") and (run_dir / where).exists()
    assert not (run_dir.parents[4] / "runs" / ".work").exists() or not any(
        (run_dir.parents[4] / "runs" / ".work").iterdir()
    )  # the work folder is gone: the logs moved with the record


def test_csv_log_has_the_last_step_of_a_short_run(logged_run) -> None:
    import csv

    run_dir, record = logged_run
    rows = list(csv.DictReader((run_dir / record["logs"]["csv"]).open()))
    (loss,) = [r for r in rows if r.get("train_loss")]
    assert int(loss["step"]) == STEPS - 1
    assert float(loss["train_loss"]) == pytest.approx(record["training"]["losses"][-1], rel=1e-6)
    assert float(loss["train_images_per_sec"]) > 0
    assert any(r.get("lr-SGD") for r in rows)


def test_tensorboard_events_read_back_with_tensorboards_reader(logged_run) -> None:
    """TensorBoard's own EventAccumulator finds the loss, learning rate and throughput."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, record = logged_run
    events = EventAccumulator(str(run_dir / record["logs"]["tensorboard"]))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train_loss", "lr-SGD", "train_images_per_sec", "val_top1"} <= scalars
    (loss,) = events.Scalars("train_loss")
    assert loss.step == STEPS - 1
    assert loss.value == pytest.approx(record["training"]["losses"][-1], rel=1e-6)
    assert events.Scalars("train_images_per_sec")[0].value > 0


def read_wandb_history(run_folder: Path) -> list[dict[str, Any]]:
    """The ``history`` rows of an offline W&B run, decoded with wandb's own protobuf classes.

    wandb >= 0.20 has no Python reader for ``run-<id>.wandb`` (its Go core reads it for
    ``wandb sync``); the file is LevelDB's log format (32 KiB blocks, 7-byte record headers:
    crc32, length, type) after a 7-byte ``:W&B`` header, each record a ``wandb.Record``.
    """
    from wandb.proto import wandb_internal_pb2

    (path,) = run_folder.glob("run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending, rows = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:  # block padding
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: one record complete
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                             for i in record.history.item})
    return rows


def test_wandb_offline_run_reads_back(logged_run) -> None:
    """Offline, no account: the run folder holds its .wandb file, and the rows logged in it
    carry the loss (equal to the record's last loss), learning rate and throughput."""
    run_dir, record = logged_run
    folder = run_dir / record["logs"]["wandb"]
    assert folder.name.startswith("offline-run-")
    rows = read_wandb_history(folder)
    keys = set().union(*rows)
    assert {"train_loss", "lr-SGD", "train_images_per_sec", "val_top1"} <= keys
    (loss,) = [r for r in rows if "train_loss" in r]
    assert loss["trainer/global_step"] == STEPS - 1
    assert loss["train_loss"] == pytest.approx(record["training"]["losses"][-1], rel=1e-6)


def test_logger_choice_is_not_part_of_the_key(logged_run, cifar_root, paper_resnet18,
                                              capsys) -> None:  # fmt: skip
    run_dir, _ = logged_run
    assert bench("run", *FAST, "--backbone", paper_resnet18, "--data-root", cifar_root,
                 "--results", run_dir.parents[4], "--max-steps", str(STEPS), "--dry-run") == 0
    assert f"run {run_dir}: done" in capsys.readouterr().out


# ------------------------------------------------------------------------------ rerun


def test_rerun_from_the_record_gives_identical_metrics(logged_run, tmp_path, capsys) -> None:
    """`bench run --config RUN_DIR` into another results folder: same key, same metrics (==).
    CPU runs are seeded (pl.seed_everything) and need no deterministic=True."""
    run_dir, record = logged_run
    assert bench("run", "--config", run_dir, "--results", tmp_path, "--logger", "csv") == 0
    (again,) = run_dirs(tmp_path)
    rerun = read_json(again / "record.json")
    assert again.relative_to(tmp_path) == run_dir.relative_to(run_dir.parents[4])
    assert rerun["config_hash"] == record["config_hash"]
    assert rerun["training"]["losses"] == record["training"]["losses"]
    print("recorded:", json.dumps(record["metrics"], sort_keys=True))
    print("rerun:   ", json.dumps(rerun["metrics"], sort_keys=True))
    assert rerun["metrics"] == record["metrics"]
    assert {k: v for k, v in rerun["request"].items() if k not in ("results", "loggers")} == {
        k: v for k, v in record["request"].items() if k not in ("results", "loggers")
    }  # fmt: skip
    assert rerun["request"]["loggers"] == ["csv"]


def test_print_config_runs_nothing_and_reads_back(logged_run, tmp_path, capsys) -> None:
    run_dir, record = logged_run
    results = tmp_path / "r"
    assert bench("run", "--config", run_dir / "record.json", "--results", results,
                 "--print-config") == 0  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert printed["config_hash"] == record["config_hash"]
    assert printed["request"]["max_steps"] == STEPS and printed["status"] == "to run"
    assert not results.exists()
    (tmp_path / "config.json").write_text(json.dumps(printed))
    assert bench("run", "--config", tmp_path / "config.json", "--dry-run") == 0
    assert f"run {results / run_dir.relative_to(run_dir.parents[4])}: to run" in \
        capsys.readouterr().out


def test_rerun_refuses_other_backbone_weights(logged_run, tmp_path, capsys) -> None:
    run_dir, record = logged_run
    other = tmp_path / "resnet18_blurred_ILSVRC.pth"
    torch.manual_seed(1)
    save_imagenet_example_checkpoint(other, "resnet18", torchvision.models.resnet18().state_dict())
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("logs"))
    record["request"]["backbone"] = str(other)
    (copy / "record.json").write_text(json.dumps(record))
    assert bench("run", "--config", copy, "--results", tmp_path / "r") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "now resolves to other weights" in err[0]
    assert not (tmp_path / "r").exists()


def test_rerun_of_a_record_without_request_is_one_line(tmp_path, capsys) -> None:
    (tmp_path / "record.json").write_text(json.dumps({"task": "cifar10"}))
    assert bench("run", "--config", tmp_path) == 2
    assert "holds no 'request'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ Trainer


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("gradient_clip_vall=1.0", "has no argument 'gradient_clip_vall'. Did you mean: "
         "gradient_clip_val"),
        ("max_steps=3", "not settable this way (use --max-steps)"),
        ("gradient_clip_val", "expected NAME=VALUE"),
    ],
)
def test_bad_trainer_argument_is_one_line(tmp_path, cifar_root, paper_resnet18, capsys, pair,
                                          message) -> None:  # fmt: skip
    results = tmp_path / "results"
    assert bench("run", *FAST, "--backbone", paper_resnet18, "--data-root", cifar_root,
                 "--results", results, "--trainer", pair) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not results.exists()


def _config(capsys, *argv: str | Path) -> dict[str, Any]:
    assert bench("run", *argv, "--print-config") == 0
    return json.loads(capsys.readouterr().out)


def test_trainer_arguments_reach_the_trainer_and_the_key(cifar_root, paper_resnet18,
                                                         capsys) -> None:  # fmt: skip
    from benchmark.request import RunRequest
    from benchmark.runner import make_trainer

    base = (*FAST, "--backbone", paper_resnet18, "--data-root", cifar_root)
    plain = _config(capsys, *base)["config_hash"]
    clipped = _config(capsys, *base, "--trainer", "gradient_clip_val=1.0")
    assert clipped["config"]["trainer"]["gradient_clip_val"] == 1.0
    assert clipped["config_hash"] != plain  # changes results: a new run
    quiet = _config(capsys, *base, "--trainer", "enable_progress_bar=false")
    assert quiet["config_hash"] == plain  # how a run is watched: the same run
    request = RunRequest(task="cifar10", backbone="-", accelerator="cpu",
                         trainer={"gradient_clip_val": 1.0, "enable_progress_bar": False})
    trainer = make_trainer(request, 1, Path("/nonexistent"), [])
    assert trainer.gradient_clip_val == 1.0 and trainer.progress_bar_callback is None


# ------------------------------------------------------------------------------ one definition


def test_every_field_is_a_flag_and_a_launched_run_makes_the_same_request(tmp_path) -> None:
    """request_argv -> `bench run`'s parser -> RunRequest gives back the request: the flags,
    the argv and the record's request all come from RunRequest's fields."""
    import dataclasses

    from benchmark.cli import build_parser
    from benchmark.request import RunRequest, given_options, request_argv

    request = RunRequest(
        task="cifar10", backbone="blurred_r18", seed=3, arch="resnet18", backbone_data="blurred",
        subset="tiny", data_root=tmp_path / "data", download=True, results=tmp_path / "r",
        overrides={"optim.lr": 0.05, "input.image_size": 32, "optim.name": "adamw"},
        trainer={"gradient_clip_val": 0.5, "accumulate_grad_batches": 2}, devices="2",
        accelerator="cpu", precision="bf16-mixed", strategy="ddp", max_epochs=2, max_steps=7,
        num_workers=1, loggers=["csv", "tensorboard"], checkpoint_every_n_steps=5,
        save_weights=True, force=True, tasks_dirs=[tmp_path / "my-tasks"], protocol="linear_sgd",
    )  # fmt: skip
    assert all(getattr(request, f.name) != f.default for f in dataclasses.fields(request)
               if f.default is not dataclasses.MISSING and f.name != "dry_run")  # fmt: skip
    args = build_parser().parse_args(request_argv(request))
    assert RunRequest(**given_options(args, "run")) == request
    assert RunRequest.from_record(json.loads(json.dumps(request.as_record()))) == \
        dataclasses.replace(request, force=False)


def test_sweep_file_takes_every_shared_option_typed(tmp_path) -> None:
    """The sweep file's schema is derived too: set: and trainer: stay typed mappings (no
    round trip through strings), devices: 2 is the string Lightning accepts."""
    from benchmark.sweep import SweepFile, build_spec

    (tmp_path / "s.yaml").write_text(
        "set: {optim.lr: 0.05}\ntrainer: {gradient_clip_val: 1.0}\nlogger: [csv, tensorboard]\n"
        "devices: 2\nmax_steps: 3\nsubset: tiny\n"
    )
    spec = build_spec(tmp_path / "s.yaml", {"tasks": "cifar10", "backbones": "x.pth",
                                            "max_steps": 4}, ["optim.momentum=0.5"])
    template = spec.template
    assert template.overrides == {"optim.lr": 0.05, "optim.momentum": 0.5}
    assert template.trainer == {"gradient_clip_val": 1.0}
    assert template.loggers == ["csv", "tensorboard"] and template.devices == "2"
    assert template.max_steps == 4 and template.subset == "tiny"  # the command line wins
    assert {"set", "trainer", "logger", "max_steps", "backbones"} <= set(SweepFile.model_fields)
