"""SUN397 scene recognition through torchvision's ``SUN397``, restricted to an official partition.

torchvision's class reads ``<root>/SUN397/ClassName.txt`` and globs ``sun_*.jpg`` under
``<root>/SUN397/<letter>/<class>/``, but has no notion of the ten official train/test partitions
(``Training_01.txt`` .. ``Testing_10.txt``, 50 + 50 images per class each). The adapter keeps
torchvision's class list, labels and image loader, and selects one partition's images in the
order its file lists them, so a split never depends on the order a filesystem lists files in.

Expected layout (the image archive and the partitions zip unpacked under one data root)::

    <root>/SUN397/ClassName.txt             lines like /a/abbey, /a/apartment_building/outdoor
    <root>/SUN397/a/abbey/sun_*.jpg
    <root>/SUN397/Partitions/Training_01.txt    lines like /a/abbey/sun_aqswjsnjlrfzzhiz.jpg
    <root>/SUN397/Partitions/Testing_01.txt
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torchvision.datasets import SUN397
from torchvision.datasets.utils import download_and_extract_archive

from benchmark.data import SplitData
from benchmark.data.download import dataset_download
from benchmark.data.fixtures import read_manifest, verify_manifest, write_manifest
from benchmark.data.sun397_index import FOLDER as _FOLDER
from benchmark.data.sun397_index import PARTITIONS as _PARTITIONS
from benchmark.data.sun397_index import SPLIT_FILES as _SPLIT_FILES
from benchmark.data.sun397_index import SUN397Index
from benchmark.data.sun397_index import check_partition as _check_partition
from benchmark.data.sun397_index import partition_file as _partition_file
from benchmark.errors import BenchError

_PARTITIONS_URL = "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip"
# The md5 torchvision's SUN397 pull request (pytorch/vision#5132) carried for this archive
# before partition support was dropped from it; a mismatch fails the download, never the data.
_PARTITIONS_MD5 = "29a205c0a0129d21f36cbecfefe81881"


def _manual_steps(root: Path) -> str:
    where = (Path(root) / _FOLDER).resolve()
    return (
        f"download {SUN397._DATASET_URL} (about 37 GB) and extract it under {Path(root).resolve()} "
        f"(giving {where}/ClassName.txt and {where}/a/abbey/...), then download {_PARTITIONS_URL} "
        f"and unzip its Training_01.txt .. Testing_10.txt into {where / _PARTITIONS}/ "
        f"(or pass --download, or use a Hugging Face copy: --set data.source=hf)"
    )


class _PartitionedSUN397(SUN397):
    """torchvision's SUN397 (class list, labels, ``default_loader``), then one partition file's
    images in that file's order. Every check names the file a user has to look at."""

    def __init__(self, root: Path, partition_file: Path) -> None:
        data_dir = Path(root) / _FOLDER
        try:
            super().__init__(str(root))
        except KeyError as err:  # torchvision maps each image's folder to a ClassName.txt entry
            raise BenchError(
                f"SUN397 has images in folder {data_dir}/<letter>/{err.args[0]}, which "
                f"{data_dir / 'ClassName.txt'} does not list: remove the folder or restore "
                f"ClassName.txt from SUN397.tar.gz."
            ) from None
        found = {
            path.relative_to(data_dir).as_posix(): label
            for path, label in zip(self._image_files, self._labels, strict=True)
        }
        counts = np.bincount(np.asarray(self._labels, dtype=np.int64), minlength=len(self.classes))
        for index in np.flatnonzero(counts == 0):
            folder = data_dir / _class_folder(self.classes[index])
            raise BenchError(
                f"SUN397 class folder {folder} has no sun_*.jpg images, but "
                f"{data_dir / 'ClassName.txt'} lists it: restore the folder from SUN397.tar.gz."
            )
        files: list[Path] = []
        labels: list[int] = []
        missing: list[tuple[int, str]] = []
        for number, line in enumerate(partition_file.read_text().splitlines(), start=1):
            entry = line.strip()
            if not entry:
                continue
            relative = entry.lstrip("/")
            if not entry.startswith("/") or not relative.endswith(".jpg") or "/" not in relative:
                raise BenchError(
                    f"{partition_file} line {number}: expected a path like "
                    f"/a/abbey/sun_aqswjsnjlrfzzhiz.jpg, found {entry[:80]!r}."
                )
            if relative not in found:
                missing.append((number, relative))
                continue
            files.append(data_dir / relative)
            labels.append(found[relative])
        if missing:
            number, relative = missing[0]
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise BenchError(
                f"image {data_dir / relative} is listed in {partition_file} line {number} but "
                f"is missing{more}: restore it from SUN397.tar.gz."
            )
        if not files:
            raise BenchError(f"{partition_file} lists no images.")
        self._image_files = files
        self._labels = labels
        self.example_ids = [p.relative_to(data_dir).as_posix() for p in files]


