"""emseg instances: label the instances of one channel of an existing prediction.

Examples:
  emseg instances --input pred.zarr:probabilities --channel mito --method watershed \\
      --seed-distance 3 --voxel-size 40 8 8 --min-size 100 --output mito.h5
  emseg instances --input pred.h5:probabilities --channel 1 --method cc --output pred.h5:mito_ids

The input is (K, Z, Y, X) (one channel picked by class name, from the stored ``classes``
attribute, or by index) or (Z, Y, X): h5/zarr (with :dataset), TIFF, or a precomputed layer.
Its values are probabilities: float in [0, 1], or uint8 with 255 = 1.0 as `emseg predict` writes
them; a dataset named ``masks`` (uint8 0/1) is read as 0/1. ``cc`` labels the connected components
of ``p >= --threshold``; ``watershed`` splits touching objects from seeds at least ``--seed-distance``
(in units of the smallest voxel side) inside the foreground, distances measured with ``--voxel-size``
(nm, Z Y X; only ratios matter). Decoders that read learned maps (``bc_watershed``: ``contour``;
``bcd_watershed``: + ``distance``; ``mutex_watershed``: ``affinity``) take them from the arrays of those
names beside the input, as `emseg predict` and `pytc-train --inference` write them. Output: uint32 ids (0 = background, 1..N), dataset ``instances``
unless the output names one, written atomically; an existing output dataset is kept unless
--overwrite. The whole channel is processed in memory; for volumes larger than memory use
`emseg predict --instances` (per block, stitched).
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import numpy as np

from emseg_plugins.cli.common import add_debug_argument
from emseg_plugins.errors import ConfigError, DataError

OUTPUT_KEY = "instances"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="URI", help="prediction, e.g. pred.zarr:probabilities")
    parser.add_argument("--channel", metavar="NAME|INDEX", help="class name or channel index (needed when the input has several)")
    parser.add_argument("--method", default="watershed", metavar="DECODER",
                        help="a decoder (`emseg plugins`): cc, watershed (default), or one that reads learned maps "
                             "(bc_watershed, bcd_watershed, mutex_watershed: contour/distance/affinity arrays beside the input)")
    parser.add_argument("--threshold", type=float, default=0.5, help="foreground where p >= THRESHOLD (default 0.5)")
    parser.add_argument("--seed-distance", type=float, default=2.0, metavar="VOXELS",
                        help="watershed seeds: distance to the background of at least this (default 2)")
    parser.add_argument("--voxel-size", type=float, nargs=3, default=[1.0, 1.0, 1.0], metavar=("Z", "Y", "X"),
                        help="voxel size in nm for the watershed's distances (default 1 1 1)")
    parser.add_argument("--connectivity", type=int, choices=[6, 18, 26], default=26, help="cc neighbourhood (default 26)")
    parser.add_argument("--min-size", type=int, default=0, metavar="VOXELS", help="drop smaller instances")
    parser.add_argument("--output", required=True, metavar="OUT.h5|OUT.zarr[:DATASET]", help="where the ids go")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output dataset")
    add_debug_argument(parser)


def check_output(uri: str, overwrite: bool, default_key: str) -> str:
    """The output URI with its dataset key; DataError if the format is unknown or the dataset exists (without overwrite)."""
    from emseg_plugins.datasets.volume_io import H5_SUFFIXES, TIFF_SUFFIXES, ZARR_SUFFIXES, split_uri

    path, key = split_uri(uri)
    suffix = path.suffix.lower()
    if suffix not in (*H5_SUFFIXES, *ZARR_SUFFIXES, *TIFF_SUFFIXES):
        raise DataError(f"{uri}: --output must end in .h5, .zarr or .tif (optionally :DATASET for h5/zarr)")
    if suffix in TIFF_SUFFIXES:
        if key:
            raise DataError(f"{uri}: a TIFF file holds one volume; drop ':{key}'")
        if path.exists() and not overwrite:
            raise DataError(f"{path}: exists; pass --overwrite to replace it, or choose another --output")
        return str(path)
    key = key or default_key
    if path.exists() and not overwrite and _holds(path, key):
        raise DataError(f"{path}: already holds {key!r}; pass --overwrite to replace it, or choose another --output")
    return f"{path}:{key}"


def _holds(path: Path, key: str) -> bool:
    import h5py
    import zarr

    try:
        if path.suffix.lower() == ".zarr":
            return key in zarr.open_group(str(path), mode="r")
        with h5py.File(path, "r") as f:
            return key in f
    except Exception:  # noqa: BLE001 -- not a readable container: writing would replace or fail, so refuse
        return True


def stored_classes(uri: str, stored) -> list[str]:
    """Class names from the ``classes`` attribute of the array, else of its file/root group."""
    from emseg_plugins.datasets.volume_io import split_uri

    owners = [getattr(stored, "attrs", {})]
    if hasattr(stored, "file"):  # h5py dataset
        owners.append(stored.file.attrs)
    elif hasattr(stored, "store"):  # zarr array: the root group of the store
        import zarr

        with contextlib.suppress(Exception):  # a bare array store has no group: no attributes there
            owners.append(zarr.open_group(str(split_uri(uri)[0]), mode="r").attrs)
    for attrs in owners:
        if "classes" in attrs:
            return [c.decode() if isinstance(c, bytes) else str(c) for c in np.atleast_1d(attrs["classes"])]
    return []


def read_channel(uri: str, channel: str | None) -> tuple[np.ndarray, str]:
    """(probability (Z, Y, X) float32 in [0, 1], the channel's name) from a (K, Z, Y, X) or (Z, Y, X) volume."""
    from emseg_plugins.datasets.volume_io import open_volume, split_uri
    from emseg_plugins.inference.sources import CLOUD_PREFIXES, open_source

    opener = open_source if uri.startswith(CLOUD_PREFIXES) else open_volume
    with opener(uri) as stored:
        if stored.ndim == 3:
            if channel not in (None, "0"):
                raise ConfigError(f"--channel {channel}: {uri} has one channel (shape {tuple(stored.shape)}); drop --channel")
            data, name = np.asarray(stored[...]), "0"
        elif stored.ndim == 4:
            classes = stored_classes(uri, stored)
            index = _channel_index(uri, channel, classes, stored.shape[0])
            data, name = np.asarray(stored[index]), classes[index] if len(classes) == stored.shape[0] else str(index)
        else:
            raise DataError(f"{uri}: has shape {tuple(stored.shape)}; expected (K, Z, Y, X) probabilities or (Z, Y, X)")
    leaf = split_uri(uri)[1].rsplit("/", 1)[-1]
    if data.dtype == np.uint8 and leaf != "masks":
        return data.astype(np.float32) / 255.0, name
    if data.dtype == bool or np.issubdtype(data.dtype, np.number):
        return data.astype(np.float32), name
    raise DataError(f"{uri}: holds {data.dtype} values; expected probabilities (float or uint8)")


def _channel_index(uri: str, channel: str | None, classes: list[str], count: int) -> int:
    names = f" (classes: {', '.join(classes)})" if classes else ""
    if channel is None:
        if count == 1:
            return 0
        raise ConfigError(f"{uri}: has {count} channels{names}; choose one with --channel NAME|INDEX")
    if channel in classes:
        return classes.index(channel)
    if channel.lstrip("-").isdigit() and 0 <= int(channel) < count:
        return int(channel)
    raise ConfigError(f"--channel {channel!r} is not a class name or an index below {count} of {uri}{names}")


def run(args: argparse.Namespace) -> int:
    from emseg_plugins.config.defaults import get_cfg_defaults
    from emseg_plugins.datasets.volume_io import write_volume
    from emseg_plugins.registry import DECODERS

    if not 0 <= args.threshold <= 1:
        raise ConfigError(f"--threshold {args.threshold} must be a probability in [0, 1]")
    if args.seed_distance < 0:
        raise ConfigError(f"--seed-distance {args.seed_distance} must be >= 0 (voxels)")
    if min(args.voxel_size) <= 0:
        raise ConfigError(f"--voxel-size {args.voxel_size} must be three positive sizes (Z, Y, X) in nm")
    cfg = get_cfg_defaults()
    cfg.INFERENCE.DECODE.update(THRESHOLD=args.threshold, SEED_DISTANCE=args.seed_distance, VOXEL_SIZE=list(args.voxel_size),
                                MIN_SIZE=args.min_size, CONNECTIVITY=args.connectivity)
    if args.method not in DECODERS:
        raise ConfigError(f"--method {args.method!r} is not a decoder; one of {', '.join(DECODERS.names())}")
    decoder = DECODERS.build(args.method, cfg)
    output = check_output(args.output, args.overwrite, OUTPUT_KEY)
    probability, name = read_channel(args.input, args.channel)
    maps = {"foreground": probability, **learned_maps(args.input, [m for m in decoder.needs if m != "foreground"])}
    ids = decoder.decode(maps)
    write_volume(output, ids)
    print(f"{output}: {int(ids.max())} instances ({args.method}) of channel {name} of {args.input}, shape {list(ids.shape)}")
    return 0


def learned_maps(uri: str, names: list[str]) -> dict[str, np.ndarray]:
    """The learned-target maps ``names`` stored beside ``uri``'s dataset (as `emseg predict` and `--inference` write
    them), as float32 in [0, 1]: (Z, Y, X), affinity (C, Z, Y, X); :class:`DataError` naming a missing one."""
    from emseg_plugins.datasets.volume_io import open_volume, split_uri

    path, _ = split_uri(uri)
    maps = {}
    for name in names:
        if not path.exists() or not _holds(path, name):
            raise DataError(f"{uri}: the decoder needs the {name!r} map, but {path} holds none; predict with a model trained "
                            f"with {name} in TARGET.NAMES, or use --method cc/watershed")
        with open_volume(f"{path}:{name}") as stored:
            values = np.asarray(stored[...])
        values = values.astype(np.float32) / 255.0 if values.dtype == np.uint8 else values.astype(np.float32)
        maps[name] = values if name == "affinity" else values[0]
    return maps
