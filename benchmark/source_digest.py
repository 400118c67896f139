"""A digest of blurbench's own Python source, the version of every cache of derived numbers.

The leaderboard's caches (:mod:`benchmark.score_cache`, :mod:`benchmark.leaderboard.cache`)
hold what the code computed from records and predictions. Naming the modules a number depends
on missed some (the VOC AP of the detection evaluator, the JSON number helpers), so the digest
covers the whole package: any edit of blurbench invalidates every cache, and a cache never
outlives the code that wrote it. Reading and hashing the package's ~1.5 MB of source takes
milliseconds, once per process.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


@functools.cache
def source_digest() -> str:
    """sha256 over every ``*.py`` file of the package: relative path, then contents, sorted."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\0missing\0")
    return digest.hexdigest()
