"""``bench pretrain``'s arguments. Apart from :mod:`benchmark.pretrain` so that building the
command line imports neither torch nor Lightning."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from benchmark.pretraining import PRETRAINING_DATA


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add ``bench pretrain`` to ``bench``'s subparsers; return its handler by name."""
    p = sub.add_parser(
        "pretrain", help="train a torchvision classifier from scratch on an ImageNet-layout "
        "folder and register it as a backbone",
        epilog="example:\n  bench pretrain --data imagenet_blurred/ --arch resnet18 "
        "--name blurred_r18_mine --pretrain-data blurred\n  bench pretrain --data toy/ --arch "
        "resnet18 --name toy_r18 --image-size 32 --max-steps 5 --set train.batch_size=8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", type=Path, required=True, metavar="DIR",
                   help="ImageNet layout: DIR/train/<class>/* and DIR/val/<class>/*")
    p.add_argument("--arch", required=True, help="a torchvision classification architecture")
    p.add_argument("--name", required=True,
                   help="the backbone's name in `bench list backbones` and `bench run`")
    p.add_argument("--pretrain-data", default="original",
                   choices=[d for d in PRETRAINING_DATA if d != "none"],
                   help="what DIR holds; the leaderboard pairs original with blurred/overlayed "
                   "(default: original)")
    p.add_argument("--out", type=Path, default=Path("pretrained"),
                   help="the weights and record go to OUT/NAME/ (default: pretrained)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set optim.lr=0.05 --set train.epochs=10 "
                   "(sections optim, schedule, train, input, as in a task file)")
    p.add_argument("--image-size", type=int, default=None,
                   help="crop size (validation resizes to size/0.875 first); for toy data "
                   "(default: 224, the paper's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trainer", action="append", default=[], metavar="NAME=VALUE",
                   help="any other pytorch_lightning.Trainer argument (repeatable)")
    p.add_argument("--devices", default="auto")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--precision", default="32-true")
    p.add_argument("--strategy", default="auto")
    p.add_argument("--max-epochs", type=int, default=None, metavar="N")
    p.add_argument("--max-steps", type=int, default=None, metavar="N")
    p.add_argument("--num-workers", type=int, default=None, metavar="N")
    p.add_argument("--logger", dest="loggers", action="append", default=None,
                   choices=["csv", "tensorboard", "wandb"], help="(default: csv)")
    p.add_argument("--checkpoint-every-n-steps", type=int, default=None, metavar="N",
                   help="resumable checkpoint every N steps (default: every epoch); an "
                   "interrupted pretraining resumes when the same command runs again")
    p.add_argument("--force", action="store_true",
                   help="train again and replace OUT/NAME and its registry entry")
    return {"pretrain": cmd_pretrain}


def cmd_pretrain(args: argparse.Namespace) -> int:
    from benchmark.backbone_registry import user_registry_file
    from benchmark.errors import BenchError
    from benchmark.pretrain import PretrainRequest, pretrain
    from benchmark.request import RunRequest
    from benchmark.runner import check_loggers, check_trainer_arguments
    from benchmark.tasks import parse_key_values, parse_overrides

    for flag, value in (("--max-steps", args.max_steps), ("--max-epochs", args.max_epochs),
                        ("--image-size", args.image_size)):
        if value is not None and value < 1:
            raise BenchError(f"{flag} must be at least 1.")
    trainer_args = parse_key_values(args.trainer, "--trainer", "expected NAME=VALUE")
    check_trainer_arguments(trainer_args)
    loggers = args.loggers or ["csv"]
    check_loggers(loggers)
    # the Trainer options in the form `bench run` builds its Trainer from
    trainer = RunRequest(
        task="pretrain", backbone=args.arch, devices=args.devices, accelerator=args.accelerator,
        precision=args.precision, strategy=args.strategy, max_epochs=args.max_epochs,
        max_steps=args.max_steps, num_workers=args.num_workers, loggers=loggers,
        trainer=trainer_args, checkpoint_every_n_steps=args.checkpoint_every_n_steps,
    )  # fmt: skip
    outcome = pretrain(PretrainRequest(
        data=args.data, arch=args.arch, name=args.name, pretrain_data=args.pretrain_data,
        out=args.out, overrides=parse_overrides(args.overrides), image_size=args.image_size,
        seed=args.seed, force=args.force, trainer=trainer,
    ))  # fmt: skip
    record = outcome.record
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(record["metrics"].items()))
    losses = record["training"]["losses"]
    loss = f", train loss {losses[0]:.4f} -> {losses[-1]:.4f}" if losses else ""
    print(f"pretrained {record['name']} ({record['arch']}, {record['pretraining_data']} data, "
          f"{len(record['class_names'])} classes): {record['training']['steps']} steps{loss}; "
          f"{metrics or 'no validation ran'}")
    print(f"data identity: sha256 {record['data']['sha256']} ({record['data']['examples']})")
    print(f"weights: {outcome.folder / record['weights_file']}")
    print(f"record: {outcome.folder / 'pretrain.json'}")
    print(f"registered in {user_registry_file()}: bench run --backbone {record['name']} ...")
    return 0
