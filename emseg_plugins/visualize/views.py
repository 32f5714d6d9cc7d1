"""What ``emseg view`` shows, callable from a notebook: slice pictures of volumes, and neuroglancer layers.

Pictures (under ``out``)::

    composites/NN_<volume>_zZ_yY_xX.png   grayscale EM, labels tinted, predicted masks as one-pixel outlines
    panels/NN_<volume>_zZ_yY_xX.png       input | ground truth | prediction side by side
    instances/NN_<volume>_zZ_yY_xX.png    true | predicted instances, each object in its own colour, borders white
                                          (where the volume or the prediction has instance ids)
    composites.png, panels.png            all of them on one contact sheet

Volumes are the dataset plugins' (``image`` (Z, Y, X), ``labels`` (K, Z, Y, X) with NaN = unannotated,
optional ``instances`` (Z, Y, X)); predictions are ``.h5``/``.zarr`` files of ``emseg predict`` or
``pytc-train --inference``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emseg_plugins.errors import ConfigError
from emseg_plugins.inference.sources import open_source
from emseg_plugins.visualize.composite import NAMED_COLOURS, binary, class_colours, composite, instance_overlay
from emseg_plugins.visualize.neuroglancer_view import Layer
from emseg_plugins.visualize.panels import grid, save_png, side_by_side, slice_panels
from emseg_plugins.visualize.predictions import open_predictions, prediction_paths


def pick_slices(volumes, n: int, crop: int, seed: int) -> list[tuple[int, int, slice, slice]]:
    """``n`` random (volume index, z, y-range, x-range): volumes by slice count, z and the crop corner uniform.

    ``crop``: the square's side in pixels (0 = the whole slice).
    """
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


def write_views(volumes, classes: Sequence[str], out: Path, n: int, crop: int, seed: int, predictions: str | None,
                threshold: float) -> list[Path]:
    """Composite and panel PNGs of ``n`` random slices under ``out`` (see the module docstring); the composites' paths.

    Every prediction is opened and checked against its volume's shape before anything is written.
    """
    colours = class_colours(classes)
    paths = prediction_paths(predictions, [v.name for v in volumes]) if predictions else {}
    pictures = []
    with contextlib.ExitStack() as stack:
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
            pictures.append((stem, composite(image, labels, colours, pred), slice_panels(image, labels, colours, pred),
                             instance_panels(image, volume, opened.get(volume.name), z, ys, xs)))
    written = []
    for stem, comp, panel, instances in pictures:
        written.append(save_png(out / "composites" / f"{stem}.png", comp))
        save_png(out / "panels" / f"{stem}.png", panel)
        if instances is not None:
            save_png(out / "instances" / f"{stem}.png", instances)
    save_png(out / "composites.png", grid([c for _, c, _, _ in pictures], columns=4))
    save_png(out / "panels.png", grid([p for _, _, p, _ in pictures], columns=2))
    return written


def instance_panels(image: np.ndarray, volume, pred, z: int, ys: slice, xs: slice) -> np.ndarray | None:
    """true | predicted instances of one slice, each object in its own colour; None when neither exists."""
    sources = [("true instances", volume.instances), ("predicted instances", None if pred is None else pred.instances)]
    shown = [(title, np.asarray(ids[z, ys, xs])) for title, ids in sources if ids is not None]
    if not shown:
        return None
    return side_by_side([instance_overlay(image, ids) for _, ids in shown], [title for title, _ in shown])


def volume_layers(volume, classes: Sequence[str]) -> list[Layer]:
    """A dataset volume's image, its annotated classes (one 0/1 layer each) and its instance ids."""
    layers = [Layer("image", "image", volume.image)]
    if not np.isnan(volume.labels.astype(np.float32)).all():
        for name, colour, channel in zip(classes, class_colours(classes), volume.labels):
            layers.append(Layer(name, "segmentation", binary(channel[None])[0].astype(np.uint8), colour))
    if volume.instances is not None:
        layers.append(Layer("instances", "segmentation", volume.instances))
    return layers


def uri_layers(image: str | None, labels: Sequence[str], stack: contextlib.ExitStack) -> list[Layer]:
    """Layers of volumes given by URI: ``image``, and ``labels`` as ``[NAME=]URI`` (name: the file's stem)."""
    layers = [Layer("image", "image", stack.enter_context(open_source(image)))] if image else []
    for spec in labels:
        name, _, uri = spec.rpartition("=")
        name = name or Path(uri.split(":")[0]).stem
        layers.append(Layer(name, "segmentation", stack.enter_context(open_source(uri)), NAMED_COLOURS.get(name)))
    return layers


def prediction_layers(path: str, classes: Sequence[str] | None, threshold: float, stack: contextlib.ExitStack) -> list[Layer]:
    """One layer per predicted class (its stored mask, else its probability thresholded in the viewer), and instances."""
    pred = stack.enter_context(open_predictions(path, classes, threshold))
    layers = []
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
