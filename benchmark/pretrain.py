"""``bench pretrain``: train a torchvision classifier from scratch on an ImageNet-layout folder
and register the result as a backbone, so the paper's second half (pretrain on original and on
face-obfuscated images) runs through the same Lightning Trainer and options as ``bench run``.

The recipe's defaults are the paper's (its ``trainval.py`` is the PyTorch ImageNet example);
every field is overridable with ``--set section.field=value`` like a task's. The weights are
saved as safetensors beside a ``pretrain.json`` record, and registered in the user backbone
registry (:func:`benchmark.backbone_registry.user_registry_file`) with their pretraining data
and the data's identity, so ``bench run --backbone NAME`` and sweeps take them and the leaderboard
pairs them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy
from torchvision.datasets import ImageFolder

from benchmark import backbone_registry, backbones, paths
from benchmark.atomic import atomic_write_text
from benchmark.checkpoints import save_weights_file, sha256_of
from benchmark.data import imagenet_folder
from benchmark.data.transforms import eval_transform, train_transform
from benchmark.errors import BenchError, closest_names
from benchmark.layout import PretrainLayout
from benchmark.pretraining import PRETRAINING_DATA
from benchmark.request import RunRequest
from benchmark.tasks import InputSpec, OptimSpec, ScheduleSpec, TrainSpec

WEIGHTS_FILE = "model.safetensors"
RECORD_FILE = "pretrain.json"
# The paper (and the PyTorch ImageNet example) uses lr 0.01 for these: 0.1 diverges
LOW_LR_ARCH_PREFIXES = ("alexnet", "vgg")


class PretrainRecipe(BaseModel):
    """What pretraining does: the task file's optimiser, schedule, training and input sections
    (the same types, so ``--set`` reads like a task's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    optim: OptimSpec
    schedule: ScheduleSpec
    train: TrainSpec
    input: InputSpec


def default_recipe(arch: str) -> PretrainRecipe:
    """The paper's recipe: SGD momentum 0.9 (no Nesterov), weight decay 1e-4, batch 256, 90
    epochs, lr 0.1 (0.01 for AlexNet/VGG) divided by 10 every 30 epochs; RandomResizedCrop 224
    + flip for training, Resize 256 + CenterCrop 224 for validation."""
    lr = 0.01 if arch.startswith(LOW_LR_ARCH_PREFIXES) else 0.1
    return PretrainRecipe(
        optim=OptimSpec(name="sgd", lr=lr, momentum=0.9, nesterov=False, weight_decay=1e-4),
        schedule=ScheduleSpec(name="step", step_epochs=[30, 60], gamma=0.1),
        train=TrainSpec(epochs=90, batch_size=256, num_workers=8),
        input=InputSpec(image_size=224, resize_size=256,
                        augmentation="random_resized_crop_flip"),
    )  # fmt: skip


def apply_recipe_overrides(recipe: PretrainRecipe, overrides: dict[str, Any]) -> PretrainRecipe:
    """``{"optim.lr": 0.05}`` set by dotted path, then validated like the defaults."""
    raw = recipe.model_dump(mode="json")
    for dotted, value in overrides.items():
        section, _, field = dotted.partition(".")
        if section not in raw:
            raise BenchError(f"--set {dotted}: the recipe has no section {section!r}."
                             + closest_names(section, list(raw)))  # fmt: skip
        if field not in raw[section]:
            raise BenchError(f"--set {dotted}: section {section!r} has no field {field!r}."
                             + closest_names(field, list(raw[section])))  # fmt: skip
        raw[section][field] = value
    try:
        return PretrainRecipe.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BenchError(f"--set: {where}: {first['msg']}") from None


class PretrainModule(pl.LightningModule):
    """A randomly initialised classifier trained with cross-entropy; top-1/top-5 on val."""

    def __init__(self, network: nn.Module, recipe: PretrainRecipe, num_classes: int) -> None:
        super().__init__()
        self.network = network
        self.recipe = recipe
        self.criterion = nn.CrossEntropyLoss(label_smoothing=recipe.train.label_smoothing)
        self.val_top1 = MulticlassAccuracy(num_classes=num_classes, top_k=1, average="micro")
        self.val_top5 = MulticlassAccuracy(num_classes=num_classes, top_k=min(5, num_classes),
                                           average="micro")  # fmt: skip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        loss = self.criterion(self(images), targets)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, targets = batch
        logits = self(images)
        self.log("val_loss", self.criterion(logits, targets), sync_dist=True)
        self.val_top1(logits, targets)
        self.val_top5(logits, targets)
        self.log("val_top1", self.val_top1, prog_bar=True)
        self.log("val_top5", self.val_top5)

    def configure_optimizers(self) -> Any:
        spec = self.recipe.optim
        if spec.name == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                self.parameters(), lr=spec.lr, momentum=spec.momentum,
                nesterov=spec.nesterov and spec.momentum > 0, weight_decay=spec.weight_decay,
            )  # fmt: skip
        else:
            optimizer = torch.optim.AdamW(self.parameters(), lr=spec.lr,
                                          weight_decay=spec.weight_decay)  # fmt: skip
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._epoch_factor)
        # per epoch, as the ImageNet example's adjust_learning_rate
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler,
                                                         "interval": "epoch"}}  # fmt: skip

    def _epoch_factor(self, epoch: int) -> float:
        import math

        sched, epochs = self.recipe.schedule, self.recipe.train.epochs
        if epoch < sched.warmup_epochs:
            return (epoch + 1) / sched.warmup_epochs
        if sched.name == "step":
            return sched.gamma ** sum(epoch >= m for m in sched.step_epochs)
        if sched.name == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, epoch / epochs)))
        return 1.0


