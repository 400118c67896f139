"""A run's key, computed without torch: the task YAML (with overrides), the backbone's identity
(name, architecture, checkpoint sha256) and the data identity.

The runner builds every key through :func:`run_config`; :func:`already_done` computes the same
key from the backbone registry, the cached checkpoint sha256 (:mod:`benchmark.file_digests`)
and the adapters' index part (:func:`benchmark.data.splits.index_identity`), so that
`bench run` answers "already done" in well under a second instead of importing torch,
torchvision and Lightning (about 8 s) to find out. Whatever it cannot decide this way (a timm or
torchvision-weights backbone, a checkpoint it has not read before, data it cannot index) it
leaves to the runner, which decides the full way; it never answers "done" for a key other than
the one the runner computes.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmark import paths
from benchmark.errors import BenchError
from benchmark.pretraining import PRETRAINING_DATA
from benchmark.records import RunKey, RunStore, config_hash
from benchmark.request import PrintedConfig, RunRequest
from benchmark.run_record import RunRecord
from benchmark.tasks import Task, apply_overrides, for_subset, get_task

# ``--trainer`` arguments that change how a run is watched, not its numbers: not in the key.
TRAINER_ARGUMENTS_OUTSIDE_THE_KEY = frozenset({
    "enable_progress_bar", "enable_model_summary", "log_every_n_steps", "profiler",
    "num_nodes", "sync_batchnorm", "barebones", "detect_anomaly",
})  # fmt: skip


@dataclass(frozen=True)
class BackboneIdentity:
    """What a run's key needs to know about a backbone: no network, no weights. A sweep plans
    many runs per backbone from one loaded backbone this way."""

    name: str
    arch: str
    provenance: dict[str, Any]


def resolve_task(request: RunRequest) -> tuple[Task, str | int]:
    """The task as this request runs it (subset's smoke settings, then ``--set`` and
    ``--protocol``); a protocol the task's kind does not have is refused here, before any data
    is read."""
    from benchmark.data.splits import parse_subset
    from benchmark.protocols.linear import check_protocol

    subset = parse_subset(request.subset)
    task = get_task(request.task, request.tasks_dirs)
    task = for_subset(task, str(subset))
    overrides = dict(request.overrides)
    if request.protocol is not None:
        given = overrides.get("protocol", request.protocol)
        if given != request.protocol:
            raise BenchError(f"--protocol {request.protocol} and --set protocol={given} "
                             f"disagree: give one of them.")
        overrides["protocol"] = request.protocol
    task = apply_overrides(task, overrides)
    check_protocol(task)
    return task, subset


def check_limits(request: RunRequest) -> None:
    if request.max_steps is not None and request.max_steps < 1:
        raise BenchError("--max-steps must be at least 1.")
    if request.max_epochs is not None and request.max_epochs < 1:
        raise BenchError("--max-epochs must be at least 1.")
    if request.checkpoint_every_n_steps is not None and request.checkpoint_every_n_steps < 1:
        raise BenchError("--checkpoint-every-n-steps must be at least 1.")


# Trainer arguments the runner sets itself: each has its own option, or the runner relies on it
# (its loggers, callbacks, work folder). ``--trainer`` may not set them; checked here, before
# anything else, so "already done" is never answered for a request the runner refuses.
OWN_TRAINER_ARGUMENTS = {
    "accelerator": "--accelerator", "devices": "--devices", "strategy": "--strategy",
    "precision": "--precision", "max_epochs": "--max-epochs", "max_steps": "--max-steps",
    "logger": "--logger", "callbacks": None, "default_root_dir": "--results",
    "enable_checkpointing": "--checkpoint-every-n-steps",
}  # fmt: skip


def check_own_trainer_arguments(arguments: dict[str, Any]) -> None:
    """``--trainer NAME=VALUE`` may not set what the runner sets itself (the Lightning
    signature check is the runner's, :func:`benchmark.runner.check_trainer_arguments`)."""
    for name in arguments:
        if name in OWN_TRAINER_ARGUMENTS:
            own = OWN_TRAINER_ARGUMENTS[name]
            instead = f"use {own}" if own else "the runner sets it"
            raise BenchError(f"--trainer {name}: not settable this way ({instead}).")


def check_loggers(loggers: list[str]) -> None:
    """Each logger's library is an optional extra: say how to install it, before any write."""
    needs = {"tensorboard": "tensorboard", "wandb": "wandb"}
    for name in loggers:
        module = needs.get(name)
        if module and importlib.util.find_spec(module) is None:
            raise BenchError(f"--logger {name} needs the {module} package: pip install "
                             f"'blurbench[loggers]'.")


def run_config(
    request: RunRequest,
    task: Task,
    subset: str | int,
    data: dict[str, Any],
    backbone: BackboneIdentity,
) -> tuple[dict[str, Any], str, RunKey]:
    """The key's contents (what decides a run's outcome), its hash and the key."""
    config = {
        "task": task.resolved(),
        "subset": subset,
        "data": data,
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
            # other Trainer arguments (--trainer), only when given: older keys stay the same
            **{name: value for name, value in sorted(request.trainer.items())
               if name not in TRAINER_ARGUMENTS_OUTSIDE_THE_KEY},
        },
    }
    digest = config_hash(config)
    return config, digest, RunKey(task.name, task.protocol, backbone.name, request.seed, digest)