def _class_folder(class_name: str) -> str:
    """``apartment_building/outdoor`` -> ``a/apartment_building/outdoor`` (ClassName.txt's
    ``/a/...`` prefix, which torchvision strips)."""
    return f"{class_name[0]}/{class_name}"


def _partition_dir(root: Path) -> Path:
    return Path(root) / _FOLDER / _PARTITIONS


def _download_partitions(root: Path) -> None:
    """Fetch the partitions zip through torchvision's downloader (md5-checked), and lift the
    files out of a top-level folder if the archive has one."""
    target = _partition_dir(root)
    with dataset_download("the SUN397 partitions", target, _manual_steps(root)):
        download_and_extract_archive(
            _PARTITIONS_URL, download_root=str(root), extract_root=str(target),
            md5=_PARTITIONS_MD5,
        )  # fmt: skip
    nested = next(target.rglob("Training_01.txt"), None)
    if nested is not None and nested.parent != target:
        for item in nested.parent.iterdir():
            shutil.move(str(item), target / item.name)


class SUN397Adapter(SUN397Index):
    """The loader part (the index part is :mod:`benchmark.data.sun397_index`)."""

    def load_split(
        self, root: Path, split: str, download: bool, partition: int = 1, **args: Any
    ) -> SplitData:
        if split not in self.splits:
            raise BenchError(f"SUN397 has splits {self.splits}, not {split!r}.")
        if args:
            raise BenchError(f"SUN397: unknown data.args {sorted(args)} (known: partition).")
        partition = _check_partition(partition)
        root = Path(root)
        folder = root / _FOLDER
        md5 = read_manifest(folder, "sun397")
        if download and md5 is None:
            with dataset_download("SUN397", folder, _manual_steps(root)):
                SUN397(str(root), download=True)
            if not _partition_file(root, split, partition).is_file():
                _download_partitions(root)
        if not (folder / "ClassName.txt").is_file():
            raise BenchError(
                f"SUN397 not found: {(folder / 'ClassName.txt').resolve()} is missing; "
                + _manual_steps(root)
            )
        partition_file = _partition_file(root, split, partition)
        if not partition_file.is_file():
            raise BenchError(
                f"SUN397 partition file {partition_file.resolve()} is missing; "
                + _manual_steps(root)
            )
        if md5 is not None:
            names = ["ClassName.txt", partition_file.relative_to(folder).as_posix()]
            verify_manifest(folder, md5, names)
        ds = _PartitionedSUN397(root, partition_file)
        return SplitData(
            dataset=ds,
            example_ids=ds.example_ids,
            class_names=list(ds.classes),
            labels=np.asarray(ds._labels, dtype=np.int64),
            is_fixture=md5 is not None,
            source={"partition": partition},
            files=[folder / "ClassName.txt", partition_file],
        )

    def write_fixture(self, root: Path, **args: Any) -> Path:
        return write_sun397_fixture(root, **args)


