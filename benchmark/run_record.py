"""``RunRecord``: the one definition of a run record (``record.json``), for its writer (the
runner) and every reader (the leaderboard, the analysis side, ``bench run --config``, a run
given as ``--backbone``).

A record is validated when read, so a broken one is one line (a leaderboard problem, or a
``BenchError``), never a ``KeyError`` deep in a reader. Records written by older versions are
migrated on reading (:data:`MIGRATIONS`), never rewritten on disk. Torch-free: the leaderboard
imports it.

Extending it: a field a later version adds is optional (older records lack it) and the
schema version goes up only when a reader must tell old records from new ones. A protocol's
own results go in one optional sub-model named after it (a :class:`RecordSection`, e.g.
``probe: ProbeRecord | None = None``), absent from the records of other protocols. Unknown
keys are kept (``extra="allow"``): a record written by a newer version still reads, and
writing it back loses nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from benchmark.errors import BenchError
from benchmark.layout import RECORD_FILE
from benchmark.pretraining import UNKNOWN_DATA

# 1: the first records; 2: the config (hence the key) holds the data identity
# (benchmark.data.identity) and the record keeps the request (`bench run --config`)
SCHEMA_VERSION = 2

UNREADABLE = f"{RECORD_FILE} is missing, not JSON, or not an object"


class RecordSection(BaseModel):
    """A part of a record: its known fields typed, any other key kept as written."""

    model_config = ConfigDict(extra="allow")


class BackboneRecord(RecordSection):
    """The backbone as resolved (``benchmark.backbones``): which weights, from where (the other
    keys depend on the source: repo, revision, path, layout, checkpoint_meta ...)."""

    name: StrictStr
    arch: StrictStr
    source: str | None = None
    weights: str | None = None
    sha256: str | None = None
    pretraining_data: str = UNKNOWN_DATA
    # "--backbone-data" when the pretraining data was declared on the command line (absent
    # when it came from the backbone's source)
    pretraining_data_from: str | None = None


class TrainingRecord(RecordSection):
    steps: int
    epochs_completed: int
    losses: list[float]  # since the resume, when resumed
    resumed_from_step: int | None = None  # records before resumable runs lack it


class ProbeRecord(RecordSection):
    """``protocol: linear`` (:mod:`benchmark.protocols.linear`): the regularisation chosen on
    the validation split, the curve it was chosen from, and the feature-cache entries used."""

    chosen_C: float  # noqa: N815 - the name the Kornblith protocol and scikit-learn use
    val_metric: str
    val_curve: list[dict[str, float]]  # {"C": ..., "val_score": ...} along the grid
    features: dict[str, Any] = Field(default_factory=dict)


class RunRecord(BaseModel):
    """One run: what was asked, what it resolved to (``config``, the key's contents), where it
    ran and what came out. Fields are in the order they are written."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_version: int = Field(SCHEMA_VERSION, alias="schema")
    task: StrictStr
    kind: StrictStr
    protocol: StrictStr
    backbone: BackboneRecord
    seed: StrictInt
    subset: int | str = "full"
    request: dict[str, Any] | None = None  # the options as given; schema 1 records lack it
    config: dict[str, Any]
    config_hash: str | None = None
    code_version: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)  # what was read (benchmark.data.splits)
    hardware: dict[str, Any] | None = None
    started: str | None = None
    class_names: list[str] | None = None
    status: Literal["completed", "failed"]
    metrics: dict[str, Any] | None = None
    primary_metric: str | None = None
    error: str | None = None
    traceback: str | None = None
    ended: str | None = None
    wall_seconds: float | None = None
    training: TrainingRecord | None = None
    accelerator: str | None = None
    devices: int | None = None
    weights_file: str | None = None
    logs: dict[str, str] | None = None  # logger -> its file or folder, relative to the run
    probe: ProbeRecord | None = None  # protocol linear only

    @model_validator(mode="after")
    def _results_of_a_completed_run(self) -> RunRecord:
        if self.status == "completed":
            missing = [n for n in ("metrics", "primary_metric") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"a completed run needs {' and '.join(missing)}")
        return self

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def as_dict(self) -> dict[str, Any]:
        """The record as ``record.json`` holds it: the fields that were given, in order (a
        field left at its default is not written, so records keep the shape they had)."""
        out = self.model_dump(by_alias=True, exclude_unset=True)
        out.pop("schema", None)
        return {"schema": self.schema_version, **out}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1, default=str) + "\n"

    @classmethod
    def from_dict(cls, raw: Any, where: Path | str = "record") -> RunRecord:
        """Validate ``raw`` (migrated from an older schema first), or one-line
        :class:`RecordError` naming ``where`` and every field that is wrong."""
        if not isinstance(raw, dict):
            raise RecordError("unreadable record", where, UNREADABLE)
        task = raw.get("task") if isinstance(raw.get("task"), str) else ""
        try:
            migrated = migrate(raw)
            return cls.model_validate(migrated)
        except RecordError as err:
            raise RecordError(err.what, where, err.detail, task) from None
        except ValidationError as err:
            raise RecordError("malformed record", where, describe_errors(err), task) from None


