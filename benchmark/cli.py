"""``bench``: arguments in, one call into the API, user errors out as one line and exit 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmark import paths
from benchmark.errors import BenchError


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="a task name from `bench list tasks`")
    p.add_argument(
        "--backbone", required=True, help="a name from `bench list backbones`, or a checkpoint path"
    )
    p.add_argument("--arch", help="architecture of a checkpoint file that does not name its own")
    p.add_argument("--subset", default="full", help="tiny | full | N examples per split")
    p.add_argument("--data-root", type=Path, help="default: $BENCH_DATA_ROOT or data/")
    p.add_argument("--download", action="store_true", help="fetch the dataset if it is missing")
    p.add_argument("--results", type=Path, default=Path("results"), help="where run records go")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a task field by dotted path, e.g. --set optim.lr=0.01")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--devices", default="auto")
    p.add_argument("--accelerator", default="auto", help="cpu | gpu | auto ...")
    p.add_argument("--precision", default="32-true", help="32-true | bf16-mixed | 16-mixed ...")
    p.add_argument("--strategy", default="auto", help="auto | ddp ...")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--num-workers", type=int, help="data loader workers (default: the task's)")
    p.add_argument("--force", action="store_true", help="run again even if a record exists")
    p.add_argument("--save-weights", action="store_true",
                   help="keep the fine-tuned weights (weights.safetensors) in the run directory, "
                   "so the run can be a --backbone later")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Fine-tune ImageNet backbones (original vs face-blurred) on downstream tasks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    _add_run_arguments(sub.add_parser("run", help="fine-tune one backbone on one task"))

    lst = sub.add_parser("list", help="list registered tasks or backbones")
    lst.add_argument("what", choices=["tasks", "backbones"])

    data = sub.add_parser("data", help="dataset utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fixture = data_sub.add_parser("fixture", help="write a tiny dataset in the real on-disk format")
    fixture.add_argument("--task", required=True)
    fixture.add_argument("--root", type=Path, required=True)

    ckpt = sub.add_parser("checkpoints", help="inspect or pre-fetch backbone checkpoints")
    ckpt_sub = ckpt.add_subparsers(dest="checkpoints_command", required=True)
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

    demo = sub.add_parser("demo", help="offline demo: fixture data + untrained demo checkpoint")
    demo.add_argument("--workdir", type=Path, default=Path("demo"))
    demo.add_argument("--results", type=Path, default=None)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.runner import RunRequest, execute

    request = RunRequest(
        task=args.task,
        backbone=args.backbone,
        arch=args.arch,
        subset=args.subset,
        data_root=args.data_root or paths.default_data_root(),
        download=args.download,
        results=args.results,
        overrides=args.overrides,
        seed=args.seed,
        devices=args.devices,
        accelerator=args.accelerator,
        precision=args.precision,
        strategy=args.strategy,
        max_epochs=args.max_epochs,
        max_steps=args.max_steps,
        num_workers=args.num_workers,
        force=args.force,
        save_weights=args.save_weights,
    )
    outcome = execute(request)
    if not outcome.skipped:
        primary = outcome.record["primary_metric"]
        print(f"{primary} = {outcome.record['metrics'][primary]:.4f}")
        print(f"record: {outcome.run_dir / 'record.json'}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "tasks":
        from benchmark.tasks import list_tasks

        tasks, broken = list_tasks()
        for task in tasks:
            print(f"{task.name:<12} {task.kind:<15} {task.metrics.primary:<22} {task.description}")
        for name, why in broken.items():
            print(f"(not listed: {name}: {why})", file=sys.stderr)
    else:
        from benchmark.backbones import cache_status, list_backbones

        print(f"{'NAME':<28} {'ARCH':<19} {'DATA':<9} {'SOURCE':<12} {'CACHED':<7} SHA256")
        for entry in list_backbones():
            pinned = "pinned" if entry.sha256 else "-"
            print(
                f"{entry.name:<28} {entry.arch:<19} {entry.data:<9} {entry.source:<12} "
                f"{cache_status(entry):<7} {pinned}"
            )
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from benchmark import backbones

    if args.checkpoints_command == "inspect":
        print(backbones.format_inspection(backbones.inspect_checkpoint(args.spec, args.arch)))
        return 0
    failures = []
    for entry in backbones.select_entries(args.names):
        try:
            got = backbones.fetch_entry(entry)
        except BenchError as err:
            print(f"{entry.name}: FAILED: {err}", file=sys.stderr)
            failures.append(entry.name)
            continue
        if got.path is None:
            print(f"{entry.name}: random initialisation, nothing to fetch")
            continue
        state = "already cached" if got.was_cached else "downloaded"
        pin = "pinned, matches" if got.pinned else "NOT pinned: pin it in the registry if verified"
        print(f"{entry.name}: {state}, verified, loads completely: {got.path}")
        print(f"  sha256: {got.sha256}  ({pin})")
    if failures:
        raise BenchError(f"{len(failures)} backbone(s) failed to fetch: {', '.join(failures)}.")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from benchmark.data import get_adapter
    from benchmark.tasks import get_task

    task = get_task(args.task)
    where = get_adapter(task.data.adapter).write_fixture(args.root)
    print(f"wrote a {task.name} fixture (tiny, synthetic, real on-disk format) to {where}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from benchmark.demo import run_demo

    record = run_demo(args.workdir, args.results)
    print(json.dumps(record, indent=1))
    return 0


COMMANDS = {
    "run": cmd_run,
    "list": cmd_list,
    "data": cmd_data,
    "demo": cmd_demo,
    "checkpoints": cmd_checkpoints,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BenchError as err:
        print(f"bench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
