"""``bench demo --study``: the paper's whole study, offline, on toy data, in minutes on a CPU.

Faces -> blur -> pretrain on the original and on the blurred copy -> evaluate both per category
-> transfer both to the downstream tasks' fixtures -> leaderboard. Every stage is the command a
user would run, called through its Python API: the drawn image set of
:mod:`benchmark.data.toy_faces` (with its face boxes in the paper's JSON), ``bench blur``
(:func:`benchmark.obfuscation.obfuscate_dataset`), ``bench pretrain``
(:func:`benchmark.pretrain.pretrain`), ``bench run --task imagenet``
(:func:`benchmark.evaluate.execute_eval`), ``bench data fixture`` and ``bench sweep``
(:mod:`benchmark.sweep`) and ``bench leaderboard --supercategories``
(:func:`benchmark.leaderboard.build`, whose ImageNet per-category section pairs the
evaluations). Its size is a :class:`StudyScale`; the test runs a smaller one through the same
function.

A rerun reuses what is finished: the drawn set, blurred files, pretrained backbones (same data,
recipe and weights) and transfer runs (their run keys) are "already done"; the three
evaluations (seconds) run again and replace their records, as ``bench run --task imagenet``
does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.atomic import atomic_write_text
from benchmark.data.toy_faces import CATEGORIES, ToyScale, ToySet, write_toy_faces
from benchmark.errors import BenchError

ARCH = "resnet18"
BACKBONES = {"original": "study_original_r18", "blurred": "study_blurred_r18"}
SUPERCATEGORIES_FILE = "supercategories.json"  # category -> "object on a face" / "object alone"
TOY_WARNING = (
    "TOY DATA: every number of this study comes from procedurally drawn images (a few hundred, "
    "{size} px), a ResNet-18 pretrained for {epochs} epochs on them and transfer runs of a "
    "few steps on tiny synthetic fixtures. It shows that the pipeline runs from faces to "
    "leaderboard; it says nothing about face blurring."
)

Echo = Callable[[str], None]
TOP_DROPS = 5  # rows of the ImageNet section's largest-drops table printed at the end


@dataclass(frozen=True)
class StudyScale:
    """How big the study is. The default is what ``bench demo --study`` runs; every field is a
    size, never a different code path."""

    toy: ToyScale = ToyScale()
    image_size: int = 48  # pretraining crop (validation resizes to size / 0.875 first)
    epochs: int = 6
    batch_size: int = 32
    # divided by 10 after a third and two thirds of the epochs, as the paper's 0.1 is at epochs
    # 30 and 60 of 90; 0.1 itself diverged at batch 32 on the toy set, 0.05 learned (measured)
    lr: float = 0.05
    tasks: tuple[str, ...] = ("cifar10", "celeba", "sun397", "voc")  # the paper's four
    transfer_steps: int = 10
    # a Faster R-CNN step costs ~10 classification steps on a CPU (measured): fewer of them
    detection_steps: int = 2
    n_boot: int = 1000


@dataclass
class StudyOutcome:
    workdir: Path
    toy: ToySet
    blurred: Path  # the blurred copy of the toy set (ImageNet layout)
    backbones: dict[str, str]  # pretraining data -> registered backbone name
    registry: Path  # the user registry file the demo registered them in
    # "<pretraining data> on <images>" -> run folder of the ImageNet-task evaluation
    eval_runs: dict[str, Path]
    transfer_runs: list[Path]
    leaderboard: dict[str, Path]  # what `bench leaderboard` wrote
    imagenet_section: str  # the leaderboard's "ImageNet per-category comparison" (markdown)
    stage_seconds: dict[str, float] = field(default_factory=dict)


class _Stages:
    """One progress line per stage, with its wall time."""

    def __init__(self, echo: Echo, total: int) -> None:
        self.echo, self.total, self.done = echo, total, 0
        self.seconds: dict[str, float] = {}
        self._t0 = time.perf_counter()

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def finish(self, name: str, text: str) -> None:
        self.done += 1
        spent = time.perf_counter() - self._t0
        self.seconds[name] = round(spent, 2)
        self.echo(f"[{self.done}/{self.total}] {text} ({spent:.1f} s)")
        self._t0 = time.perf_counter()


@contextmanager
def _demo_registry(path: Path) -> Iterator[None]:
    """The demo's backbones go to a registry file in its workdir, not the user's
    (~/.config/blurbench): a demo must not leave names behind that a later ``bench pretrain``
    would collide with. The registry is read per call from ``$BENCH_USER_BACKBONES_FILE``."""
    key = "BENCH_USER_BACKBONES_FILE"
    before = os.environ.get(key)
    os.environ[key] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's per-Trainer banner (GPU available, TPU available ...) would print a dozen
    times; the demo's own lines say what runs."""
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning.pytorch")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _cpu_request(trainer: dict[str, Any] | None = None, **fields: Any) -> Any:
    """A RunRequest for this machine's CPU, quietly (progress bars off; not part of run keys)."""
    from benchmark.request import RunRequest

    return RunRequest(accelerator="cpu", devices="1", num_workers=0, loggers=["csv"],
                      trainer={"enable_progress_bar": False, **(trainer or {})},
                      **fields)  # fmt: skip


