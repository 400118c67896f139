"""CelebA's 40 facial attributes through torchvision's ``CelebA`` (aligned and cropped images).

Layout under the data root (torchvision's)::

    <root>/celeba/img_align_celeba/000001.jpg ...
    <root>/celeba/list_attr_celeba.txt  list_eval_partition.txt  identity_CelebA.txt
    <root>/celeba/list_bbox_celeba.txt  list_landmarks_align_celeba.txt

torchvision md5-checks the five text files against the real release; a fixture passes its own
md5 table (``blurbench_fixture.json``) to the same check. The adapter adds what torchvision
leaves to chance: a text file that disagrees with the partition file, and an image that the
partition lists but that is not on disk, fail before training with the file named.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torchvision.datasets import CelebA
from torchvision.datasets.utils import check_integrity

from benchmark.data import SplitData
from benchmark.data.celeba_index import CELEBA_ATTRIBUTES, CelebAIndex
from benchmark.data.download import dataset_download
from benchmark.data.fixtures import read_manifest, require_listed, write_manifest
from benchmark.errors import BenchError

_FOLDER = CelebA.base_folder
_IMAGES = "img_align_celeba"
_PARTITION_FILE = "list_eval_partition.txt"
_DRIVE = "https://drive.google.com/drive/folders/0B7EVK8r0v71pWEZsZE9oNnFzTm8"

def _manual_steps(root: Path) -> str:
    where = (Path(root) / _FOLDER).resolve()
    return (
        f"download img_align_celeba.zip and the five list_*.txt / identity_CelebA.txt files "
        f"from {_DRIVE} (Img/ and Anno/, Eval/) into {where}/ and unzip the images there "
        f"(giving {where}/{_IMAGES}/000001.jpg), or pass --download (needs the gdown package; "
        f"Google Drive often refuses on quota), or use the Hugging Face copy: "
        f"--set data.source=hf"
    )


class _CheckedCelebA(CelebA):
    """torchvision's CelebA, checking its text files against ``md5`` when given a fixture's
    table, and naming the file when one is malformed or disagrees with the partition file."""

    def __init__(self, root: str, split: str, download: bool, md5: dict[str, str] | None):
        self.file_list = _file_list(md5)
        self._partition_rows: int | None = None
        super().__init__(root, split=split, target_type="attr", download=download)

    def _load_csv(self, filename: str, header: int | None = None) -> Any:
        path = Path(self.root, self.base_folder, filename)
        try:
            table = super()._load_csv(filename, header)
        except (ValueError, IndexError) as err:
            raise BenchError(
                f"CelebA file {path} is malformed (a truncated or ragged line?): {err}"
            ) from None
        if header is not None:
            stated = _stated_count(path)
            if stated is not None and stated != len(table.index):
                raise BenchError(
                    f"CelebA file {path} says it has {stated} rows but holds "
                    f"{len(table.index)}: it is truncated or not the original file."
                )
        if filename == _PARTITION_FILE:  # torchvision reads it first
            self._partition_rows = len(table.index)
        elif self._partition_rows not in (None, len(table.index)):
            raise BenchError(
                f"CelebA file {path} has {len(table.index)} rows but {_PARTITION_FILE} has "
                f"{self._partition_rows}: it is truncated or from another release."
            )
        return table


def _stated_count(path: Path) -> int | None:
    """The image count on the first line of CelebA's files that have a header."""
    with open(path) as fh:
        first = fh.readline().strip()
    return int(first) if first.isdigit() else None


def _first_bad_file(ds_root: Path, file_list: list[tuple[str, str, str]]) -> str:
    for _, md5, name in file_list:
        if not name.endswith(".zip") and not check_integrity(str(ds_root / name), md5):
            path = ds_root / name
            if not path.is_file():
                return f"CelebA file {path} is missing"
            return (
                f"CelebA file {path} does not match its md5 (truncated, or another version of "
                f"the file?)"
            )
    return f"CelebA image folder {ds_root / _IMAGES} is missing"


