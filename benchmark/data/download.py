"""The one place dataset downloads fail: a lost network becomes one line that names the folder
and the manual steps, for every adapter alike.

torchvision's downloaders raise whatever urllib, tarfile or zipfile raise (``URLError``, a socket
timeout, a truncated archive) or ``RuntimeError`` for an archive whose md5 is wrong. None of that
is the user's mistake, so it leaves as :class:`EnvironmentFailure` (exit 1), not a traceback.
"""

from __future__ import annotations

import http.client
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmark.errors import EnvironmentFailure

DOWNLOAD_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # URLError, HTTPError, socket timeouts, ConnectionError, a full disk
    RuntimeError,  # torchvision: "File not found or corrupted." after a download
    http.client.HTTPException,  # IncompleteRead and friends are not OSErrors
    tarfile.TarError,
    zipfile.BadZipFile,
    EOFError,  # a truncated gzip stream
)


@contextmanager
def dataset_download(
    dataset: str,
    folder: Path,
    manual: str,
    errors: tuple[type[BaseException], ...] = DOWNLOAD_ERRORS,
) -> Iterator[None]:
    """Wrap only the download call: errors of reading the data afterwards stay the user's."""
    try:
        yield
    except errors as err:
        detail = " ".join(str(err).split())[:200]
        raise EnvironmentFailure(
            f"could not download {dataset} into {Path(folder).resolve()} "
            f"({type(err).__name__}: {detail}); check the network and retry, or {manual}"
        ) from None
