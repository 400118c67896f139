"""The backbone registry: a name, a file or a run -> an ImageNet network + its provenance.

``checkpoints/backbones.yaml`` names the backbones; ``create_backbone`` is the one door in (as
timm's ``create_model``). Every source goes the same three steps:

1. :func:`locate`: where the weights are (registry entry on the Hugging Face Hub, torchvision's
   weights or another URL, ``timm:<name>``, a local file, a run directory of ours), downloading
   only when they are not in the cache their library keeps them in
   (:mod:`benchmark.checkpoint_cache`);
2. :func:`read_verified`: sha256 checked against the registry when pinned (or torchvision's
   hash prefix), read with ``weights_only=True``, a corrupt cached copy removed;
3. build the architecture and load every tensor but the classifier head, or stop and list
   the keys that do not fit (:func:`benchmark.checkpoints.load_backbone_state`).

The provenance (source, which weights, sha256, layout) goes into every run record.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from benchmark import paths
from benchmark.backbone_registry import (
    TIMM_PREFIX,
    BackboneEntry,
    get_entry,
    list_backbones,
    looks_like_path,
    registry_file,
)
from benchmark.checkpoint_cache import (
    Cache,
    fetch_url_file,
    hash_prefix_of,
    remove_cached_file,
    torch_cache,
    url_file_path,
)
from benchmark.checkpoints import (
    CorruptCheckpointError,
    KeyReport,
    RawCheckpoint,
    compare_state,
    load_backbone_state,
    read_checkpoint,
)
from benchmark.errors import BenchError, closest_names
from benchmark.file_digests import FileDigests
from benchmark.layout import RECORD_FILE, RUN_WEIGHTS_FILE, record_file


@dataclass
class Backbone:
    """An ImageNet network with its weights loaded, before the head is replaced."""

    name: str
    arch: str
    model: nn.Module
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class Located:
    """Where a backbone's weights are, before they are read."""

    name: str | None  # None: named after the file once its sha256 is known
    arch: str | None  # what the source says; None: from --arch, the file, or a guess
    path: Path | None  # None: random initialisation, nothing to read
    data: str
    provenance: dict[str, Any]
    expected_sha256: str | None = None
    hash_prefix: str | None = None
    removable: bool = False  # a copy in a cache, deleted if corrupt or not what was pinned
    was_cached: bool = True
    cache: Cache | None = None  # which cache holds it, for a download


def architectures() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_architecture(arch: str) -> nn.Module:
    """A randomly initialised torchvision ImageNet classifier (1000 classes)."""
    if arch not in architectures():
        raise BenchError(
            f"unknown architecture {arch!r}; torchvision classification models are accepted, "
            f"or timm:<model>." + closest_names(arch, architectures())
        )
    return torchvision.models.get_model(arch, weights=None)


def _import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise BenchError(
            "timm:<model> backbones need timm: install blurbench[timm] (pip install timm)."
        ) from None
    return timm


def build_model(arch: str) -> nn.Module:
    """``resnet50`` (torchvision) or ``timm:resnet50.a1_in1k`` (timm), randomly initialised."""
    if arch.startswith(TIMM_PREFIX):
        timm = _import_timm()
        model_name = arch[len(TIMM_PREFIX) :]
        try:
            return timm.create_model(model_name, pretrained=False)
        except RuntimeError as err:  # timm's "Unknown model"
            raise BenchError(f"timm has no model {model_name!r} ({err}).") from None
    return build_architecture(arch)


def _meta_model(arch: str) -> nn.Module:
    """The architecture on the ``meta`` device: names and shapes only, built in milliseconds."""
    with torch.device("meta"):
        return build_model(arch)


def guess_architecture(state: dict[str, torch.Tensor]) -> str | None:
    """The one registry architecture whose every key and shape (head aside) ``state`` fits;
    None when none or several do. Lets a bare state dict load without --arch, safely: an
    exact fit of all keys and shapes is required, and a tie is no answer."""
    candidates = sorted(
        {e.arch for e in list_backbones() if e.source != "timm"} & set(architectures())
    )
    fits = [arch for arch in candidates if compare_state(_meta_model(arch), state).fits]
    return fits[0] if len(fits) == 1 else None


