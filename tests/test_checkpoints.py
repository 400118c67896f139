"""Checkpoint layouts and safety: every layout the weights come in loads bit-identically into the
network used for fine-tuning, and anything else stops with one clear line.

Each test saves a randomly initialised torchvision model the way some training code does, then
loads it the way a user does (``create_backbone`` or the CLI) and compares every tensor.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torchvision
from helpers import bench
from safetensors.torch import save_file

from benchmark.backbones import create_backbone
from benchmark.checkpoints import save_imagenet_example_checkpoint
from benchmark.errors import BenchError


def perturbed_state(arch: str, seed: int) -> dict[str, torch.Tensor]:
    """A fresh model's state with every tensor changed (BatchNorm's running stats included),
    so a tensor that silently kept its initial value cannot pass for a loaded one."""
    torch.manual_seed(seed)
    state = torchvision.models.get_model(arch, weights=None).state_dict()
    return {k: v + 0.5 if v.is_floating_point() else v + 7 for k, v in state.items()}


def assert_loaded_exactly(model: torch.nn.Module, expected: dict[str, torch.Tensor],
                          head: str) -> None:
    got = model.state_dict()
    body = [k for k in expected if not k.startswith(head + ".")]
    assert body and set(body) == {k for k in got if not k.startswith(head + ".")}
    for key in body:
        assert got[key].dtype == expected[key].dtype, key
        assert torch.equal(got[key], expected[key]), f"{key} differs"


def torch_save(obj: object, path: Path) -> Path:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture(scope="module")
def r18() -> dict[str, torch.Tensor]:
    return perturbed_state("resnet18", seed=1)


LAYOUTS = {
    "bare state_dict": (lambda sd: sd, "bare state_dict"),
    "{'state_dict': ...}": (lambda sd: {"state_dict": sd, "epoch": 3}, "{'state_dict': ...}"),
    "{'model': ...}": (lambda sd: {"model": sd, "epoch": 3}, "{'model': ...}"),
    "DDP module.": (lambda sd: {f"module.{k}": v for k, v in sd.items()}, "prefix 'module.'"),
    "DDP inside {'state_dict'}": (
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        "{'state_dict': ...} + prefix 'module.'",
    ),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_torch_layouts_load_bit_identically(layout: str, r18: dict, tmp_path: Path) -> None:
    wrap, described = LAYOUTS[layout]
    path = torch_save(wrap(r18), tmp_path / "weights.pth")
    backbone = create_backbone(str(path), "resnet18")
    assert backbone.provenance["layout"] == described
    assert backbone.provenance["head_keys_dropped"] == ["fc.bias", "fc.weight"]
    assert_loaded_exactly(backbone.model, r18, "fc")


def test_paper_layout_exact_dict(paper_resnet18: Path) -> None:
    """The paper's files: {epoch, arch, state_dict (DDP's module.), best_acc1, optimizer}."""
    raw = torch.load(paper_resnet18, weights_only=True)
    assert set(raw) == {"epoch", "arch", "state_dict", "best_acc1", "optimizer"}
    assert all(k.startswith("module.") for k in raw["state_dict"])
    backbone = create_backbone(str(paper_resnet18))  # arch comes from the file
    assert backbone.arch == "resnet18"
    assert backbone.provenance["arch_from"] == "the checkpoint's 'arch' field"
    assert backbone.provenance["layout"] == "{'state_dict': ...} + prefix 'module.'"
    assert backbone.provenance["checkpoint_meta"] == {"epoch": 90, "best_acc1": 0.0}
    expected = {k.removeprefix("module."): v for k, v in raw["state_dict"].items()}
    assert_loaded_exactly(backbone.model, expected, "fc")


def test_paper_alexnet_features_only_dataparallel(tmp_path: Path) -> None:
    """AlexNet/VGG in the ImageNet example: only ``features`` was wrapped in DataParallel."""
    state = perturbed_state("alexnet", seed=2)
    path = save_imagenet_example_checkpoint(tmp_path / "alexnet_blurred_ILSVRC.pth", "alexnet",
                                            state, wrapped="features")
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert "features.module.0.weight" in saved and "classifier.1.weight" in saved
    backbone = create_backbone(str(path))
    assert "prefix 'features.module.' (DataParallel on features only)" in (
        backbone.provenance["layout"]
    )
    assert_loaded_exactly(backbone.model, state, "classifier.6")


def test_torch_compile_orig_mod_and_ema_from_a_timm_style_checkpoint(
    r18: dict, tmp_path: Path
) -> None:
    """timm's train.py keeps ``state_dict`` and ``state_dict_ema`` plus its argparse ``args``;
    the EMA copy is the one used (as timm does), and the record says so."""
    # torch.compile's OptimizedModule keeps the network as `_orig_mod`, so its state_dict keys
    # gain that prefix (written out here: importing the compiler alone takes seconds).
    ema_state = {f"_orig_mod.{k}": v for k, v in r18.items()}
    other = perturbed_state("resnet18", seed=5)
    path = torch_save(
        {"epoch": 1, "arch": "resnet18", "state_dict": other, "state_dict_ema": ema_state,
         "args": argparse.Namespace(lr=0.1, model="resnet18")},
        tmp_path / "timm_train.pth.tar.pth",
    )
    backbone = create_backbone(str(path))
    assert backbone.provenance["layout"] == (
        "{'state_dict_ema': ...} (also holds state_dict: not used) + prefix '_orig_mod.'"
    )
    assert_loaded_exactly(backbone.model, r18, "fc")


class _Wrapped(pl.LightningModule):
    """A typical LightningModule holding the torchvision network as ``self.model``."""

    def __init__(self) -> None:
        super().__init__()
        self.model = torchvision.models.squeezenet1_0(num_classes=3)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        images, targets = batch
        return torch.nn.functional.cross_entropy(self.model(images), targets)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_lightning_checkpoint(tmp_path: Path) -> None:
    """A real Lightning .ckpt (one training step): ``state_dict`` with a ``model.`` prefix,
    a 3-class head that is dropped, and squeezenet's 1x1-conv head found by shape."""
    torch.manual_seed(0)
    module = _Wrapped()
    data = torch.utils.data.TensorDataset(torch.randn(2, 3, 64, 64), torch.tensor([0, 2]))
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=2))
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    backbone = create_backbone(str(path), "squeezenet1_0")
    assert backbone.provenance["layout"] == "{'state_dict': ...} + prefix 'model.'"
    assert backbone.provenance["checkpoint_meta"]["global_step"] == 1
    assert backbone.provenance["head_keys_dropped"] == ["classifier.1.bias", "classifier.1.weight"]
    assert_loaded_exactly(backbone.model, module.model.state_dict(), "classifier.1")


