"""One run: task + backbone -> DataModule + LightningModule -> Trainer -> record.

Everything a user can get wrong (task, backbone, data, overrides) is checked before training
starts and before anything is written, so a run that never started leaves no trace in results/.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import signal
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.callbacks import (
    Callback,
    ModelCheckpoint,
    OnExceptionCheckpoint,
    TQDMProgressBar,
)
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_only

import benchmark
from benchmark.backbones import Backbone, create_backbone
from benchmark.checkpoints import save_weights_file
from benchmark.data.splits import SPLIT_NAMES, describe, splits_identity
from benchmark.errors import BenchError, closest_names
from benchmark.kinds import evaluate_predictions, get_kind, save_predictions
from benchmark.layout import LAST_CHECKPOINT, LOGS, RUN_WEIGHTS_FILE
from benchmark.records import RunKey, RunStore
from benchmark.request import PrintedConfig, RunRequest
from benchmark.run_key import (
    OWN_TRAINER_ARGUMENTS,
    BackboneIdentity,
    already_done_message,
    check_limits,
    check_loggers,
    check_own_trainer_arguments,
    declare_pretraining_data,
    recorded_data_differs,
    resolve_task,
    run_config,
)
from benchmark.run_record import BackboneRecord, RunRecord, TrainingRecord
from benchmark.tasks import Task
from benchmark.version import source_commit


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a run; the message says what was kept and how to resume."""


@dataclass
class RunOutcome:
    run_dir: Path
    record: dict[str, Any]
    skipped: bool
    primary_process: bool = True  # False on DDP ranks > 0, which write nothing


@dataclass
class PlannedRun:
    """A run resolved up to its key (the data read to compute its identity), before anything is
    trained or written."""

    task: Task
    subset: str
    backbone: BackboneIdentity
    config: dict[str, Any]
    digest: str
    key: RunKey
    store: RunStore
    loaded: Backbone | None = None  # the network, when plan_run loaded it
    datamodule: Any = None  # the task's LightningDataModule with its splits loaded

    @property
    def data_identity(self) -> dict[str, Any]:
        return self.config["data"]

    @property
    def run_dir(self) -> Path:
        return self.store.run_dir(self.key)

    @property
    def workdir(self) -> Path:
        """Scratch space of an unfinished run (logs, resumable checkpoint); removed on success."""
        return self.store.layout.work_dir(self.key)

    @property
    def last_checkpoint(self) -> Path:
        return self.store.layout.last_checkpoint(self.key)

    def completed(self) -> RunRecord | None:
        """The completed record of this run's key, if any; one line (exit 2) when it records
        other pretraining data than the backbone now declares (``--backbone-data``)."""
        done = self.store.completed(self.key)
        if done is not None:
            check_recorded_data(self, done)
        return done

    def status(self, force: bool = False) -> str:
        """``done`` (a completed record), ``resume`` (a checkpoint survived) or ``to run``."""
        if not force and self.completed() is not None:
            return "done"
        if self.last_checkpoint.is_file():
            return "resume"
        return "to run"


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


class KeepOnException(OnExceptionCheckpoint):
    """Lightning's on-exception checkpoint, written over the periodic last checkpoint and never
    removed at teardown (Lightning's removes its file then, which here is the resumable
    checkpoint itself; the runner deletes the work folder once the record is written)."""

    def on_exception(self, trainer: pl.Trainer, *_: Any, **__: Any) -> None:
        trainer.save_checkpoint(self.ckpt_path, weights_only=False)  # optimiser state too

    def teardown(self, trainer: pl.Trainer, *_: Any, **__: Any) -> None:
        pass


def code_version() -> str:
    """The git commit of the source tree (``+dirty`` when it has changes), else the version."""
    commit = source_commit()
    return f"git:{commit}" if commit else f"blurbench {benchmark.__version__}"


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


