"""emseg resample: up- or downsample a label or probability volume (for viewers, or another voxel size).

Examples:
  emseg resample --input seg.h5:instances --factor 1 2 2 --output seg_x2.h5           # labels, nearest
  emseg resample --input pred.zarr:probabilities --factor 0.5 --output small.zarr     # linear, anti-aliased
  emseg resample --input seg.h5 --voxel-size 40 8 8 --target-voxel-size 40 16 16 --output seg16.h5

The input is (Z, Y, X) or (C, Z, Y, X) (channels kept): h5/zarr (with :dataset) or TIFF. --kind
picks nearest-neighbour (labels: ids never mixed) or linear interpolation (probabilities); by
default float volumes and emseg's uint8 ``probabilities`` dataset are probabilities, everything
else labels. Output shape per axis: round(n * factor), at least 1 (see
emseg_plugins/postprocess/resample.py). The output keeps the input's dtype and dataset name (or
the one given after ':'); it is written atomically and an existing dataset is kept unless --overwrite.
"""
from __future__ import annotations

import argparse

from emseg_plugins.cli.common import add_debug_argument
from emseg_plugins.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="URI", help="volume, e.g. seg.h5:instances")
    parser.add_argument("--output", required=True, metavar="OUT.h5|OUT.zarr[:DATASET]|OUT.tif", help="where to write")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--factor", type=float, nargs="+", metavar="F", help="one factor, or three (Z Y X); >1 upsamples")
    how.add_argument("--voxel-size", type=float, nargs=3, metavar=("Z", "Y", "X"), help="input voxel size in nm (with --target-voxel-size)")
    parser.add_argument("--target-voxel-size", type=float, nargs=3, metavar=("Z", "Y", "X"), help="output voxel size in nm")
    parser.add_argument("--kind", choices=["auto", "labels", "probabilities"], default="auto",
                        help="labels: nearest; probabilities: linear (default auto, see above)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output dataset")
    add_debug_argument(parser)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from emseg_plugins.cli.instances import check_output
    from emseg_plugins.datasets.volume_io import read_volume, split_uri, write_volume
    from emseg_plugins.postprocess.resample import as_factors, factors_for_voxel_size, guess_kind, output_shape, resample

    if args.voxel_size is not None and args.target_voxel_size is None:
        raise ConfigError("--voxel-size needs --target-voxel-size (the voxel size to resample to, Z Y X in nm)")
    if args.factor is not None and args.target_voxel_size is not None:
        raise ConfigError("--target-voxel-size goes with --voxel-size, not with --factor; give one of the two")
    factors = as_factors(args.factor) if args.factor is not None else factors_for_voxel_size(args.voxel_size, args.target_voxel_size)
    key = split_uri(args.input)[1]
    output = check_output(args.output, args.overwrite, key.rsplit("/", 1)[-1] or "main")
    volume = read_volume(args.input)
    kind = guess_kind(volume.dtype, key) if args.kind == "auto" else args.kind
    result = resample(volume, factors, kind)
    assert result.shape[-3:] == output_shape(volume.shape, factors)
    write_volume(output, result)
    print(f"{output}: {kind} {list(volume.shape)} -> {list(result.shape)} {np.dtype(result.dtype).name} "
          f"(factors {', '.join(f'{f:g}' for f in factors)})")
    return 0