# --- step 1: where are the weights ------------------------------------------------------------


def _run_dir_of(spec: str) -> Path | None:
    path = Path(spec)
    if path.name == RECORD_FILE and path.is_file():
        return path.parent
    if path.is_dir():
        if record_file(path).is_file():
            return path
        raise BenchError(
            f"{spec} is a folder without a {RECORD_FILE}: pass a checkpoint file, or a run "
            f"directory from results/runs/."
        )
    return None


def locate(spec: str) -> Located:
    """Resolve ``spec`` to a local file (downloading into the cache if needed)."""
    if spec.startswith(TIMM_PREFIX):
        return _locate_timm(spec[len(TIMM_PREFIX) :], name=None, sha256=None)
    run_dir = _run_dir_of(spec)
    if run_dir is not None:
        return _locate_run(run_dir)
    if looks_like_path(spec):
        path = Path(spec)
        if not path.is_file():
            raise BenchError(f"checkpoint {spec} does not exist.")
        return Located(None, None, path, "unknown", {"source": "file", "path": str(path)})
    return locate_entry(get_entry(spec))


def locate_entry(entry: BackboneEntry) -> Located:
    if entry.source == "timm":
        return _locate_timm(entry.arch, name=entry.name, sha256=entry.sha256, data=entry.data)
    base: dict[str, Any] = {"source": entry.source, "registry_note": entry.note}
    base.update({k: v for k, v in (("data_identity", entry.data_identity),
                                   ("pretrain_record", entry.pretrain_record)) if v})
    if entry.source == "hub":
        from benchmark.hub import fetch_hub_file

        assert entry.repo is not None and entry.filename is not None
        hub = fetch_hub_file(entry.repo, entry.filename, entry.revision, entry.name,
                             str(registry_file()))
        base.update(
            repo=hub.repo, filename=hub.filename, revision=hub.revision, commit=hub.commit,
            url=hub.url, weights=f"{hub.repo}/{hub.filename}@{hub.commit or hub.revision}",
            path=str(hub.path), cache=hub.cache.name,
        )
        return Located(entry.name, entry.arch, hub.path, entry.data, base, entry.sha256,
                       removable=True, was_cached=hub.was_cached, cache=hub.cache)
    if entry.source == "file":
        assert entry.path is not None
        path = (registry_file().parent / entry.path).resolve()
        if not path.is_file():
            raise BenchError(f"backbone {entry.name}: its file {path} does not exist.")
        base.update(path=str(path), weights=str(path))
        return Located(entry.name, entry.arch, path, entry.data, base, entry.sha256)
    if entry.source == "url":
        assert entry.url is not None
        return _locate_url(entry, entry.url, entry.url, base)
    # torchvision
    if entry.weights is None:
        base.update(weights=None, note="random initialisation")
        return Located(entry.name, entry.arch, None, entry.data, base)
    try:
        weights = torchvision.models.get_model_weights(entry.arch)[entry.weights]
    except (KeyError, ValueError):
        raise BenchError(
            f"backbone {entry.name}: torchvision has no weights {entry.weights!r} for "
            f"{entry.arch}; fix `weights` in {registry_file()}."
        ) from None
    return _locate_url(entry, weights.url, f"torchvision:{entry.arch}.{entry.weights}", base)


def _locate_url(entry: BackboneEntry, url: str, weights: str, base: dict[str, Any]) -> Located:
    """A file from a URL, kept where torch.hub keeps it: a copy a user already has there
    (``$TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth``) is used without any network."""
    prefix = hash_prefix_of(url)
    path, was_cached = fetch_url_file(url, entry.name, prefix)
    cache = torch_cache()
    base.update(weights=weights, url=url, path=str(path), cache=cache.name)
    return Located(entry.name, entry.arch, path, entry.data, base, entry.sha256, prefix,
                   removable=True, was_cached=was_cached, cache=cache)