def check_trainer_arguments(arguments: dict[str, Any]) -> None:
    """``--trainer NAME=VALUE``: NAME must be a ``pl.Trainer`` argument the runner does not set
    itself; the value is checked by Lightning when the Trainer is built (:func:`build_trainer`)."""
    import inspect

    check_own_trainer_arguments(arguments)
    known = [n for n in inspect.signature(pl.Trainer).parameters if n != "self"]
    for name in arguments:
        if name not in known:
            choices = [n for n in known if n not in OWN_TRAINER_ARGUMENTS]
            raise BenchError(f"--trainer {name}: pytorch_lightning.Trainer has no argument "
                             f"{name!r}." + closest_names(name, choices))


class LogLastSteps(Callback):
    """Makes the last step of every epoch, and of the run, a logging step too.

    Lightning logs every ``log_every_n_steps`` steps (its loggers, ``LearningRateMonitor`` and
    the module's ``self.log`` all ask the same ``should_update_logs``), so a 5-step run would
    log nothing at 10. Lightning reads the interval at every step: it is 1 for those steps.
    Must come before the other callbacks, which ask in ``on_train_batch_start``.
    """

    def __init__(self, every_n_steps: int) -> None:
        self.every_n_steps = every_n_steps

    def on_train_batch_start(self, trainer: pl.Trainer, _module: Any, _b: Any, idx: int) -> None:
        last_of_epoch = idx + 1 >= trainer.num_training_batches
        last_of_run = 0 < trainer.max_steps <= trainer.global_step + 1
        trainer.log_every_n_steps = 1 if last_of_epoch or last_of_run else self.every_n_steps


class ImagesPerSecond(Callback):
    """Training throughput (images/s, data loading included) at each logging step, averaged
    since the previous one: the GPU is synchronised only when a value is logged.

    (Lightning's ``ThroughputMonitor`` needs FLOPs per batch and a window of batches before it
    reports a rate, which short runs never fill.)
    """

    def __init__(self) -> None:
        self._since = 0.0
        self._images = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        self._since, self._images = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, _o: Any, batch: Any,
                           *_: Any) -> None:  # fmt: skip
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        self._images += len(images)
        if not trainer._logger_connector.should_update_logs:
            return
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        if now > self._since:
            rate = self._images / (now - self._since)
            module.log("train_images_per_sec", rate, on_step=True, on_epoch=False,
                       batch_size=len(images))  # fmt: skip
        self._since, self._images = now, 0


def make_loggers(request: RunRequest, logs_dir: Path, run_name: str) -> list[Any]:
    """Lightning's own logger classes, one folder each under ``logs_dir``; W&B offline unless
    ``WANDB_MODE=online`` (no account needed; ``wandb sync`` uploads a run later)."""
    out: list[Any] = []
    for name in request.loggers:
        if name == "csv":
            out.append(CSVLogger(logs_dir, name="csv"))
        elif name == "tensorboard":
            from pytorch_lightning.loggers import TensorBoardLogger

            out.append(TensorBoardLogger(logs_dir, name="tensorboard", default_hp_metric=False))
        elif name == "wandb":
            from pytorch_lightning.loggers import WandbLogger

            (logs_dir / "wandb").mkdir(parents=True, exist_ok=True)
            out.append(WandbLogger(
                name=run_name, save_dir=str(logs_dir), project=os.environ.get(
                    "WANDB_PROJECT", "blurbench"),
                offline=os.environ.get("WANDB_MODE", "offline") != "online",
            ))  # fmt: skip
    return out


