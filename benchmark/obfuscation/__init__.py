"""The first half of the paper's pipeline: find faces, obfuscate them, get a dataset to pretrain on.

``obfuscate_dataset`` (``bench blur`` / ``bench obfuscate``) writes an obfuscated copy of a
dataset; ``methods`` holds the registry (blur = the paper's, overlay, pixelate); ``annotations``
reads the paper's JSON and a CSV; ``faces`` finds faces offline and ``face_stats`` summarises an
annotation file. Importing this package loads neither torch nor OpenCV.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module; loaded on first use (PEP 562), so registering the `bench blur` sub-commands
# (benchmark.obfuscation.cli, imported by every `bench` command) does not load PIL and pydantic
# models that `bench leaderboard` never needs
_EXPORTS = {"FaceBox": "annotations", "read_annotations": "annotations", "METHODS": "methods",
            "register_method": "methods", "Summary": "runner", "obfuscate_dataset": "runner"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
