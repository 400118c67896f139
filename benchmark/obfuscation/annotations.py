"""Face annotations: the paper's JSON, a plain CSV, and the check that keeps their paths inside
the dataset.

The paper released ``face_annotations_ILSVRC.json``: a list of ``{"url": "train/<wnid>/<file>.JPEG"
or "val/<file>.JPEG", "bboxes": [{"x0", "y0", "x1", "y1"}, ...]}`` in absolute pixels, one entry
per image, faceless images included (``"bboxes": []``; its Figure 2 counts them). Other datasets
can give a CSV with a ``path,x0,y0,x1,y1`` header and one face per row. Both read into the same
``{url: [FaceBox, ...]}`` table; ``bench faces detect`` writes the JSON.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, ValidationError

from benchmark.errors import BenchError


@dataclass(frozen=True)
class FaceBox:
    """One face, in absolute pixels (x0, y0) top-left to (x1, y1) bottom-right, as annotated
    (floats: the paper's boxes are not integers after its enlargement, nor always before)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def degenerate(self) -> bool:
        """The paper's skip rule: an empty or inverted box is not blurred (and is counted)."""
        return self.x0 >= self.x1 or self.y0 >= self.y1

    @property
    def size(self) -> float:
        """The paper's ``d`` (it calls it the diagonal): the larger side of the box."""
        return max(self.x1 - self.x0, self.y1 - self.y0)

    def as_dict(self) -> dict[str, float]:
        return {"x0": self.x0, "y0": self.y0, "x1": self.x1, "y1": self.y1}


Annotations = dict[str, list[FaceBox]]


class _PaperBox(BaseModel):
    model_config = ConfigDict(extra="ignore")
    x0: float
    y0: float
    x1: float
    y1: float


class _PaperEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str
    bboxes: list[_PaperBox]


def check_url(url: str, where: str) -> str:
    """Return ``url`` as a clean relative POSIX path, or refuse it.

    An annotation names a file relative to the dataset root, and output paths are built from
    it; an absolute path, a ``..`` part or a backslash could otherwise make a writer leave
    ``--dst``.
    """
    path = PurePosixPath(url)
    if (not url or "\\" in url or "\x00" in url or path.is_absolute()
            or any(part in ("..", ".") for part in path.parts) or url != str(path)):
        raise BenchError(f"{where}: path {url!r} must be relative to the dataset root, "
                         "'/'-separated, without '..', '.' or a leading '/'.")  # fmt: skip
    return url


def read_annotations(path: Path) -> Annotations:
    """The table of a ``.json`` (the paper's format) or ``.csv`` (path,x0,y0,x1,y1) file."""
    if not path.is_file():
        raise BenchError(f"--annotations {path} is not a file; pass the paper's JSON "
                         "(face_annotations_ILSVRC.json) or a CSV with path,x0,y0,x1,y1.")
    if path.suffix.lower() == ".csv":
        return _read_csv(path)
    if path.suffix.lower() == ".json":
        return _read_json(path)
    raise BenchError(f"--annotations {path}: unknown format {path.suffix!r}; "
                     "use .json (the paper's format) or .csv (path,x0,y0,x1,y1).")


def _read_json(path: Path) -> Annotations:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BenchError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(raw, list):
        raise BenchError(f"{path}: expected a list of {{'url', 'bboxes'}} entries (the paper's "
                         f"format), found a {type(raw).__name__}.")
    table: Annotations = {}
    for i, item in enumerate(raw):
        try:
            entry = _PaperEntry.model_validate(item)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BenchError(f"{path}: entry {i}: {where}: {first['msg']}") from None
        url = check_url(entry.url, f"{path}: entry {i}")
        if url in table:
            raise BenchError(f"{path}: {url} is listed twice (entry {i}); list each image once.")
        table[url] = [FaceBox(b.x0, b.y0, b.x1, b.y1) for b in entry.bboxes]
    return table


def _read_csv(path: Path) -> Annotations:
    columns = ["path", "x0", "y0", "x1", "y1"]
    table: Annotations = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or [c.strip() for c in reader.fieldnames] != columns:
            raise BenchError(f"{path}: the header must be {','.join(columns)} "
                             f"(found {reader.fieldnames}).")
        for line, row in enumerate(reader, start=2):
            url = check_url((row["path"] or "").strip(), f"{path}:{line}")
            try:
                box = FaceBox(*(float(row[c]) for c in columns[1:]))
            except (TypeError, ValueError):
                raise BenchError(f"{path}:{line}: x0, y0, x1, y1 must be numbers.") from None
            table.setdefault(url, []).append(box)
    return table


def annotations_json(table: Annotations) -> str:
    """The paper's JSON format, one entry per image (faceless images with ``"bboxes": []``)."""
    entries = [{"url": url, "bboxes": [b.as_dict() for b in boxes]}
               for url, boxes in sorted(table.items())]  # fmt: skip
    return json.dumps(entries, indent=1) + "\n"