def make_trainer(
    request: RunRequest,
    task_epochs: int,
    workdir: Path,
    callbacks: list[Callback],
    checkpoint_dir: Path | None = None,
    run_name: str = "run",
) -> pl.Trainer:
    """The Trainer every run uses (also timed by scripts/bench_lightning_overhead.py).

    With ``checkpoint_dir``, Lightning keeps one resumable checkpoint there (``LAST_CHECKPOINT``,
    written atomically by Lightning's checkpoint IO) every epoch or every
    ``request.checkpoint_every_n_steps`` steps. Loggers write under ``workdir/logs/<logger>/``
    (moved into the run folder with its record); ``request.trainer`` passes any other Trainer
    argument, and may change the defaults below.
    """
    from pytorch_lightning.callbacks import LearningRateMonitor

    if checkpoint_dir is not None:
        callbacks = [
            *callbacks,
            ModelCheckpoint(
                dirpath=checkpoint_dir,
                save_last=True,
                save_top_k=0,
                every_n_train_steps=request.checkpoint_every_n_steps,
            ),
            # Ctrl-C or a crash: keep where training got to, so the rerun resumes from there
            KeepOnException(checkpoint_dir, filename=Path(LAST_CHECKPOINT).stem),
        ]
    loggers = make_loggers(request, workdir / LOGS, run_name)
    arguments: dict[str, Any] = {
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 10,  # each logging step syncs the GPU; the record keeps every loss
        "enable_model_summary": False,
        **request.trainer,
    }
    bar = [] if arguments.get("enable_progress_bar") is False else [TQDMProgressBar(10)]
    if loggers:
        every = int(arguments["log_every_n_steps"])
        callbacks = [LogLastSteps(every), LearningRateMonitor("step"), ImagesPerSecond(),
                     *callbacks]  # fmt: skip
    return pl.Trainer(
        accelerator=request.accelerator,
        devices=request.devices,
        strategy=request.strategy,
        precision=request.precision,
        max_epochs=request.max_epochs or task_epochs,
        max_steps=request.max_steps if request.max_steps is not None else -1,
        logger=loggers or False,
        callbacks=[*callbacks, *bar],
        enable_checkpointing=checkpoint_dir is not None,
        default_root_dir=workdir,
        **arguments,
    )


def check_recorded_data(plan: PlannedRun, done: RunRecord) -> None:
    """An "already done" run must record the pretraining data its backbone now says (declared,
    or from a registry entry edited since); a checkpoint file that says nothing accepts any."""
    differ = recorded_data_differs(plan.backbone, done)
    if differ is not None:
        was, now = differ
        declared = plan.backbone.provenance.get("pretraining_data_from") == "--backbone-data"
        raise BenchError(
            f"run {plan.run_dir} is done, recorded with pretraining data {was!r}, not {now!r}: "
            f"pass --force to run it again as {now!r}"
            + (f", or give --backbone-data {was}." if declared else ".")
        )


def plan_run(
    request: RunRequest,
    backbone: BackboneIdentity | None = None,
    data_identities: dict[str, dict[str, Any]] | None = None,
) -> PlannedRun:
    """Resolve task, backbone, data and key: everything ``execute`` checks before training.

    Without ``backbone`` the backbone is resolved from the request (weights read and verified);
    a sweep passes the identity of a backbone it already resolved. The data is loaded (and
    downloaded with ``--download``) here, because its identity is part of the key; a sweep
    passes ``data_identities``, a memo of identities by task data and subset, so each task's
    data is read once per sweep and not kept in memory (``datamodule`` is then None).
    """
    task, subset = resolve_task(request)
    check_limits(request)
    if task.protocol == "eval":  # benchmark.evaluate runs these (`bench run` dispatches there)
        raise BenchError(f"task {task.name} (protocol eval) trains nothing: run it alone with "
                         f"`bench run --task {task.name} --backbone NAME`, not in a sweep.")
    check_trainer_arguments(request.trainer)
    check_loggers(request.loggers)
    loaded = None
    if backbone is None:
        loaded = create_backbone(request.backbone, request.arch)
        backbone = BackboneIdentity(loaded.name, loaded.arch, loaded.provenance)
    backbone = declare_pretraining_data(backbone, request.backbone_data)
    memo_key = json.dumps(
        [task.resolved().get("data"), task.resolved().get("splits"), str(subset),
         str(Path(request.data_root).resolve())], sort_keys=True, default=str,
    )  # fmt: skip
    datamodule = None
    if data_identities is not None and memo_key in data_identities:
        identity = data_identities[memo_key]
    else:
        datamodule = get_kind(task.kind).datamodule(
            task, request.data_root, subset, request.download, request.num_workers
        )
        datamodule.prepare_data()
        datamodule.setup("fit")  # a missing or broken dataset fails here, before any write
        identity = splits_identity(task, request.data_root, datamodule.splits)
        if data_identities is not None:
            data_identities[memo_key] = identity
            datamodule = None  # a sweep plans many runs: keep no data in memory
    config, digest, key = run_config(request, task, subset, identity, backbone)
    return PlannedRun(
        task, str(subset), backbone, config, digest, key, RunStore(request.results), loaded,
        datamodule,
    )


