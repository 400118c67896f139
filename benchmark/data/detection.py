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

from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from benchmark.data.datamodule import TaskDataModule
from benchmark.data.splits import SelectedSplit
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


class DetectionDataModule(TaskDataModule):
    """Images kept at their own size (the detector resizes); batches as lists."""

    collate_fn = staticmethod(collate_detection)

    def __init__(self, task: Task, *args: Any, **kwargs: Any) -> None:
        super().__init__(task, *args, **kwargs)
        self.spec: DetectionSpec = task.detection or DetectionSpec()

    def make_dataset(self, split: SelectedSplit, train: bool) -> Dataset:
        return DetectionSplit(split, horizontal_flip=train and self.spec.horizontal_flip)
