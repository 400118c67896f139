"""Typed ``data.args`` of the generic adapters (pydantic; no torch): checked when a task is read.

A task's ``data.args`` used to be an untyped dict each adapter checked by hand when it loaded
data. For ``adapter: torchvision`` and ``adapter: imagefolder`` the arguments are a model here,
so a typo or a value the dataset does not take fails when the YAML is read, in one line naming
the field, before any data is touched.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from benchmark.data.tv_datasets import TORCHVISION_DATASETS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TorchvisionArgs(_Strict):
    """``adapter: torchvision``: a dataset class of ``torchvision.datasets`` and its arguments."""

    dataset: str
    options: dict[str, Any] = Field(default_factory=dict)  # other constructor arguments
    # Datasets without an official split (Caltech-101): so many training images per class, the
    # rest for test, drawn with ``split_seed`` (a task property, not the run seed).
    per_class_train: Annotated[int, Field(ge=1)] | None = None
    split_seed: int = 0

    @model_validator(mode="after")
    def _known_dataset(self) -> TorchvisionArgs:
        row = TORCHVISION_DATASETS.get(self.dataset)
        if row is None:
            raise ValueError(
                f"data.args.dataset {self.dataset!r} is not a torchvision dataset blurbench reads "
                f"(known: {', '.join(sorted(TORCHVISION_DATASETS))})"
            )
        for name, value in self.options.items():
            if name not in row.options:
                known = ", ".join(row.options) or "none"
                raise ValueError(f"{self.dataset} takes no option {name!r} (known: {known})")
            if value not in row.options[name]:
                raise ValueError(
                    f"{self.dataset} option {name}={value!r}: use one of {list(row.options[name])}"
                )
        if (row.split_arg is None) != (self.per_class_train is not None):
            raise ValueError(
                f"{self.dataset} has no official split: set data.args.per_class_train"
                if row.split_arg is None
                else f"{self.dataset} has official splits: data.args.per_class_train is not used"
            )
        return self

    def constructor_options(self) -> dict[str, Any]:
        """The keyword arguments the dataset class gets besides root, split and download."""
        return {**TORCHVISION_DATASETS[self.dataset].defaults, **self.options}


class ImageFolderArgs(_Strict):
    """``adapter: imagefolder``: your own images, one folder per class.

    ``layout: split_folders``: ``<path>/<split>/<class>/<image>`` (a folder per split).
    ``layout: split_files``: ``<path>/<class>/<image>`` plus, per split, a text file of paths
    relative to ``<path>`` (``split_files: {train: train.txt, test: test.txt}``).
    ``path`` is relative to ``--data-root`` unless absolute.
    """

    path: str
    layout: Literal["split_folders", "split_files"] = "split_folders"
    split_files: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _files_for_split_files(self) -> ImageFolderArgs:
        if self.layout == "split_files" and not self.split_files:
            raise ValueError("layout split_files needs split_files: {split: file listing paths}")
        if self.layout == "split_folders" and self.split_files:
            raise ValueError("split_files is only for layout split_files")
        return self


ADAPTER_ARGS: dict[str, type[BaseModel]] = {
    "torchvision": TorchvisionArgs,
    "imagefolder": ImageFolderArgs,
}


def typed_args(adapter: str, args: dict[str, Any]) -> BaseModel | None:
    """The typed arguments of an adapter that has a model (None for the dataset-specific
    adapters, which check their own); raises pydantic's ValidationError for bad ones."""
    model = ADAPTER_ARGS.get(adapter)
    return None if model is None else model.model_validate(args)
