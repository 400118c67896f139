"""The Hugging Face Hub as a source of weights, through ``huggingface_hub``.

``hf_hub_download`` does the work (revision pinning, atomic download, ETag-keyed blobs, the
``HF_HUB_OFFLINE`` switch); this module only uses a cached copy without touching the network (a
verified file is never fetched again), and turns the library's exceptions into one-line messages
that say what to fix. Files live in the user's own Hub cache (``HF_HUB_CACHE``/``HF_HOME``, or
``$BENCH_CACHE_DIR/hf``), resolved per call: :func:`benchmark.checkpoint_cache.hf_cache`.

``HF_ENDPOINT`` is read per call (huggingface_hub reads it once, at import) and passed on as
``endpoint=``, so a mirror, or the loopback stand-in the tests use, can be chosen at any time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from benchmark.checkpoint_cache import Cache, fetch_hint, hf_cache, not_cached, offline
from benchmark.errors import BenchError, EnvironmentFailure


@dataclass(frozen=True)
class HubFile:
    """A file of a Hub repo, in the local cache."""

    path: Path
    repo: str
    filename: str
    revision: str
    commit: str | None
    url: str
    was_cached: bool
    cache: Cache


def hub_cache_dir() -> Path:
    return hf_cache().folder


def endpoint() -> str | None:
    value = os.environ.get("HF_ENDPOINT")
    return value.rstrip("/") if value else None


def file_url(repo: str, filename: str, revision: str) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo, filename, revision=revision, endpoint=endpoint())


def commit_of(path: Path, repo: str) -> str | None:
    """The commit a cached file belongs to: its ``snapshots/<commit>/`` folder."""
    snapshots = hub_cache_dir() / ("models--" + repo.replace("/", "--")) / "snapshots"
    try:
        return Path(path).relative_to(snapshots).parts[0]
    except (ValueError, IndexError):
        return None


def cached_hub_file(repo: str, filename: str, revision: str) -> Path | None:
    """The cached copy for ``revision`` (a branch resolves through the cache's refs), or None.
    Never uses the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=hub_cache_dir(), revision=revision)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def fetch_hub_file(
    repo: str, filename: str, revision: str, name: str, defined_in: str = "the registry"
) -> HubFile:
    """The local path of ``repo/filename`` at ``revision``, downloaded only if not cached.
    ``defined_in`` names the file that says repo/filename/revision, for the fix-it message."""
    cached = cached_hub_file(repo, filename, revision)
    if cached is not None:
        commit = commit_of(cached, repo)
        return HubFile(cached, repo, filename, revision, commit,
                       file_url(repo, filename, commit or revision), True, hf_cache())
    where = f"{filename} from the Hub repo {repo} (revision {revision})"
    if offline():
        raise not_cached(name, where, hf_cache())
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    registry = defined_in
    try:
        local = hf_hub_download(
            repo_id=repo,
            filename=filename,
            revision=revision,
            cache_dir=hub_cache_dir(),
            endpoint=endpoint(),
        )
    except RemoteEntryNotFoundError:
        raise BenchError(
            f"backbone {name}: the Hub repo {repo} has no file {filename!r} at revision "
            f"{revision}; fix its `filename` in {registry} (the repo's file list is on its Hub "
            f"page)."
        ) from None
    except RevisionNotFoundError:
        raise BenchError(
            f"backbone {name}: the Hub repo {repo} has no revision {revision!r}; fix its "
            f"`revision` in {registry}."
        ) from None
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise BenchError(
            f"backbone {name}: the Hub repo {repo} was not found or needs access "
            f"({type(err).__name__}); check `repo` in {registry}, or log in with `hf auth login`."
        ) from None
    except LocalEntryNotFoundError:  # the Hub could not be reached: the machine, not the name
        raise EnvironmentFailure(
            f"backbone {name}: could not reach the Hub for {where}, and it is not in the "
            f"{hf_cache().name} ({hub_cache_dir()}); check the network, or "
            + fetch_hint(name) + "."
        ) from None
    except HFValidationError as err:  # a malformed repo id or revision in the registry
        raise BenchError(f"backbone {name}: {err}; fix it in {registry}.") from None
    except (HfHubHTTPError, OSError, ValueError) as err:
        first = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise EnvironmentFailure(
            f"backbone {name}: downloading {where} failed ({first}); try again, or "
            + fetch_hint(name) + "."
        ) from None
    commit = commit_of(Path(local), repo)
    return HubFile(Path(local), repo, filename, revision, commit,
                   file_url(repo, filename, commit or revision), False, hf_cache())
