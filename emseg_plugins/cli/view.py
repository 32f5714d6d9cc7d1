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

import numpy as np

from emseg_plugins.cli.common import add_debug_argument, quiet_library_warnings
from emseg_plugins.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-file", metavar="YAML", help="config whose dataset plugin supplies the volumes")
    parser.add_argument("--config-base", metavar="YAML", help="config merged before --config-file (PyTC style)")
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
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE", help="config overrides, e.g. DATASET.SYNTHETIC.SEED 3")


def run(args: argparse.Namespace) -> int:
    quiet_library_warnings()
    if args.neuroglancer:
        return serve_neuroglancer(args)
    if not args.config_file:
        raise ConfigError("view: --config-file is required for pictures (only --neuroglancer takes --image instead)")
    if args.n < 1 or args.crop < 0:
        raise ConfigError(f"view: --n {args.n} must be >= 1 and --crop {args.crop} >= 0")
    from emseg_plugins.config import load_config
    from emseg_plugins.registry import DATASETS

    cfg = load_config(args.config_file, args.config_base, args.opts)
    volumes = DATASETS.build(cfg.DATASET.NAME, cfg).volumes(args.split)
    out = Path(args.output) if args.output else Path(cfg.DATASET.OUTPUT_PATH) / "views" / args.split
    written = write_views(volumes, cfg.DATASET.CLASSES, out, args.n, args.crop, args.seed, args.predictions, cfg.INFERENCE.THRESHOLD)
    print(f"{len(written)} slices: {out / 'composites.png'}, {out / 'panels.png'} (one file each under composites/ and panels/)")
    return 0


def pick_slices(volumes, n: int, crop: int, seed: int) -> list[tuple[int, int, slice, slice]]:
    """``n`` random (volume index, z, y-range, x-range): volumes by slice count, z and the crop corner uniform."""
    rng = np.random.default_rng(seed)
    depth = np.array([v.image.shape[0] for v in volumes], float)
    picks = []
    for _ in range(n):
        v = int(rng.choice(len(volumes), p=depth / depth.sum()))
        z_size, y_size, x_size = volumes[v].image.shape
        cy, cx = (min(crop, y_size), min(crop, x_size)) if crop else (y_size, x_size)
        y, x = int(rng.integers(0, y_size - cy + 1)), int(rng.integers(0, x_size - cx + 1))
        picks.append((v, int(rng.integers(z_size)), slice(y, y + cy), slice(x, x + cx)))
    return picks


def write_views(volumes, classes, out: Path, n: int, crop: int, seed: int, predictions: str | None, threshold: float) -> list[Path]:
    """Composite and panel PNGs of ``n`` random slices under ``out`` (see the module docstring)."""
    from emseg_plugins.visualize.composite import class_colours, composite
    from emseg_plugins.visualize.panels import grid, save_png, slice_panels
    from emseg_plugins.visualize.predictions import open_predictions, prediction_paths

    colours = class_colours(classes)
    paths = prediction_paths(predictions, [v.name for v in volumes]) if predictions else {}
    pictures = []
    with contextlib.ExitStack() as stack:  # every prediction is opened and checked before anything is written
        opened = {name: stack.enter_context(open_predictions(p, classes, threshold)) for name, p in paths.items()}
        for name, pred in opened.items():
            shape = next(v.image.shape for v in volumes if v.name == name)
            if pred.shape != shape:
                raise ConfigError(f"view: {pred.path} has shape {pred.shape} but volume {name!r} is {shape}; pass its own prediction")
        for i, (v, z, ys, xs) in enumerate(pick_slices(volumes, n, crop, seed)):
            volume = volumes[v]
            image, labels = volume.image[z, ys, xs], volume.labels[:, z, ys, xs]
            labels = None if np.isnan(labels.astype(np.float32)).all() else labels
            pred = opened[volume.name].masks_at(z, ys, xs) if volume.name in opened else None
            stem = f"{i:02d}_{volume.name}_z{z:04d}_y{ys.start:05d}_x{xs.start:05d}"
            pictures.append((stem, composite(image, labels, colours, pred), slice_panels(image, labels, colours, pred)))
    written = []
    for stem, comp, panel in pictures:
        written.append(save_png(out / "composites" / f"{stem}.png", comp))
        save_png(out / "panels" / f"{stem}.png", panel)
    save_png(out / "composites.png", grid([c for _, c, _ in pictures], columns=4))
    save_png(out / "panels.png", grid([p for _, _, p in pictures], columns=2))
    return written


def neuroglancer_layers(args: argparse.Namespace, stack: contextlib.ExitStack):
    """The layers to serve: from the config's dataset (``--config-file``) or from ``--image``/``--labels`` URIs."""
    from emseg_plugins.inference.sources import open_source
    from emseg_plugins.visualize.composite import NAMED_COLOURS, binary, class_colours
    from emseg_plugins.visualize.neuroglancer_view import Layer
    from emseg_plugins.visualize.predictions import open_predictions

    layers, classes, threshold = [], None, 0.5
    if args.config_file:
        from emseg_plugins.config import load_config
        from emseg_plugins.registry import DATASETS

        cfg = load_config(args.config_file, args.config_base, args.opts)
        classes, threshold = list(cfg.DATASET.CLASSES), cfg.INFERENCE.THRESHOLD
        if not args.image:
            volumes = DATASETS.build(cfg.DATASET.NAME, cfg).volumes(args.split)
            names = [v.name for v in volumes]
            if args.volume and args.volume not in names:
                raise ConfigError(f"view: --volume {args.volume!r} is not in the {args.split!r} split; choose one of {names}")
            volume = volumes[names.index(args.volume)] if args.volume else volumes[0]
            layers.append(Layer("image", "image", volume.image))
            if not np.isnan(volume.labels.astype(np.float32)).all():
                for name, colour, channel in zip(classes, class_colours(classes), volume.labels):
                    layers.append(Layer(name, "segmentation", binary(channel[None])[0].astype(np.uint8), colour))
            if volume.instances is not None:
                layers.append(Layer("instances", "segmentation", volume.instances))
    elif args.opts:
        raise ConfigError(f"view: overrides {args.opts[:2]} need --config-file")
    if args.image:
        layers.append(Layer("image", "image", stack.enter_context(open_source(args.image))))
    for spec in args.labels:
        name, _, uri = spec.rpartition("=")
        name = name or Path(uri.split(":")[0]).stem
        data = stack.enter_context(open_source(uri))
        layers.append(Layer(name, "segmentation", data, NAMED_COLOURS.get(name)))
    if args.predictions:
        pred = stack.enter_context(open_predictions(args.predictions, classes, threshold))
        for k, (name, colour) in enumerate(zip(pred.classes, class_colours(pred.classes))):
            channel = pred.channels[k]
            if pred.masks is not None:
                layers.append(Layer(f"pred {name}", "segmentation", _Channel(pred.masks, channel), colour))
            else:
                layers.append(Layer(f"pred {name}", "segmentation", _Channel(pred.probabilities, channel), colour, threshold))
        if pred.instances is not None:
            layers.append(Layer("pred instances", "segmentation", pred.instances))
    return layers


class _Channel:
    """Channel ``k`` of a lazy (K, Z, Y, X) array as a lazy (Z, Y, X) one."""

    def __init__(self, stored, k: int):
        self.stored, self.k = stored, k
        self.shape, self.dtype = tuple(stored.shape[1:]), stored.dtype

    def __getitem__(self, box):
        return self.stored[(self.k, *box)]


def serve_neuroglancer(args: argparse.Namespace) -> int:
    from emseg_plugins.visualize.neuroglancer_view import serve

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