# The 397 entries of SUN397's ClassName.txt, in its order (the same list ships with
# tensorflow_datasets as sun397_labels.txt). Only the fixture writer uses it: real runs read
# the dataset's own ClassName.txt.
_CLASS_NAME_TXT = """
/a/abbey /a/airplane_cabin /a/airport_terminal /a/alley /a/amphitheater /a/amusement_arcade
/a/amusement_park /a/anechoic_chamber /a/apartment_building/outdoor /a/apse/indoor /a/aquarium
/a/aqueduct /a/arch /a/archive /a/arrival_gate/outdoor /a/art_gallery /a/art_school
/a/art_studio /a/assembly_line /a/athletic_field/outdoor /a/atrium/public /a/attic /a/auditorium
/a/auto_factory /b/badlands /b/badminton_court/indoor /b/baggage_claim /b/bakery/shop
/b/balcony/exterior /b/balcony/interior /b/ball_pit /b/ballroom /b/bamboo_forest
/b/banquet_hall /b/bar /b/barn /b/barndoor /b/baseball_field /b/basement /b/basilica
/b/basketball_court/outdoor /b/bathroom /b/batters_box /b/bayou /b/bazaar/indoor
/b/bazaar/outdoor /b/beach /b/beauty_salon /b/bedroom /b/berth /b/biology_laboratory
/b/bistro/indoor /b/boardwalk /b/boat_deck /b/boathouse /b/bookstore /b/booth/indoor
/b/botanical_garden /b/bow_window/indoor /b/bow_window/outdoor /b/bowling_alley /b/boxing_ring
/b/brewery/indoor /b/bridge /b/building_facade /b/bullring /b/burial_chamber /b/bus_interior
/b/butchers_shop /b/butte /c/cabin/outdoor /c/cafeteria /c/campsite /c/campus
/c/canal/natural /c/canal/urban /c/candy_store /c/canyon /c/car_interior/backseat
/c/car_interior/frontseat /c/carrousel /c/casino/indoor /c/castle /c/catacomb
/c/cathedral/indoor /c/cathedral/outdoor /c/cavern/indoor /c/cemetery /c/chalet
/c/cheese_factory /c/chemistry_lab /c/chicken_coop/indoor /c/chicken_coop/outdoor
/c/childs_room /c/church/indoor /c/church/outdoor /c/classroom /c/clean_room /c/cliff
/c/cloister/indoor /c/closet /c/clothing_store /c/coast /c/cockpit /c/coffee_shop
/c/computer_room /c/conference_center /c/conference_room /c/construction_site
/c/control_room /c/control_tower/outdoor /c/corn_field /c/corral /c/corridor
/c/cottage_garden /c/courthouse /c/courtroom /c/courtyard /c/covered_bridge/exterior
/c/creek /c/crevasse /c/crosswalk /c/cubicle/office /d/dam /d/delicatessen
/d/dentists_office /d/desert/sand /d/desert/vegetation /d/diner/indoor /d/diner/outdoor
/d/dinette/home /d/dinette/vehicle /d/dining_car /d/dining_room /d/discotheque /d/dock
/d/doorway/outdoor /d/dorm_room /d/driveway /d/driving_range/outdoor /d/drugstore
/e/electrical_substation /e/elevator/door /e/elevator/interior /e/elevator_shaft
/e/engine_room /e/escalator/indoor /e/excavation /f/factory/indoor /f/fairway
/f/fastfood_restaurant /f/field/cultivated /f/field/wild /f/fire_escape /f/fire_station
/f/firing_range/indoor /f/fishpond /f/florist_shop/indoor /f/food_court /f/forest/broadleaf
/f/forest/needleleaf /f/forest_path /f/forest_road /f/formal_garden /f/fountain /g/galley
/g/game_room /g/garage/indoor /g/garbage_dump /g/gas_station /g/gazebo/exterior
/g/general_store/indoor /g/general_store/outdoor /g/gift_shop /g/golf_course
/g/greenhouse/indoor /g/greenhouse/outdoor /g/gymnasium/indoor /h/hangar/indoor
/h/hangar/outdoor /h/harbor /h/hayfield /h/heliport /h/herb_garden /h/highway /h/hill
/h/home_office /h/hospital /h/hospital_room /h/hot_spring /h/hot_tub/outdoor
/h/hotel/outdoor /h/hotel_room /h/house /h/hunting_lodge/outdoor /i/ice_cream_parlor
/i/ice_floe /i/ice_shelf /i/ice_skating_rink/indoor /i/ice_skating_rink/outdoor /i/iceberg
/i/igloo /i/industrial_area /i/inn/outdoor /i/islet /j/jacuzzi/indoor /j/jail/indoor
/j/jail_cell /j/jewelry_shop /k/kasbah /k/kennel/indoor /k/kennel/outdoor
/k/kindergarden_classroom /k/kitchen /k/kitchenette /l/labyrinth/outdoor /l/lake/natural
/l/landfill /l/landing_deck /l/laundromat /l/lecture_room /l/library/indoor
/l/library/outdoor /l/lido_deck/outdoor /l/lift_bridge /l/lighthouse /l/limousine_interior
/l/living_room /l/lobby /l/lock_chamber /l/locker_room /m/mansion /m/manufactured_home
/m/market/indoor /m/market/outdoor /m/marsh /m/martial_arts_gym /m/mausoleum /m/medina
/m/moat/water /m/monastery/outdoor /m/mosque/indoor /m/mosque/outdoor /m/motel /m/mountain
/m/mountain_snowy /m/movie_theater/indoor /m/museum/indoor /m/music_store /m/music_studio
/n/nuclear_power_plant/outdoor /n/nursery /o/oast_house /o/observatory/outdoor /o/ocean
/o/office /o/office_building /o/oil_refinery/outdoor /o/oilrig /o/operating_room /o/orchard
/o/outhouse/outdoor /p/pagoda /p/palace /p/pantry /p/park /p/parking_garage/indoor
/p/parking_garage/outdoor /p/parking_lot /p/parlor /p/pasture /p/patio /p/pavilion
/p/pharmacy /p/phone_booth /p/physics_laboratory /p/picnic_area /p/pilothouse/indoor
/p/planetarium/outdoor /p/playground /p/playroom /p/plaza /p/podium/indoor /p/podium/outdoor
/p/pond /p/poolroom/establishment /p/poolroom/home /p/power_plant/outdoor /p/promenade_deck
/p/pub/indoor /p/pulpit /p/putting_green /r/racecourse /r/raceway /r/raft /r/railroad_track
/r/rainforest /r/reception /r/recreation_room /r/residential_neighborhood /r/restaurant
/r/restaurant_kitchen /r/restaurant_patio /r/rice_paddy /r/riding_arena /r/river
/r/rock_arch /r/rope_bridge /r/ruin /r/runway /s/sandbar /s/sandbox /s/sauna /s/schoolhouse
/s/sea_cliff /s/server_room /s/shed /s/shoe_shop /s/shopfront /s/shopping_mall/indoor
/s/shower /s/skatepark /s/ski_lodge /s/ski_resort /s/ski_slope /s/sky /s/skyscraper /s/slum
/s/snowfield /s/squash_court /s/stable /s/stadium/baseball /s/stadium/football
/s/stage/indoor /s/staircase /s/street /s/subway_interior /s/subway_station/platform
/s/supermarket /s/sushi_bar /s/swamp /s/swimming_pool/indoor /s/swimming_pool/outdoor
/s/synagogue/indoor /s/synagogue/outdoor /t/television_studio /t/temple/east_asia
/t/temple/south_asia /t/tennis_court/indoor /t/tennis_court/outdoor /t/tent/outdoor
/t/theater/indoor_procenium /t/theater/indoor_seats /t/thriftshop /t/throne_room
/t/ticket_booth /t/toll_plaza /t/topiary_garden /t/tower /t/toyshop /t/track/outdoor
/t/train_railway /t/train_station/platform /t/tree_farm /t/tree_house /t/trench
/u/underwater/coral_reef /u/utility_room /v/valley /v/van_interior /v/vegetable_garden
/v/veranda /v/veterinarians_office /v/viaduct /v/videostore /v/village /v/vineyard
/v/volcano /v/volleyball_court/indoor /v/volleyball_court/outdoor /w/waiting_room
/w/warehouse/indoor /w/water_tower /w/waterfall/block /w/waterfall/fan /w/waterfall/plunge
/w/watering_hole /w/wave /w/wet_bar /w/wheat_field /w/wind_farm /w/windmill
/w/wine_cellar/barrel_storage /w/wine_cellar/bottle_storage /w/wrestling_ring/indoor /y/yard
/y/youth_hostel
"""
SUN397_CLASS_LINES = _CLASS_NAME_TXT.split()