def test_safetensors_and_a_file_that_does_not_name_its_architecture(
    r18: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A bare safetensors file: a run asks for --arch, naming the one registered architecture
    whose keys and shapes all fit; inspect uses that one and says it was guessed."""
    path = tmp_path / "r18.safetensors"
    save_file(r18, path)
    with pytest.raises(BenchError, match="does not say its architecture: pass --arch resnet18 "):
        create_backbone(str(path))
    assert bench("checkpoints", "inspect", path) == 0
    assert "arch         resnet18 (guessed: the only registered architecture whose keys and " \
        "shapes all fit)" in capsys.readouterr().out
    backbone = create_backbone(str(path), "resnet18")
    assert backbone.provenance["arch_from"] == "--arch"
    assert backbone.provenance["layout"] == "safetensors"
    assert_loaded_exactly(backbone.model, r18, "fc")


def test_malicious_pickle_is_refused_and_does_nothing(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __init__(self, target: Path) -> None:
            self.target = target

        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {shlex.quote(str(self.target))}",))

    evil = torch_save({"state_dict": perturbed_state("resnet18", 3), "extra": Payload(marker)},
                      tmp_path / "resnet18_evil.pth")
    # The control: an unsafe load of the same kind of file really does run the payload.
    control_marker = tmp_path / "control"
    control = torch_save({"x": Payload(control_marker)}, tmp_path / "control.pth")
    torch.load(control, weights_only=False)
    assert control_marker.exists()

    assert bench("run", "--task", "cifar10", "--backbone", evil, "--arch", "resnet18",
                 "--subset", "tiny", "--results", tmp_path / "results") == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"bench: error: {evil}: refused to load: the file is a pickle that "
                           "asks for more than tensors")
    assert "posix.system" in line and "nothing in it was run" in line
    assert not marker.exists()
    assert not (tmp_path / "results").exists()


def test_truncated_file_is_one_clear_error(paper_resnet18: Path, tmp_path: Path) -> None:
    cut = tmp_path / "resnet18_cut.pth"
    cut.write_bytes(paper_resnet18.read_bytes()[: paper_resnet18.stat().st_size // 2])
    with pytest.raises(BenchError, match=r"not a readable checkpoint \(truncated or corrupt\?\)"):
        create_backbone(str(cut))
    assert cut.exists()  # a user's own file is never deleted
    cut_st = tmp_path / "cut.safetensors"
    save_file(perturbed_state("squeezenet1_0", 4), cut_st)
    cut_st.write_bytes(cut_st.read_bytes()[:-100])
    with pytest.raises(BenchError, match="not a readable safetensors file"):
        create_backbone(str(cut_st), "squeezenet1_0")


def test_wrong_architecture_lists_the_keys(paper_resnet18: Path, r18: dict,
                                           tmp_path: Path) -> None:
    # the file's own 'arch' field and --arch disagree
    with pytest.raises(BenchError, match=r"--arch says resnet34, which contradicts the "
                                         r"checkpoint's 'arch' field \(resnet18\)"):
        create_backbone(str(paper_resnet18), "resnet34")
    # a bare state dict given the wrong --arch: missing keys listed, nothing loaded
    bare = torch_save(r18, tmp_path / "bare.pth")
    with pytest.raises(BenchError) as err:
        create_backbone(str(bare), "resnet34")
    message = str(err.value)
    assert "does not fit ResNet: " in message and "missing: layer1.2." in message
    # one mis-shaped tensor is enough to stop
    bad = dict(r18, **{"conv1.weight": torch.zeros(64, 3, 3, 3)})
    with pytest.raises(BenchError, match=r"1 wrong shape: conv1.weight \(64, 3, 3, 3\) vs "
                                         r"\(64, 3, 7, 7\)"):
        create_backbone(str(torch_save(bad, tmp_path / "bad.pth")), "resnet18")
    # unexpected keys (a squeezenet given to resnet18), through the CLI: one line, exit 2
    squeeze = torch_save(perturbed_state("squeezenet1_0", 6), tmp_path / "sq.pth")
    assert bench("run", "--task", "cifar10", "--backbone", squeeze, "--arch", "resnet18",
                 "--results", tmp_path / "r") == 2
    assert not (tmp_path / "r").exists()


def test_inspect_paper_layout(paper_resnet18: Path, capsys: pytest.CaptureFixture) -> None:
    assert bench("checkpoints", "inspect", paper_resnet18) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    n_params = sum(p.numel() for p in torchvision.models.resnet18().parameters())
    assert lines["layout"] == "{'state_dict': ...} + prefix 'module.'"
    assert lines["arch"] == "resnet18 (the checkpoint's 'arch' field)"
    assert lines["parameters"] == (
        f"{n_params:,} (of resnet18's {n_params:,}); 122 tensors: 62 parameters, 60 buffers"
    )
    assert lines["keys"] == "120 of 120 backbone keys match by name and shape"
    assert lines["missing"] == "0" and lines["unexpected"] == "0"
    assert lines["verdict"] == "loads completely into resnet18"
    import hashlib

    assert lines["sha256"].split()[0] == hashlib.sha256(paper_resnet18.read_bytes()).hexdigest()


def test_inspect_reports_what_does_not_fit(tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    squeeze = torch_save(perturbed_state("squeezenet1_0", 6), tmp_path / "sq.pth")
    assert bench("checkpoints", "inspect", squeeze, "--arch", "resnet18") == 0
    out = capsys.readouterr().out
    assert "verdict      does NOT fit resnet18: a run with it stops" in out
    assert "parameters   0 (of resnet18's 11,689,512); 52 tensors: 52 not in resnet18" in out
    assert "missing      120: bn1.bias, bn1.num_batches_tracked," in out
    assert "unexpected   52: classifier.1.bias, classifier.1.weight, features.0.bias," in out
