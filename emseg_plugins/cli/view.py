"""emseg view: pictures of a dataset's slices, or its volumes in a neuroglancer viewer.

Examples:
  emseg view --config-file configs/demo.yaml                              # 16 random val slices
  emseg view --config-file configs/demo.yaml --n 32 --split train --crop 0   # whole slices
  emseg view --config-file configs/demo.yaml --predictions outputs/demo/predictions
  emseg view --neuroglancer --config-file configs/demo.yaml --predictions outputs/demo/predictions/synthetic-val.h5
  emseg view --neuroglancer --image em.h5:/main --labels nuc=labels.h5:/nuc mito=labels.h5:/mito --predictions pred.zarr

Pictures (written to --output, default <DATASET.OUTPUT_PATH>/views/<split>):
  composites/NN_<volume>_zZ_yY_xX.png   grayscale EM, labels tinted (nuclei red, mito cyan, other classes
                                        from a fixed palette), predicted masks as one-pixel outlines
  panels/NN_<volume>_zZ_yY_xX.png       input | ground truth | prediction side by side
  composites.png, panels.png            all of them on one contact sheet

--predictions is a prediction file (.h5/.zarr from `pytc-train --inference` or `emseg predict`) or a
directory of <volume>.h5/.zarr files. --neuroglancer serves the volumes (h5, zarr, tiff, precomputed)
on 127.0.0.1 (--bind to change) and prints the viewer URL; Ctrl-C stops it.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path

from emseg_plugins.cli.common import add_config_arguments, add_debug_argument, quiet_library_warnings
from emseg_plugins.config import load_config
from emseg_plugins.errors import ConfigError
from emseg_plugins.registry import DATASETS
from emseg_plugins.visualize.neuroglancer_view import serve  # imports neuroglancer itself only when serving


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", default="val", choices=["train", "val", "test"], help="dataset split (default val)")
    parser.add_argument("--n", type=int, default=16, help="random slices to draw (default 16)")
    parser.add_argument("--crop", type=int, default=256, metavar="PIXELS",
                        help="square crop of each slice, at a random place (default 256; 0 = the whole slice)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the slice choice (default 0)")
    parser.add_argument("--predictions", metavar="PATH", help="prediction file or directory of <volume>.h5/.zarr files")
    parser.add_argument("--output", metavar="DIR", help="picture directory (default <DATASET.OUTPUT_PATH>/views/<split>)")
    ng = parser.add_argument_group("neuroglancer")
    ng.add_argument("--neuroglancer", action="store_true", help="serve the volumes in a neuroglancer viewer instead")
    ng.add_argument("--image", metavar="URI", help="image volume (h5/zarr/tiff/slices, precomputed://...) instead of the config's")
    ng.add_argument("--labels", nargs="+", default=[], metavar="[NAME=]URI", help="label volumes (ids or 0/1 masks), one layer each")
    ng.add_argument("--volume", metavar="NAME", help="with --config-file: which volume of the split (default the first)")
    ng.add_argument("--voxel-size", type=float, nargs=3, default=[1.0, 1.0, 1.0], metavar=("Z", "Y", "X"), help="nm (default 1 1 1)")
    ng.add_argument("--bind", default="127.0.0.1", help="address the viewer's web server listens on (default 127.0.0.1)")
    ng.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    ng.add_argument("--serve-seconds", type=float, default=0, help="stop after this many seconds (default 0: until Ctrl-C)")
    add_debug_argument(parser)
    add_config_arguments(parser, required=False, purpose="config whose dataset plugin supplies the volumes",
                         overrides="config overrides, e.g. DATASET.SYNTHETIC.SEED 3")


def run(args: argparse.Namespace) -> int:
    quiet_library_warnings()
    if args.neuroglancer:
        return serve_neuroglancer(args)
    if not args.config_file:
        raise ConfigError("view: --config-file is required for pictures (only --neuroglancer takes --image instead)")
    if args.n < 1 or args.crop < 0:
        raise ConfigError(f"view: --n {args.n} must be >= 1 and --crop {args.crop} >= 0")
    from emseg_plugins.visualize.views import write_views  # lazy: PIL, scipy, h5py and zarr are not needed for --help

    cfg = load_config(args.config_file, args.config_base, args.opts)
    volumes = DATASETS.build(cfg.DATASET.NAME, cfg).volumes(args.split)
    out = Path(args.output) if args.output else Path(cfg.DATASET.OUTPUT_PATH) / "views" / args.split
    written = write_views(volumes, cfg.DATASET.CLASSES, out, args.n, args.crop, args.seed, args.predictions, cfg.INFERENCE.THRESHOLD)
    print(f"{len(written)} slices: {out / 'composites.png'}, {out / 'panels.png'} (one file each under composites/ and panels/)")
    return 0


def neuroglancer_layers(args: argparse.Namespace, stack: contextlib.ExitStack):
    """The layers to serve: from the config's dataset (``--config-file``) and/or ``--image``/``--labels``/``--predictions``."""
    from emseg_plugins.visualize.views import prediction_layers, uri_layers, volume_layers  # lazy, as in run()

    layers, classes, threshold = [], None, 0.5
    if args.config_file:
        cfg = load_config(args.config_file, args.config_base, args.opts)
        classes, threshold = list(cfg.DATASET.CLASSES), cfg.INFERENCE.THRESHOLD
        if not args.image:
            volumes = DATASETS.build(cfg.DATASET.NAME, cfg).volumes(args.split)
            names = [v.name for v in volumes]
            if args.volume and args.volume not in names:
                raise ConfigError(f"view: --volume {args.volume!r} is not in the {args.split!r} split; choose one of {names}")
            layers += volume_layers(volumes[names.index(args.volume)] if args.volume else volumes[0], classes)
    elif args.opts:
        raise ConfigError(f"view: overrides {args.opts[:2]} need --config-file")
    layers += uri_layers(args.image, args.labels, stack)
    if args.predictions:
        layers += prediction_layers(args.predictions, classes, threshold, stack)
    return layers


def serve_neuroglancer(args: argparse.Namespace) -> int:
    if not args.config_file and not args.image:
        raise ConfigError("view --neuroglancer: give --config-file (the dataset's volumes) or --image URI")
    with contextlib.ExitStack() as stack:
        viewer = serve(neuroglancer_layers(args, stack), args.voxel_size, args.bind, args.port)
        print(f"neuroglancer: {viewer.get_viewer_url()}", flush=True)
        print("layers: " + ", ".join(layer.name for layer in viewer.state.layers), flush=True)
        if args.bind not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: the viewer listens on {args.bind}; anyone who can reach it sees the data", file=sys.stderr)
        try:
            threading.Event().wait(args.serve_seconds or None)
        except KeyboardInterrupt:
            pass
    return 0
