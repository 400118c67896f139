"""One run: task + backbone -> DataModule + LightningModule -> Trainer -> record.

Everything a user can get wrong (task, backbone, data, overrides) is checked before training
starts and before anything is written, so a run that never started leaves no trace in results/.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger

import benchmark
from benchmark import paths
from benchmark.backbones import RUN_WEIGHTS_FILE, create_backbone
from benchmark.checkpoints import save_weights_file
from benchmark.data.splits import describe, parse_subset
from benchmark.errors import BenchError
from benchmark.kinds import get_kind
from benchmark.records import SCHEMA_VERSION, RunKey, RunStore, config_hash
from benchmark.tasks import apply_overrides, for_subset, get_task, parse_overrides


@dataclass
class RunRequest:
    """What ``bench run`` asks for; the CLI only fills this in."""

    task: str
    backbone: str
    arch: str | None = None
    subset: str = "full"
    data_root: Path = field(default_factory=paths.default_data_root)
    download: bool = False
    results: Path = Path("results")
    overrides: list[str] = field(default_factory=list)
    seed: int = 0
    devices: str = "auto"
    accelerator: str = "auto"
    precision: str = "32-true"
    strategy: str = "auto"
    max_epochs: int | None = None
    max_steps: int | None = None
    num_workers: int | None = None
    force: bool = False
    save_weights: bool = False  # keep the fine-tuned network as weights.safetensors


@dataclass
class RunOutcome:
    run_dir: Path
    record: dict[str, Any]
    skipped: bool


class LossHistory(Callback):
    """Keeps every training loss for the record and prints it at the logging interval, so a
    log shows that training really happened (progress bars do not survive in CI logs)."""

    def __init__(self, print_every: int = 50) -> None:
        self._losses: list[torch.Tensor] = []
        self.print_every = print_every

    @property
    def losses(self) -> list[float]:
        return [float(v) for v in torch.stack(self._losses).cpu()] if self._losses else []

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, *_: Any) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._losses.append(loss.detach())  # kept on the device: no GPU sync per step
        step = trainer.global_step
        if trainer.is_global_zero and (step % self.print_every == 0 or step <= 5):
            bar = trainer.progress_bar_callback
            message = f"step {step}  train_loss {float(self._losses[-1]):.4f}"
            if isinstance(bar, TQDMProgressBar):
                from tqdm import tqdm

                tqdm.write(message)
            else:
                print(message, flush=True)


def code_version() -> str:
    """The git commit of the source tree (``+dirty`` when it has changes), else the version."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(paths.PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(paths.PROJECT_ROOT), "status", "--porcelain", "--", "benchmark"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return f"git:{sha}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"blurbench {benchmark.__version__}"


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def make_trainer(
    request: RunRequest, task_epochs: int, workdir: Path, callbacks: list[Callback]
) -> pl.Trainer:
    """The Trainer every run uses (also timed by scripts/bench_lightning_overhead.py)."""
    return pl.Trainer(
        accelerator=request.accelerator,
        devices=request.devices,
        strategy=request.strategy,
        precision=request.precision,
        max_epochs=request.max_epochs or task_epochs,
        max_steps=request.max_steps if request.max_steps is not None else -1,
        logger=CSVLogger(workdir, name="logs"),
        callbacks=[*callbacks, TQDMProgressBar(refresh_rate=10)],
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,  # each logging step syncs the GPU; the record keeps every loss
        default_root_dir=workdir,
        enable_model_summary=False,
    )