HF_FIXTURE_FOLDER = "sun397_hf"


def _image_name(rng: np.random.Generator) -> str:
    """``sun_`` + 16 lowercase letters, the real file-name pattern (torchvision globs it)."""
    return "sun_" + "".join(chr(97 + c) for c in rng.integers(0, 26, size=16)) + ".jpg"


def _scene_jpeg(rng: np.random.Generator, class_index: int, n_classes: int) -> bytes:
    """A small non-square JPEG whose hue and stripe angle follow the class, plus noise."""
    hue = np.array([np.sin(class_index), np.cos(class_index * 0.7), np.sin(class_index * 1.3)])
    colour = 128 + 80 * hue
    yy, xx = np.mgrid[0:24, 0:32]
    angle = np.pi * class_index / n_classes
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / 2.0)[..., None]
    pixels = np.clip(colour + 30 * stripes + rng.normal(0, 10, (24, 32, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_sun397_fixture(
    root: Path, images_per_class: int = 4, train_per_class: int = 2, test_per_class: int = 1
) -> Path:
    """A small SUN397 in the real layout: all 397 classes in ``ClassName.txt``, a few
    ``sun_*.jpg`` per class folder, and ten ``Training_NN``/``Testing_NN`` partition files that
    each draw a different train/test selection from the same images (some images belong to no
    partition, as in the real dataset). Also writes the same partition-01 data as a local
    Hugging Face dataset under ``<root>/sun397_hf`` (see :mod:`benchmark.data.hf`)."""
    if train_per_class + test_per_class > images_per_class:
        raise ValueError("a class needs at least train_per_class + test_per_class images")
    folder = Path(root) / _FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = SUN397_CLASS_LINES
    (folder / "ClassName.txt").write_text("".join(f"{line}\n" for line in names))
    images: list[list[str]] = []  # per class: paths relative to SUN397/, with leading "/"
    jpegs: dict[str, bytes] = {}
    for c, line in enumerate(names):
        class_dir = folder / line.lstrip("/")
        class_dir.mkdir(parents=True, exist_ok=True)
        members = []
        for _ in range(images_per_class):
            name = _image_name(rng)
            data = _scene_jpeg(rng, c, len(names))
            (class_dir / name).write_bytes(data)
            members.append(f"{line}/{name}")
            jpegs[members[-1]] = data
        images.append(members)
    partitions = folder / _PARTITIONS
    partitions.mkdir(exist_ok=True)
    written = [folder / "ClassName.txt"]
    listed: dict[str, list[str]] = {}
    for k in range(1, 11):
        prng = np.random.default_rng(100 + k)
        train, test = [], []
        for members in images:
            order = prng.permutation(len(members))
            train += [members[i] for i in order[:train_per_class]]
            test += [members[i] for i in order[train_per_class : train_per_class + test_per_class]]
        for split, lines in (("train", train), ("test", test)):
            path = partitions / f"{_SPLIT_FILES[split]}_{k:02d}.txt"
            path.write_text("".join(f"{p}\n" for p in lines))
            written.append(path)
            if k == 1:
                listed[split] = lines
    write_manifest(folder, "sun397", written)

    import datasets

    from benchmark.data.hf import write_hf_fixture

    class_names = [line[3:] for line in names]  # torchvision's own parsing of ClassName.txt
    label_of = {line: c for c, line in enumerate(names)}
    # the same partition-01 images as a Hub-style dataset, laid out like tanganke/sun397
    write_hf_fixture(
        Path(root) / HF_FIXTURE_FOLDER,
        dataset="sun397",
        splits={
            split: {
                "image": [jpegs[p] for p in lines],
                "label": [label_of[p.rsplit("/", 1)[0]] for p in lines],
                "image_id": [p.lstrip("/") for p in lines],
            }
            for split, lines in listed.items()
        },
        features=datasets.Features(
            {
                "image": datasets.Image(),
                "label": datasets.ClassLabel(names=class_names),
                "image_id": datasets.Value("string"),
            }
        ),
    )
    return folder
