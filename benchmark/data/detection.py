"""The LightningDataModule for object detection tasks.

Images are NOT resized here: the detector's own transform (torchvision's
``GeneralizedRCNNTransform``, sized by the task's ``detection`` section) resizes each batch and
maps the predicted boxes back to the original image, so predictions come out in original-image
pixels without any bookkeeping here, and the same code serves train and test sizes.

A batch is ``(images, targets, positions)``: a list of float [3, H, W] images in [0, 1] (each
its own size), a list of target dicts, and the positions of the examples in their split (which
name them in the saved predictions). A target holds every annotated object:

* ``boxes`` float32 [K, 4]: x1, y1, x2, y2 in continuous pixel coordinates of the image as
  given, i.e. VOC's 1-based inclusive box ``(X1, Y1, X2, Y2)`` becomes ``(X1-1, Y1-1, X2, Y2)``
  (detectron2's convention: the box covers exactly the annotated pixels);
* ``labels`` int64 [K]: class index + 1 (0 is the detector's background);
* ``difficult`` bool [K]: kept so evaluation can ignore them and training can leave them out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from benchmark.data.splits import SelectedSplit, load_split, resolve_splits
from benchmark.detection.voc_annotations import VOCAnnotation
from benchmark.tasks import DetectionSpec, Task


def voc_to_continuous(boxes: torch.Tensor) -> torch.Tensor:
    """VOC 1-based inclusive pixel boxes -> continuous coordinates (x1 - 1, y1 - 1, x2, y2)."""
    return boxes - boxes.new_tensor([1.0, 1.0, 0.0, 0.0])


def continuous_to_voc(boxes: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`voc_to_continuous` (what the devkit's "+1" IoU expects), keeping
    x1 <= x2 for boxes narrower than a pixel."""
    voc = boxes + boxes.new_tensor([1.0, 1.0, 0.0, 0.0])
    voc[:, 0] = torch.minimum(voc[:, 0], voc[:, 2])
    voc[:, 1] = torch.minimum(voc[:, 1], voc[:, 3])
    return voc


def annotation_target(ann: VOCAnnotation, class_names: list[str]) -> dict[str, torch.Tensor]:
    index = {name: i for i, name in enumerate(class_names)}
    boxes = torch.tensor([o.bbox for o in ann.objects], dtype=torch.float32).reshape(-1, 4)
    return {
        "boxes": voc_to_continuous(boxes),
        "labels": torch.tensor([index[o.name] + 1 for o in ann.objects], dtype=torch.int64),
        "difficult": torch.tensor([o.difficult for o in ann.objects], dtype=torch.bool),
    }


class DetectionSplit(Dataset):
    """Items ``(image, target, position)`` of one selected split."""

    def __init__(self, split: SelectedSplit, horizontal_flip: bool) -> None:
        self.split = split
        steps: list[v2.Transform] = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
        if horizontal_flip:
            steps.append(v2.RandomHorizontalFlip(0.5))  # flips the BoundingBoxes too
        self.transform = v2.Compose(steps)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        image, ann = self.split.data.dataset[int(self.split.positions[position])]
        target = annotation_target(ann, self.split.data.class_names)
        target["boxes"] = tv_tensors.BoundingBoxes(
            target["boxes"], format="XYXY", canvas_size=(image.height, image.width)
        )
        image, target = self.transform(image, target)
        plain = {k: v.as_subclass(torch.Tensor) for k, v in target.items()}
        return image.as_subclass(torch.Tensor), plain, position


def collate_detection(batch: list[tuple[Any, Any, int]]) -> tuple[list, list, torch.Tensor]:
    """Images differ in size, so they stay a list (the detector batches them after resizing)."""
    images, targets, positions = zip(*batch, strict=True)
    return list(images), list(targets), torch.as_tensor(positions, dtype=torch.int64)


class DetectionDataModule(pl.LightningDataModule):
    """Train/val/test loaders of one detection task; the splits are fixed by the task."""

    def __init__(
        self,
        task: Task,
        data_root: Path,
        subset: str | int = "full",
        download: bool = False,
        num_workers: int | None = None,
    ) -> None:
        super().__init__()
        self.task = task
        self.spec: DetectionSpec = task.detection or DetectionSpec()
        self.data_root = Path(data_root)
        self.subset = subset
        self.download = download
        workers = task.train.num_workers if num_workers is None else num_workers
        self.num_workers = min(workers, os.cpu_count() or 1)
        self.splits: dict[str, SelectedSplit] = {}

    def prepare_data(self) -> None:
        """Download once per node (Lightning calls this on one process only)."""
        if self.download:
            for split in {self.task.splits.train, self.task.splits.test}:
                load_split(self.task, self.data_root, split, download=True)

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = resolve_splits(self.task, self.data_root, self.subset, download=False)

    @property
    def class_names(self) -> list[str]:
        self.setup()
        return self.splits["test"].data.class_names

    def _loader(self, split: str, train: bool) -> DataLoader:
        dataset = DetectionSplit(
            self.splits[split], horizontal_flip=train and self.spec.horizontal_flip
        )
        return DataLoader(
            dataset,
            batch_size=self.task.train.batch_size,
            shuffle=train,
            drop_last=train and len(dataset) > self.task.train.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_detection,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)
