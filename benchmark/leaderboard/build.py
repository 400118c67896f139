"""``build`` (records -> a :class:`Leaderboard`, plots included) and ``write`` (its files).

The only module that knows the order of the steps: collect, pair, compare, plot, render.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from benchmark.atomic import atomic_write_bytes, atomic_write_text
from benchmark.errors import BenchError
from benchmark.layout import RunLayout
from benchmark.leaderboard.cache import ComparisonCache, QuantileCache, RecordCache
from benchmark.leaderboard.collect import (
    PER_RUN_FIELDS,
    READING_FIELDS,
    collect,
    group_settings,
)
from benchmark.leaderboard.compare import RunScoreLoader, compare_all, new_comparison
from benchmark.leaderboard.formats import level_text
from benchmark.leaderboard.imagenet import imagenet_pairs, read_supercategories
from benchmark.leaderboard.model import Comparison, Leaderboard, Problem, Row, Setting
from benchmark.leaderboard.pairs import check_pair_names, find_pairs, parse_pairs
from benchmark.leaderboard.plots import (
    empty_plot_note,
    overview_data,
    plot_data,
    render_overview,
    render_plots,
)
from benchmark.leaderboard.render import (
    RecordLinks,
    render_context,
    render_csv,
    render_html,
    render_imagenet_csv,
    render_markdown,
    render_wide_csv,
)
from benchmark.score_cache import ScoreArrayCache
from benchmark.stats import remember_t_quantiles, reuse_replicates, t_quantiles


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Python's cycle collector off for one build or write, as it was afterwards. A cold
    build of 10,000 runs keeps about 250,000 container objects alive (records, their metrics,
    per-run scores), none in a cycle, and the collector traversed them again and again as
    they piled up: a whole cold build took 14.2-14.9 s of CPU with it on and 13.1-13.4 s with
    it off (2 cores, load about 3); pausing only the reading moved the collections into the
    next stage. Reference counting frees everything as usual; a cycle made meanwhile waits for
    the next collection after the build."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@_cycle_collector_paused()
def build(
    results: Path,
    pairs: Sequence[str] = (),
    n_boot: int = 2000,
    confidence: float = 0.95,
    rng_seed: int = 0,
    plots: bool = True,
    cache: bool = True,
    supercategories: Path | None = None,
    workers: int = 0,
) -> Leaderboard:
    """Read the records under ``results`` and compute every table, comparison and plot.
    ``cache``: read and update ``<results>/.cache`` (:mod:`benchmark.score_cache`,
    :mod:`benchmark.leaderboard.cache`), so a rebuild reads neither the records nor the
    predictions of unchanged runs again and recomputes only the comparisons whose runs,
    options or code changed. ``supercategories``: a JSON file category -> supercategory for
    the ImageNet section's supercategory means. ``workers``: processes that read the
    predictions files the cache does not serve (:mod:`benchmark.leaderboard.workers`; 0: all
    in this process, which is what a library caller gets unless it asks)."""
    if not 0.5 <= confidence < 1.0:
        raise BenchError(f"--confidence {confidence}: use a level in [0.5, 1), e.g. 0.95.")
    if n_boot < 100:
        raise BenchError(f"--n-boot {n_boot}: use at least 100 bootstrap replicates.")
    explicit = parse_pairs(pairs)
    groups = read_supercategories(Path(supercategories)) if supercategories is not None else None
    results = Path(results)
    if not RunLayout(results).runs.is_dir():
        raise BenchError(f"{results} holds no runs/ folder: pass the --results folder that "
                         f"`bench run` or `bench sweep` wrote to.")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    readings = RecordCache(results, READING_FIELDS, PER_RUN_FIELDS) if cache else None
    runs, problems, n_records = collect(results, readings)
    timings["read records"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    quantiles = QuantileCache(results) if cache else None
    if quantiles is not None:
        remember_t_quantiles(quantiles.values())
    settings = group_settings(runs, problems, confidence)
    check_pair_names(explicit, settings)
    found = find_pairs(settings, explicit, problems)
    timings["group and seed intervals"] = time.perf_counter() - t0
    if readings is not None:  # after the checks: a build refused as a user mistake writes nothing
        t0 = time.perf_counter()
        if readings.save():
            timings["write record cache"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    kept = ComparisonCache(results, n_boot, confidence, rng_seed, readings) if cache else None
    comparisons: list[Comparison] = []
    todo: list[tuple[int, str | None, Setting, Row, Row, bool]] = []
    stored: list[Problem] = []  # problems kept with cached comparisons
    for setting, a, b, is_explicit in found:
        comp = new_comparison(setting, a, b, is_explicit)
        key = kept.key(comp) if kept is not None else None
        got = kept.restore(key, comp) if kept is not None and key is not None else None
        if got is None:
            todo.append((len(comparisons), key, setting, a, b, is_explicit))
        else:
            stored += got
        comparisons.append(comp)
    timings["comparison cache"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    disk = ScoreArrayCache(results) if cache else None
    scores = RunScoreLoader(problems, disk)
    used = scores.prefetch([run for _, _, _, a, b, _ in todo for run in (*a.runs, *b.runs)],
                           workers)  # fmt: skip
    timings[f"read predictions ({used} workers)" if used else "read predictions"] = \
        time.perf_counter() - t0  # fmt: skip
    if disk is not None and todo:  # all comparisons cached: the score cache was not opened
        t0 = time.perf_counter()
        if disk.save():
            timings["write score cache"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with reuse_replicates():
        # every comparison of a task resamples the same test set
        done = compare_all([(setting, a, b, is_explicit) for _, _, setting, a, b, is_explicit
                            in todo], scores, n_boot, confidence, rng_seed)  # fmt: skip
        for (i, key, _, a, b, _), comp in zip(todo, done, strict=True):
            comparisons[i] = comp
            if kept is not None and key is not None:
                kept.put(key, comp, [p for run in (*a.runs, *b.runs)
                                     for p in scores.run_problems.get(run.run_dir, [])])
    timings["paired bootstraps"] = time.perf_counter() - t0
    seen = {_identity(p) for p in problems}
    for problem in stored:  # a run in several comparisons has its problems stored in each
        if _identity(problem) not in seen:
            seen.add(_identity(problem))
            problems.append(problem)
    if kept is not None:
        t0 = time.perf_counter()
        if kept.save():
            timings["write comparison cache"] = time.perf_counter() - t0
    if quantiles is not None:
        quantiles.update(t_quantiles())
        quantiles.save()
    t0 = time.perf_counter()
    imagenet = imagenet_pairs(comparisons, problems, groups, confidence, settings)
    if imagenet:
        timings["imagenet per category"] = time.perf_counter() - t0
    problems.sort(key=lambda p: (p.task, p.what, str(p.path)))

    t0 = time.perf_counter()
    if plots:
        views = []
        for comp in comparisons:
            for view in comp.columns:
                data = plot_data(comp, view, confidence)
                if data.columns:
                    views.append((comp, view, data))
                else:
                    view.plot_note = empty_plot_note(view)
        pngs = render_plots([data for _, _, data in views])
        for (comp, view, _), png in zip(views, pngs, strict=True):
            view.plot_file = f"plots/{_file_slug(comp.anchor)}-{_file_slug(view.metric)}.png"
            view.plot_png = png
    panels = overview_data(comparisons)
    overview, note = b"", ""
    if not panels:
        note = "No overview figure: there are no comparisons."
    elif not plots:
        note = "No overview figure: plots are off (--no-plots)."
    else:
        overview = render_overview(panels, level_text(confidence))
    timings["plots"] = time.perf_counter() - t0
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    return Leaderboard(results, generated, settings, comparisons, problems, n_records, confidence,
                       n_boot, timings, overview, OVERVIEW_FILE if overview else "", note,
                       imagenet=imagenet)


OVERVIEW_FILE = "plots/overview.png"
IMAGENET_CSV = "leaderboard_imagenet.csv"


def _identity(problem: Problem) -> tuple[str, str, str, str]:
    return (problem.what, str(problem.path), problem.message, problem.task)



def _file_slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    return cleaned.strip("-.")[:120] or "plot"


@_cycle_collector_paused()
def write(board: Leaderboard, out: Path, top: int = 10) -> dict[str, Path]:
    """Write ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard_wide.csv``, ``index.html``
    and ``plots/`` into ``out`` (each file atomically), and ``leaderboard_imagenet.csv`` when
    there are evaluation pairs; links to records are relative to ``out``."""
    out = Path(out)
    runs = RunLayout(board.results).runs.resolve()
    if out.resolve() == runs or out.resolve().is_relative_to(runs):
        raise BenchError(f"--out {out} is inside the runs folder: pick another folder.")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if board.overview_png:
        atomic_write_bytes(out / board.overview_file, board.overview_png)
    for comp in board.comparisons:
        for view in comp.columns:
            if view.plot_png:
                atomic_write_bytes(out / view.plot_file, view.plot_png)
    links = RecordLinks(board.results, out)
    ctx = render_context(board, out, top, links)
    written = {
        "markdown": atomic_write_text(out / "leaderboard.md",
                                      render_markdown(board, out, top, ctx)),
        "csv": atomic_write_text(out / "leaderboard.csv", render_csv(board, out, links)),
        "wide csv": atomic_write_text(out / "leaderboard_wide.csv", render_wide_csv(board)),
        "html": atomic_write_text(out / "index.html", render_html(board, out, top, ctx)),
    }
    imagenet_csv = out / IMAGENET_CSV
    if board.imagenet:
        written["imagenet csv"] = atomic_write_text(imagenet_csv,
                                                    render_imagenet_csv(board, out, links))
    elif imagenet_csv.is_file():  # left by an earlier build that had evaluation pairs: stale
        imagenet_csv.unlink()
    board.timings["write files"] = time.perf_counter() - t0
    return written