class CelebAAdapter(CelebAIndex):
    """The loader part (the index part is :mod:`benchmark.data.celeba_index`)."""

    def load_split(self, root: Path, split: str, download: bool, **args: Any) -> SplitData:
        if split not in self.splits:
            raise BenchError(f"CelebA has splits {self.splits}, not {split!r}.")
        if args:
            raise BenchError(f"CelebA takes no data.args, got {sorted(args)}.")
        ds_root = Path(root) / _FOLDER
        md5 = read_manifest(ds_root, "celeba")
        if md5 is not None:
            texts = [name for _, _, name in CelebA.file_list if not name.endswith(".zip")]
            require_listed(ds_root, md5, texts)
        if download and md5 is None:
            _download(root)
        try:
            ds = _CheckedCelebA(str(root), split, False, md5)
        except RuntimeError as err:
            if "not found or corrupted" not in str(err):
                raise
            bad = _first_bad_file(ds_root, _file_list(md5))
            raise BenchError(f"{bad}; " + _manual_steps(root)) from None
        names = [name for name in ds.attr_names if name]  # the real header ends with a space
        if len(names) != ds.attr.shape[1]:
            raise BenchError(
                f"CelebA file {ds_root / 'list_attr_celeba.txt'} names {len(names)} attributes "
                f"but has {ds.attr.shape[1]} columns."
            )
        _check_images(ds_root / _IMAGES, ds.filename)
        return SplitData(
            dataset=ds,
            example_ids=list(ds.filename),
            class_names=names,
            labels=ds.attr.numpy().astype(np.int64),
            is_fixture=md5 is not None,
            files=[ds_root / name for _, _, name in CelebA.file_list if name.endswith(".txt")],
        )

    def write_fixture(self, root: Path, **args: Any) -> Path:
        return write_celeba_fixture(root, **args)


def _download(root: Path) -> None:
    """torchvision's Google Drive download (md5-checked per file)."""
    # Every error, on purpose: the download runs through gdown, whose errors (quota, missing
    # package, HTML instead of a file) have no common base class; each gets the manual steps.
    with dataset_download("CelebA", Path(root) / _FOLDER, _manual_steps(root), (Exception,)):
        CelebA(str(root), split="all", target_type="attr", download=True)


def _file_list(md5: dict[str, str] | None) -> list[tuple[str, str, str]]:
    """torchvision's (file id, md5, name) table, with a fixture's md5s when given."""
    if md5 is None:
        return list(CelebA.file_list)
    return [(fid, md5.get(name, ""), name) for fid, _, name in CelebA.file_list]


def _check_images(folder: Path, filenames: list[str]) -> None:
    """Every image the split lists must be on disk (torchvision only checks the folder)."""
    present = set(os.listdir(folder))
    missing = [name for name in filenames if name not in present]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BenchError(
            f"CelebA image {folder / missing[0]} is listed in "
            f"{folder.parent / _PARTITION_FILE} but missing{more}: unzip img_align_celeba.zip "
            f"again."
        )


HF_FIXTURE_FOLDER = "celeba_hf"
HF_FIXTURE_CONFIG = "img_align+identity+attr"  # the config name of flwrlabs/celeba
FIXTURE_SPLIT_SIZES = {"train": 20, "valid": 6, "test": 10}
_SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}


