#!/usr/bin/env python
"""Build .h5 volumes from a directory of EM image slices and a directory of PNG proofreading labels.

The EM mitochondria pipeline's get_dataset.py step, for the `volume` dataset plugin. Slices pair up in
natural file-name order (slice2.png before slice10.png); every slice must have the same size.

Writes, in OUT_DIR:
  image.h5   dataset `main`, uint8 (Z, Y, X); colour slices become grayscale, 16-bit ones are scaled
             from the stack's min/max to 0..255
  label.h5   dataset `main`, (Z, Y, X):
               --label-kind binary        uint8 0/1, any nonzero pixel is mitochondrion (0/255 masks)
               --label-kind rgb-instance  uint32 ids, each distinct colour is one instance
                                          (black = background; a colour keeps its id across slices)

Both files appear together or not at all. Train on them with configs/volume_example.yaml.

Examples:
  python scripts/png_to_h5.py --images data/em_png --labels data/mito_png --out-dir data/mito
  python scripts/png_to_h5.py --images data/em_png --labels data/vast_colours --label-kind rgb-instance --out-dir data/mito
  python scripts/png_to_h5.py --images data/test_png --out-dir data/mito --image-name test_image.h5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from emseg_plugins.utils.commandline import ArgumentParser
from emseg_plugins.datasets.convert import LABEL_KINDS, convert_slices
from emseg_plugins.errors import EmsegError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="png_to_h5.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, metavar="DIR", help="directory of EM image slices (.png/.tif/.tiff)")
    parser.add_argument("--labels", type=Path, metavar="DIR", help="directory of label slices (.png/.tif/.tiff), one per image slice")
    parser.add_argument("--out-dir", type=Path, required=True, metavar="DIR", help="where image.h5 and label.h5 are written")
    parser.add_argument("--label-kind", choices=LABEL_KINDS, default="binary",
                        help="binary: nonzero = mito (uint8 0/1); rgb-instance: each colour one instance (uint32 ids). Default: binary")
    parser.add_argument("--image-name", default="image.h5", metavar="FILE", help="image file name in OUT_DIR (default: image.h5)")
    parser.add_argument("--label-name", default="label.h5", metavar="FILE", help="label file name in OUT_DIR (default: label.h5)")
    parser.add_argument("--dataset", default="main", metavar="NAME", help="h5 dataset name in both files (default: main)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.images is None and args.labels is None:
        parser.error("give --images DIR, --labels DIR or both")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def progress(what: str):
        return lambda files: tqdm(files, desc=f"reading {what}", unit="slice", disable=args.quiet or None)

    try:
        written = convert_slices(args.images, args.labels, args.out_dir, args.label_kind, args.image_name,
                                 args.label_name, args.dataset, args.overwrite, progress)
    except EmsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path, array in written.items():
        extra = f", {int(array.max())} instances" if array.dtype.kind == "u" and array.dtype.itemsize == 4 else ""
        print(f"wrote {path}:{args.dataset} {array.dtype} {tuple(array.shape)} (Z, Y, X){extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
