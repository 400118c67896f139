"""Time one Faster R-CNN + FPN training step (forward, backward, SGD update) at the `voc` task's
smoke size and at its real size, with the detector exactly as `bench run --task voc` builds it,
for each detection engine (`--engine torchvision|mmdet|both`; mmdet's step includes its resize
and data preprocessor, as in a run, and needs the optional install).

Images are VOC-shaped (500x375, the commonest VOC2007 size) for the real size and fixture-shaped
(96-200 x 80-160) for the smoke size, each with three boxes; the detector's own transform
resizes them to the task's `detection` sizes, as in a run. Weights are random (speed does not
depend on them). Reports the median over `--steps` timed steps after `--warmup` untimed ones.

    python scripts/bench_detection_step.py                       # resnet50, CPU, both sizes
    python scripts/bench_detection_step.py --device cuda --steps 20 --batch-size 16
    python scripts/bench_detection_step.py --engine both      # torchvision and mmdet
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch
import torchvision

from benchmark.detection.voc_annotations import VOC_CLASSES
from benchmark.engines.availability import mmdet_missing_reason
from benchmark.models.detection import DetectionModule, detection_module
from benchmark.tasks import Task, apply_overrides, for_subset, get_task


def _batch(
    shapes: list[tuple[int, int]], device: torch.device, gen: torch.Generator
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    images, targets = [], []
    for width, height in shapes:
        images.append(torch.rand(3, height, width, generator=gen, device="cpu").to(device))
        x1 = torch.rand(3, generator=gen) * width * 0.5
        y1 = torch.rand(3, generator=gen) * height * 0.5
        boxes = torch.stack([x1, y1, x1 + width * 0.4, y1 + height * 0.4], dim=1)
        labels = torch.randint(1, 21, (3,), generator=gen)
        difficult = torch.zeros(3, dtype=torch.bool)
        targets.append({"boxes": boxes.to(device), "labels": labels.to(device),
                        "difficult": difficult.to(device)})  # fmt: skip
    return images, targets


def _loss(
    module: DetectionModule, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
) -> torch.Tensor:
    """One training loss as the engine's training_step computes it (without Lightning)."""
    if module.spec.engine == "mmdet":
        data = module.mmdet_batch(images, targets)
        loss, _ = module.detector.parse_losses(
            module.detector.loss(data["inputs"], data["data_samples"])
        )
        return loss
    kept = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
    return sum(module.detector(images, kept).values())


def time_steps(
    task: Task, arch: str, shapes: list[tuple[int, int]], steps: int, warmup: int,
    device: torch.device, bf16: bool = False,
) -> list[float]:  # fmt: skip
    module = detection_module(torchvision.models.get_model(arch), task, list(VOC_CLASSES))
    module = module.to(device).train()
    detector = module.detector
    params = [p for p in detector.parameters() if p.requires_grad]
    spec = task.optim
    optimizer = torch.optim.SGD(
        params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
    )
    gen = torch.Generator().manual_seed(0)
    batch = _batch(shapes, device, gen)
    times = []
    for step in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = _loss(module, *batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=2, help="images per step (both sizes)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (as bf16-mixed)")
    parser.add_argument("--only", choices=["smoke", "real"], help="time one size only")
    parser.add_argument("--engine", choices=["torchvision", "mmdet", "both"], default="both",
                        help="detection engine(s) to time (both: mmdet where it is installed)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    base = get_task("voc")
    smoke = for_subset(base, "tiny")
    rng = torch.Generator().manual_seed(1)
    smoke_shapes = [
        (int(torch.randint(96, 201, (1,), generator=rng)), int(torch.randint(80, 161, (1,),
         generator=rng))) for _ in range(args.batch_size)
    ]  # fmt: skip
    cases = [
        ("smoke", smoke, smoke_shapes),
        ("real", base, [(500, 375)] * args.batch_size),
    ]
    print(
        f"{args.arch}, batch {args.batch_size}, {device}, {'bf16' if args.bf16 else 'fp32'}, "
        f"torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    engines = ["torchvision", "mmdet"] if args.engine == "both" else [args.engine]
    if args.engine == "both" and mmdet_missing_reason() is not None:
        print(f"mmdet engine not timed: {mmdet_missing_reason()}")
        engines = ["torchvision"]
    for engine, (name, task, shapes) in itertools.product(engines, cases):
        if args.only and name != args.only:
            continue
        task = apply_overrides(task, {"train.batch_size": args.batch_size,
                                      "detection.engine": engine})
        det = task.detection
        assert det is not None
        times = time_steps(task, args.arch, shapes, args.steps, args.warmup, device, args.bf16)
        print(
            f"{engine:<11} {name:<6} train size {det.train_min_size}/{det.train_max_size} "
            f"(input {shapes[0][0]}x{shapes[0][1]}...): median {statistics.median(times):.3f} "
            f"s/step, min {min(times):.3f}, max {max(times):.3f} over {len(times)} steps"
        )


if __name__ == "__main__":
    main()
