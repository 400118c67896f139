"""Whether the optional mmdet engine can run here, and the one line that says how to get it.

Kept apart from the engine itself so that tests and the CLI can ask without importing mmdet.
"""

from __future__ import annotations

from functools import cache

from benchmark.errors import BenchError

INSTALL_COMMAND = (
    "pip install -c constraints.txt '.[mmdet]' && python -m benchmark.engines.install_mmdet"
)


@cache
def mmdet_missing_reason() -> str | None:
    """None when mmcv's compiled ops, mmengine and mmdet import; otherwise why not (an ABI
    mismatch of mmcv's ops with torch shows here as an ImportError or OSError)."""
    try:
        import mmcv
        import mmdet  # noqa: F401
        import mmengine  # noqa: F401
        from mmcv.ops import nms  # noqa: F401  (the compiled extension)
    except (ImportError, OSError) as err:
        return f"{type(err).__name__}: {' '.join(str(err).split())[:160]}"
    if mmcv.__version__ != "2.1.0":
        return f"mmcv {mmcv.__version__} is installed, the engine is tested with 2.1.0"
    return None


def require_mmdet() -> None:
    """Raise the one-line error a user sees when they ask for the mmdet engine without it."""
    reason = mmdet_missing_reason()
    if reason is not None:
        raise BenchError(
            f"detection.engine=mmdet needs mmcv 2.1.0 (with its compiled ops), mmengine 0.10.7 "
            f"and mmdet 3.3.0 ({reason}): install them with {INSTALL_COMMAND}"
        )
