"""The obfuscation methods: one function each, in one registry.

A method takes a PIL image and its face boxes (plus keyword-only options) and returns the
obfuscated image; adding one is one decorated function. All three cover the same region, the
paper's: each box enlarged by 0.1·d on every side (d its larger side), degenerate boxes skipped.

* ``blur``: the paper's method, as in its ``experiments/blurring.py`` (appendix of Yang et al.,
  ICML 2022): the whole image is blurred with a Gaussian of radius 0.1·(largest d), the box mask
  is blurred with the same radius, and the original is composited over the blurred image through
  it, so the blur fades out past the box edges.
* ``overlay``: a solid fill of each enlarged box. The paper reports an overlay variant (its
  Table B) but did not release that code, so this is our documented stand-in, not a checked
  copy; the default colour is ImageNet's mean RGB.
* ``pixelate``: a mosaic of ``block``-pixel squares (the mean of each square, the grid anchored
  at the image's top-left corner) inside each enlarged box.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

from PIL import Image, ImageDraw, ImageFilter

from benchmark.errors import BenchError, closest_names
from benchmark.obfuscation.annotations import FaceBox

Method = Callable[..., Image.Image]
METHODS: dict[str, Method] = {}

# ImageNet's mean RGB (0.485, 0.456, 0.406) x 255, the usual normalisation constants.
IMAGENET_MEAN_RGB = (124, 116, 104)


def register_method(name: str) -> Callable[[Method], Method]:
    """Add a method under ``name``; a second one under the same name is refused (a silent
    overwrite would change what ``--method`` means depending on import order)."""

    def add(fn: Method) -> Method:
        if name in METHODS:
            raise ValueError(f"obfuscation method {name!r} is already registered")
        METHODS[name] = fn
        return fn

    return add


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise BenchError(f"unknown obfuscation method {name!r}; choose one of "
                         f"{', '.join(sorted(METHODS))}." + closest_names(name, list(METHODS)))
    return METHODS[name]


def method_options(name: str) -> dict[str, object]:
    """A method's keyword-only options and their defaults (what ``--block``/``--fill`` set)."""
    params = inspect.signature(get_method(name)).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_options(name: str, options: dict[str, object]) -> dict[str, object]:
    """``options`` completed with the method's defaults; an option it does not take is the
    user's mistake (``--block`` with ``--method blur``), never silently ignored."""
    known = method_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = ", ".join(f"--{k}" for k in known) or "no options"
        raise BenchError(f"--method {name} does not take --{unknown[0]} (it takes {takes}).")
    return {**known, **options}


def enlarged_box_mask(size: tuple[int, int], boxes: Sequence[FaceBox]) -> tuple[Image.Image, float]:
    """The paper's mask (white, each enlarged box black) and its largest d (0 without faces)."""
    mask = Image.new("L", size, 255)
    draw = ImageDraw.Draw(mask)
    largest = 0.0
    for box in boxes:
        if box.degenerate:
            continue
        d = box.size
        largest = max(largest, d)
        draw.rectangle([box.x0 - 0.1 * d, box.y0 - 0.1 * d, box.x1 + 0.1 * d, box.y1 + 0.1 * d],
                       fill=0)
    return mask, largest


@register_method("blur")
def blur(image: Image.Image, boxes: Sequence[FaceBox]) -> Image.Image:
    """The paper's blur (its ``experiments/blurring.py``); see the module docstring."""
    mask, largest = enlarged_box_mask(image.size, boxes)
    radius = 0.1 * largest
    blurred = image.filter(ImageFilter.GaussianBlur(radius))
    soft_mask = mask.filter(ImageFilter.GaussianBlur(radius))
    return Image.composite(image, blurred, soft_mask)


@register_method("overlay")
def overlay(image: Image.Image, boxes: Sequence[FaceBox], *,
            fill: tuple[int, int, int] = IMAGENET_MEAN_RGB) -> Image.Image:
    """Each enlarged box painted one colour (RGB; greyscale images get its luminance)."""
    mask, _ = enlarged_box_mask(image.size, boxes)
    colour = Image.new("RGB", (1, 1), tuple(fill)).convert(image.mode).getpixel((0, 0))
    return Image.composite(image, Image.new(image.mode, image.size, colour), mask)


@register_method("pixelate")
def pixelate(image: Image.Image, boxes: Sequence[FaceBox], *, block: int = 8) -> Image.Image:
    """Each enlarged box as a mosaic of ``block`` x ``block`` squares, each its mean colour."""
    if block < 1:
        raise BenchError(f"--block must be a positive number of pixels, not {block}.")
    mask, _ = enlarged_box_mask(image.size, boxes)
    small = image.reduce(block)  # box mean per square; the edge squares average what is there
    mosaic = small.resize((small.width * block, small.height * block), Image.Resampling.NEAREST)
    return Image.composite(image, mosaic.crop((0, 0, *image.size)), mask)
