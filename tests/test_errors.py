"""Every mistake a user can make gets one line, exit code 2, no traceback, and no record."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from helpers import bench, bench_subprocess

from benchmark.checkpoints import save_imagenet_example_checkpoint


def _run(results: Path, *extra: str | Path) -> tuple[str | Path, ...]:
    return ("run", "--subset", "tiny", "--max-steps", "1", "--accelerator", "cpu",
            "--num-workers", "0", "--results", results, *extra)  # fmt: skip


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("bench: error: ")
    return err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--task", "cifar1", "--backbone", "random_r18"), "Did you mean: cifar10"),
        (("--task", "cifar10", "--backbone", "blured_r18"), "unknown backbone 'blured_r18'"),
        (("--task", "cifar10", "--backbone", "random_r18", "--set", "optim.lrr=1"),
         "no field 'optim.lrr'. Did you mean: lr"),
        (("--task", "cifar10", "--backbone", "random_r18", "--set", "optim.lr=-1"),
         "field 'optim.lr': Input should be greater than 0"),
        (("--task", "cifar10", "--backbone", "random_r18", "--set", "optim.lr"),
         "expected key=value"),
        (("--task", "cifar10", "--backbone", "random_r18", "--subset", "some"),
         "--subset 'some'"),
        (("--task", "cifar10", "--backbone", "/nonexistent/ckpt.pth"), "does not exist"),
    ],
)
def test_bad_arguments(tmp_path, cifar_root, capsys, args, expected) -> None:
    results = tmp_path / "results"
    assert bench(*_run(results, "--data-root", cifar_root, *args)) == 2
    assert expected in _one_line_error(capsys)
    assert not results.exists()


def test_missing_dataset_says_where_and_how(tmp_path, paper_resnet18, capsys) -> None:
    results = tmp_path / "results"
    code = bench(*_run(results, "--task", "cifar10", "--backbone", paper_resnet18,
                       "--data-root", tmp_path / "nothing-here"))  # fmt: skip
    assert code == 2
    err = _one_line_error(capsys)
    assert str((tmp_path / "nothing-here" / "cifar-10-batches-py").resolve()) in err
    assert "--download" in err and "cifar-10-python.tar.gz" in err
    assert not results.exists()


def test_corrupt_fixture_file_fails_the_integrity_check(tmp_path, cifar_root, paper_resnet18,
                                                        capsys) -> None:  # fmt: skip
    import shutil

    root = tmp_path / "data"
    shutil.copytree(cifar_root, root)
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-10])  # truncated: md5 no longer matches
    code = bench(*_run(tmp_path / "r", "--task", "cifar10", "--backbone", paper_resnet18,
                       "--data-root", root))  # fmt: skip
    assert code == 2
    assert "not found or corrupted" in _one_line_error(capsys)


def test_checkpoint_of_another_architecture_lists_keys(tmp_path, cifar_root, capsys) -> None:
    ckpt = tmp_path / "resnet34_blurred_ILSVRC.pth"
    save_imagenet_example_checkpoint(ckpt, "resnet34", torchvision.models.resnet34().state_dict())
    code = bench(*_run(tmp_path / "r", "--task", "cifar10", "--backbone", ckpt,
                       "--arch", "resnet18", "--data-root", cifar_root))  # fmt: skip
    assert code == 2
    err = _one_line_error(capsys)
    assert "contradicts" in err  # the file says resnet34


def test_checkpoint_missing_keys_are_listed(tmp_path, cifar_root, capsys) -> None:
    state = torchvision.models.resnet18().state_dict()
    del state["layer4.1.bn2.running_mean"]
    state["extra.weight"] = torch.zeros(1)
    ckpt = tmp_path / "broken.pth"
    torch.save(state, ckpt)
    code = bench(*_run(tmp_path / "r", "--task", "cifar10", "--backbone", ckpt,
                       "--arch", "resnet18", "--data-root", cifar_root))  # fmt: skip
    assert code == 2
    err = _one_line_error(capsys)
    assert "1 missing: layer4.1.bn2.running_mean" in err
    assert "1 unexpected: extra.weight" in err


def test_checkpoint_without_arch_asks_for_it(tmp_path, cifar_root, capsys) -> None:
    ckpt = tmp_path / "bare.pth"
    torch.save(torchvision.models.resnet18().state_dict(), ckpt)
    code = bench(*_run(tmp_path / "r", "--task", "cifar10", "--backbone", ckpt,
                       "--data-root", cifar_root))  # fmt: skip
    assert code == 2
    assert "pass --arch" in _one_line_error(capsys)


def test_real_process_exit_code_and_no_traceback(tmp_path) -> None:
    proc = bench_subprocess("run", "--task", "nope", "--backbone", "random_r18",
                            "--results", tmp_path / "r")  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "unknown task 'nope'" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_output_piped_into_head_is_not_an_error() -> None:
    """`bench list backbones | head`: the reader leaving early is no crash (``head -c 0`` exits
    before bench writes, so the broken pipe happens every time)."""
    import subprocess
    import sys

    pipeline = f"set -o pipefail; {sys.executable} -m benchmark.cli list backbones | head -c 0"
    proc = subprocess.run(
        ["bash", "-c", pipeline],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