class RecordError(BenchError):
    """A record that cannot be read (``what``: "unreadable record") or does not validate
    ("malformed record"); ``detail`` says why in one line. ``io_error``: the file could not be
    read at all (permissions, a disk or network error), which may pass without the file
    changing, so no cache keeps it."""

    def __init__(self, what: str, where: Path | str, detail: str, task: str = "",
                 io_error: bool = False) -> None:  # fmt: skip
        self.what, self.where, self.detail, self.task = what, where, detail, task
        self.io_error = io_error
        super().__init__(f"{where}: {what}: {detail}")


def describe_errors(err: ValidationError) -> str:
    """``missing or mistyped: seed (Input should be a valid integer), backbone.arch (Field
    required)``: every wrong field of a record, on one line."""
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        parts.append(f"{where} ({e['msg']})" if where else e["msg"].removeprefix("Value error, "))
    return "missing or mistyped: " + ", ".join(parts)


def _from_schema_1(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2. The key's contents had no data identity then: the config is kept as
    written (its hash is the run folder's name; a data identity now would be invented), so a
    schema-1 run is its own setting on the leaderboard, never paired with a schema-2 run of
    other data. Schema-1 records before class names were kept name the classes only in their
    per-class metrics: the class names are taken from the first of those."""
    out = {**raw, "schema": 2}
    if out.get("class_names") is None:
        for value in (out.get("metrics") or {}).values():
            if isinstance(value, dict) and value:
                out["class_names"] = list(value)
                break
    return out


# schema N -> N + 1, applied in turn until the current schema
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _from_schema_1}


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A record of any schema this version reads, as a current one (a new dict)."""
    version = raw.get("schema", 1)  # the first records always had one; a hand-made one may not
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError("malformed record", "record", f"schema {version!r} is not a version")
    if version > SCHEMA_VERSION:
        raise RecordError("unreadable record", "record", f"schema {version} is newer than this "
                          f"blurbench reads ({SCHEMA_VERSION}): upgrade blurbench")
    out = dict(raw)
    while version < SCHEMA_VERSION:
        out = MIGRATIONS[version](out)
        version += 1
    return out


def read_record(run_dir: Path | str) -> RunRecord:
    """The record of ``run_dir``; :class:`RecordError` when it is missing, not JSON or not a
    valid record.

    A current record is validated straight from its bytes (pydantic's JSON parser: about the
    cost of ``json.loads`` alone, which matters to a leaderboard of 10,000 runs); an older one,
    or one that does not validate, goes through ``json.loads``, :func:`migrate` and the full
    error report. A string ``run_dir`` stays a string until an error names it (the
    leaderboard reads 10,000 records: a ``Path`` per record cost a tenth of a second).
    """
    path = os.path.join(run_dir, RECORD_FILE)
    try:
        text = _read_file(path)
    except OSError:
        raise RecordError("unreadable record", Path(path), UNREADABLE, io_error=True) from None
    try:
        record = RunRecord.model_validate_json(text)
        if "schema_version" in record.model_fields_set and record.schema_version == SCHEMA_VERSION:
            return record
    except ValidationError:
        pass  # not JSON, or not valid: said precisely below
    try:
        raw = json.loads(text)
    except ValueError:
        raise RecordError("unreadable record", Path(path), UNREADABLE) from None
    return RunRecord.from_dict(raw, Path(path))


def _read_file(path: str) -> bytes:
    """The whole file, by ``os.read`` rather than ``open().read()``: Python's buffered file
    object is most of the cost of reading a small file, 0.17 s against 0.10 s of CPU for the
    10,000 records of a leaderboard (measured)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