def describe_data_identity(identity: dict[str, Any]) -> str:
    """One line for ``--dry-run`` and logs: which data a run key stands for."""
    kind = "FIXTURE" if identity.get("fixture") else "real"
    examples = identity.get("examples") or {}
    order = sorted(examples, key=lambda split: (SPLIT_NAMES + (split,)).index(split))
    sizes = ", ".join(f"{split} {examples[split]}" for split in order)
    return (
        f"{kind} data via {identity.get('adapter')} v{identity.get('adapter_version')} "
        f"({identity.get('source')}), {sizes}, {identity.get('files')} file(s) hashed, "
        f"fingerprint {str(identity.get('fingerprint'))[:16]}"
    )


def build_trainer(
    request: RunRequest, task_epochs: int, workdir: Path, callbacks: list[Callback],
    checkpoint_dir: Path | None = None, run_name: str = "run",
) -> pl.Trainer:
    """:func:`make_trainer`, with Lightning's refusals of an option (``--precision bogus``,
    ``--accelerator tpu`` on a machine without one) as one-line user errors.

    Built before anything is written and quietly (Lightning's "GPU available" lines would come
    before an "already done" or an error); the runner says what it trains on once it trains.
    """
    quiet = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        return make_trainer(request, task_epochs, workdir, callbacks, checkpoint_dir, run_name)
    except (MisconfigurationException, ValueError, TypeError, ImportError) as err:
        extra = "".join(f" --trainer {k}={v}" for k, v in request.trainer.items())
        raise BenchError(
            f"the Trainer options are not usable here (--accelerator {request.accelerator} "
            f"--devices {request.devices} --strategy {request.strategy} --precision "
            f"{request.precision}{extra}): {err}"
        ) from None
    finally:
        quiet.setLevel(level)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def resolved_config(request: RunRequest) -> dict[str, Any]:
    """What ``bench run --print-config`` shows: the request as given, the configuration it
    resolves to (the run key's contents) and where the run goes. ``bench run --config`` reads
    it back like a record."""
    plan = plan_run(request)
    return {
        "request": request.as_record(),
        "config": _jsonable(plan.config),
        "config_hash": plan.digest,
        "run_dir": str(plan.run_dir),
        "status": plan.status(request.force),
    }


def check_same_run(plan: PlannedRun, recorded: RunRecord | PrintedConfig) -> None:
    """``bench run --config``: the run resolves to exactly the recorded one (same backbone
    weights by sha256, same task, data and trainer configuration), or nothing happens."""
    config = recorded.config
    was = (config.get("backbone") or {}).get("sha256")
    now = plan.config["backbone"]["sha256"]
    if was != now:
        raise BenchError(
            f"--config: backbone {plan.backbone.name!r} now resolves to other weights (sha256 "
            f"{str(now)[:16]}, the recorded run used {str(was)[:16]}): not the same run."
        )
    if recorded.config_hash not in (None, plan.digest):
        ours = _jsonable(plan.config)
        differ = sorted(k for k in set(ours) | set(config) if ours.get(k) != config.get(k))
        raise BenchError(
            f"--config: this would not repeat the recorded run: its {', '.join(differ)} "
            f"configuration differs (config {plan.digest[:12]}, recorded "
            f"{str(recorded.config_hash)[:12]})."
        )