def _locate_timm(model_name: str, name: str | None, sha256: str | None,
                 data: str | None = None) -> Located:
    """timm's pretrained weights for ``model_name``, from the Hub repo its pretrained config
    names (``timm/<model>.<tag>``), with the same checks as the paper's. The file is fetched
    by the same ``hf_hub_download`` call timm makes, into the same Hub cache, so weights
    ``timm.create_model(..., pretrained=True)`` already downloaded are used as they are."""
    timm = _import_timm()
    from benchmark.hub import fetch_hub_file

    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is None:
        raise BenchError(
            f"timm has no pretrained weights named {model_name!r}."
            + closest_names(model_name, timm.list_pretrained())
        )
    if not cfg.hf_hub_id:
        raise BenchError(
            f"timm:{model_name} has no Hugging Face Hub weights (only {cfg.url or 'none'}); "
            f"pick a tag with Hub weights (`timm.list_pretrained('{model_name.split('.')[0]}*')`)."
        )
    repo, _, revision = cfg.hf_hub_id.partition("@")
    filename = cfg.hf_hub_filename or "model.safetensors"
    label = name or f"timm:{model_name}"
    hub = fetch_hub_file(repo, filename, revision or "main", label, "timm's pretrained config")
    provenance = {
        "source": "timm", "timm_model": model_name, "repo": hub.repo, "filename": hub.filename,
        "revision": hub.revision, "commit": hub.commit, "url": hub.url,
        "weights": f"timm:{model_name} ({hub.repo}/{hub.filename}@{hub.commit or hub.revision})",
        "path": str(hub.path), "cache": hub.cache.name,
    }
    return Located(
        name or f"timm-{paths.slug(model_name)}", TIMM_PREFIX + model_name, hub.path,
        data or f"timm tag {cfg.tag or 'default'}", provenance, sha256, removable=True,
        was_cached=hub.was_cached, cache=hub.cache,
    )


def _locate_run(run_dir: Path) -> Located:
    """A model fine-tuned by ``bench run --save-weights``: the run's weights, and where they
    came from (the base backbone and the run), so a chain of runs stays traceable."""
    from benchmark.run_record import read_record

    record = read_record(run_dir)  # a broken record: one line naming what is wrong
    if not record.completed:
        raise BenchError(f"{run_dir}: no completed run record there ({RECORD_FILE}).")
    weights = run_dir / RUN_WEIGHTS_FILE
    if not weights.is_file():
        raise BenchError(
            f"{run_dir}: this run did not keep its weights; run it again with `bench run ... "
            f"--save-weights --force` to use it as a backbone."
        )
    base = record.backbone
    provenance = {
        "source": "run",
        "path": str(weights),
        "weights": f"fine-tuned on {record.task} by run {run_dir}",
        "finetuned_from": {
            "backbone": base.name,
            "sha256": base.sha256,
            "task": record.task,
            "protocol": record.protocol,
            "seed": record.seed,
            "config_hash": record.config_hash,
            "code_version": record.code_version,
            "run_dir": str(run_dir),
        },
    }
    name = paths.slug(f"ft-{record.task}-{base.name}")[:90]
    return Located(name, base.arch, weights, base.pretraining_data, provenance)


# --- step 2: is it the file we expect, and readable --------------------------------------------


