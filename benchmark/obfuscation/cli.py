"""``bench blur``, ``bench obfuscate`` and ``bench faces``: their arguments and one call each.

Kept beside the code they call, so ``benchmark/cli.py`` only registers them; importing this
module loads nothing heavy (the commands import what they use).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from benchmark.errors import BenchError

EXAMPLES = {
    "blur": "bench blur --annotations face_annotations_ILSVRC.json --src imagenet/ "
            "--dst imagenet_blurred/ --workers 8",
    "obfuscate": "bench obfuscate --method pixelate --block 16 --annotations faces.csv "
                 "--src data/ --dst data_pixelated/",
    "faces": "bench faces detect --src data/ --out faces.json --draw review/\n"
             "bench faces stats faces.json --plot faces_stats.png",
    "detect": "bench faces detect --src data/ --out faces.json --threshold 50 --draw review/",
    "stats": "bench faces stats faces.json --plot faces_stats.png --top 30",
}


def _add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--annotations", type=Path, required=True, metavar="FILE",
                   help="face boxes: the paper's JSON (face_annotations_ILSVRC.json, or what "
                   "`bench faces detect` writes) or a CSV with a path,x0,y0,x1,y1 header")
    p.add_argument("--src", type=Path, required=True, metavar="DIR",
                   help="the dataset's root folder (annotation paths are relative to it)")
    p.add_argument("--dst", type=Path, required=True, metavar="DIR",
                   help="where the obfuscated copy goes (same layout; files without faces are "
                   "copied unchanged); a rerun skips finished files")
    p.add_argument("--workers", type=int, default=None,
                   help="processes (default: the usable CPUs)")
    p.add_argument("--quality", type=int, default=75,
                   help="JPEG quality of re-encoded JPEGs (75 = PIL's default, what the "
                   "paper's script used); other formats keep their own lossless encoding")
    p.add_argument("--reencode-faceless", action="store_true",
                   help="also re-encode annotated images with no face, as the paper's script "
                   "did (by default they are copied byte for byte)")


def _fill(text: str) -> tuple[int, int, int]:
    try:
        rgb = tuple(int(v) for v in text.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise argparse.ArgumentTypeError(f"expected R,G,B with values 0-255, got {text!r}")
    return rgb  # type: ignore[return-value]


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add the commands to ``bench``'s subparsers; return their handlers by name."""
    blur = sub.add_parser("blur", help="blur faces in a dataset exactly as the paper did")
    _add_dataset_arguments(blur)
    blur.set_defaults(method="blur", block=None, fill=None)

    obf = sub.add_parser("obfuscate", help="obfuscate faces in a dataset: blur, overlay, "
                         "pixelate")
    # not argparse choices: the registry (benchmark/obfuscation/methods.py) checks the name at
    # run time, so a new method needs no edit here and building the parser imports no PIL
    obf.add_argument("--method", default="blur",
                     help="a registered method: blur (the paper's), overlay (a solid fill of "
                     "each enlarged box), pixelate (a mosaic)")
    _add_dataset_arguments(obf)
    obf.add_argument("--block", type=int, default=None,
                     help="pixelate: the mosaic's square size in pixels (default 8)")
    obf.add_argument("--fill", type=_fill, default=None, metavar="R,G,B",
                     help="overlay: the colour (default 124,116,104, ImageNet's mean)")

    faces = sub.add_parser("faces", help="find faces offline, or summarise face annotations")
    faces_sub = faces.add_subparsers(dest="faces_command", required=True,
                                     metavar="{detect,stats}", title="faces commands")
    detect = faces_sub.add_parser("detect", help="detect faces in every image under a folder "
                                  "and write the paper's JSON (needs pip install '.[faces]')")
    detect.add_argument("--src", type=Path, required=True, metavar="DIR",
                        help="the dataset's root folder")
    detect.add_argument("--out", dest="annotations_out", type=Path, required=True,
                        metavar="FILE", help="the annotation JSON to write")
    detect.add_argument("--threshold", type=float, default=None,
                        help="keep faces whose score (the cascade's last-stage level weight, "
                        "about 50-60 for clear frontal faces) is at least this (default: keep "
                        "every face the cascade accepts)")
    detect.add_argument("--draw", type=Path, default=None, metavar="DIR",
                        help="also save each image with its boxes drawn, as PNG, under DIR")
    stats = faces_sub.add_parser("stats", help="images with faces, faces per image, box "
                                 "sizes and faces per category: a table and a plot")
    stats.add_argument("annotations", type=Path, help="the paper's JSON or a CSV")
    stats.add_argument("--plot", type=Path, default=None, metavar="FILE",
                       help="where the figure goes (default: <annotations>.stats.png)")
    stats.add_argument("--top", type=int, default=20,
                       help="categories listed, most faces first")
    for name, parser in (("blur", blur), ("obfuscate", obf), ("faces", faces),
                         ("detect", detect), ("stats", stats)):
        parser.epilog = "example:\n  " + EXAMPLES[name].replace("\n", "\n  ")
    return {"blur": cmd_obfuscate, "obfuscate": cmd_obfuscate, "faces": cmd_faces}


def cmd_obfuscate(args: argparse.Namespace) -> int:
    from benchmark.obfuscation.runner import obfuscate_dataset

    options = {k: v for k, v in (("block", args.block), ("fill", args.fill)) if v is not None}
    summary = obfuscate_dataset(
        args.annotations, args.src, args.dst, method=args.method, options=options,
        workers=args.workers, quality=args.quality, reencode_faceless=args.reencode_faceless,
    )  # fmt: skip
    print(summary.line())
    if summary.unmatched_annotations:
        shown = ", ".join(summary.unmatched_annotations[:3])
        print(f"warning: {len(summary.unmatched_annotations)} annotated image(s) not found "
              f"under {args.src} (e.g. {shown})", file=sys.stderr)
    if summary.failed:
        for rel, why in summary.failed[:5]:
            print(f"  FAILED {rel}: {why}", file=sys.stderr)
        raise BenchError(f"{len(summary.failed)} file(s) could not be read or written (listed "
                         "above); fix or remove them and run the same command again.")
    return 0


def cmd_faces(args: argparse.Namespace) -> int:
    if args.faces_command == "detect":
        from benchmark.obfuscation.faces import detect_dataset

        result = detect_dataset(args.src, args.annotations_out, threshold=args.threshold,
                                draw_dir=args.draw)
        print(result.line())
        return 0
    from benchmark.obfuscation.face_stats import face_stats, render_table, save_plot

    stats = face_stats(args.annotations)
    print(render_table(stats, top=args.top))
    plot = args.plot or args.annotations.with_name(args.annotations.name + ".stats.png")
    save_plot(stats, plot)
    print(f"plot: {plot}")
    return 0