def _pretrain(data: Path, pretraining_data: str, workdir: Path, scale: StudyScale) -> str:
    """``bench pretrain`` on ``data``, unless the same pretraining is already done."""
    from benchmark.pretrain import PretrainRequest, already_pretrained, pretrain

    epochs = scale.epochs
    request = PretrainRequest(
        data=data, arch=ARCH, name=BACKBONES[pretraining_data], pretrain_data=pretraining_data,
        out=workdir / "pretrained", image_size=scale.image_size, seed=0, force=False,
        overrides={
            "train.epochs": epochs, "train.batch_size": scale.batch_size,
            "train.num_workers": 0, "optim.lr": scale.lr,
            # the paper's step schedule (epochs 30 and 60 of 90), scaled to the epochs run
            "schedule.step_epochs": sorted({max(1, epochs // 3), max(1, 2 * epochs // 3)}),
            # a mild augmentation: a random crop of the whole small picture, and a flip
            "input.augmentation": "flip",
        },
        # validation once, at the end (pretrain validates the saved weights again anyway)
        trainer=_cpu_request(task="pretrain", backbone=ARCH,
                             trainer={"check_val_every_n_epoch": epochs}),
    )  # fmt: skip
    done = already_pretrained(request)
    if done is not None:
        return _pretrain_line(done, "already done")
    # force: a stale folder of an earlier, different demo is replaced, never mixed in
    record = pretrain(dataclasses.replace(request, force=True)).record
    return _pretrain_line(record, f"{record['training']['steps']} steps")


def _pretrain_line(record: dict[str, Any], how: str) -> str:
    metrics = record.get("metrics") or {}
    losses = (record.get("training") or {}).get("losses") or []
    loss = f", train loss {losses[0]:.2f} -> {losses[-1]:.2f}" if losses else ""
    return (f"bench pretrain {record['name']} ({record['arch']} on {record['pretraining_data']} "
            f"images): {how}{loss}, val top-1 {metrics.get('val_top1', float('nan')):.3f}")


def _evaluate(backbone: str, images: Path, workdir: Path, toy: ToySet,
              scale: StudyScale) -> tuple[Path, dict]:  # fmt: skip
    """``bench run --task imagenet`` on the val images of ``images`` (the toy set or its
    blurred copy), with the face annotations."""
    from benchmark.evaluate import execute_eval

    run_dir, record, _ = execute_eval(_cpu_request(
        task="imagenet", backbone=backbone, data_root=images.parent,
        results=workdir / "results",
        overrides={"data.args.folder": toy.root.name, "data.args.annotations": str(toy.annotations),
                   "num_classes": len(toy.categories), "train.batch_size": 64,
                   "input.image_size": scale.image_size,
                   "input.resize_size": round(scale.image_size / 0.875)},
    ))  # fmt: skip
    return run_dir, record


def _transfer(workdir: Path, data_root: Path, scale: StudyScale, echo: Echo) -> list[Path]:
    """``bench data fixture`` for each task, then ``bench sweep`` of both backbones over them."""
    from benchmark.data import write_task_fixture
    from benchmark.launchers import LocalLauncher
    from benchmark.sweep import build_spec, plan_sweep
    from benchmark.tasks import get_task

    items = []
    for name in scale.tasks:  # one sweep per task: detection takes fewer steps
        task = get_task(name)
        write_task_fixture(task, data_root)
        steps = scale.detection_steps if task.kind == "detection" else scale.transfer_steps
        template = _cpu_request(task="", backbone="", subset="tiny", max_steps=steps,
                                data_root=data_root, results=workdir / "results")  # fmt: skip
        cli = {f.name: getattr(template, f.name) for f in dataclasses.fields(template)
               if f.name not in ("task", "backbone")}  # fmt: skip
        cli.update(backbones=[BACKBONES["original"], BACKBONES["blurred"]], tasks=[name],
                   seeds="0")  # fmt: skip
        items += plan_sweep(build_spec(None, cli))
    result = LocalLauncher(echo=lambda line: echo(f"      {line}")).run(items)
    if result.failed:
        item, why = result.failed[0]
        raise BenchError(f"transfer run {item.label} failed: {why}")
    return [item.plan.run_dir for item in items]


def run_study(workdir: Path, scale: StudyScale = StudyScale(), echo: Echo = print) -> StudyOutcome:
    """Run (or finish) the study in ``workdir``; every stage prints one line with its time."""
    from benchmark.obfuscation import obfuscate_dataset

    workdir = Path(workdir)
    if not scale.tasks:
        raise BenchError("the study needs at least one transfer task.")
    echo(TOY_WARNING.format(size=scale.toy.image_size, epochs=scale.epochs))
    stages = _Stages(echo, total=7)
    registry = workdir / "backbones.yaml"
    with _demo_registry(registry), _quiet_lightning():
        toy = write_toy_faces(workdir / "data" / "imagenet", scale.toy)
        face_categories = [c.name for c in CATEGORIES if c.face_on_object
                           and c.name in toy.categories]  # fmt: skip
        stages.finish("images", (
            f"toy image set: {len(toy.categories)} categories drawn procedurally, "
            f"{toy.images} images, {toy.faces} faces (on the object in "
            f"{', '.join(face_categories)}) -> {toy.root}"
            + (" (already done)" if toy.reused else "")))  # fmt: skip

        blurred = workdir / "data-blurred" / "imagenet"
        summary = obfuscate_dataset(toy.annotations, toy.root, blurred, method="blur",
                                    workers=1, progress=False)  # fmt: skip
        if summary.failed:
            path, why = summary.failed[0]
            raise BenchError(f"bench blur could not write {path}: {why}")
        stages.finish("blur", f"bench blur: {summary.line()} -> {blurred}")

        stages.finish("pretrain original", _pretrain(toy.root, "original", workdir, scale))
        stages.finish("pretrain blurred", _pretrain(blurred, "blurred", workdir, scale))

        # both on the original val images (the section's same-images pair), and the blurred
        # one on the blurred copy too (the paper's Table 4: each on its own kind of images)
        eval_runs, tops = {}, []
        for data, images in (("original", toy.root), ("blurred", toy.root),
                             ("blurred", blurred)):  # fmt: skip
            seen = "original" if images == toy.root else "blurred"
            run_dir, record = _evaluate(BACKBONES[data], images, workdir, toy, scale)
            eval_runs[f"{data} on {seen}"] = run_dir
            tops.append(f"{BACKBONES[data]} on {seen} images {record['metrics']['top1']:.3f}")
        stages.finish("evaluate", "bench run --task imagenet (per category, faces annotated): "
                      f"top-1 {', '.join(tops)}")

        transfer_runs = _transfer(workdir, workdir / "data", scale, echo)
        stages.finish("transfer", f"bench sweep: {len(transfer_runs)} transfer runs "
                      f"({', '.join(scale.tasks)}; tiny fixtures, {scale.transfer_steps} "
                      f"steps, {scale.detection_steps} for detection)")

        written, section = _leaderboard(workdir, toy.categories, face_categories, scale)
        stages.finish("leaderboard", f"bench leaderboard -> {written['html'].parent}")
    return StudyOutcome(workdir, toy, blurred, dict(BACKBONES), registry, eval_runs,
                        transfer_runs, written, section, stages.seconds)


def _leaderboard(workdir: Path, categories: list[str], face_categories: list[str],
                 scale: StudyScale) -> tuple[dict[str, Path], str]:  # fmt: skip
    """``bench leaderboard --supercategories`` over the study's results (the toy set's two
    supercategories); the page's ImageNet per-category section, as markdown."""
    from benchmark import leaderboard
    from benchmark.leaderboard.imagenet import SECTION_TITLE

    groups = {n: "object on a face" if n in face_categories else "object alone"
              for n in categories}  # fmt: skip
    mapping = atomic_write_text(workdir / SUPERCATEGORIES_FILE, json.dumps(groups, indent=1))
    board = leaderboard.build(workdir / "results", n_boot=scale.n_boot, supercategories=mapping)
    written = leaderboard.write(board, workdir / "leaderboard")
    markdown = written["markdown"].read_text()
    start = markdown.find(f"## {SECTION_TITLE}")
    if start < 0:
        raise BenchError(f"{written['markdown']} has no section {SECTION_TITLE!r}: the "
                         f"evaluations were not paired.")  # fmt: skip
    end = markdown.find("\n## ", start + 1)
    return written, markdown[start:] if end < 0 else markdown[start:end]


def _section_top(section: str) -> list[str]:
    """The section's first pair down to its first few largest drops."""
    lines = section.strip().splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith("Largest top-1 drops")),
              len(lines))  # fmt: skip
    return lines[: at + 4 + TOP_DROPS]  # the heading line, a blank, the table's two head lines


def summary_lines(outcome: StudyOutcome, scale: StudyScale = StudyScale()) -> list[str]:
    """What the demo prints at the end: where everything is, the comparison's top lines, and
    the toy-data warning again (it is what a reader must not miss)."""
    lines = [
        f"backbones: {', '.join(outcome.backbones.values())}, registered in {outcome.registry} "
        f"(BENCH_USER_BACKBONES_FILE={outcome.registry} bench list backbones 'study_*')",
        "",
        *_section_top(outcome.imagenet_section),
        "   ... (the whole section, and the transfer comparisons, in the leaderboard)",
        "",
        f"leaderboard: {outcome.leaderboard['html']}",
        f"             {outcome.leaderboard['markdown']}",
        TOY_WARNING.format(size=scale.toy.image_size, epochs=scale.epochs),
    ]  # fmt: skip
    return lines
