"""Protocol ``eval``: a classifier evaluated as it is (its own head), nothing trained.

``bench run --task imagenet --backbone NAME`` comes here (``cli.cmd_run`` dispatches on the
task's protocol): the backbone is loaded with every tensor, head included, and strictly; the
task's adapter reads the validation folder; the Trainer of ``bench run`` (same accelerator,
devices and precision options) runs the test loop; the record, ``predictions.npz`` and
``per_category.md`` are written in one rename like every run. Every number in the record is
recomputed from ``predictions.npz`` by :mod:`benchmark.analysis.imagenet`.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from benchmark import backbones
from benchmark.analysis.imagenet import face_flags, per_category, render_rows
from benchmark.atomic import atomic_write_text
from benchmark.data import get_adapter
from benchmark.data.imagenet_folder import folder_identity
from benchmark.data.selection import take_subset
from benchmark.data.splits import subset_sizes
from benchmark.data.transforms import eval_transform
from benchmark.errors import BenchError
from benchmark.kinds import logit_prediction_arrays, save_predictions
from benchmark.layout import LOGS
from benchmark.models.finetune import FineTuneModule
from benchmark.records import RunKey, RunStore, config_hash
from benchmark.request import RunRequest
from benchmark.run_key import BackboneIdentity, declare_pretraining_data
from benchmark.run_record import BackboneRecord, RunRecord

PER_CATEGORY_FILE = "per_category.md"


def load_classifier(spec: str, arch: str | None) -> tuple[backbones.Backbone, int]:
    """The whole network, head included: built with as many outputs as the checkpoint's head
    has, and loaded strictly (a missing or extra tensor stops, never a silent partial load)."""
    from benchmark.checkpoints import head_module_name

    loc = backbones.locate(spec)
    if loc.path is None:
        raise BenchError(f"backbone {spec} is a random initialisation: nothing to evaluate.")
    raw, check = backbones.read_verified(loc)
    chosen, arch_from = backbones.choose_arch(loc, raw, arch)
    if chosen.startswith(backbones.TIMM_PREFIX):
        raise BenchError("protocol eval takes torchvision architectures only, for now.")
    head = head_module_name(backbones._meta_model(chosen))
    head_weight = raw.state_dict.get(f"{head}.weight")
    if head_weight is None:
        raise BenchError(f"{spec}: the checkpoint has no classifier head ({head}.weight): "
                         f"it cannot be evaluated as it is.")  # fmt: skip
    import torchvision

    outputs = int(head_weight.shape[0])
    model = torchvision.models.get_model(chosen, weights=None, num_classes=outputs)
    try:
        model.load_state_dict(raw.state_dict, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1:2] or [str(err)]
        raise BenchError(f"{spec} does not load completely into {chosen}: {first[0].strip()}") \
            from None  # fmt: skip
    name = loc.name or f"file-{Path(str(loc.path)).stem}-{raw.sha256[:8]}"
    provenance = {**loc.provenance, "sha256": raw.sha256, "sha256_check": check,
                  "layout": raw.layout, "arch_from": arch_from, "pretraining_data": loc.data,
                  "checkpoint_meta": raw.meta, "head_outputs": outputs}  # fmt: skip
    return backbones.Backbone(name, chosen, model, provenance), outputs


class _Indexed(Dataset):
    """(image, target, position): the batch layout FineTuneModule's test loop gathers."""

    def __init__(self, dataset: Any, transform: Any) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        image, target = self.dataset[index]
        return self.transform(image), target, index


class EvalModule(pl.LightningModule):
    """The network as it is, in eval mode; the test loop (and its DDP gathering) is
    FineTuneModule's, so evaluation and fine-tuning save predictions the same way."""

    on_test_epoch_start = FineTuneModule.on_test_epoch_start
    test_step = FineTuneModule.test_step
    on_test_epoch_end = FineTuneModule.on_test_epoch_end

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self._test_chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.test_outputs: dict[str, torch.Tensor] = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)


def has_face_table(annotations: Path) -> dict[str, bool]:
    """``url -> has at least one (non-degenerate) face`` from the paper's JSON or a CSV."""
    from benchmark.obfuscation.annotations import read_annotations

    table = read_annotations(Path(annotations))
    return {url: any(not box.degenerate for box in boxes) for url, boxes in table.items()}


def _face_lookup(ids: list[str], table: dict[str, bool]) -> np.ndarray:
    """Annotations name an image by its path under the data folder; the paper's name val
    images flat (``val/<file>``), so that form is looked up as well."""
    keyed = {}
    for example in ids:
        flat = f"{example.split('/')[0]}/{example.rsplit('/', 1)[-1]}"
        for key in (example, flat):
            if key in table:
                keyed[example] = table[key]
                break
    return face_flags(ids, keyed)


def obfuscation_of(folder: Path, data_root: Path) -> str:
    """How the evaluated images were obfuscated: the method ``bench obfuscate`` / ``bench
    blur`` recorded in its ``--dst`` (the folder itself, or a folder above it up to the data
    root), else ``none``. The leaderboard pairs an original backbone on original images with a
    blurred one on blurred images by it (the paper's Table 4)."""
    from benchmark.obfuscation.runner import SETTINGS_FILE

    here, root = Path(folder).resolve(), Path(data_root).resolve()
    places = [here, *here.parents] if here.is_relative_to(root) else [here]
    for place in places:
        marker = place / SETTINGS_FILE
        if marker.is_file():
            try:
                return str(json.loads(marker.read_text()).get("method") or "unknown")
            except (OSError, ValueError, AttributeError):
                return "unknown"
        if place == root:
            break
    return "none"


