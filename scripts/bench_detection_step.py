"""Time one Faster R-CNN + FPN training step (forward, backward, SGD update) at the `voc` task's
smoke size and at its real size, with the detector exactly as `bench run --task voc` builds it.

Images are VOC-shaped (500x375, the commonest VOC2007 size) for the real size and fixture-shaped
(96-200 x 80-160) for the smoke size, each with three boxes; the detector's own transform
resizes them to the task's `detection` sizes, as in a run. Weights are random (speed does not
depend on them). Reports the median over `--steps` timed steps after `--warmup` untimed ones.

    python scripts/bench_detection_step.py                       # resnet50, CPU, both sizes
    python scripts/bench_detection_step.py --device cuda --steps 20 --batch-size 16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from benchmark.detection.voc_annotations import VOC_CLASSES
from benchmark.models.detection import DetectionModule
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
        targets.append({"boxes": boxes.to(device), "labels": labels.to(device)})
    return images, targets


def time_steps(
    task: Task, arch: str, shapes: list[tuple[int, int]], steps: int, warmup: int,
    device: torch.device, bf16: bool = False,
) -> list[float]:  # fmt: skip
    module = DetectionModule(torchvision.models.get_model(arch), task, list(VOC_CLASSES))
    detector = module.detector.to(device).train()
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
            losses = detector(*batch)
        loss = sum(losses.values())
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
    for name, task, shapes in cases:
        if args.only and name != args.only:
            continue
        task = apply_overrides(task, {"train.batch_size": args.batch_size})
        det = task.detection
        assert det is not None
        times = time_steps(task, args.arch, shapes, args.steps, args.warmup, device, args.bf16)
        print(
            f"{name:<6} train size {det.train_min_size}/{det.train_max_size} "
            f"(input {shapes[0][0]}x{shapes[0][1]}...): median {statistics.median(times):.3f} "
            f"s/step, min {min(times):.3f}, max {max(times):.3f} over {len(times)} steps"
        )


if __name__ == "__main__":
    main()