def read_verified(loc: Located) -> tuple[RawCheckpoint, str]:
    """Check the sha256 before unpickling anything, then read the file. A cached copy that is
    corrupt or not what the registry pinned is deleted, so the next try downloads it again.
    Returns the checkpoint and a line saying how its sha256 was checked.

    The sha256 is cached by the file's size, mtime and inode (:mod:`benchmark.file_digests`),
    with the checkpoint's own ``arch`` field, which :mod:`benchmark.run_key` reads to compute a
    run key without torch."""
    assert loc.path is not None
    label = loc.name or str(loc.path)
    removed = " The cached copy was removed: the next run downloads it again."
    digests = FileDigests()
    sha = digests.sha256(loc.path)
    if loc.expected_sha256 is not None and sha != loc.expected_sha256:
        gone = loc.removable and remove_cached_file(loc.path)
        raise BenchError(
            f"backbone {label}: sha256 mismatch for {loc.path}: the registry pins "
            f"{loc.expected_sha256}, the file is {sha}." + (removed if gone else "")
            + f" If the upstream file changed on purpose, update `sha256` in {registry_file()}."
        )
    if loc.hash_prefix is not None and not sha.startswith(loc.hash_prefix):
        gone = loc.removable and remove_cached_file(loc.path)
        raise BenchError(
            f"backbone {label}: {loc.path} has sha256 {sha}, but its name promises a hash "
            f"starting {loc.hash_prefix}." + (removed if gone else "")
        )
    try:
        raw = read_checkpoint(loc.path, sha256=sha)
    except CorruptCheckpointError as err:
        if loc.removable and remove_cached_file(loc.path):
            raise CorruptCheckpointError(f"backbone {label}: {err}{removed}") from None
        raise
    digests.note(loc.path, "arch", raw.arch)
    digests.save()
    if loc.expected_sha256 is not None:
        check = "matches the sha256 pinned in the registry"
    elif loc.hash_prefix is not None:
        check = f"matches the hash prefix {loc.hash_prefix} in its file name (torch.hub's check)"
    else:
        check = "not pinned: recorded only"
    return raw, check


def choose_arch(
    loc: Located, raw: RawCheckpoint, arch: str | None, may_guess: bool = False
) -> tuple[str, str]:
    """The architecture to build, and why: --arch, the registry, the checkpoint's own 'arch'
    field; any two of them that disagree stop the run. When none says, the one registered
    architecture whose keys and shapes all fit is used only if ``may_guess`` (inspect); a run
    asks for --arch instead, naming that architecture, so what trains is always stated."""
    label = loc.name or str(loc.path)
    said = [
        (value, why)
        for value, why in (
            (arch, "--arch"),
            (loc.arch, "the registry" if loc.provenance.get("source") != "run" else "the run"),
            (None if (loc.arch or "").startswith(TIMM_PREFIX) else raw.arch,
             "the checkpoint's 'arch' field"),
        )
        if value
    ]
    for value, why in said[1:]:
        if value != said[0][0]:
            raise BenchError(
                f"{label}: {said[0][1]} says {said[0][0]}, which contradicts {why} ({value}); "
                f"fix the one that is wrong (a registry entry may point at the wrong file)."
            )
    if said:
        return said[0][0], said[0][1]
    guessed = guess_architecture(raw.state_dict)
    if guessed is None:
        raise BenchError(
            f"{label} does not say its architecture and fits no single registered one: pass "
            f"--arch (e.g. resnet50)."
        )
    if not may_guess:
        raise BenchError(
            f"{label} does not say its architecture: pass --arch {guessed} (the only registered "
            f"architecture whose keys and shapes all fit it)."
        )
    return guessed, "guessed: the only registered architecture whose keys and shapes all fit"


# --- step 3: build and load ----------------------------------------------------------------


def create_backbone(spec: str, arch: str | None = None) -> Backbone:
    """Resolve ``spec`` (registry name, ``timm:<model>``, checkpoint file, or run directory)
    into a :class:`Backbone` whose weights loaded completely."""
    loc = locate(spec)
    if loc.path is None:  # random initialisation
        assert loc.arch is not None and loc.name is not None
        if arch is not None and arch != loc.arch:
            raise BenchError(f"--arch {arch} contradicts backbone {spec!r}, which is {loc.arch}.")
        provenance = {**loc.provenance, "sha256": None, "pretraining_data": loc.data}
        return Backbone(loc.name, loc.arch, build_model(loc.arch), provenance)
    raw, check = read_verified(loc)
    chosen, arch_from = choose_arch(loc, raw, arch)
    model = build_model(chosen)
    skipped = load_backbone_state(model, raw.state_dict, loc.name or str(loc.path))
    name = loc.name or f"file-{paths.slug(loc.path.stem)}-{raw.sha256[:8]}"
    if loc.provenance.get("source") == "run":
        name = f"{name}-{raw.sha256[:8]}"
    provenance = {
        **loc.provenance,
        "sha256": raw.sha256,
        "sha256_check": check,
        "layout": raw.layout,
        "arch_from": arch_from,
        "pretraining_data": loc.data,
        "checkpoint_meta": raw.meta,
        "head_keys_dropped": skipped,
    }
    return Backbone(name=name, arch=chosen, model=model, provenance=provenance)


