"""Where downloaded weights are kept, the one offline switch, and forgetting a bad copy.

Everything fetched goes under one folder, ``$BENCH_CACHE_DIR`` (default ``checkpoints/cache/``,
git-ignored): Hub files in the Hugging Face cache layout under ``hf/``, URL files (torchvision's
weights) under ``url/``. One folder means ``bench checkpoints fetch`` on a machine with network,
then copying that folder, is all a cluster without network needs.

Environment variables are read when a backbone is resolved, not at import, so a notebook or a
test can change them after ``import benchmark``.
"""

from __future__ import annotations

import os
from pathlib import Path

# huggingface_hub reads HF_HUB_OFFLINE once, when first imported; importing it here, with the
# rest of the package, makes that moment the process start rather than the first download.
from huggingface_hub import constants as hf_constants

from benchmark import paths
from benchmark.errors import BenchError

FETCH_HINT = (
    "run `bench checkpoints fetch {name}` on a machine with network (it downloads and verifies "
    "into {cache}), and copy that folder here or point BENCH_CACHE_DIR at it"
)


def cache_root() -> Path:
    return Path(os.environ.get("BENCH_CACHE_DIR") or paths.CHECKPOINTS_DIR / "cache")


def offline() -> bool:
    """``HF_HUB_OFFLINE=1`` (huggingface_hub's switch) turns off every download, not only the
    Hub's, so one setting makes a cluster job fail fast instead of hanging on a firewall."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    return hf_constants.is_offline_mode() or value.upper() in {"1", "ON", "YES", "TRUE"}


def fetch_hint(name: str) -> str:
    return FETCH_HINT.format(name=name, cache=cache_root())


def is_inside_cache(path: Path) -> bool:
    """Whether ``path`` itself (not what a link points to) lies under the cache folder."""
    where = Path(path).parent.resolve() / Path(path).name
    return where.is_relative_to(cache_root().resolve())


def remove_cached_file(path: Path) -> bool:
    """Delete a cached download (and, for the Hub's layout, the blob its link points to), so
    the next run fetches it again. Refuses to touch anything outside the cache: a user's own
    checkpoint is never deleted. Returns whether something was removed."""
    path = Path(path)
    if not is_inside_cache(path):
        return False
    removed = False
    target = path.resolve() if path.is_symlink() else None
    if path.is_symlink() or path.exists():
        path.unlink()
        removed = True
    if target is not None and target.exists() and target.resolve().is_relative_to(
        cache_root().resolve()
    ):
        target.unlink()
    return removed


def url_file_path(url: str) -> Path:
    """Where a URL download is cached: its file name, as torch.hub does (names are versioned
    by a hash prefix, e.g. ``resnet50-0676ba61.pth``)."""
    name = url.rsplit("/", 1)[-1]
    if not name or name in {".", ".."} or "\\" in name:
        raise BenchError(f"cannot cache {url}: it does not end in a file name.")
    return cache_root() / "url" / name


def fetch_url_file(url: str, name: str, hash_prefix: str | None) -> tuple[Path, bool]:
    """The cached copy of ``url``, downloading it first if needed (torch.hub's downloader:
    temporary file, sha256 prefix check, rename). Returns (path, was it already cached)."""
    import torch.hub

    dest = url_file_path(url)
    if dest.is_file():
        return dest, True
    if offline():
        raise BenchError(
            f"backbone {name}: {dest.name} is not in the cache and HF_HUB_OFFLINE is set; "
            + fetch_hint(name)
            + "."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:  # writes a uniquely named temporary file and moves it into place: ranks may race
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=hash_prefix, progress=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a hash mismatch, Runtime
        first = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise BenchError(
            f"backbone {name}: could not download {url} ({first}); check the network, or "
            + fetch_hint(name)
            + "."
        ) from None
    return dest, False
