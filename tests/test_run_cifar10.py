"""`bench run` end to end on the CIFAR-10 fixture: training happens, the record is complete,
identical runs are skipped, changed configs are new runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import bench, read_json, run_dirs
from reference_metrics import classification_reference, is_ratio_of_counts, load_npz

from benchmark.checkpoints import sha256_of

RUN = ("run", "--task", "cifar10", "--subset", "tiny", "--max-steps", "3", "--accelerator", "cpu",
       "--num-workers", "0")  # fmt: skip


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, cifar_root: Path, paper_resnet18: Path):
    results = tmp_path_factory.mktemp("results")
    code = bench(*RUN, "--backbone", paper_resnet18, "--data-root", cifar_root,
                 "--results", results)  # fmt: skip
    assert code == 0
    (run_dir,) = run_dirs(results)
    return results, run_dir


def test_record_holds_what_a_reader_needs(first_run, paper_resnet18: Path) -> None:
    _, run_dir = first_run
    record = read_json(run_dir / "record.json")
    assert record["status"] == "completed"
    assert record["task"] == "cifar10" and record["protocol"] == "finetune"
    assert record["backbone"]["arch"] == "resnet18"
    assert record["backbone"]["sha256"] == sha256_of(paper_resnet18)
    assert record["backbone"]["layout"] == "{'state_dict': ...} + prefix 'module.'"
    assert record["backbone"]["checkpoint_meta"]["epoch"] == 90
    assert record["data"]["fixture"] is True
    assert record["data"]["sizes"] == {"train": 40, "val": 6, "test": 20}
    assert record["config"]["task"]["input"]["image_size"] == 32  # smoke overrides applied
    assert record["config"]["trainer"]["max_steps"] == 3
    assert len(record["config_hash"]) == 64 and record["config_hash"][:12] in run_dir.name
    assert run_dir.name.startswith("seed0-")
    assert record["code_version"]
    assert record["started"] <= record["ended"]
    assert record["training"]["steps"] == 3
    losses = record["training"]["losses"]
    assert len(losses) == 3 and all(np.isfinite(losses)) and losses[0] > 0
    metrics = record["metrics"]
    assert record["primary_metric"] == "top1" and 0.0 <= metrics["top1"] <= 1.0
    assert set(metrics["per_class_accuracy"]) == {
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
    }  # fmt: skip


def test_predictions_recompute_the_metrics(first_run) -> None:
    """scikit-learn on the saved file gives back every number of the record exactly (==), and
    the ratios are exact (2 of 20 correct is 0.1, not float32's 0.10000000149011612)."""
    _, run_dir = first_run
    record = read_json(run_dir / "record.json")
    saved = load_npz(run_dir)
    ids, targets, logits = saved["example_id"], saved["target"], saved["logits"]
    assert len(ids) == len(set(ids)) == 20 and all(i.startswith("test/") for i in ids)
    assert logits.shape == (20, 10) and logits.dtype == np.float32
    metrics = record["metrics"]
    assert metrics == classification_reference(run_dir, record["class_names"])
    assert metrics["top1"] == int((logits.argmax(1) == targets).sum()) / 20
    assert is_ratio_of_counts(metrics["top1"], 20)
    assert all(is_ratio_of_counts(v, 20) for v in metrics["per_class_accuracy"].values())


def test_identical_run_is_skipped(first_run, cifar_root, paper_resnet18, capsys) -> None:
    results, run_dir = first_run
    before = (run_dir / "record.json").stat().st_mtime_ns
    code = bench(*RUN, "--backbone", paper_resnet18, "--data-root", cifar_root,
                 "--results", results)  # fmt: skip
    assert code == 0
    assert "already done" in capsys.readouterr().out
    assert (run_dir / "record.json").stat().st_mtime_ns == before
    assert run_dirs(results) == [run_dir]


def test_changed_hyperparameter_is_a_new_run(tmp_path, cifar_root, paper_resnet18) -> None:
    args = (*RUN, "--backbone", paper_resnet18, "--data-root", cifar_root, "--results", tmp_path)
    assert bench(*args, "--max-steps", "1") == 0
    assert bench(*args, "--max-steps", "1", "--set", "optim.lr=0.05") == 0
    first, second = run_dirs(tmp_path)
    lrs = {read_json(d / "record.json")["config"]["task"]["optim"]["lr"] for d in (first, second)}
    assert lrs == {0.01, 0.05}


def test_force_reruns_in_place(tmp_path, cifar_root, paper_resnet18) -> None:
    args = (*RUN, "--backbone", paper_resnet18, "--data-root", cifar_root, "--results", tmp_path,
            "--max-steps", "1")  # fmt: skip
    assert bench(*args) == 0
    (run_dir,) = run_dirs(tmp_path)
    started = read_json(run_dir / "record.json")["started"]
    assert bench(*args, "--force", "--seed", "0") == 0
    assert run_dirs(tmp_path) == [run_dir]
    assert read_json(run_dir / "record.json")["started"] >= started
    assert not list((tmp_path / "runs" / ".staging").iterdir())


def _train_two_steps(cifar_root: Path, checkpoint: Path, protocol: str):
    import pytorch_lightning as pl

    from benchmark.backbones import create_backbone
    from benchmark.data.classification import ClassificationDataModule
    from benchmark.models.classification import ClassificationModule
    from benchmark.tasks import apply_overrides, for_subset, get_task

    task = apply_overrides(for_subset(get_task("cifar10"), "tiny"), {"protocol": protocol})
    dm = ClassificationDataModule(task, cifar_root, "tiny", num_workers=0)
    dm.setup()
    module = ClassificationModule(create_backbone(str(checkpoint)).model, task, dm.class_names)
    before = {k: v.detach().clone() for k, v in module.network.state_dict().items()}
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(module, datamodule=dm)
    after = module.network.state_dict()
    return module, {k for k in before if not torch.equal(before[k], after[k])}


def test_finetuning_changes_the_weights(cifar_root, paper_resnet18) -> None:
    """A smoke run must really train: backbone and head parameters and BN statistics move."""
    module, changed = _train_two_steps(cifar_root, paper_resnet18, "finetune")
    assert {"conv1.weight", "fc.weight", "bn1.running_mean", "layer4.1.conv2.weight"} <= changed
    assert module.network.fc.out_features == 10


def test_linear_sgd_protocol_trains_only_the_head(cifar_root, paper_resnet18) -> None:
    _, changed = _train_two_steps(cifar_root, paper_resnet18, "linear_sgd")
    assert changed == {"fc.weight", "fc.bias"}  # BN statistics frozen too


def test_linear_sgd_protocol_is_its_own_run(tmp_path, cifar_root, paper_resnet18) -> None:
    args = (*RUN, "--backbone", paper_resnet18, "--data-root", cifar_root, "--results", tmp_path,
            "--max-steps", "1", "--set", "protocol=linear_sgd")  # fmt: skip
    assert bench(*args) == 0
    (run_dir,) = run_dirs(tmp_path)
    assert "/linear_sgd/" in str(run_dir)
    assert read_json(run_dir / "record.json")["status"] == "completed"
