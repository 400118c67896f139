"""What `bench --version` and the run records say about the code: the package version, and the
git commit only when the code runs from its own checkout (never a repository it happens to be
installed inside, such as a virtual environment within some other project's working tree)."""

from __future__ import annotations

import subprocess

import benchmark
from benchmark import paths


def source_commit() -> str | None:
    """``<sha>`` or ``<sha>+dirty`` (local changes under benchmark/) of the checkout this package
    runs from; None when installed from a wheel or when git is unavailable."""
    if not paths.in_source_checkout():
        return None
    git = ["git", "-C", str(paths.PROJECT_ROOT)]

    def git_output(*argv: str) -> str:
        done = subprocess.run([*git, *argv], capture_output=True, text=True, timeout=5, check=True)
        return done.stdout.strip()

    try:
        sha = git_output("rev-parse", "HEAD")
        dirty = git_output("status", "--porcelain", "--", "benchmark")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}{'+dirty' if dirty else ''}" if sha else None


def describe() -> str:
    """One line for ``bench --version``: ``blurbench 0.1.0 (git 0583b8e...)`` or without git."""
    commit = source_commit()
    return f"blurbench {benchmark.__version__}" + (f" (git {commit})" if commit else "")
