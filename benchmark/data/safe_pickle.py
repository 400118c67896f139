"""Reading dataset pickles (CIFAR's batch files) without letting them run code.

``pickle.load`` calls whatever a file names, so a batch file in a shared data folder could run
``os.system`` on whoever trains on it; the md5 check does not help when the folder also brings
its own fixture manifest. The real CIFAR files are Python 2 pickles of dicts holding strings,
lists of ints and one uint8 array, so the unpickler below resolves only the few globals an
array needs (as Python 2 and Python 3 protocol-2 pickles spell them) and refuses anything else
before it is called.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import BenchError

try:  # numpy >= 2 keeps the implementation in numpy._core; pickles name either module
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle named something outside the allow-list (the message is what it named)."""


def _plain_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype`` for plain numbers only: an object array would hand its items to pickle."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise RefusedGlobal("an array of Python objects")
    return dtype


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """How Python 3 writes ``bytes`` (an array's buffer) at protocol 2: ``_codecs.encode``."""
    if encoding not in ("latin1", "latin-1"):
        raise RefusedGlobal(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class ArrayOnlyUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and numpy arrays of numbers; nothing callable."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None


def load_data_pickle(path: Path, what: str) -> Any:
    """Unpickle a dataset file (Python 2 strings as latin-1, as torchvision reads them).

    A file that asks for anything else, or is no pickle at all, is the user's data to fix:
    one line naming the file, nothing run.
    """
    try:
        with open(path, "rb") as fh:
            return ArrayOnlyUnpickler(fh, encoding="latin1").load()
    except RefusedGlobal as err:
        raise BenchError(
            f"{path}: refused to read: the pickle asks for {err}, which no {what} file holds "
            f"(it may try to run code); replace the folder with the official release."
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as err:  # fmt: skip
        raise BenchError(f"{path}: not a readable {what} file ({type(err).__name__}).") from None
