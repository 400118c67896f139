"""Image transforms named by tasks (``input.augmentation``), built from torchvision v2."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from benchmark.tasks import InputSpec

# Backbones here are ImageNet-pretrained; inputs are normalised with ImageNet statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_normalised_tensor() -> list[v2.Transform]:
    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]


def eval_transform(spec: InputSpec) -> v2.Compose:
    """Resize then centre-crop (the standard ImageNet evaluation ratio 0.875 by default)."""
    resize = spec.resize_size or round(spec.image_size / 0.875)
    return v2.Compose(
        [
            v2.RGB(),
            v2.Resize(resize, antialias=True),
            v2.CenterCrop(spec.image_size),
            *_to_normalised_tensor(),
        ]
    )


def train_transform(spec: InputSpec) -> v2.Compose:
    if spec.augmentation == "none":
        return eval_transform(spec)
    if spec.augmentation == "flip":
        resize = spec.resize_size or round(spec.image_size / 0.875)
        geometric = [
            v2.Resize(resize, antialias=True),
            v2.RandomCrop(spec.image_size),
            v2.RandomHorizontalFlip(),
        ]
    else:  # random_resized_crop_flip: Inception-style crop, as in Kornblith et al. 2019
        geometric = [
            v2.RandomResizedCrop(spec.image_size, antialias=True),
            v2.RandomHorizontalFlip(),
        ]
    return v2.Compose([v2.RGB(), *geometric, *_to_normalised_tensor()])