def execute(request: RunRequest) -> RunOutcome:
    subset = parse_subset(request.subset)
    task = get_task(request.task)
    task = for_subset(task, str(subset))
    task = apply_overrides(task, parse_overrides(request.overrides))
    if request.max_steps is not None and request.max_steps < 1:
        raise BenchError("--max-steps must be at least 1.")
    if request.max_epochs is not None and request.max_epochs < 1:
        raise BenchError("--max-epochs must be at least 1.")
    backbone = create_backbone(request.backbone, request.arch)
    kind = get_kind(task.kind)

    config = {
        "task": task.resolved(),
        "subset": subset,
        "backbone": {
            "name": backbone.name,
            "arch": backbone.arch,
            "sha256": backbone.provenance.get("sha256"),
            "weights": backbone.provenance.get("weights"),
        },
        "trainer": {
            "max_epochs": request.max_epochs or task.train.epochs,
            "max_steps": request.max_steps,
            "precision": request.precision,
        },
    }
    digest = config_hash(config)
    key = RunKey(task.name, task.protocol, backbone.name, request.seed, digest)
    store = RunStore(request.results)
    done = store.completed(key)
    if done is not None and not request.force:
        print(f"already done: {store.run_dir(key)} (pass --force to run it again)")
        return RunOutcome(store.run_dir(key), done, skipped=True)

    datamodule = kind.datamodule(
        task, request.data_root, subset, request.download, request.num_workers
    )
    datamodule.prepare_data()
    datamodule.setup("fit")  # a missing or broken dataset fails here, before anything is written
    class_names = datamodule.class_names
    pl.seed_everything(request.seed, workers=True, verbose=False)  # the new head's init too
    module = kind.module(backbone.model, task, class_names)

    started = _now()
    t0 = time.perf_counter()
    losses = LossHistory()
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "task": task.name,
        "kind": task.kind,
        "protocol": task.protocol,
        "backbone": {"name": backbone.name, "arch": backbone.arch, **backbone.provenance},
        "seed": request.seed,
        "subset": subset,
        "config": config,
        "config_hash": digest,
        "code_version": code_version(),
        "data": describe(task, request.data_root, datamodule.splits),
        "hardware": hardware(),
        "started": started,
    }
    workdir = store.root / "runs" / ".work" / f"{task.name}-{digest[:12]}-s{request.seed}"
    try:
        trainer = make_trainer(request, task.train.epochs, workdir, [losses])
        trainer.fit(module, datamodule=datamodule)
        trainer.test(module, datamodule=datamodule, verbose=False)
        metrics = kind.evaluate(
            module.test_outputs, class_names, [task.metrics.primary, *task.metrics.others]
        )
        record.update(status="completed", metrics=metrics, primary_metric=task.metrics.primary)
    except BenchError:
        raise
    except Exception as err:  # a run that started and crashed is recorded as failed
        record.update(status="failed", error=f"{type(err).__name__}: {err}")
        record["traceback"] = traceback.format_exc(limit=20)
        record.update(ended=_now(), wall_seconds=round(time.perf_counter() - t0, 3))
        store.write(key, record, lambda _d: None)
        raise
    record.update(
        ended=_now(),
        wall_seconds=round(time.perf_counter() - t0, 3),
        training={
            "steps": int(trainer.global_step),
            "epochs_completed": int(trainer.current_epoch),
            "losses": losses.losses,
        },
        accelerator=type(trainer.accelerator).__name__,
        devices=trainer.num_devices,
    )
    test_ids = datamodule.splits["test"].example_ids

    if request.save_weights:
        record["weights_file"] = RUN_WEIGHTS_FILE

    def write_files(run_dir: Path) -> None:
        kind.save_predictions(run_dir, module.test_outputs, test_ids)
        if request.save_weights:  # safetensors: loading it back runs no pickle
            network = getattr(module, "network", module)
            save_weights_file(run_dir / RUN_WEIGHTS_FILE, network, {"arch": backbone.arch})
        log = Path(trainer.logger.log_dir) / "metrics.csv" if trainer.logger else None
        if log is not None and log.is_file():
            shutil.copyfile(log, run_dir / "train_log.csv")

    run_dir = store.write(key, record, write_files)
    shutil.rmtree(workdir, ignore_errors=True)
    return RunOutcome(run_dir, record, skipped=False)
