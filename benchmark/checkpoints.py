"""Reading checkpoint files in the layouts they come in, and loading them without surprises.

One door in (after timm's ``clean_state_dict``): :func:`read_checkpoint` detects the layout and
returns a clean state dict; :func:`load_backbone_state` loads it into an architecture and stops
with a list of keys if anything but the classifier head is missing, unexpected or mis-shaped.
Silent partial loading is the most common cause of low transfer numbers in other suites.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.errors import BenchError

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")
_WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema", "model_state_dict")
_PREFIXES = ("module.", "_orig_mod.", "model.", "backbone.")


@dataclass
class RawCheckpoint:
    """A checkpoint's tensors with wrappers and prefixes removed, and what was found."""

    path: Path
    sha256: str
    state_dict: dict[str, torch.Tensor]
    layout: str
    arch: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise BenchError(
            f"{path}: refused to load: the file is a pickle that asks for more than tensors "
            f"({str(err).splitlines()[0][:160]}). Only weights are loaded (weights_only=True); "
            f"re-save the checkpoint as a plain state_dict or safetensors."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise BenchError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): "
            f"{str(err).splitlines()[0][:160]}"
        ) from None


def read_checkpoint(path: Path) -> RawCheckpoint:
    """Read ``path`` (torch pickle or safetensors) and detect its layout."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"checkpoint {path} does not exist.")
    sha = sha256_of(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorsError
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(path)
        except (SafetensorsError, OSError) as err:
            raise BenchError(f"{path}: not a readable safetensors file: {err}") from None
        layouts = ["safetensors"]
    else:
        obj = _torch_load(path)
        layouts = []
    meta: dict[str, Any] = {}
    arch = None
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                arch = obj.get("arch") if isinstance(obj.get("arch"), str) else None
                meta = {
                    k: v for k, v in obj.items() if isinstance(v, int | float | str) and k != key
                }
                obj = obj[key]
                layouts.append(f"{{'{key}': ...}}")
                break
    if not isinstance(obj, dict) or not obj or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise BenchError(
            f"{path}: no state dict found (expected tensors by name, or a dict holding one under "
            f"{', '.join(_WRAPPER_KEYS)})."
        )
    state, stripped = strip_prefixes(obj)
    layouts.extend(f"prefix '{p}'" for p in stripped)
    return RawCheckpoint(
        path=path,
        sha256=sha,
        state_dict=state,
        layout=" + ".join(layouts) or "bare state_dict",
        arch=arch,
        meta=meta,
    )


def strip_prefixes(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Remove wrapper prefixes shared by every key (DDP's ``module.``, ``torch.compile``'s
    ``_orig_mod.``, Lightning's ``model.``/``backbone.``), and the paper's AlexNet/VGG layout
    where only ``features`` was wrapped in DataParallel (``features.module.0.weight``)."""
    stripped: list[str] = []
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                stripped.append(prefix)
                changed = True
    if any(".module." in k for k in state):
        state = {k.replace(".module.", ".", 1): v for k, v in state.items()}
        stripped.append("<part>.module.")
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


def load_backbone_state(
    model: nn.Module, state: dict[str, torch.Tensor], source: str
) -> list[str]:
    """Load every parameter and buffer except the classifier head, or raise listing why not.

    Returns the head keys that were skipped (the head is replaced for the downstream task).
    """
    head = head_module_name(model) + "."
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    given = {k: v for k, v in state.items() if not k.startswith(head)}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    misshaped = sorted(
        f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}"
        for k in set(expected) & set(given)
        if given[k].shape != expected[k].shape
    )
    if missing or unexpected or misshaped:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", misshaped),
        ):
            if keys:
                shown = ", ".join(keys[:6]) + (f" ... (+{len(keys) - 6})" if len(keys) > 6 else "")
                parts.append(f"{len(keys)} {label}: {shown}")
        raise BenchError(
            f"{source} does not fit {type(model).__name__}: " + "; ".join(parts)
            + ". Check --arch, or that this is a checkpoint of that architecture."
        )
    result = model.load_state_dict(given, strict=False)
    assert not result.unexpected_keys and all(k.startswith(head) for k in result.missing_keys)
    return sorted(k for k in model.state_dict() if k.startswith(head))


def save_imagenet_example_checkpoint(
    path: Path, arch: str, state_dict: dict[str, torch.Tensor], epoch: int = 90
) -> Path:
    """Save weights in the layout the paper released (the PyTorch ImageNet example's
    ``save_checkpoint``): ``{epoch, arch, state_dict, best_acc1, optimizer}`` with DDP's
    ``module.`` prefix on every key. Used for the demo and tests; never for real results."""
    from benchmark.atomic import atomic_write_bytes

    params = [t for t in state_dict.values() if t.is_floating_point()]
    optimizer = torch.optim.SGD([torch.nn.Parameter(t.clone()) for t in params[:1]], lr=0.1,
                                momentum=0.9, weight_decay=1e-4)
    payload = {
        "epoch": epoch,
        "arch": arch,
        "state_dict": {f"module.{k}": v for k, v in state_dict.items()},
        "best_acc1": torch.tensor(0.0),
        "optimizer": optimizer.state_dict(),
    }
    import io

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(Path(path), buffer.getvalue())
