"""Where downloaded weights are kept: the caches users already have, the one offline switch,
and forgetting a bad copy.

Each kind of file goes where its own library keeps it, so nothing is downloaded twice and
nothing is written into the source checkout:

- URL files (torchvision's weights) in torch.hub's cache, ``torch.hub.get_dir()/checkpoints``
  (``$TORCH_HOME/hub/checkpoints``), under the URL's file name, as
  ``torch.hub.load_state_dict_from_url`` keeps them;
- Hugging Face Hub files (the paper's weights, timm's) in the Hub cache (``HF_HUB_CACHE``,
  default ``$HF_HOME/hub``), the folder ``timm.create_model(pretrained=True)`` also uses.

``$BENCH_CACHE_DIR`` overrides both for clusters without network: it then acts as
``TORCH_HOME=$BENCH_CACHE_DIR/torch`` and ``HF_HOME=$BENCH_CACHE_DIR/hf``, one folder to fill
with ``bench checkpoints fetch`` and copy.

Environment variables are read when a backbone is resolved, not at import (huggingface_hub reads
its own once, at import), so a notebook or a test can change them after ``import benchmark``.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

# huggingface_hub reads HF_HUB_OFFLINE once, when first imported; importing it here, with the
# rest of the package, makes that moment the process start rather than the first download.
from huggingface_hub import constants as hf_constants

from benchmark.errors import BenchError, EnvironmentFailure

FETCH_HINT = (
    "run `bench checkpoints fetch {name}` on a machine with network and copy the cache folder "
    "it names to the same place here, or fetch with BENCH_CACHE_DIR set there and point "
    "BENCH_CACHE_DIR here at a copy of that folder"
)
# torchvision's file names end in a sha256 prefix (resnet18-f37072fd.pth); torch.hub checks it.
_HASH_PREFIX = re.compile(r"-([0-9a-f]{6,64})\.[^.]+$")


@dataclass(frozen=True)
class Cache:
    """One cache in effect for one kind of file: its folder, and the name a user knows it by."""

    folder: Path
    name: str  # "torch hub cache", "Hugging Face hub cache" or "BENCH_CACHE_DIR cache"
    moved_by: str  # the environment variable that chooses the folder

    @property
    def label(self) -> str:
        """``torch hub cache (TORCH_HOME)``: which cache, and the setting that moves it."""
        return self.name if self.moved_by in self.name else f"{self.name} ({self.moved_by})"


def bench_cache_dir() -> Path | None:
    value = os.environ.get("BENCH_CACHE_DIR")
    return Path(value).expanduser() if value else None


def torch_cache() -> Cache:
    """Where URL weights are kept: torch.hub's checkpoints folder, the one torchvision's
    ``weights.get_state_dict()`` reads, so a file a user already has is used as is."""
    override = bench_cache_dir()
    if override is not None:
        return Cache(override / "torch" / "hub" / "checkpoints", "BENCH_CACHE_DIR cache",
                     "BENCH_CACHE_DIR")
    import torch.hub

    return Cache(Path(torch.hub.get_dir()) / "checkpoints", "torch hub cache", "TORCH_HOME")


def hf_cache() -> Cache:
    """The Hugging Face Hub cache, resolved as huggingface_hub resolves it at import, but now:
    ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``."""
    override = bench_cache_dir()
    if override is not None:
        return Cache(override / "hf" / "hub", "BENCH_CACHE_DIR cache", "BENCH_CACHE_DIR")
    env = os.environ
    xdg = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    home = env.get("HF_HOME") or os.path.join(xdg, "huggingface")
    folder = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(
        home, "hub"
    )
    return Cache(Path(os.path.expandvars(os.path.expanduser(folder))), "Hugging Face hub cache",
                 "HF_HUB_CACHE")


def offline() -> bool:
    """``HF_HUB_OFFLINE=1`` (huggingface_hub's switch) turns off every download, not only the
    Hub's, so one setting makes a cluster job fail fast instead of hanging on a firewall."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    return hf_constants.is_offline_mode() or value.upper() in {"1", "ON", "YES", "TRUE"}


def fetch_hint(name: str) -> str:
    return FETCH_HINT.format(name=name)


def not_cached(name: str, what: str, cache: Cache) -> BenchError:
    """The one line for "offline, and the file is not here": what, where it was looked for,
    and how to get it there."""
    return BenchError(
        f"backbone {name}: {what} is not in the {cache.name} ({cache.folder}) and "
        f"HF_HUB_OFFLINE is set; " + fetch_hint(name) + "."
    )


def _is_under(path: Path, folder: Path) -> bool:
    return path.is_relative_to(folder.resolve())


def is_inside_cache(path: Path) -> bool:
    """Whether ``path`` itself (not what a link points to) lies under a cache in effect."""
    where = Path(path).parent.resolve() / Path(path).name
    return any(_is_under(where, cache.folder) for cache in (torch_cache(), hf_cache()))


def remove_cached_file(path: Path) -> bool:
    """Delete a cached download (and, for the Hub's layout, the blob its link points to), so
    the next run fetches it again. Refuses to touch anything outside the caches: a user's own
    checkpoint is never deleted. Returns whether something was removed."""
    path = Path(path)
    if not is_inside_cache(path):
        return False
    removed = False
    target = path.resolve() if path.is_symlink() else None
    if path.is_symlink() or path.exists():
        path.unlink()
        removed = True
    if target is not None and target.exists() and is_inside_cache(target):
        target.unlink()
    return removed


def url_file_name(url: str) -> str:
    """The name torch.hub caches ``url`` under: the last part of its path."""
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name or name in {".", ".."} or "\\" in name:
        raise BenchError(f"cannot cache {url}: it does not end in a file name.")
    return name


def hash_prefix_of(url: str) -> str | None:
    """The sha256 prefix a torchvision-style file name promises, or None if it has none."""
    found = _HASH_PREFIX.search(url_file_name(url))
    return found.group(1) if found else None


def url_file_path(url: str) -> Path:
    """Where a URL download is cached (names are versioned by their hash prefix)."""
    return torch_cache().folder / url_file_name(url)


def fetch_url_file(url: str, name: str, hash_prefix: str | None) -> tuple[Path, bool]:
    """The cached copy of ``url``, downloading it first if needed (torch.hub's downloader:
    temporary file, sha256 prefix check, rename). Returns (path, was it already cached)."""
    import torch.hub

    dest = url_file_path(url)
    if dest.is_file():
        return dest, True
    if offline():
        raise not_cached(name, dest.name, torch_cache())
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:  # writes a uniquely named temporary file and moves it into place: ranks may race
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=hash_prefix, progress=True)
    except urllib.error.HTTPError as err:
        if 400 <= err.code < 500 and err.code not in {408, 429}:  # not there: the name is wrong
            raise BenchError(
                f"backbone {name}: {url} answers {err.code} ({err.reason}); check the URL "
                f"(`url` or `weights` in its registry)."
            ) from None
        raise EnvironmentFailure(_download_failed(name, url, err)) from None
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a hash mismatch, Runtime
        raise EnvironmentFailure(_download_failed(name, url, err)) from None
    return dest, False


def _download_failed(name: str, url: str, err: BaseException) -> str:
    first = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
    return (
        f"backbone {name}: could not download {url} ({first}); check the network, or "
        + fetch_hint(name) + "."
    )