def execute_eval(request: RunRequest) -> tuple[Path, dict[str, Any], str]:
    """Evaluate, write the run folder; return it, the record and the per-category table."""
    from benchmark.run_key import resolve_task
    from benchmark.runner import (
        build_trainer,
        close_loggers,
        code_version,
        hardware,
        log_locations,
    )

    # the task as `bench run` resolves it (--tasks-dir, --subset, --set, --protocol)
    task, subset = resolve_task(request)
    args = dict(task.data.args)
    annotations = args.pop("annotations", None)
    adapter = get_adapter(task.data.adapter)
    split = adapter.load_split(request.data_root, task.splits.test, False, **args)
    backbone, outputs = load_classifier(request.backbone, request.arch)
    # --backbone-data labels a checkpoint file as `bench run` does, so the leaderboard pairs it
    declared = declare_pretraining_data(
        BackboneIdentity(backbone.name, backbone.arch, backbone.provenance), request.backbone_data)
    backbone.provenance = declared.provenance
    if outputs != len(split.class_names):
        raise BenchError(
            f"backbone {backbone.name} has {outputs} outputs, the data has "
            f"{len(split.class_names)} class folders: evaluate it on the classes it was "
            f"trained on (same folders, same order)."
        )
    trained_on = (backbone.provenance.get("checkpoint_meta") or {}).get("class_names")
    if trained_on is not None and trained_on != ",".join(split.class_names):
        raise BenchError(
            f"backbone {backbone.name} was trained on other class folders than the data's "
            f"({trained_on[:60]}... vs {','.join(split.class_names)[:60]}...): its outputs "
            f"would be read as the wrong categories."
        )
    base = Path(request.data_root) / str(args.get("folder", "imagenet"))
    identity = folder_identity(base, (task.splits.test,))
    faces = has_face_table(Path(annotations)) if annotations else None
    # --subset: the test split's stratified, deterministic selection of every task
    # (benchmark.data.selection, seeded by the task, so every backbone sees the same images)
    wanted = subset_sizes(task, subset)["test"]
    positions = take_subset(split.labels, len(split.example_ids), wanted, seed=0)
    selected_ids = [split.example_ids[i] for i in positions]
    config = {
        "task": task.resolved(), "subset": subset, "data": identity,
        "backbone": {"name": backbone.name, "arch": backbone.arch,
                     "sha256": backbone.provenance.get("sha256"),
                     "weights": backbone.provenance.get("weights")},
        "annotations": str(annotations) if annotations else None,
    }  # fmt: skip
    digest = config_hash(config)
    key = RunKey(task.name, task.protocol, backbone.name, request.seed, digest)
    store = RunStore(request.results)
    assert task.input is not None
    loader = DataLoader(_Indexed(Subset(split.dataset, positions.tolist()),
                                 eval_transform(task.input)),
                        batch_size=task.train.batch_size, shuffle=False,
                        num_workers=request.num_workers if request.num_workers is not None
                        else 0)  # fmt: skip
    module = EvalModule(backbone.model)
    work = store.layout.work_dir(key)
    trainer = build_trainer(request, 1, work, [], None, run_name=f"eval-{backbone.name}")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.perf_counter()
    trainer.test(module, dataloaders=loader, verbose=False)
    arrays = logit_prediction_arrays(module.test_outputs, selected_ids)
    face_array = _face_lookup(list(arrays["example_id"]), faces) if faces is not None else None
    if face_array is not None:
        arrays["has_face"] = face_array  # NaN: not annotated; recomputable from the file
    overall, rows = per_category(arrays["logits"], arrays["target"], split.class_names,
                                 face_array)  # fmt: skip
    logs = log_locations(trainer, work)  # moved into the run folder with the other files
    close_loggers(trainer)
    from benchmark.metrics import compute_metrics

    metrics: dict[str, Any] = dict(compute_metrics(
        "classification", [task.metrics.primary, *task.metrics.others], arrays["logits"],
        arrays["target"], split.class_names))  # fmt: skip
    metrics["top5"] = overall["top5"]
    metrics["per_category"] = {r.category: {"images": r.images, "top1": r.top1, "top5": r.top5,
                                            "ap": r.ap, "faces": r.faces} for r in rows}
    record = RunRecord.model_validate({
        "task": task.name, "kind": task.kind, "protocol": task.protocol,
        "backbone": BackboneRecord.model_validate(
            {"name": backbone.name, "arch": backbone.arch, **backbone.provenance}),
        "seed": request.seed, "subset": subset, "request": request.as_record(),
        "config": config, "config_hash": digest, "code_version": code_version(),
        "data": {"test": {"examples": len(selected_ids), "available": len(split.example_ids),
                          "fixture": split.is_fixture, **split.source},
                 "sizes": {"test": len(selected_ids)}, "fixture": split.is_fixture,
                 "obfuscation": obfuscation_of(base, Path(request.data_root)),
                 "identity": identity},
        "hardware": hardware(), "started": started, "class_names": split.class_names,
        "status": "completed", "metrics": metrics, "primary_metric": task.metrics.primary,
        "wall_seconds": round(time.perf_counter() - t0, 3),
        "accelerator": type(trainer.accelerator).__name__, "devices": trainer.num_devices,
        "logs": logs or None,
    })  # fmt: skip
    table = render_rows(rows)

    def write_files(run_dir: Path) -> None:
        save_predictions(run_dir, arrays)
        atomic_write_text(run_dir / PER_CATEGORY_FILE, table + "\n")
        if (work / LOGS).is_dir():
            shutil.move(work / LOGS, run_dir / LOGS)

    with store.lock(key):
        run_dir = store.write(key, record, write_files)
        shutil.rmtree(work, ignore_errors=True)  # nothing to resume: evaluation keeps no state
    return run_dir, record.as_dict(), table
