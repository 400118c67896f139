"""Reading the project's YAML files safely (``yaml.safe_load``: no objects from configs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import BenchError


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise BenchError(f"{path}: cannot be read ({err.strerror}).") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", err)
        raise BenchError(f"{path}:{where} is not valid YAML ({problem}).") from None
