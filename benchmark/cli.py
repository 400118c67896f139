"""``bench``: arguments in, one call into the API, user errors out as one line and exit 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark import paths
from benchmark.errors import BenchError, EnvironmentFailure

if TYPE_CHECKING:
    from benchmark.feature_cache import Entry


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """``bench run``'s flags: every RunRequest field (benchmark.request), plus how to call."""
    _add_run_options(p, sweep=False)
    p.add_argument("--config", type=Path, metavar="RUN_DIR|record.json",
                   help="repeat a recorded run exactly: its options (task, backbone, seed, "
                   "--set, --trainer ...) from its record, checked against it (same backbone "
                   "sha256, same run key); flags given as well override them (e.g. --results, "
                   "--force)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration (request, run key contents, run "
                   "folder) as JSON and run nothing; `bench run --config` reads it back")


def _add_run_options(p: argparse.ArgumentParser, sweep: bool) -> None:
    """The run options, derived from RunRequest: all of them for ``bench run``, those a sweep
    shares for ``bench sweep``. Unset options stay None, so a sweep file or a record can fill
    them; RunRequest's defaults apply last."""
    from benchmark.request import add_options

    add_options(p, "shared" if sweep else "run")


RUN_COMMANDS = ("run", "sweep")  # the commands whose options come from RunRequest


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser; ``command`` (the command line's first word): when it is another
    command, ``run`` and ``sweep`` are listed without their options, whose RunRequest
    (:mod:`benchmark.request`, pydantic) costs every other command ~50 ms of start-up."""
    run_options = command is None or command.startswith("-") or command in RUN_COMMANDS
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Fine-tune ImageNet backbones (original vs face-blurred) on downstream tasks.",
        epilog="example:\n  bench list tasks\n  bench demo\n  bench run --help",
    )
    parser.add_argument("--version", action=_VersionAction,
                        help="print the package version (and git commit in a checkout) and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")

    run = sub.add_parser("run", help="fine-tune (or linear-probe) one backbone on one task")
    if run_options:
        _add_run_arguments(run)

    lst = sub.add_parser("list", help="list registered tasks or backbones")
    lst.add_argument("what", choices=["tasks", "backbones"], metavar="{tasks,backbones}",
                     help="which registry")
    lst.add_argument("patterns", nargs="*", default=[], metavar="PATTERN",
                     help="shell patterns on the names, e.g. 'blurred_r*' (default: all)")
    lst.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    lst.add_argument("-v", "--verbose", action="store_true",
                     help="backbones: each registry note; tasks: each task's YAML file")
    lst.add_argument("--tasks-dir", dest="tasks_dirs", action="append", type=Path, default=[],
                     metavar="DIR", help="tasks: a folder of your own task YAML files, added to "
                     "the built-in ones (repeatable; $BENCH_TASKS_DIR adds more)")

    data = sub.add_parser("data", help="dataset utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="{fixture}",
                                   title="data commands")
    fixture = data_sub.add_parser("fixture", help="write a tiny dataset in the real on-disk format")
    fixture.add_argument("--task", required=True)
    fixture.add_argument("--root", type=Path, required=True)
    fixture.add_argument("--tasks-dir", dest="tasks_dirs", action="append", type=Path,
                         default=[], metavar="DIR", help="a folder of your own task YAML files")

    ckpt = sub.add_parser("checkpoints", help="inspect or pre-fetch backbone checkpoints")
    ckpt_sub = ckpt.add_subparsers(dest="checkpoints_command", required=True,
                                   metavar="{inspect,fetch}", title="checkpoints commands")
    inspect = ckpt_sub.add_parser(
        "inspect", help="layout, arch, parameters, sha256 and key report of a checkpoint"
    )
    inspect.add_argument("spec", metavar="NAME|PATH",
                         help="a backbone name, checkpoint file, run directory or timm:<model>")
    inspect.add_argument("--arch", help="architecture to check the keys against")
    fetch = ckpt_sub.add_parser(
        "fetch", help="download and verify backbones into the cache, for runs without network"
    )
    fetch.add_argument("names", nargs="+", metavar="NAME",
                       help="backbone names or patterns, e.g. blurred_r50 'original_*'")

    sweep = sub.add_parser(
        "sweep", help="run backbones x tasks x seeds: skips finished runs, resumes interrupted ones"
    )
    sweep.add_argument("--file", type=Path, help="a sweep YAML (backbones, tasks, seeds, set, ...)")
    sweep.add_argument("--backbones", help="comma-separated names, 'blurred_*' patterns or paths")
    sweep.add_argument("--tasks", help="comma-separated task names, group names from "
                       "tasks/groups/ (kornblith12, paper4), or 'all'")
    sweep.add_argument("--seeds", help="e.g. 0,1,2 or 0-4 (default 0)")
    sweep.add_argument("--dry-run", action="store_true",
                       help="show every run and whether it is done, to resume, or to run; run "
                       "nothing (backbones are still resolved, to compute the run keys)")
    sweep.add_argument("--launcher", choices=["local", "slurm", "submitit-local", "submitit-debug"],
                       help="local: one after the other here (default); slurm: a job array per "
                       "task through submitit; submitit-local/-debug: submitit on this machine")
    sweep.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                       help="a submitit slurm_<KEY> parameter, e.g. --slurm partition=gpu "
                       "--slurm array_parallelism=8")
    sweep.add_argument("--wait", action="store_true",
                       help="slurm: wait for the jobs and report each run")
    if run_options:
        _add_run_options(sweep, sweep=True)

    board = sub.add_parser(
        "leaderboard", help="tables, original-vs-blurred comparisons and plots from run records"
    )
    board.add_argument("--results", type=Path, default=Path("results"),
                       help="the folder `bench run`/`bench sweep` wrote to (default: results)")
    board.add_argument("--out", type=Path, default=None,
                       help="where leaderboard.md, leaderboard.csv, leaderboard_wide.csv, "
                       "index.html, plots/ (overview.png first) and, with evaluation "
                       "pairs, leaderboard_imagenet.csv go "
                       "(default: <results>/leaderboard)")
    board.add_argument("--pair", action="append", default=[], metavar="ORIGINAL:COMPARED",
                       help="compare two backbones by name, e.g. for checkpoint files whose "
                       "pretraining data the registry does not know (repeatable)")
    board.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates")
    board.add_argument("--confidence", type=float, default=0.95,
                       help="level of every interval; the verdict uses alpha = 1 - confidence")
    board.add_argument("--bootstrap-seed", type=int, default=0)
    board.add_argument("--top", type=int, default=10,
                       help="most affected classes/attributes listed per comparison (and "
                       "categories with the largest top-1 drop per ImageNet evaluation pair)")
    board.add_argument("--supercategories", type=Path, default=None, metavar="JSON",
                       help="a JSON object category -> supercategory: supercategory means in "
                       "the ImageNet per-category comparison")
    board.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    board.add_argument("--workers", type=int, default=None, metavar="N",
                       help="processes that read predictions files (default: the CPUs this "
                       "process may use, at most 8; 0: read them in this process)")
    board.add_argument("--no-cache", action="store_true",
                       help="neither read nor write <results>/.cache/leaderboard-* (record "
                       "readings, comparisons and per-run scores kept so a rebuild skips "
                       "unchanged runs)")

    cache = sub.add_parser("cache", help="the feature cache of the linear probe: list, clear")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True, metavar="{list,clear}",
                                     title="cache commands")
    cache_list = cache_sub.add_parser("list", help="entries with their task, split, backbone, "
                                      "shape and size, and the total",
                                      epilog="example:\n  bench cache list\n"
                                      "  bench cache list --json")  # fmt: skip
    cache_list.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    clear = cache_sub.add_parser("clear", help="remove entries: all (--all) or those matching "
                                 "every filter given",
                                 epilog="example:\n  bench cache clear --task cifar10 --split "
                                 "test\n  bench cache clear --all")  # fmt: skip
    clear.add_argument("--all", action="store_true", help="remove every entry")
    for name, what in (("task", "a task name"), ("split", "train, val or test"),
                       ("arch", "an architecture, e.g. resnet50"),
                       ("backbone", "a backbone sha256 or its first characters"),
                       ("key", "an entry key or its first characters")):  # fmt: skip
        clear.add_argument(f"--{name}", help=f"only entries of {what}")
    clear.add_argument("--incomplete", action="store_true",
                       help="only incomplete or unreadable entries (a crashed writer's leftovers)")
    inet = sub.add_parser(
        "imagenet-compare", help="per-category comparison of two ImageNet evaluation runs "
        "(original vs blurred pretraining): largest drops, correlation with faces")
    inet.add_argument("original", type=Path, metavar="ORIGINAL_RUN",
                      help="run folder of `bench run --task imagenet` with the original backbone")
    inet.add_argument("compared", type=Path, metavar="COMPARED_RUN",
                      help="the same images, evaluated with the blurred/overlayed backbone")
    inet.add_argument("--supercategories", type=Path, default=None, metavar="JSON",
                      help="a JSON object category -> supercategory, for supercategory means")
    inet.add_argument("--top", type=int, default=10, help="largest drops listed")
    inet.add_argument("--confidence", type=float, default=0.95, help="level of the intervals")

    demo = sub.add_parser("demo", help="offline demo: fixture data + untrained demo checkpoint "
                          "(--study: the whole study on toy data, faces to leaderboard)")
    demo.add_argument("--study", action="store_true",
                      help="the paper's whole study on drawn toy images, in a few minutes on a "
                      "CPU: faces -> bench blur -> bench pretrain on original and blurred -> "
                      "per-category evaluation -> transfer to the four tasks' fixtures -> "
                      "leaderboard")
    demo.add_argument("--workdir", type=Path, default=None,
                      help="folder for the data, checkpoints and results (default: demo, or "
                      "demo-study with --study)")
    demo.add_argument("--results", type=Path, default=None,
                      help="where the run record goes (default: <workdir>/results)")
    from benchmark.obfuscation.cli import add_parsers as add_obfuscation_parsers

    COMMANDS.update(add_obfuscation_parsers(sub))  # bench blur, obfuscate, faces
    from benchmark.pretrain_cli import add_parsers as add_pretrain_parsers

    COMMANDS.update(add_pretrain_parsers(sub))  # bench pretrain
    _finish_help(parser)
    return parser


EXAMPLES: dict[str, str] = {
    "run": "bench run --task cifar10 --backbone blurred_r50 --download\n"
           "bench run --task cifar10 --backbone path/to/resnet50.pth --subset tiny --max-steps 5",
    "list": "bench list tasks\nbench list backbones 'blurred_r*' -v\nbench list backbones --json",
    "data": "bench data fixture --task cifar10 --root data/",
    "checkpoints": "bench checkpoints inspect blurred_r50\n"
                   "bench checkpoints fetch blurred_r50 'original_*'",
    "sweep": "bench sweep --backbones original_r50,blurred_r50 --tasks all --seeds 0-2 --dry-run",
    "leaderboard": "bench leaderboard --results results --out results/leaderboard",
    "demo": "bench demo --workdir /tmp/blurbench-demo\nbench demo --study --workdir /tmp/study",
    "cache": "bench cache list\nbench cache clear --task cifar10\nbench cache clear --all",
    "imagenet-compare": "bench imagenet-compare results/runs/imagenet/eval/original_r18/seed0-* "
                        "results/runs/imagenet/eval/blurred_r18/seed0-*",
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks; defaults are added by ``_finish_help``."""


class _VersionAction(argparse.Action):
    """``--version``, computed only when asked: the git lookup costs a subprocess."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from benchmark.version import describe

        print(describe())  # stdout, like argparse's own version action
        parser.exit()


def _finish_help(parser: argparse.ArgumentParser) -> None:
    """Every --help shows each option's default and ends with an example.

    argparse's ArgumentDefaultsHelpFormatter skips options without help text and prints
    ``default: None``/``False`` for unset ones; this adds a default only where one exists.
    """
    parser.formatter_class = _HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if name in EXAMPLES and not child.epilog:
                    child.epilog = "example:\n  " + EXAMPLES[name].replace("\n", "\n  ")
                _finish_help(child)
            continue
        unset = action.default in (None, [], argparse.SUPPRESS) or action.default is False
        if not action.option_strings or unset or "default" in (action.help or ""):
            continue
        action.help = f"{action.help or ''} (default: %(default)s)".lstrip()


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.request import RunRequest, given_options, merge_options, read_request_file

    given = given_options(args, "run")
    recorded = None
    if args.config is not None:
        base, recorded = read_request_file(args.config)
        given = merge_options(base.as_record(), given)
    for name in ("task", "backbone"):
        if name not in given:
            raise BenchError(f"--{name} is required (or --config RUN_DIR to repeat a run).")
    request = RunRequest(**given)
    if _is_eval_task(request):  # protocol eval (tasks/imagenet.yaml): nothing trains
        if args.print_config or request.dry_run or args.config is not None:
            raise BenchError("--print-config, --dry-run and --config are not available for "
                             "protocol eval tasks yet; run the task without them.")
        return _cmd_eval(request)
    if not args.print_config:
        from benchmark.run_key import already_done, already_done_message

        done = already_done(request, recorded)  # decided without torch when it can be
        if done is not None:
            print(already_done_message(done))
            return 0
    from benchmark.runner import execute, resolved_config

    if args.print_config:
        print(json.dumps(resolved_config(request), indent=1))
        return 0
    outcome = execute(request, recorded)
    if not outcome.skipped and outcome.primary_process:
        primary = outcome.record["primary_metric"]
        print(f"{primary} = {outcome.record['metrics'][primary]:.4f}")
        print(f"record: {outcome.run_dir / 'record.json'}")
    return 0


def _is_eval_task(request: Any) -> bool:
    """Protocol ``eval`` as the run resolves it (task file, ``--set``, ``--protocol``)."""
    from benchmark.run_key import resolve_task

    return resolve_task(request)[0].protocol == "eval"


def _cmd_eval(request: object) -> int:
    from benchmark.evaluate import execute_eval

    run_dir, record, table = execute_eval(request)  # type: ignore[arg-type]
    metrics = record["metrics"]
    print(f"top1 = {metrics['top1']:.4f}, top5 = {metrics['top5']:.4f} "
          f"({record['backbone']['name']}, evaluated as it is)")
    print(table)
    print(f"record: {run_dir / 'record.json'}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Plain aligned text (one header row) or JSON: pipes, grep and `column` read it, and it
    needs no table library (importing rich would cost more than listing four tasks)."""
    rows = (_task_rows(args.patterns, args.tasks_dirs) if args.what == "tasks"
            else _backbone_rows(args.patterns))  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    columns = {
        "tasks": ["name", "kind", "classes", "primary_metric", "source", "description"],
        "backbones": ["name", "arch", "data", "source", "cached", "sha256"],
    }[args.what]
    detail = {"tasks": "file", "backbones": "note"}[args.what]
    cells = [[_cell(c, row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row, line in zip(rows, cells, strict=True):
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
        if args.verbose and row.get(detail):
            print(f"    {row[detail]}")
    return 0


def _cell(column: str, value: object) -> str:
    if column == "sha256":  # the table says whether it is pinned; --json has the hash
        return "pinned" if value else "-"
    return "-" if value is None else str(value)


def _select(names: list[str], patterns: list[str], what: str) -> set[str]:
    """Names matching any pattern (all without patterns); a pattern matching nothing is the
    user's mistake, never an empty table."""
    import fnmatch

    from benchmark.errors import closest_names

    chosen: set[str] = set(names) if not patterns else set()
    for pattern in patterns:
        matched = {n for n in names if fnmatch.fnmatchcase(n, pattern)}
        if not matched:
            raise BenchError(f"no {what} matches {pattern!r}; `bench list {what}s` shows the "
                             f"names." + closest_names(pattern, names))  # fmt: skip
        chosen |= matched
    return chosen


def _task_rows(patterns: list[str], tasks_dirs: list[Path]) -> list[dict[str, object]]:
    """``source``: ``built-in``, or the user folder (--tasks-dir, BENCH_TASKS_DIR) it is from."""
    from benchmark.tasks import list_tasks, task_sources

    tasks, broken = list_tasks(tasks_dirs)
    chosen = _select([t.name for t in tasks] + list(broken), patterns, "task")
    for name, why in broken.items():
        if name in chosen:
            print(f"(not listed: {name}: {why})", file=sys.stderr)
    sources = task_sources(tasks_dirs)
    return [
        {"name": t.name, "kind": t.kind, "classes": t.num_classes,
         "primary_metric": t.metrics.primary, "source": sources[t.name][1],
         "description": t.description, "file": str(sources[t.name][0])}
        for t in tasks if t.name in chosen
    ]  # fmt: skip


def _backbone_rows(patterns: list[str]) -> list[dict[str, object]]:
    from benchmark.backbones import cache_status, list_backbones

    entries = list_backbones()
    chosen = _select([e.name for e in entries], patterns, "backbone")
    return [
        {**entry.model_dump(), "cached": cache_status(entry)}
        for entry in entries if entry.name in chosen
    ]  # fmt: skip


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from benchmark import backbones

    if args.checkpoints_command == "inspect":
        print(backbones.format_inspection(backbones.inspect_checkpoint(args.spec, args.arch)))
        return 0
    failures, machine_failed = [], False
    for entry in backbones.select_entries(args.names):
        try:
            got = backbones.fetch_entry(entry)
        except (BenchError, EnvironmentFailure) as err:
            print(f"{entry.name}: FAILED: {err}", file=sys.stderr)
            failures.append(entry.name)
            machine_failed |= isinstance(err, EnvironmentFailure)
            continue
        if got.path is None:
            print(f"{entry.name}: random initialisation, nothing to fetch")
            continue
        state = "already cached" if got.was_cached else "downloaded"
        pin = "pinned, matches" if got.pinned else "NOT pinned: pin it in the registry if verified"
        print(f"{entry.name}: {state}, verified, loads completely")
        print(f"  file:   {got.path}")
        if got.cache is not None:  # where a cluster copy has to go: the folder and its setting
            print(f"  cache:  {got.cache.label}: {got.cache.folder}")
        print(f"  sha256: {got.sha256}  ({pin})")
    if failures:
        failed = EnvironmentFailure if machine_failed else BenchError
        raise failed(f"{len(failures)} backbone(s) failed to fetch: {', '.join(failures)}.")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from benchmark.data import write_task_fixture
    from benchmark.tasks import get_task

    task = get_task(args.task, args.tasks_dirs)
    where = write_task_fixture(task, args.root)
    print(f"wrote a {task.name} fixture (tiny, synthetic, real on-disk format) to {where}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.study:
        from benchmark.study_demo import run_study, summary_lines

        if args.results is not None:
            raise BenchError("--results is for the plain demo; --study keeps its results in "
                             "--workdir (WORKDIR/results).")
        for line in summary_lines(run_study(args.workdir or Path("demo-study"))):
            print(line)
        return 0
    from benchmark.demo import run_demo

    outcome = run_demo(args.workdir or Path("demo"), args.results)
    for line in demo_summary(outcome.record, outcome.run_dir / "record.json"):
        print(line)
    return 0


def demo_summary(record: dict[str, object], record_path: Path) -> list[str]:
    """The lines that matter after a run (the whole record is in the file): its primary metric,
    what training did, and where the record is."""
    primary = str(record["primary_metric"])
    value = record["metrics"][primary]  # type: ignore[index]
    training: dict = record.get("training") or {}  # type: ignore[assignment]
    losses = training.get("losses") or []
    loss = f", train loss {losses[0]:.4f} -> {losses[-1]:.4f}" if losses else ""
    return [
        f"{record['task']} {primary} = {value:.4f} after {training.get('steps', 0)} "
        f"training steps{loss}",
        f"record: {record_path}",
    ]


def cmd_cache(args: argparse.Namespace) -> int:
    """``bench cache``: what the linear probe's feature cache holds, and removing it."""
    from benchmark.feature_cache import FeatureCache, human_bytes

    cache = FeatureCache()
    if args.cache_command == "list":
        rows = [_cache_row(e) for e in cache.entries()]
        if args.json:
            print(json.dumps({"root": str(cache.root), "entries": rows}, indent=1))
            return 0
        columns = ["key", "task", "split", "subset", "arch", "backbone", "shape", "size",
                   "created"]  # fmt: skip
        cells = [[str(r[c] if c != "size" else human_bytes(r["bytes"])) for c in columns]
                 for r in rows]  # fmt: skip
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        for line in cells:
            print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
        total = sum(r["bytes"] for r in rows)
        print(f"{len(rows)} entries, {human_bytes(total)} in {cache.root}")
        return 0
    filters = {n: getattr(args, n) for n in ("task", "split", "arch", "backbone", "key")
               if getattr(args, n)}  # fmt: skip
    if not filters and not args.all and not args.incomplete:
        raise BenchError("bench cache clear: say what to remove: --all, or filters such as "
                         "--task cifar10 --backbone <sha256 prefix>.")

    def keep(entry: Entry) -> bool:
        row = _cache_row(entry)
        if args.incomplete and row["valid"]:
            return True
        for name, wanted in filters.items():
            value = str(row["backbone_sha256" if name == "backbone" else name] or "")
            if not (value.startswith(wanted) if name in ("backbone", "key") else value == wanted):
                return True
        return False

    count, size = cache.clear(None if args.all else keep)
    print(f"removed {count} entries ({human_bytes(size)}) from {cache.root}")
    return 0


def _cache_row(entry: Entry) -> dict[str, Any]:
    manifest = entry.manifest or {}
    parts = manifest.get("parts") or {}
    shape = (manifest.get("files") or {}).get("features", {}).get("shape")
    sha = parts.get("backbone_sha256")
    return {
        "key": entry.key[:12], "full_key": entry.key,
        "task": parts.get("task", "-"), "split": parts.get("split", "-"),
        "subset": parts.get("subset", "-"), "arch": parts.get("arch", "-"),
        "backbone": str(sha)[:12] if sha else "-", "backbone_sha256": sha,
        "shape": "x".join(map(str, shape)) if shape else "incomplete",
        "bytes": entry.bytes, "created": manifest.get("created", "-"),
        "valid": entry.valid, "path": str(entry.path),
    }  # fmt: skip


def cmd_sweep(args: argparse.Namespace) -> int:
    from benchmark.launchers import make_launcher
    from benchmark.request import given_options
    from benchmark.sweep import build_spec, describe_plan, parse_key_values, plan_sweep

    cli = given_options(args, "shared")
    cli.update(backbones=args.backbones, tasks=args.tasks, seeds=args.seeds,
               launcher=args.launcher, slurm=parse_key_values(args.slurm, "--slurm"))
    spec = build_spec(args.file, cli)
    print(f"resolving {len(spec.backbones)} backbone(s) to compute the run keys ...", flush=True)
    items = plan_sweep(spec)
    for line in describe_plan(spec, items):
        print(line)
    if args.dry_run:
        return 0
    launcher = make_launcher(spec.launcher, spec.template.results, spec.slurm, args.wait)
    result = launcher.run(items)
    done = sum(1 for i in items if i.status == "done") + len(result.completed)
    if result.submitted and not result.completed and not result.failed:
        print(f"{len(result.submitted)} run(s) submitted; {done}/{len(items)} done so far")
        return 0
    print(f"sweep: {done}/{len(items)} runs done, {len(result.failed)} failed")
    for item, why in result.failed:
        print(f"  FAILED {item.label}: {why}", file=sys.stderr)
    return 1 if result.failed else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    import time

    from benchmark import leaderboard

    t0 = time.perf_counter()
    board = leaderboard.build(
        args.results, pairs=args.pair, n_boot=args.n_boot, confidence=args.confidence,
        rng_seed=args.bootstrap_seed, plots=not args.no_plots, cache=not args.no_cache,
        supercategories=args.supercategories, workers=_leaderboard_workers(args.workers),
    )  # fmt: skip
    out = args.out if args.out is not None else args.results / "leaderboard"
    written = leaderboard.write(board, out, top=args.top)
    print(f"{board.records_read} records: {board.runs} runs in {len(board.settings)} setting(s), "
          f"{len(board.comparisons)} comparison(s), {len(board.problems)} problem(s) listed")
    for path in written.values():
        print(f"wrote {path}")
    parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in board.timings.items())
    print(f"built in {time.perf_counter() - t0:.2f} s ({parts})")
    return 0


def _leaderboard_workers(asked: int | None) -> int:
    from benchmark.leaderboard.workers import default_workers

    if asked is None:
        return default_workers()
    if asked < 0:
        raise BenchError(f"--workers {asked}: use 0 (read in this process) or more, e.g. "
                         f"--workers 4.")
    return asked


def cmd_imagenet_compare(args: argparse.Namespace) -> int:
    from benchmark.leaderboard.imagenet import compare_runs, read_supercategories, render_markdown

    groups = read_supercategories(args.supercategories) if args.supercategories else None
    comparison = compare_runs(args.original, args.compared, groups, args.confidence)
    print(render_markdown(comparison, args.top))
    return 0


COMMANDS = {
    "run": cmd_run,
    "imagenet-compare": cmd_imagenet_compare,
    "list": cmd_list,
    "data": cmd_data,
    "demo": cmd_demo,
    "checkpoints": cmd_checkpoints,
    "sweep": cmd_sweep,
    "leaderboard": cmd_leaderboard,
    "cache": cmd_cache,
}


_FOLDER_ARGUMENTS = {"results": "--results", "data_root": "--data-root", "out": "--out",
                     "workdir": "--workdir", "root": "--root", "data": "--data"}  # fmt: skip


def _check_folder_arguments(args: argparse.Namespace) -> None:
    """Every folder argument, before any command reads data or trains."""
    for name, flag in _FOLDER_ARGUMENTS.items():
        if getattr(args, name, None) is not None:
            paths.require_folder_path(Path(getattr(args, name)), flag)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 done, 2 the user's mistake, 1 the environment (or a bug), 130 interrupted;
    each failure one line on stderr, the traceback only with ``BENCH_DEBUG=1``."""
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(words[0] if words else None).parse_args(words)
    try:
        _check_folder_arguments(args)
        return COMMANDS[args.command](args)
    except BenchError as err:
        _debug_traceback()
        print(f"bench: error: {err}", file=sys.stderr)
        return 2
    except EnvironmentFailure as err:  # the machine failed (network, disk), not the arguments
        _debug_traceback()
        print(f"bench: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # RunInterrupted says what was kept; a bare one, nothing
        _debug_traceback()
        print(f"bench: {str(err) or 'interrupted: nothing was written'}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bench list backbones | head`: the reader left, not an error
        # Python's documented recipe: point stdout at devnull so the exit flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # the environment (disk, network) or a bug: one line, exit 1
        _debug_traceback()
        detail = " ".join(str(err).split())[:500]
        print(
            f"bench: error: {type(err).__name__}: {detail} (if this is not the disk or the "
            f"network, it is a bug in blurbench: please report it with the output of the same "
            f"command under BENCH_DEBUG=1)",
            file=sys.stderr,
        )
        return 1


def _debug_traceback() -> None:
    if os.environ.get("BENCH_DEBUG") == "1":
        import traceback

        traceback.print_exc()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