class ImageFolderDataModule(pl.LightningDataModule):
    """``<data>/train`` and ``<data>/val`` through torchvision's ImageFolder, transformed by
    the recipe's ``input`` section (the task transforms of :mod:`benchmark.data.transforms`)."""

    def __init__(self, root: Path, recipe: PretrainRecipe, num_workers: int) -> None:
        super().__init__()
        self.root, self.recipe = Path(root), recipe
        self.num_workers = min(num_workers, os.cpu_count() or 1)
        self.train_set = imagenet_folder.open_split(self.root, "train")
        self.val_set = imagenet_folder.open_split(self.root, "val")
        imagenet_folder.check_same_classes(self.train_set, self.val_set, self.root)
        self.train_set.transform = train_transform(recipe.input)
        self.val_set.transform = eval_transform(recipe.input)

    @property
    def class_names(self) -> list[str]:
        return list(self.train_set.classes)

    def _loader(self, dataset: ImageFolder, train: bool) -> DataLoader:
        batch = self.recipe.train.batch_size
        return DataLoader(dataset, batch_size=batch, shuffle=train,
                          drop_last=train and len(dataset) > batch, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)


@dataclass
class PretrainRequest:
    """What ``bench pretrain`` asks for. The Trainer options travel in a :class:`RunRequest`
    (``trainer``), so pretraining and ``bench run`` build their Trainer the same way."""

    data: Path
    arch: str
    name: str
    pretrain_data: str
    out: Path
    overrides: dict[str, Any]
    image_size: int | None
    seed: int
    force: bool
    trainer: RunRequest


@dataclass
class PretrainOutcome:
    folder: Path
    record: dict[str, Any]
    registry: Path