# --- what the CLI shows ----------------------------------------------------------------------


def cache_status(entry: BackboneEntry) -> str:
    """Whether ``entry``'s weights are on this machine, looked up without any network."""
    if entry.source == "hub":
        from benchmark.hub import cached_hub_file

        assert entry.repo is not None and entry.filename is not None
        found = cached_hub_file(entry.repo, entry.filename, entry.revision)
        return "cached" if found is not None else "no"
    if entry.source == "torchvision":
        if entry.weights is None:
            return "-"
        weights = torchvision.models.get_model_weights(entry.arch)[entry.weights]
        return "cached" if url_file_path(weights.url).is_file() else "no"
    if entry.source == "url":
        assert entry.url is not None
        return "cached" if url_file_path(entry.url).is_file() else "no"
    if entry.source == "file":
        assert entry.path is not None
        return "local" if (registry_file().parent / entry.path).is_file() else "missing"
    try:
        timm = _import_timm()
    except BenchError:
        return "no timm"
    from benchmark.hub import cached_hub_file

    cfg = timm.models.get_pretrained_cfg(entry.arch)
    if cfg is None or not cfg.hf_hub_id:
        return "no"
    repo, _, revision = cfg.hf_hub_id.partition("@")
    found = cached_hub_file(repo, cfg.hf_hub_filename or "model.safetensors", revision or "main")
    return "cached" if found is not None else "no"


@dataclass
class Inspection:
    """What ``bench checkpoints inspect`` reports about one checkpoint."""

    loc: Located
    raw: RawCheckpoint
    sha256_check: str
    arch: str | None
    arch_from: str
    report: KeyReport | None
    parameters: int  # values in the file's tensors that are parameters of ``arch`` (or all)
    arch_parameters: int | None
    tensor_kinds: dict[str, int]  # parameters / buffers / not in arch -> number of tensors


def inspect_checkpoint(spec: str, arch: str | None = None) -> Inspection:
    """Read a checkpoint and check its keys against its architecture, without building the
    real network (the architecture is built on the ``meta`` device)."""
    loc = locate(spec)
    if loc.path is None:
        raise BenchError(f"backbone {spec} is a random initialisation: there is no file.")
    raw, check = read_verified(loc)
    try:
        chosen: str | None
        chosen, arch_from = choose_arch(loc, raw, arch, may_guess=True)
    except BenchError as err:
        if "does not say its architecture" not in str(err):
            raise
        chosen, arch_from = None, "unknown: pass --arch to check the keys"
    state = raw.state_dict
    if chosen is None:
        values = sum(v.numel() for v in state.values() if v.is_floating_point())
        return Inspection(loc, raw, check, None, arch_from, None, values, None, {})
    meta_model = _meta_model(chosen)
    params = dict(meta_model.named_parameters())
    buffers = {name for name, _ in meta_model.named_buffers()}
    kinds = {
        "parameters": sum(1 for k in state if k in params),
        "buffers": sum(1 for k in state if k in buffers),
        f"not in {chosen}": sum(1 for k in state if k not in params and k not in buffers),
    }
    return Inspection(
        loc, raw, check, chosen, arch_from,
        report=compare_state(meta_model, state, chosen),
        parameters=sum(v.numel() for k, v in state.items() if k in params),
        arch_parameters=sum(p.numel() for p in params.values()),
        tensor_kinds=kinds,
    )


