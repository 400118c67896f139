"""Reading checkpoint files in the layouts they come in, and loading them without surprises.

One door in (after timm's ``clean_state_dict``): :func:`read_checkpoint` detects the layout and
returns a clean state dict; :func:`load_backbone_state` loads it into an architecture and stops
with a list of keys if anything but the classifier head is missing, unexpected or mis-shaped.
Silent partial loading is the most common cause of low transfer numbers in other suites.

Pickles are only ever read with ``torch.load(weights_only=True)``: a checkpoint that asks for
anything but tensors and plain containers is refused before any of it runs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from benchmark.errors import BenchError

# Wrapper keys in the order they are preferred. An EMA copy comes first when present, as in
# timm's ``load_checkpoint(use_ema=True)``: training scripts that keep one report its accuracy.
_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "model_state_dict")
# Prefixes that wrap *every* key: DDP/DataParallel, torch.compile, LightningModule attributes
# (``network.`` is our own FineTuneModule's, so a run's Lightning checkpoint loads too).
_PREFIXES = ("module.", "_orig_mod.", "model.", "backbone.", "network.")
# Classes a trusted training script stores beside the weights (timm, DeiT and MAE save their
# argparse ``args``). Rebuilding a Namespace only sets attributes, so it runs no code.
_SAFE_GLOBALS = [argparse.Namespace]


class UnsafeCheckpointError(BenchError):
    """The file is a pickle that asks to build objects other than tensors: refused unread."""


class CorruptCheckpointError(BenchError):
    """The file is truncated or not a checkpoint at all; a cached copy should be fetched again."""


@dataclass
class RawCheckpoint:
    """A checkpoint's tensors with wrappers and prefixes removed, and what was found."""

    path: Path
    sha256: str
    state_dict: dict[str, torch.Tensor]
    layout: str
    arch: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class KeyReport:
    """How a state dict fits an architecture, head excluded (it is replaced for fine-tuning)."""

    arch: str
    head: str
    matched: list[str]
    missing: list[str]
    unexpected: list[str]
    misshaped: list[str]
    head_keys: list[str]

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.misshaped)

    def problems(self) -> str:
        parts = []
        for label, keys in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("wrong shape", self.misshaped),
        ):
            if keys:
                shown = ", ".join(keys[:6]) + (f" ... (+{len(keys) - 6})" if len(keys) > 6 else "")
                parts.append(f"{len(keys)} {label}: {shown}")
        return "; ".join(parts)


def sha256_of(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _refusal_reason(err: Exception) -> str:
    """The line of torch's weights_only message that names what the pickle asked for (its
    first lines only advise ``weights_only=False``, which is exactly what must not be done)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line or "unsupported" in line:
            return line[:200]
    return (lines[-1] if lines else type(err).__name__)[:200]


def _torch_load(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Weights only load failed" not in text:
            raise CorruptCheckpointError(
                f"{path}: not a readable checkpoint (truncated or corrupt?): "
                f"{text.splitlines()[0][:160] if text else type(err).__name__}"
            ) from None
        raise UnsafeCheckpointError(
            f"{path}: refused to load: the file is a pickle that asks for more than tensors "
            f"({_refusal_reason(err)}); nothing in it was run. Only weights are loaded "
            f"(torch.load weights_only=True): re-save the checkpoint as a plain state_dict "
            f"or as safetensors."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        first = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise CorruptCheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {first}"
        ) from None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt", device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            return {k: fh.get_tensor(k) for k in fh.keys()}, metadata  # noqa: SIM118
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise CorruptCheckpointError(
            f"{path}: not a readable safetensors file (truncated or corrupt?): {err}"
        ) from None


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _scalar_meta(obj: dict[str, Any], skip: set[str]) -> dict[str, Any]:
    """The scalars stored beside the weights (epoch, arch, best_acc1...), for the record."""
    meta: dict[str, Any] = {}
    for key, value in obj.items():
        if key in skip or not isinstance(key, str):
            continue
        if isinstance(value, bool | int | float | str):
            meta[key] = value
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            meta[key] = value.item()
    return meta


def read_checkpoint(path: Path, sha256: str | None = None) -> RawCheckpoint:
    """Read ``path`` (torch pickle or safetensors), detect its layout, return clean tensors.

    ``sha256`` is the file's digest when the caller has just computed it (to check it before
    unpickling), so a large file is not hashed twice."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"checkpoint {path} does not exist.")
    sha = sha256 or sha256_of(path)
    layouts: list[str] = []
    meta: dict[str, Any] = {}
    arch: str | None = None
    if path.suffix == ".safetensors":
        obj: Any
        obj, file_meta = _read_safetensors(path)
        layouts.append("safetensors")
        arch = file_meta.pop("arch", None)
        meta = {k: v for k, v in file_meta.items() if k != "format"}
    else:
        obj = _torch_load(path)
    if isinstance(obj, dict) and not _is_state_dict(obj):
        for key in _WRAPPER_KEYS:
            if _is_state_dict(obj.get(key)):
                others = [k for k in _WRAPPER_KEYS if k != key and _is_state_dict(obj.get(k))]
                note = f" (also holds {', '.join(others)}: not used)" if others else ""
                layouts.append(f"{{'{key}': ...}}{note}")
                arch = obj["arch"] if isinstance(obj.get("arch"), str) else None
                meta = _scalar_meta(obj, skip={*_WRAPPER_KEYS, "arch"})
                obj = obj[key]
                break
    if not _is_state_dict(obj):
        found = sorted(map(str, obj))[:8] if isinstance(obj, dict) else type(obj).__name__
        raise BenchError(
            f"{path}: no state dict found (expected tensors by name, or a dict holding them "
            f"under one of {', '.join(_WRAPPER_KEYS)}; found {found})."
        )
    state, stripped = strip_prefixes(obj)
    layouts.extend(stripped)
    return RawCheckpoint(
        path=path,
        sha256=sha,
        state_dict=state,
        layout=" + ".join(layouts) or "bare state_dict",
        arch=arch,
        meta=meta,
    )