def execute(
    request: RunRequest, recorded: RunRecord | PrintedConfig | None = None
) -> RunOutcome:
    """One run; with ``recorded`` (a record or ``--print-config`` output), only if it
    repeats that run exactly (:func:`check_same_run`)."""
    plan = plan_run(request)
    if recorded is not None:
        check_same_run(plan, recorded)
    task, digest, key, store = plan.task, plan.digest, plan.key, plan.store
    kind = get_kind(task.kind)
    if request.dry_run:
        status = plan.status(request.force)
        print(f"run {plan.run_dir}: {status}")
        print(f"  key: {key.task} / {key.protocol} / {key.backbone} / seed {key.seed} / "
              f"config {digest[:12]}")
        print(f"  data: {describe_data_identity(plan.data_identity)}")
        done = plan.completed()
        return RunOutcome(store.run_dir(key), done.as_dict() if done else {}, skipped=True)
    if task.protocol == "linear":  # no LightningModule: features, then the L-BFGS probe
        with store.lock(key):
            done = None if request.force else plan.completed()
            if done is not None:
                print(already_done_message(store.run_dir(key)))
                return RunOutcome(store.run_dir(key), done.as_dict(), skipped=True)
            return _probe_and_record(request, plan)
    # built before anything is written: a head that does not fit the data, an input too small
    # for the architecture, a bad --precision or --accelerator all write nothing
    pl.seed_everything(request.seed, workers=True, verbose=False)  # the new head's init too
    assert plan.loaded is not None
    module = kind.module(plan.loaded.model, task, plan.datamodule.class_names)
    losses = LossHistory()
    run_name = f"{task.name}-{plan.backbone.name}-s{request.seed}-{digest[:8]}"
    trainer = build_trainer(
        request, task.train.epochs, plan.workdir, [losses], plan.last_checkpoint.parent, run_name
    )
    primary = _is_global_zero(None)  # DDP: rank 0 locks and writes; other ranks only train
    with store.lock(key) if primary else _no_lock():
        done = None if request.force else plan.completed()
        if done is not None:
            print(already_done_message(store.run_dir(key)))
            return RunOutcome(store.run_dir(key), done.as_dict(), skipped=True)
        return _train_and_record(request, plan, kind, module, trainer, losses)


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


def _train_and_record(
    request: RunRequest,
    plan: PlannedRun,
    kind: Any,
    module: pl.LightningModule,
    trainer: pl.Trainer,
    losses: LossHistory,
) -> RunOutcome:
    """Fit, test and write the record. A run that fails once training has started leaves a
    failed record (status, error, traceback) that the leaderboard lists and the next run of
    the same key replaces; a mistake found before training writes nothing."""
    task, key, store = plan.task, plan.key, plan.store
    backbone = plan.loaded
    assert backbone is not None
    datamodule = plan.datamodule
    class_names = datamodule.class_names
    if trainer.is_global_zero:
        print(f"training {plan.run_dir} on {type(trainer.accelerator).__name__} x"
              f"{trainer.num_devices} ({request.precision})", flush=True)

    t0 = time.perf_counter()
    record = _record_head(request, plan)
    test_ids = datamodule.splits["test"].example_ids
    workdir = plan.workdir
    resume, resumed_step = _resumable_checkpoint(plan.last_checkpoint)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
        trainer.test(module, datamodule=datamodule, verbose=False)
        # the record's metrics are computed from exactly the arrays predictions.npz will hold
        predictions = kind.prediction_arrays(module.test_outputs, test_ids)
        metrics = evaluate_predictions(
            task.kind, predictions, class_names, [task.metrics.primary, *task.metrics.others],
            groups=task.groups,
        )  # fmt: skip
        record.update(status="completed", metrics=metrics, primary_metric=task.metrics.primary)
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into sys.exit(1): ours is exit 130
            signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignored it
            raise RunInterrupted(_interrupted_message(plan)) from None
        raise
    except Exception as err:  # started and crashed: recorded as failed, then raised
        close_loggers(trainer)
        record.update(status="failed", error=f"{type(err).__name__}: {err}")
        record["traceback"] = traceback.format_exc(limit=20)
        record.update(ended=_now(), wall_seconds=round(time.perf_counter() - t0, 3))
        if _is_global_zero(trainer):
            store.write(key, RunRecord.model_validate(record), lambda _d: None)
        raise
    record.update(
        ended=_now(),
        wall_seconds=round(time.perf_counter() - t0, 3),
        training=TrainingRecord(
            steps=int(trainer.global_step),
            epochs_completed=int(trainer.current_epoch),
            losses=losses.losses,  # since the resume, when resumed
            resumed_from_step=resumed_step,
        ),
        accelerator=type(trainer.accelerator).__name__,
        devices=trainer.num_devices,
    )
    if request.save_weights:
        record["weights_file"] = RUN_WEIGHTS_FILE
    logs = log_locations(trainer, plan.workdir)
    close_loggers(trainer)
    if logs:
        record["logs"] = logs  # relative to the run folder

    def write_files(run_dir: Path) -> None:
        save_predictions(run_dir, predictions)
        if request.save_weights:  # safetensors: loading it back runs no pickle
            network = getattr(module, "network", module)
            save_weights_file(run_dir / RUN_WEIGHTS_FILE, network, {"arch": backbone.arch})
        if (plan.workdir / LOGS).is_dir():  # moved: the work folder is removed next
            shutil.move(plan.workdir / LOGS, run_dir / LOGS)

    validated = RunRecord.model_validate(record)
    if not trainer.is_global_zero:  # DDP: one record, written by global rank 0
        return RunOutcome(store.run_dir(key), validated.as_dict(), skipped=False,
                          primary_process=False)  # fmt: skip
    run_dir = store.write(key, validated, write_files)
    shutil.rmtree(workdir, ignore_errors=True)
    return RunOutcome(run_dir, validated.as_dict(), skipped=False)


