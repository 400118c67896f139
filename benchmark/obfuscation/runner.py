"""Obfuscate a whole dataset: parallel over processes, resumable, every output written atomically.

``obfuscate_dataset`` mirrors ``src`` into ``dst``: each image with face boxes goes through the
chosen method and is saved in its own format (JPEG at ``quality``, 75 by default: the paper's
script called ``img.save(path)``, i.e. PIL's default); every other file is copied byte for byte,
so ``dst`` is a complete dataset. Each output is written to a temporary file and renamed, so an
existing output is a finished one: a rerun (after Ctrl-C or ``kill -9``) skips it. The settings
are kept in ``dst/.blurbench-obfuscation.json``; a rerun with other settings is refused rather than
mixing two obfuscations in one folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from benchmark.atomic import atomic_write_bytes, atomic_write_text
from benchmark.errors import BenchError
from benchmark.obfuscation.annotations import Annotations, FaceBox, annotations_json
from benchmark.obfuscation.methods import check_options, get_method

SETTINGS_FILE = ".blurbench-obfuscation.json"
TMP_DIR = ".blurbench-tmp"  # a killed run's half-written files, cleared by the next run
PAPER_JPEG_QUALITY = 75  # PIL's default, which the paper's img.save(target_path) used


@dataclass
class Summary:
    """What a run did; ``files`` counts every file of the dataset, faces those of the
    annotated images found under ``src``."""

    files: int = 0
    obfuscated: int = 0  # written this run through the method
    copied: int = 0  # written this run unchanged (no faces, or not an annotated image)
    already_done: int = 0  # outputs of an earlier run, skipped
    faces: int = 0
    skipped_boxes: int = 0  # degenerate boxes (x0 >= x1 or y0 >= y1), not obfuscated
    unmatched_annotations: list[str] = field(default_factory=list)  # no such file under src
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why), nothing written
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        done = self.obfuscated + self.copied
        return done / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"{self.files} files: {self.obfuscated} obfuscated, {self.copied} copied "
                f"unchanged, {self.already_done} already done, {len(self.failed)} failed; "
                f"{self.faces} faces, {self.skipped_boxes} degenerate boxes skipped; "
                f"{self.images_per_second:.1f} images/s ({self.seconds:.1f} s)")  # fmt: skip


@dataclass(frozen=True)
class _Job:
    """One output to write; picklable, so a worker process needs nothing else."""

    rel: str
    src: str
    dst: str
    boxes: tuple[FaceBox, ...] | None  # None: copy the bytes
    method: str
    options: tuple[tuple[str, object], ...]
    quality: int
    tmp_dir: str


def obfuscate_image_bytes(path: Path, boxes: tuple[FaceBox, ...] | list[FaceBox], method: str,
                          options: dict[str, object], quality: int) -> bytes:
    """One image file obfuscated and encoded in its own format.

    Like the paper's script, images are converted to RGB first (ImageNet has greyscale and CMYK
    JPEGs); images with transparency keep it (RGBA), which the paper never met.
    """
    from PIL import Image

    with Image.open(path) as img:
        fmt = img.format
        alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
        rgb = img.convert("RGBA" if alpha else "RGB")
    out = get_method(method)(rgb, list(boxes), **options)
    fmt = "JPEG" if fmt in ("JPEG", "MPO") else fmt
    buffer = io.BytesIO()
    out.save(buffer, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _process(job: _Job) -> tuple[str, str | None]:
    """Write one output; a file that cannot be read or decoded is reported, not fatal."""
    from PIL import Image

    try:
        if job.boxes is None:
            data = Path(job.src).read_bytes()
        else:
            data = obfuscate_image_bytes(Path(job.src), job.boxes, job.method,
                                         dict(job.options), job.quality)
        atomic_write_bytes(Path(job.dst), data, tmp_dir=Path(job.tmp_dir))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        # PIL raises OSError/ValueError on broken files, SyntaxError on broken PNG chunks
        return job.rel, f"{type(err).__name__}: {' '.join(str(err).split())}"
    return job.rel, None


def _annotation_index(table: Annotations) -> dict[str, str]:
    """Annotation url without its extension -> url: the paper's files were ``.jpg`` on disk
    and ``.JPEG`` in the annotations (ImageNet's own names), so the extension does not count."""
    return {str(PurePosixPath(url).with_suffix("")): url for url in table}


def _match(rel: str, index: dict[str, str]) -> str | None:
    """The annotation url of a file under src, as the paper's script matched them: the same
    relative path, or ``val/<file>`` for ``val/<wnid>/<file>`` (the paper's val urls name no
    class folder, while ImageFolder layouts have one)."""
    path = PurePosixPath(rel)
    candidates = [str(path.with_suffix(""))]
    if len(path.parts) == 3 and path.parts[0] == "val":
        candidates.append(f"val/{path.with_suffix('').name}")
    return next((index[c] for c in candidates if c in index), None)


def _walk(src: Path) -> Iterator[str]:
    """Every file under src, relative, '/'-separated, in a stable order (symlinked folders are
    not followed, so a link cannot pull a folder from outside the dataset in)."""
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            yield (Path(root) / name).relative_to(src).as_posix()


def _check_folders(src: Path, dst: Path) -> None:
    from benchmark.paths import require_folder_path

    if not src.is_dir():
        raise BenchError(f"--src {src} is not a folder; pass the dataset's root folder.")
    require_folder_path(dst, "--dst")
    s, d = src.resolve(), dst.resolve()
    if s == d or d.is_relative_to(s) or s.is_relative_to(d):
        raise BenchError(f"--dst {dst} and --src {src} overlap; write the obfuscated copy to a "
                         "folder outside the source (and not above it).")


class _InsideCheck:
    """Refuses an output whose folder resolves outside dst (a symlink planted in dst); checked
    once per folder, since an ImageNet copy has a million files in two thousand folders."""

    def __init__(self, dst: Path) -> None:
        self.root = dst.resolve()
        self.seen: set[Path] = set()

    def check(self, out: Path) -> Path:
        if out.parent not in self.seen:
            if not out.parent.resolve().is_relative_to(self.root):
                raise BenchError(f"{out.parent} leads outside --dst {self.root} (a symbolic "
                                 "link?); remove it or use a new --dst.")
            self.seen.add(out.parent)
        return out


def _claim_destination(dst: Path, settings: dict[str, object]) -> None:
    """Record the settings in dst, or check that an earlier run used the same ones."""
    marker = dst / SETTINGS_FILE
    if marker.is_file():
        try:
            earlier = json.loads(marker.read_text())
        except (OSError, ValueError):
            earlier = None
        if earlier != settings:
            raise BenchError(f"--dst {dst} holds the output of other settings ({marker}); use "
                             "a new --dst, or delete that folder to start again.")
        return
    if dst.is_dir() and any(dst.iterdir()):
        raise BenchError(f"--dst {dst} is not empty and was not written by bench obfuscate; "
                         "use a new or empty folder.")
    atomic_write_text(marker, json.dumps(settings, indent=1, sort_keys=True) + "\n")


def obfuscate_dataset(annotations: Annotations | Path | str, src: Path | str, dst: Path | str, *,
                      method: str = "blur", options: dict[str, object] | None = None,
                      workers: int | None = None, quality: int = PAPER_JPEG_QUALITY,
                      reencode_faceless: bool = False, progress: bool = True) -> Summary:
    """Write an obfuscated copy of the dataset ``src`` to ``dst`` and return what was done.

    ``annotations``: a table (``read_annotations``) or its file. ``options``: the method's own
    (``{"block": 16}`` for pixelate). ``workers``: processes (default: the usable CPUs).
    ``reencode_faceless``: also run annotated images without a face through the method and
    re-encode them, as the paper's script did (JPEG recompression); by default they are copied.
    Failed files are listed in the summary; the caller decides whether that is an error.
    """
    from benchmark.obfuscation.annotations import read_annotations

    src, dst = Path(src), Path(dst)
    table = (annotations if isinstance(annotations, dict)
             else read_annotations(Path(annotations)))
    get_method(method)
    opts = check_options(method, dict(options or {}))
    if not 1 <= quality <= 100:
        raise BenchError(f"--quality must be 1-100 (JPEG quality), not {quality}.")
    if workers is None:
        usable = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every CPU
        workers = len(usable(0)) if usable else (os.cpu_count() or 1)
    if workers < 1:
        raise BenchError(f"--workers must be at least 1, not {workers}.")
    _check_folders(src, dst)
    settings = {
        "method": method, "options": json.loads(json.dumps(opts)), "jpeg_quality": quality,
        "reencode_faceless": reencode_faceless,
        "annotations_sha256": hashlib.sha256(annotations_json(table).encode()).hexdigest(),
    }  # fmt: skip
    index = _annotation_index(table)
    summary, planned, used = Summary(), [], set()
    for rel in _walk(src):
        summary.files += 1
        url = _match(rel, index)
        boxes: tuple[FaceBox, ...] | None = None
        if url is not None:
            used.add(url)
            faces = tuple(table[url])
            valid = sum(not b.degenerate for b in faces)
            summary.faces += valid
            summary.skipped_boxes += len(faces) - valid
            if valid or reencode_faceless:
                boxes = faces
        planned.append((rel, boxes))
    summary.unmatched_annotations = sorted(set(table) - used)
    if table and not used:
        example = next(iter(table))
        raise BenchError(f"none of the {len(table)} annotated images is under --src {src} "
                         f"(e.g. {example}); annotation paths are relative to the dataset "
                         "root: pass the folder that holds them.")

    dst.mkdir(parents=True, exist_ok=True)
    _claim_destination(dst, settings)
    tmp_dir = dst / TMP_DIR
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir()
    frozen_opts = tuple(sorted(opts.items()))
    jobs, inside = [], _InsideCheck(dst)
    for rel, boxes in planned:
        out = inside.check(dst / rel)
        if out.exists():
            summary.already_done += 1
            continue
        jobs.append(_Job(rel, str(src / rel), str(out), boxes, method, frozen_opts, quality,
                         str(tmp_dir)))
    started = time.perf_counter()
    try:
        for rel, error in _run(jobs, workers, progress):
            if error is not None:
                summary.failed.append((rel, error))
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted: finished outputs are kept in {dst}; the same "
                                "command resumes") from None  # fmt: skip
    summary.seconds = time.perf_counter() - started
    failed = {rel for rel, _ in summary.failed}
    for job in jobs:
        if job.rel not in failed:
            if job.boxes is None:
                summary.copied += 1
            else:
                summary.obfuscated += 1
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return summary


def _run(jobs: list[_Job], workers: int, progress: bool) -> Iterator[tuple[str, str | None]]:
    """Results as they finish, with a progress bar (hidden when stderr is not a terminal)."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="img", disable=None if progress else True, smoothing=0.1)
    try:
        if workers == 1 or len(jobs) <= 1:
            results: Iterator[tuple[str, str | None]] = map(_process, jobs)
            for result in results:
                bar.update()
                yield result
            return
        # spawn, not fork: the parent may hold threads (tqdm's monitor, a caller's torch)
        context = multiprocessing.get_context("spawn")
        chunk = max(1, min(16, len(jobs) // (workers * 8)))
        with context.Pool(min(workers, len(jobs))) as pool:
            for result in pool.imap_unordered(_process, jobs, chunksize=chunk):
                bar.update()
                yield result
    finally:
        bar.close()