_PART_MODULE = re.compile(r"^((?:[A-Za-z_][A-Za-z0-9_]*\.)*?[A-Za-z_][A-Za-z0-9_]*)\.module\.")


def strip_prefixes(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Remove wrapper prefixes shared by every key (DDP's ``module.``, ``torch.compile``'s
    ``_orig_mod.``, Lightning's ``model.``/``backbone.``), and the paper's AlexNet/VGG layout
    where only ``features`` was wrapped in DataParallel (``features.module.0.weight``).

    Returns the clean state dict and a description of each prefix removed."""
    stripped: list[str] = []
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                stripped.append(f"prefix '{prefix}'")
                changed = True
    parts = sorted({m.group(1) for k in state if (m := _PART_MODULE.match(k))})
    if parts:
        state = {_PART_MODULE.sub(r"\1.", k, count=1): v for k, v in state.items()}
        stripped.extend(f"prefix '{p}.module.' (DataParallel on {p} only)" for p in parts)
    return state, stripped


def head_module_name(model: nn.Module) -> str:
    """The dotted name of the classifier head: the last Linear or 1x1 Conv producing the
    model's class logits. Found by shape rather than a per-architecture table, so any
    torchvision classifier works (resnet ``fc``, vgg ``classifier.6``, squeezenet
    ``classifier.1``, densenet ``classifier``...)."""
    num_out = None
    name = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            num_out, name = module.out_features, module_name
        elif isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1):
            num_out, name = module.out_channels, module_name
    if name is None or num_out is None:
        raise BenchError(f"cannot find a classifier head in {type(model).__name__}.")
    return name


def compare_state(model: nn.Module, state: dict[str, torch.Tensor], arch: str = "") -> KeyReport:
    """Match ``state`` against ``model`` by name and shape, the classifier head left out.

    Works on a model built on the ``meta`` device (no memory, no init), which is how
    ``bench checkpoints inspect`` checks keys without building the real network."""
    head = head_module_name(model)
    expected = {
        k: v.shape for k, v in model.state_dict().items() if not k.startswith(head + ".")
    }
    given = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    common = set(expected) & set(given)
    misshaped = sorted(
        f"{k} {tuple(given[k].shape)} vs {tuple(expected[k])}"
        for k in common
        if given[k].shape != expected[k]
    )
    bad = {entry.split(" ")[0] for entry in misshaped}
    return KeyReport(
        arch=arch or type(model).__name__,
        head=head,
        matched=sorted(common - bad),
        missing=sorted(set(expected) - set(given)),
        unexpected=sorted(set(given) - set(expected)),
        misshaped=misshaped,
        head_keys=sorted(k for k in state if k.startswith(head + ".")),
    )


def load_backbone_state(
    model: nn.Module, state: dict[str, torch.Tensor], source: str
) -> list[str]:
    """Load every parameter and buffer except the classifier head, or raise listing why not.

    Returns the head keys that were skipped (the head is replaced for the downstream task).
    """
    report = compare_state(model, state)
    if not report.fits:
        raise BenchError(
            f"{source} does not fit {type(model).__name__}: {report.problems()}. Check --arch, "
            f"or that this is a checkpoint of that architecture."
        )
    head = report.head + "."
    given = {k: v for k, v in state.items() if not k.startswith(head)}
    result = model.load_state_dict(given, strict=False)
    assert not result.unexpected_keys and all(k.startswith(head) for k in result.missing_keys)
    return sorted(k for k in model.state_dict() if k.startswith(head))


def save_imagenet_example_checkpoint(
    path: Path,
    arch: str,
    state_dict: dict[str, torch.Tensor],
    epoch: int = 90,
    wrapped: Literal["model", "features"] = "model",
) -> Path:
    """Save weights in the layout the paper released (the PyTorch ImageNet example's
    ``save_checkpoint``): ``{epoch, arch, state_dict, best_acc1, optimizer}``. ``wrapped``
    says what DataParallel/DDP wrapped: the whole model (``module.`` on every key), or, as
    the example does for AlexNet and VGG, only ``features`` (``features.module.0.weight``).
    Used for the demo and tests; never for real results."""
    from benchmark.atomic import atomic_write_bytes

    params = [t for t in state_dict.values() if t.is_floating_point()]
    optimizer = torch.optim.SGD([torch.nn.Parameter(t.clone()) for t in params[:1]], lr=0.1,
                                momentum=0.9, weight_decay=1e-4)
    if wrapped == "model":
        keyed = {f"module.{k}": v for k, v in state_dict.items()}
    else:
        keyed = {
            (f"features.module.{k[len('features.'):]}" if k.startswith("features.") else k): v
            for k, v in state_dict.items()
        }
    payload = {
        "epoch": epoch,
        "arch": arch,
        "state_dict": keyed,
        "best_acc1": torch.tensor(0.0),
        "optimizer": optimizer.state_dict(),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(Path(path), buffer.getvalue())


def save_weights_file(path: Path, model: nn.Module, metadata: dict[str, str]) -> Path:
    """Write ``model``'s state dict as safetensors (no pickle: safe for anyone to load back),
    with ``metadata`` (``arch`` at least) in the header. Written atomically."""
    from safetensors.torch import save

    from benchmark.atomic import atomic_write_bytes

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic_write_bytes(Path(path), save(tensors, metadata=metadata))
