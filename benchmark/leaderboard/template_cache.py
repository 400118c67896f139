"""The page template's compiled code, kept between ``bench leaderboard`` processes.

Jinja compiles ``templates/index.html.j2`` in every process: about 75 ms of parsing and code
generation (measured on the 2-core machine), a tenth of a warm 10,000-run build's writing and
most of an 8-record build's rendering. Jinja's documented remedy is a bytecode cache
(:class:`jinja2.BytecodeCache`); its own ``FileSystemBytecodeCache`` is not used because it
reads a pickled checksum and lets a damaged file end the build. This one keeps, per template,
one file in a folder of the user's cache (``$XDG_CACHE_HOME/blurbench/templates``, else
``~/.cache/...``) that only the user may write, as Python keeps ``__pycache__``:

* the file starts with a header naming Jinja's and Python's versions, the environment's options
  and the template source's checksum; a file with another header is compiled again;
* the code is read with :mod:`marshal` (no pickle); a truncated or damaged file is compiled
  again, never an error;
* a folder that is missing, not the user's own, writable by others, or unwritable means no
  cache: the template is compiled as before. Writes are atomic.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import stat
import sys
from pathlib import Path
from types import CodeType

import jinja2
from jinja2.bccache import Bucket, BytecodeCache

from benchmark.atomic import atomic_write_bytes

CACHE_ENV = "XDG_CACHE_HOME"


def default_folder() -> Path:
    """Where the compiled templates go: the user's cache folder (XDG), as pip or Hugging Face."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "blurbench" / "templates"


def _private_folder(folder: Path) -> Path | None:
    """``folder``, created 0700 when missing; None unless it is a folder of this user that no
    one else may write (code read from it is run)."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_mode & 0o022:
        return None
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return None
    return folder


class TemplateCodeCache(BytecodeCache):
    """A :class:`jinja2.BytecodeCache` that never fails a build (see the module docstring);
    ``options`` names the environment's settings, which Jinja's own key leaves out."""

    def __init__(self, folder: Path, options: str) -> None:
        self.folder = _private_folder(folder)
        self.options = options

    def _file(self, bucket: Bucket) -> Path | None:
        return self.folder / f"{bucket.key}.code" if self.folder is not None else None

    def _header(self, bucket: Bucket) -> bytes:
        return (f"blurbench template code; jinja2 {jinja2.__version__}; python "
                f"{sys.version_info[:3]}; {self.options}; {bucket.checksum}\n").encode()

    def load_bytecode(self, bucket: Bucket) -> None:
        path = self._file(bucket)
        if path is None:
            return
        try:
            data = path.read_bytes()
        except OSError:
            return
        header = self._header(bucket)
        if not data.startswith(header):
            return
        try:
            code = marshal.loads(data[len(header):])
        except (EOFError, ValueError, TypeError):
            return
        if isinstance(code, CodeType):  # a template's module code, nothing else
            bucket.code = code

    def dump_bytecode(self, bucket: Bucket) -> None:
        path = self._file(bucket)
        if path is None or bucket.code is None:
            return
        with contextlib.suppress(OSError):  # an unwritable cache: compiled again next time
            atomic_write_bytes(path, self._header(bucket) + marshal.dumps(bucket.code))
