"""Time the linear probe (``protocol: linear``): a first probe that extracts features against a
second that reads them from the cache, and the probe alone at full CIFAR-10 size.

    python scripts/bench_probe.py rerun                 # first vs second probe, same backbone/data
    python scripts/bench_probe.py synthetic             # 45k+5k train/val, 10k test, 2,048-d
    python scripts/bench_probe.py synthetic --measure 9 # 9 of the 45 C values; time scaled to 45

``rerun`` writes a CIFAR-10 fixture (real on-disk format) and an untrained ResNet-50 in the
paper's checkpoint layout to a temporary folder, then runs ``bench run --protocol linear`` twice
through the Python API with a private feature cache: the first with the default 45-value grid
(features extracted, the cache filled), the second with another grid (features read from the
cache). Both are whole runs: data loading and hashing, backbone loading, probe, record.

``synthetic`` fits the probe alone on Gaussian class clusters the size of CIFAR-10's ResNet-50
features (train 45,000 / val 5,000 / test 10,000 x 2,048, 10 classes) over the 45-value grid and
reports the wall time and the process's peak resident memory. ``--measure K`` fits only K values
spread over the grid (still warm-started in order) and scales the time by 45/K: an upper bound,
since wider steps give the warm start less to go on.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def rerun(args: argparse.Namespace) -> None:
    import torch
    import torchvision

    from benchmark.api import run
    from benchmark.checkpoints import save_imagenet_example_checkpoint
    from benchmark.data.cifar import write_cifar10_fixture

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["BENCH_CACHE_DIR"] = str(root / "cache")
        # validation is carved (10%) from the training set: enough training images for N there
        per_class = -(-args.examples // 10) * 10
        write_cifar10_fixture(root / "data", per_class_train=per_class,
                              per_class_test=max(1, -(-args.examples // 10)))  # fmt: skip
        torch.manual_seed(0)
        ckpt = root / f"{args.arch}_blurred_ILSVRC.pth"
        model = getattr(torchvision.models, args.arch)()
        save_imagenet_example_checkpoint(ckpt, args.arch, model.state_dict())
        common = dict(
            subset=str(args.examples), data_root=root / "data", results=root / "results",
            accelerator=args.accelerator, num_workers=args.workers,
        )  # fmt: skip
        base = {"protocol": "linear", "input.image_size": args.image_size,
                "train.batch_size": args.batch_size}  # fmt: skip
        times, records = [], []
        for grid in ({}, {"probe.c_min": 1e-4, "probe.c_count": 30}):
            t0 = time.perf_counter()
            outcome = run("cifar10", str(ckpt), overrides={**base, **grid}, **common)
            times.append(time.perf_counter() - t0)
            records.append(outcome.record)
        for label, seconds, record in zip(("first (extracts)", "second (cache)"), times, records,
                                          strict=True):  # fmt: skip
            probe = record["probe"]
            hits = [probe["features"][s]["hit"] for s in ("train", "val", "test")]
            print(f"{label:17s} {seconds:7.2f} s  (features {probe['seconds']['features']:.2f} s,"
                  f" probe {probe['seconds']['probe']:.2f} s over {len(probe['val_curve'])} C "
                  f"values; cache hits {hits}; chosen C {probe['chosen_C']:.3g}; top1 "
                  f"{record['metrics']['top1']:.4f})")
        print(f"ratio first/second: {times[0] / times[1]:.1f}x  ({args.arch}, "
              f"{args.image_size} px, {records[0]['probe']['features']['train']['shape'][0]} "
              f"train / {records[0]['probe']['features']['val']['shape'][0]} val / "
              f"{records[0]['probe']['features']['test']['shape'][0]} test images, "
              f"{records[0]['probe']['features']['device']})")


def synthetic(args: argparse.Namespace) -> None:
    from benchmark.protocols.linear_probe import accuracy, c_grid, fit_probe

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((args.classes, args.dim)).astype(np.float32)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, args.classes, n)
        x = centres[y] * args.separation
        x += rng.standard_normal((n, args.dim), dtype=np.float32)
        return np.maximum(x, 0), y  # ReLU features, as a ResNet's pooled output

    train, val, test = split(args.train), split(args.val), split(args.test)
    full = c_grid()
    picked = full[np.unique(np.linspace(0, len(full) - 1, args.measure).round().astype(int))]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    result = fit_probe(train, val, test[0], num_outputs=args.classes, multilabel=False,
                       score=accuracy, grid=picked, max_iter=args.max_iter,
                       progress=lambda line: print("  " + line, flush=True))  # fmt: skip
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    scaled = seconds * len(full) / len(picked)
    print(f"probe on {args.train}+{args.val} x {args.dim} (test {args.test}), {args.classes} "
          f"classes, {len(picked)} of {len(full)} C values: {seconds:.1f} s"
          + (f" -> {scaled:.0f} s scaled to {len(full)} values" if len(picked) < len(full)
             else ""))  # fmt: skip
    print(f"chosen C {result.chosen_c:.3g}, test top1 {accuracy(result.test_logits, test[1]):.4f}"
          f", iterations per C {result.iterations}, not converged at {result.not_converged}")
    print(f"peak resident memory {peak:.0f} MiB (features alone {rss0:.0f} MiB before the probe;"
          f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    again = sub.add_parser("rerun", help="first probe (extracts) vs second (cache)")
    again.add_argument("--arch", default="resnet50")
    again.add_argument("--examples", type=int, default=60, help="images per split")
    again.add_argument("--image-size", type=int, default=224)
    again.add_argument("--batch-size", type=int, default=30)
    again.add_argument("--workers", type=int, default=0)
    again.add_argument("--accelerator", default="auto")
    synth = sub.add_parser("synthetic", help="the probe alone at full CIFAR-10 size")
    synth.add_argument("--train", type=int, default=45_000)
    synth.add_argument("--val", type=int, default=5_000)
    synth.add_argument("--test", type=int, default=10_000)
    synth.add_argument("--dim", type=int, default=2_048)
    synth.add_argument("--classes", type=int, default=10)
    synth.add_argument("--separation", type=float, default=0.08,
                       help="class-centre scale against unit noise (0.08: ~89%% nearest-centroid "
                       "accuracy, about a ResNet-50 probe on CIFAR-10)")
    synth.add_argument("--measure", type=int, default=45, help="C values fitted (of the 45)")
    synth.add_argument("--max-iter", type=int, default=1000)
    args = parser.parse_args()
    rerun(args) if args.what == "rerun" else synthetic(args)


if __name__ == "__main__":
    main()