def _record_head(request: RunRequest, plan: PlannedRun) -> dict[str, Any]:
    """What every record starts with, before the protocol trains anything: the fields in the
    order they are written, validated as a :class:`RunRecord` when the record is complete."""
    task = plan.task
    return {
        "task": task.name,
        "kind": task.kind,
        "protocol": task.protocol,
        # the identity's provenance: the loaded backbone's, with --backbone-data applied
        "backbone": BackboneRecord.model_validate(
            {"name": plan.backbone.name, "arch": plan.backbone.arch, **plan.backbone.provenance}
        ),
        "seed": request.seed,
        "subset": plan.subset,
        "request": request.as_record(),  # the options as given: `bench run --config` repeats
        "config": plan.config,
        "config_hash": plan.digest,
        "code_version": code_version(),
        "data": describe(task, request.data_root, plan.datamodule.splits),
        "hardware": hardware(),
        "started": _now(),
        "class_names": list(plan.datamodule.class_names),
    }


def _probe_and_record(request: RunRequest, plan: PlannedRun) -> RunOutcome:
    """``protocol: linear``: the probe on cached features (:mod:`benchmark.protocols.linear`),
    recorded like a fine-tuning run: same metrics from the same ``predictions.npz`` arrays, the
    probe's choices in ``record["probe"]``; a failure once started leaves a failed record."""
    from benchmark.protocols.linear import run_probe

    task, key, store = plan.task, plan.key, plan.store
    class_names = plan.datamodule.class_names
    primary = task.metrics.primary
    pl.seed_everything(request.seed, workers=True, verbose=False)

    def val_score(logits: Any, targets: Any) -> float:  # the task's own primary metric
        arrays = {"example_id": np.asarray([str(i) for i in range(len(targets))]),
                  "target": np.asarray(targets).astype(np.int64),
                  "logits": np.asarray(logits, np.float32)}  # fmt: skip
        value = evaluate_predictions(task.kind, arrays, class_names, [primary],
                                     groups=task.groups)[primary]  # fmt: skip
        return float(value) if value is not None else float("-inf")

    t0 = time.perf_counter()
    record = _record_head(request, plan)
    print(f"linear probe {plan.run_dir}", flush=True)
    try:
        outcome = run_probe(request, task, plan.loaded, plan.datamodule, plan.data_identity,
                            plan.subset, val_score)  # fmt: skip
        predictions = outcome.predictions
        metrics = evaluate_predictions(
            task.kind, predictions, class_names, [primary, *task.metrics.others],
            groups=task.groups,
        )  # fmt: skip
        record.update(status="completed", metrics=metrics, primary_metric=primary,
                      probe=outcome.probe)  # fmt: skip
    except Exception as err:  # started and crashed: recorded as failed, then raised
        record.update(status="failed", error=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc(limit=20), ended=_now(),
                      wall_seconds=round(time.perf_counter() - t0, 3))  # fmt: skip
        store.write(key, RunRecord.model_validate(record), lambda _d: None)
        raise
    record.update(ended=_now(), wall_seconds=round(time.perf_counter() - t0, 3),
                  accelerator=outcome.probe["features"]["device"], devices=1)  # fmt: skip
    validated = RunRecord.model_validate(record)
    run_dir = store.write(key, validated, lambda d: save_predictions(d, predictions))
    return RunOutcome(run_dir, validated.as_dict(), skipped=False)