def declare_pretraining_data(backbone: BackboneIdentity, declared: str | None) -> BackboneIdentity:
    """``--backbone-data``: what a backbone was pretrained on, where its source does not say
    (a checkpoint file: ``unknown``; timm: its tag), so the leaderboard pairs it by itself. A
    source that says (a registry entry, the run a fine-tuned backbone came from) must agree.

    Not part of the run key: it names the weights, whose sha256 already is in the key, and
    changes nothing in training; a key with it would train the same weights again only to
    relabel them. A completed run recorded with other data is refused instead
    (:func:`recorded_data_differs`), so a label is never silently kept or changed.
    """
    if declared is None:
        return backbone
    known = backbone.provenance.get("pretraining_data")
    if known in PRETRAINING_DATA and known != declared:
        source = backbone.provenance.get("source") or "source"
        raise BenchError(
            f"--backbone-data {declared} contradicts backbone {backbone.name!r}, whose {source} "
            f"says it was pretrained on {known} data: drop --backbone-data, or fix the entry."
        )
    provenance = {**backbone.provenance, "pretraining_data": declared,
                  "pretraining_data_from": "--backbone-data"}  # fmt: skip
    return replace(backbone, provenance=provenance)


def recorded_data_differs(backbone: BackboneIdentity, done: RunRecord) -> tuple[str, str] | None:
    """``(recorded, now)`` when a completed run records other pretraining data than its
    backbone now says (declared, or a registry entry edited since); a checkpoint file that
    says nothing accepts any."""
    now = backbone.provenance.get("pretraining_data")
    was = done.backbone.pretraining_data
    return (was, now) if now in PRETRAINING_DATA and was != now else None


def already_done_message(run_dir: Path) -> str:
    return f"already done: {run_dir} (pass --force to run it again)"


def already_done(
    request: RunRequest, recorded: RunRecord | PrintedConfig | None = None
) -> Path | None:
    """The folder of the completed run ``request`` resolves to, decided without torch; None when
    the run is not done or this cannot be decided here (the runner then decides the full way).

    A mistake in the task or its overrides raises the runner's own error, as early as the
    runner would; with ``recorded`` (``--config``), only a run that repeats it exactly counts.
    """
    if request.force or request.dry_run:
        return None
    task, subset = resolve_task(request)
    check_limits(request)
    check_own_trainer_arguments(request.trainer)
    try:
        check_loggers(request.loggers)
        backbone = backbone_key_identity(request.backbone, request.arch)
        if backbone is None:
            return None
        backbone = declare_pretraining_data(backbone, request.backbone_data)
        from benchmark.data.splits import index_identity

        data = index_identity(task, request.data_root, subset)
    except Exception:  # noqa: BLE001 - an optimisation only: the runner reports it properly
        return None
    config, digest, key = run_config(request, task, subset, data, backbone)
    if recorded is not None:
        was = recorded.config.get("backbone") or {}
        if recorded.config_hash not in (None, digest) or was.get("sha256") != (
            config["backbone"]["sha256"]
        ):
            return None
    store = RunStore(request.results)
    done = store.completed(key)
    # a run recorded with other pretraining data than the backbone now says: the runner says so
    if done is None or recorded_data_differs(backbone, done) is not None:
        return None
    return store.run_dir(key)


def backbone_key_identity(spec: str, arch: str | None) -> BackboneIdentity | None:
    """The key's view of backbone ``spec`` as :func:`benchmark.backbones.create_backbone` would
    give it, without reading the weights: a checkpoint file (its architecture from ``--arch``
    or from its own ``arch`` field, remembered when the runner first read it), or a registry
    entry whose file is local (``file``, a cached ``hub`` download) or that has no weights.
    None for what only the runner can resolve (timm, torchvision or URL weights, run folders,
    a file never read)."""
    from benchmark.backbone_registry import TIMM_PREFIX, get_entry, looks_like_path, registry_file
    from benchmark.file_digests import FileDigests

    if spec.startswith(TIMM_PREFIX) or Path(spec).is_dir() or Path(spec).name == "record.json":
        return None
    digests = FileDigests()
    if looks_like_path(spec):
        path = Path(spec)
        sha = digests.sha256(path)
        chosen = arch or digests.noted(path, "arch", None)
        digests.save()
        if chosen is None:
            return None
        provenance = {"source": "file", "path": str(path), "sha256": sha}
        return BackboneIdentity(f"file-{paths.slug(path.stem)}-{sha[:8]}", chosen, provenance)
    entry = get_entry(spec)
    if arch is not None and arch != entry.arch:
        return None  # the runner refuses the contradiction
    if entry.source == "torchvision" and entry.weights is None:
        return BackboneIdentity(entry.name, entry.arch, {"weights": None, "sha256": None,
                                                         "pretraining_data": entry.data})
    if entry.source == "file":
        assert entry.path is not None
        path = (registry_file().parent / entry.path).resolve()
        weights = str(path)
    elif entry.source == "hub":
        from benchmark.hub import cached_hub_file, commit_of

        assert entry.repo is not None and entry.filename is not None
        found = cached_hub_file(entry.repo, entry.filename, entry.revision)
        if found is None:
            return None
        path = found
        commit = commit_of(found, entry.repo)
        weights = f"{entry.repo}/{entry.filename}@{commit or entry.revision}"
    else:
        return None
    sha = digests.sha256(path)
    digests.save()
    if entry.sha256 is not None and sha != entry.sha256:
        return None  # the runner says what is wrong with the file
    return BackboneIdentity(entry.name, entry.arch, {"weights": weights, "sha256": sha,
                                                     "pretraining_data": entry.data})