def _face_jpeg(rng: np.random.Generator, attributes: np.ndarray) -> bytes:
    """A small 178:218-shaped JPEG whose regions follow a few attributes (hair colour on top,
    mouth brightness for Smiling, a tint for Male), so a network has something to learn."""
    h, w = 44, 36
    pixels = np.full((h, w, 3), 150.0) + rng.normal(0, 12, (h, w, 3))
    a = dict(zip(CELEBA_ATTRIBUTES, attributes, strict=True))
    hair = (20, 20, 20) if a["Black_Hair"] else (230, 200, 90) if a["Blond_Hair"] else (120, 80, 40)
    pixels[: h // 4] = np.asarray(hair) + rng.normal(0, 8, (h // 4, w, 3))
    pixels[int(h * 0.7) : int(h * 0.8), w // 3 : 2 * w // 3] = 255 if a["Smiling"] else 60
    if a["Male"]:
        pixels[..., 2] += 40
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_celeba_fixture(root: Path, sizes: dict[str, int] | None = None) -> Path:
    """A small CelebA in the real layout and text formats: a count line, a header line (the
    attribute header ends with a space, as the real one does), ``-1``/`` 1`` values in
    space-padded columns, contiguous train/valid/test ranges in ``list_eval_partition.txt``,
    and ``img_align_celeba/NNNNNN.jpg``. Attribute rates vary (a rare Bald, a common No_Beard)
    like the real ones. Also writes the same data as a local Hugging Face dataset laid out like
    ``flwrlabs/celeba`` under ``<root>/celeba_hf`` (see :mod:`benchmark.data.hf`)."""
    sizes = dict(sizes or FIXTURE_SPLIT_SIZES)
    if min(sizes.values()) < 2:
        raise ValueError("torchvision's CelebA needs at least two images in every split")
    folder = Path(root) / _FOLDER
    images = folder / _IMAGES
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = sum(sizes.values())
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    split_of = [s for s, count in sizes.items() for _ in range(count)]
    rates = rng.uniform(0.05, 0.6, size=len(CELEBA_ATTRIBUTES))
    rates[CELEBA_ATTRIBUTES.index("Bald")] = 0.02
    rates[CELEBA_ATTRIBUTES.index("No_Beard")] = 0.85
    attrs = (rng.random((n, len(CELEBA_ATTRIBUTES))) < rates).astype(np.int64)
    identities = rng.integers(1, 10178, size=n)
    jpegs = []
    for name, row in zip(names, attrs, strict=True):
        jpegs.append(_face_jpeg(rng, row))
        (images / name).write_bytes(jpegs[-1])

    def write(filename: str, lines: list[str]) -> Path:
        path = folder / filename
        path.write_text("".join(f"{line}\n" for line in lines))
        return path

    signed = attrs * 2 - 1
    written = [
        write(
            "list_attr_celeba.txt",
            [str(n), " ".join(CELEBA_ATTRIBUTES) + " "]
            + [
                f"{name} " + " ".join(f"{v:2d}" for v in row)
                for name, row in zip(names, signed, strict=True)
            ],
        ),
        write(
            _PARTITION_FILE,
            [f"{name} {_SPLIT_CODES[s]}" for name, s in zip(names, split_of, strict=True)],
        ),
        write(
            "identity_CelebA.txt",
            [f"{name} {i}" for name, i in zip(names, identities, strict=True)],
        ),
        write(
            "list_bbox_celeba.txt",
            [str(n), "image_id x_1 y_1 width height"]
            + [
                f"{name} {x:>5d} {y:>3d} {bw:>3d} {bh:>3d}"
                for name, (x, y, bw, bh) in zip(
                    names,
                    rng.integers([20, 20, 100, 150], [200, 150, 400, 500], size=(n, 4)),
                    strict=True,
                )
            ],
        ),
        write(
            "list_landmarks_align_celeba.txt",
            [
                str(n),
                "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
                "rightmouth_x rightmouth_y",
            ]
            + [
                f"{name} " + " ".join(f"{v:>4d}" for v in row)
                for name, row in zip(names, rng.integers(60, 160, size=(n, 10)), strict=True)
            ],
        ),
    ]
    write_manifest(folder, "celeba", written)

    import datasets

    from benchmark.data.hf import write_hf_fixture

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "celeb_id": datasets.Value("int64"),
            **{a: datasets.Value("bool") for a in CELEBA_ATTRIBUTES},
            "image_id": datasets.Value("string"),  # not in flwrlabs/celeba; lets tests pair ids
        }
    )
    tables: dict[str, dict[str, list[Any]]] = {}
    for split in sizes:
        rows = [i for i, s in enumerate(split_of) if s == split]
        tables[split] = {
            "image": [jpegs[i] for i in rows],
            "celeb_id": [int(identities[i]) for i in rows],
            **{a: [bool(attrs[i, k]) for i in rows] for k, a in enumerate(CELEBA_ATTRIBUTES)},
            "image_id": [names[i] for i in rows],
        }
    write_hf_fixture(
        Path(root) / HF_FIXTURE_FOLDER, "celeba", tables, features, config=HF_FIXTURE_CONFIG
    )
    return folder
