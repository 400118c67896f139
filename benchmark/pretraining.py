"""What a backbone was pretrained on: the one vocabulary of the backbone registry's ``data``,
``--backbone-data``, the record's ``backbone.pretraining_data`` and the leaderboard's pairing.

Its own module, importing nothing, so building the command line does not import the record
model (pydantic) or the registry (torch).
"""

from __future__ import annotations

from typing import Literal, get_args

PretrainingData = Literal["original", "blurred", "overlayed", "none"]
PRETRAINING_DATA: tuple[str, ...] = get_args(PretrainingData)
# a backbone whose source does not say (a checkpoint file) records this, or its source's own
# words (timm's tag)
UNKNOWN_DATA = "unknown"
# what the leaderboard compares with "original" of the same architecture
COMPARED_DATA = ("blurred", "overlayed")