def _check_request(req: PretrainRequest) -> PretrainRecipe:
    """Every mistake a user can make, found before anything is trained or written."""
    paths.safe_component(req.name, "--name")
    if req.pretrain_data not in PRETRAINING_DATA or req.pretrain_data == "none":
        choices = ", ".join(d for d in PRETRAINING_DATA if d != "none")
        raise BenchError(f"--pretrain-data {req.pretrain_data!r}: use one of {choices}.")
    known = backbones.architectures()
    if req.arch not in known:
        raise BenchError(f"unknown architecture {req.arch!r}; torchvision classification "
                         f"models are accepted." + closest_names(req.arch, known))  # fmt: skip
    project = backbone_registry.registry_file()
    if any(e.name == req.name for e in backbone_registry.read_registry_file(project)):
        raise BenchError(f"--name {req.name}: the project registry {project} already has it; "
                         f"pick another name.")  # fmt: skip
    user = backbone_registry.user_registry_file()
    if user.is_file() and not req.force:  # noqa: SIM102 (the file is read only when it exists)
        if any(e.name == req.name for e in backbone_registry.read_registry_file(user)):
            raise BenchError(f"--name {req.name}: already registered in {user} (pass --force "
                             f"to train and register it again).")  # fmt: skip
    folder = PretrainLayout(req.out, req.name).folder
    if (folder / RECORD_FILE).is_file() and not req.force:
        raise BenchError(f"{folder} already holds a pretrained backbone (pass --force to "
                         f"replace it).")  # fmt: skip
    return resolve_recipe(req)


def resolve_recipe(req: PretrainRequest) -> PretrainRecipe:
    """The paper's recipe for the architecture with the request's ``--set`` overrides and
    ``--image-size`` applied: what the run trains with and its record keeps."""
    recipe = apply_recipe_overrides(default_recipe(req.arch), req.overrides)
    if req.image_size is not None:  # toy data: both sizes scaled, the paper's 224/256 ratio
        recipe = apply_recipe_overrides(recipe, {
            "input.image_size": req.image_size, "input.resize_size": round(req.image_size / 0.875),
        })  # fmt: skip
    return recipe


def already_pretrained(req: PretrainRequest) -> dict[str, Any] | None:
    """The record of a finished pretraining that this request would repeat, or None.

    Repeated means: the same architecture, pretraining data, seed, resolved recipe and step or
    epoch limit, on data with the same identity, and still registered (user registry) with the
    weights it saved. ``bench pretrain`` itself refuses an existing name without ``--force``;
    the study demo asks this first so that a rerun is "already done" instead."""
    path = PretrainLayout(req.out, req.name).folder / RECORD_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: train again (with force) and replace it
    if not isinstance(record, dict):
        return None
    recipe = resolve_recipe(req)
    wanted = {
        "arch": req.arch, "pretraining_data": req.pretrain_data, "seed": req.seed,
        "recipe": recipe.model_dump(mode="json"),
        "max_epochs": req.trainer.max_epochs or recipe.train.epochs,
        "max_steps": req.trainer.max_steps,
        "data_sha256": imagenet_folder.folder_identity(req.data)["sha256"],
    }  # fmt: skip
    trainer = record.get("trainer") or {}
    found = {
        "arch": record.get("arch"), "pretraining_data": record.get("pretraining_data"),
        "seed": record.get("seed"), "recipe": record.get("recipe"),
        "max_epochs": trainer.get("max_epochs"), "max_steps": trainer.get("max_steps"),
        "data_sha256": (record.get("data") or {}).get("sha256"),
    }  # fmt: skip
    if found != wanted:
        return None
    registry = backbone_registry.user_registry_file()
    entries = backbone_registry.read_registry_file(registry) if registry.is_file() else []
    entry = next((e for e in entries if e.name == req.name), None)
    if entry is None or entry.sha256 != record.get("weights_sha256"):
        return None
    return record


