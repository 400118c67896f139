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
        from benchmark.backbones import list_backbones

        for entry in list_backbones():
            print(
                f"{entry.name:<16} {entry.arch:<12} {entry.data:<10} {entry.source:<12} "
                f"{entry.note}"
            )
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


COMMANDS = {"run": cmd_run, "list": cmd_list, "data": cmd_data, "demo": cmd_demo}


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
