"""blurbench: does ImageNet pretraining on face-blurred images transfer as well as the original?"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """``benchmark.__version__``, looked up when first asked for (PEP 562): ``importlib.metadata``
    costs about 60 ms to import, and every ``bench`` process imports this package, while only
    ``--version`` and a new run record need the version."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("blurbench")
    except PackageNotFoundError:  # running from a source tree that was not installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found  # asked once
    return found