def format_inspection(ins: Inspection) -> str:
    raw = ins.raw
    size_mb = raw.path.stat().st_size / 1e6
    lines = []
    if ins.loc.name:
        lines.append(("backbone", f"{ins.loc.name} ({ins.loc.provenance.get('source')}, "
                                  f"pretraining data: {ins.loc.data})"))
        if ins.loc.provenance.get("weights"):
            lines.append(("weights", str(ins.loc.provenance["weights"])))
    lines += [
        ("file", f"{raw.path} ({size_mb:.1f} MB)"),
        ("sha256", f"{raw.sha256} ({ins.sha256_check})"),
        ("layout", raw.layout),
        ("meta", ", ".join(f"{k}={v}" for k, v in raw.meta.items()) or "-"),
        ("arch", f"{ins.arch or '?'} ({ins.arch_from})"),
    ]
    tensors = len(raw.state_dict)
    if ins.arch_parameters is not None:
        kinds = ", ".join(f"{n} {kind}" for kind, n in ins.tensor_kinds.items() if n)
        lines.append(("parameters", f"{ins.parameters:,} (of {ins.arch}'s "
                                    f"{ins.arch_parameters:,}); {tensors} tensors: {kinds}"))
    else:
        lines.append(("parameters", f"{ins.parameters:,} floating-point values in {tensors} "
                                    f"tensors"))
    rep = ins.report
    if rep is not None:
        expected = len(rep.matched) + len(rep.missing) + len(rep.misshaped)
        lines.append(("keys", f"{len(rep.matched)} of {expected} backbone keys match by name "
                              f"and shape"))
        lines.append(("head", f"{rep.head} ({', '.join(rep.head_keys) or 'absent'}): "
                              f"replaced for fine-tuning"))
        for label, keys in (("missing", rep.missing), ("unexpected", rep.unexpected),
                            ("wrong shape", rep.misshaped)):
            shown = ", ".join(keys[:8]) + (f" ... (+{len(keys) - 8})" if len(keys) > 8 else "")
            lines.append((label, f"{len(keys)}" + (f": {shown}" if keys else "")))
        verdict = (f"loads completely into {ins.arch}" if rep.fits
                   else f"does NOT fit {ins.arch}: a run with it stops")
        lines.append(("verdict", verdict))
    return "\n".join(f"{label:<12} {value}" for label, value in lines)


@dataclass
class Fetched:
    name: str
    path: Path | None
    sha256: str | None
    pinned: bool
    was_cached: bool
    cache: Cache | None = None


def select_entries(patterns: list[str]) -> list[BackboneEntry]:
    """Registry entries by name or shell pattern (``blurred_*``), in registry order."""
    entries = list_backbones()
    names = [e.name for e in entries]
    chosen: list[BackboneEntry] = []
    for pattern in patterns:
        matched = [e for e in entries if fnmatch.fnmatchcase(e.name, pattern)]
        if not matched:
            raise BenchError(
                f"no backbone matches {pattern!r}; `bench list backbones` shows the names."
                + closest_names(pattern, names)
            )
        chosen += [e for e in matched if e not in chosen]
    return chosen


def fetch_entry(entry: BackboneEntry) -> Fetched:
    """Download (if needed) and fully verify one entry: sha256, readable, and every key fits
    its architecture, so a cluster job without network finds nothing left to check."""
    loc = locate_entry(entry)
    if loc.path is None:
        return Fetched(entry.name, None, None, False, True)
    raw, _ = read_verified(loc)
    chosen, _ = choose_arch(loc, raw, None)
    report = compare_state(_meta_model(chosen), raw.state_dict, chosen)
    if not report.fits:
        raise BenchError(
            f"backbone {entry.name}: {loc.path} does not fit {chosen}: {report.problems()}."
        )
    return Fetched(entry.name, loc.path, raw.sha256, entry.sha256 is not None, loc.was_cached,
                   loc.cache)