def pretrain(req: PretrainRequest) -> PretrainOutcome:
    """Train, save the weights and the record in ``<out>/<name>/`` (written in a staging
    folder, then renamed: a reader never sees half), and register the backbone."""
    from benchmark.runner import LossHistory, build_trainer, code_version, hardware

    recipe = _check_request(req)
    pl.seed_everything(req.seed, workers=True, verbose=False)
    workers = req.trainer.num_workers if req.trainer.num_workers is not None \
        else recipe.train.num_workers  # fmt: skip
    datamodule = ImageFolderDataModule(req.data, recipe, workers)
    identity = imagenet_folder.folder_identity(req.data)
    class_names = datamodule.class_names
    import torchvision

    network = torchvision.models.get_model(req.arch, weights=None, num_classes=len(class_names))
    module = PretrainModule(network, recipe, len(class_names))
    req.out.mkdir(parents=True, exist_ok=True)
    layout = PretrainLayout(req.out, req.name)
    work = layout.work_dir
    losses = LossHistory()
    trainer = build_trainer(req.trainer, recipe.train.epochs, work, [losses],
                            layout.checkpoint_dir, run_name=f"pretrain-{req.name}")  # fmt: skip
    last = layout.last_checkpoint
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=last if last.is_file() else None,
                weights_only=True)  # fmt: skip
    if trainer.interrupted:
        raise KeyboardInterrupt(f"interrupted: rerun the same command to resume from {last}")
    # the metrics of the weights that are saved (--max-steps may stop before an epoch's end)
    trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = {k: round(float(v), 6) for k, v in trainer.callback_metrics.items()
               if k.startswith("val_")}  # fmt: skip
    record: dict[str, Any] = {
        "kind": "pretrain",
        "name": req.name,
        "arch": req.arch,
        "pretraining_data": req.pretrain_data,
        "data": {"path": str(Path(req.data).resolve()), **identity},
        "class_names": class_names,
        "recipe": recipe.model_dump(mode="json"),
        "seed": req.seed,
        "trainer": {"max_epochs": req.trainer.max_epochs or recipe.train.epochs,
                    "max_steps": req.trainer.max_steps, "precision": req.trainer.precision,
                    **req.trainer.trainer},
        "metrics": metrics,
        "training": {"steps": int(trainer.global_step),
                     "epochs_completed": int(trainer.current_epoch), "losses": losses.losses},
        "code_version": code_version(),
        "hardware": hardware(),
        "started": started,
        "wall_seconds": round(time.perf_counter() - t0, 3),
        "weights_file": WEIGHTS_FILE,
    }  # fmt: skip
    if not trainer.is_global_zero:  # DDP: rank 0 writes
        return PretrainOutcome(req.out / req.name, record, backbone_registry.user_registry_file())
    folder = req.out / req.name
    staging = Path(tempfile.mkdtemp(dir=req.out, prefix=layout.staging_prefix()))
    try:
        weights = save_weights_file(staging / WEIGHTS_FILE, network, {
            "arch": req.arch, "num_classes": str(len(class_names)),
            "pretraining_data": req.pretrain_data, "data_sha256": str(identity["sha256"]),
            # output i is class folder i: protocol eval checks the data has these folders
            "class_names": ",".join(class_names),
        })  # fmt: skip
        record["weights_sha256"] = sha256_of(weights)
        atomic_write_text(staging / RECORD_FILE, json.dumps(record, indent=1) + "\n")
        os.chmod(staging, 0o777 & ~_umask())
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    registry = register(req, record, folder)
    return PretrainOutcome(folder, record, registry)


def _umask() -> int:
    from benchmark.atomic import current_umask

    return current_umask()


def register(req: PretrainRequest, record: dict[str, Any], folder: Path) -> Path:
    """Add (or with --force replace) the backbone in the user registry file, written
    atomically; the weights are pinned by sha256, so a changed file is refused later."""
    path = backbone_registry.user_registry_file()
    raw: dict[str, Any] = {}
    if path.is_file():
        backbone_registry.read_registry_file(path)  # a broken file is one line, not overwritten
        raw = yaml.safe_load(path.read_text()) or {}
    entries = raw.setdefault("backbones", {})
    entries[req.name] = {
        "arch": req.arch,
        "data": req.pretrain_data,
        "source": "file",
        "path": str((folder / WEIGHTS_FILE).resolve()),
        "sha256": record["weights_sha256"],
        "data_identity": f"sha256:{record['data']['sha256']}",
        "pretrain_record": str((folder / RECORD_FILE).resolve()),
        "note": (f"bench pretrain on {record['data']['path']} ({req.pretrain_data}, "
                 f"{record['training']['steps']} steps)"),
    }  # fmt: skip
    backbone_registry.BackboneEntry.model_validate({"name": req.name, **entries[req.name]})
    atomic_write_text(path, "# backbones trained by `bench pretrain`\n"
                      + yaml.safe_dump(raw, sort_keys=False))  # fmt: skip
    return path