def close_loggers(trainer: pl.Trainer) -> None:
    """Flush every logger; W&B's run is finished so its ``.wandb`` file is complete before
    the folder moves (Lightning leaves W&B's run open)."""
    for logger in trainer.loggers:
        logger.save()
        if type(logger).__name__ == "WandbLogger" and logger._experiment is not None:
            logger.experiment.finish()


def log_locations(trainer: pl.Trainer, workdir: Path) -> dict[str, str]:
    """Where each logger wrote, relative to the run folder once the logs are moved there."""
    names = {"CSVLogger": "csv", "TensorBoardLogger": "tensorboard", "WandbLogger": "wandb"}
    out: dict[str, str] = {}
    for logger in trainer.loggers:
        name = names.get(type(logger).__name__)
        if name == "csv":
            where = Path(logger.log_dir) / "metrics.csv"
        elif name == "tensorboard":
            where = Path(logger.log_dir)
        elif name == "wandb" and logger._experiment is not None:
            where = Path(logger.experiment.dir).parent  # <save_dir>/wandb/offline-run-*/
        else:
            continue
        try:
            out[name] = str(where.resolve().relative_to(workdir.resolve()))
        except ValueError:  # written elsewhere (e.g. WANDB_DIR): keep where it is
            out[name] = str(where)
    return out


def _interrupted_message(plan: PlannedRun) -> str:
    """What an interrupted run kept, and how to go on."""
    step = _checkpoint_step(plan.last_checkpoint)
    if step is None:
        return (
            f"interrupted: nothing was kept ({plan.run_dir} was not written); run the same "
            f"command again to start over."
        )
    return (
        f"interrupted: the checkpoint at step {step} is kept in {plan.last_checkpoint.parent}; "
        f"run the same command again: it resumes from step {step}."
    )


def _read_step(path: Path) -> int:
    """The global step a Lightning checkpoint was saved at (tensors only: weights_only)."""
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def _checkpoint_step(path: Path) -> int | None:
    if not path.is_file():
        return None
    try:
        return _read_step(path)
    except Exception:  # unreadable: the rerun sets it aside and starts over
        return None


def _is_global_zero(trainer: pl.Trainer | None) -> bool:
    """Rank 0 of a DDP job (or the only process); before the Trainer exists, Lightning's rank
    from the environment (RANK / LOCAL_RANK / SLURM_PROCID)."""
    if trainer is not None:
        return bool(trainer.is_global_zero)
    return int(getattr(rank_zero_only, "rank", 0) or 0) == 0


def _resumable_checkpoint(path: Path) -> tuple[Path | None, int | None]:
    """The run's last Lightning checkpoint if one survived an interruption, and its step.

    Lightning writes it atomically, so it is whole or absent; one that still fails to load
    (a disk error, a torch upgrade) is set aside and the run starts over rather than failing
    on every retry.
    """
    if not path.is_file():
        return None, None
    try:
        step = _read_step(path)
    except Exception as err:  # any unreadable checkpoint: start over, keep it for inspection
        aside = path.with_suffix(".unreadable")
        os.replace(path, aside)
        print(f"ignoring unreadable checkpoint {path} ({type(err).__name__}); kept as {aside}")
        return None, None
    print(f"resuming from {path} (step {step})", flush=True)
    return path, step
