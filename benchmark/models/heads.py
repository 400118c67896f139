"""Replacing an ImageNet classifier head with a freshly initialised one for a downstream task."""

from __future__ import annotations

from torch import nn

from benchmark.checkpoints import head_module_name


def replace_head(model: nn.Module, num_outputs: int) -> str:
    """Swap the classifier head for a new layer of the same kind with ``num_outputs`` outputs.

    Keeping the architecture's own head type (Linear, or squeezenet's 1x1 Conv) means the
    network's forward pass stays torchvision's. Returns the head's dotted name.
    """
    name = head_module_name(model)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_outputs, bias=old.bias is not None)
    else:
        new = nn.Conv2d(old.in_channels, num_outputs, kernel_size=1)
    setattr(parent, attr, new)
    return name
