"""Serve image, label and prediction volumes in a neuroglancer viewer (the ``neuroglancer`` package).

Volumes are (Z, Y, X) arrays or lazy array-likes (h5py, zarr, CloudVolume sources); neuroglancer
asks for chunks and gets them read on demand, shown in x, y, z order with voxel sizes in nm.
Binary masks become segmentation layers in the class colours of :mod:`composite` (nuclei red,
mito cyan); instance ids become segmentation layers with neuroglancer's own colours. The web server
binds to 127.0.0.1 unless told otherwise.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emseg_plugins.errors import ConfigError


@dataclass
class Layer:
    """One layer: ``kind`` "image" or "segmentation"; ``data`` (Z, Y, X); ``colour`` for a binary mask (RGB 0-255);
    ``threshold``: show ``data >= threshold`` (a probability map as a mask)."""

    name: str
    kind: str
    data: Any
    colour: tuple[int, int, int] | None = None
    threshold: float | None = None


class XYZView:
    """A (Z, Y, X) array-like seen as (X, Y, Z), as neuroglancer expects, read lazily box by box.

    ``threshold`` turns a probability map into a 0/1 mask (uint8 255-scaled maps at 255 * threshold).
    float16/float64 become float32 and bool uint8, the types neuroglancer's chunk encoder accepts.
    """

    def __init__(self, data: Any, threshold: float | None = None):
        self.data, self.threshold = data, threshold
        z, y, x = (int(s) for s in data.shape)
        self.shape, self.ndim = (x, y, z), 3
        dtype = np.dtype(data.dtype)
        if threshold is not None or dtype == np.bool_:
            dtype = np.dtype(np.uint8)
        elif dtype.kind == "f":
            dtype = np.dtype(np.float32)
        self.dtype = dtype

    def __getitem__(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        xs, ys, zs = box
        block = np.asarray(self.data[zs, ys, xs])
        if self.threshold is not None:
            cut = round(255 * self.threshold) if block.dtype == np.uint8 else self.threshold
            block = block >= cut
        return np.ascontiguousarray(block.transpose(2, 1, 0)).astype(self.dtype, copy=False)


def hex_colour(colour: Sequence[int]) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in colour)


def serve(layers: Sequence[Layer], voxel_size: Sequence[float] = (1.0, 1.0, 1.0), bind: str = "127.0.0.1", port: int = 0):
    """Start (or reuse) neuroglancer's server on ``bind:port`` and return a Viewer showing ``layers``.

    ``voxel_size`` is (z, y, x) in nm. The viewer opens at the centre of the first layer.
    """
    import neuroglancer  # imported here: only the viewer needs it

    if not layers:
        raise ConfigError("view --neuroglancer: nothing to show; give --config-file or --image (and --labels/--predictions)")
    shapes = {layer.name: tuple(int(s) for s in layer.data.shape) for layer in layers}
    if len(set(shapes.values())) > 1:
        raise ConfigError(f"view --neuroglancer: the volumes differ in shape (Z, Y, X): {shapes}; pass volumes of one grid")
    neuroglancer.set_server_bind_address(bind, port)
    dims = neuroglancer.CoordinateSpace(names=["x", "y", "z"], units="nm", scales=list(voxel_size)[::-1])
    viewer = neuroglancer.Viewer()
    with viewer.txn() as state:
        state.dimensions = dims
        for layer in layers:
            view = XYZView(layer.data, layer.threshold)
            if layer.kind == "image":
                state.layers[layer.name] = neuroglancer.ImageLayer(
                    source=neuroglancer.LocalVolume(view, dimensions=dims, volume_type="image"))
            else:
                colours = {1: hex_colour(layer.colour)} if layer.colour else {}
                state.layers[layer.name] = neuroglancer.SegmentationLayer(
                    source=neuroglancer.LocalVolume(view, dimensions=dims, volume_type="segmentation"), segment_colors=colours)
        z, y, x = next(iter(shapes.values()))
        state.position = [x / 2, y / 2, z // 2 + 0.5]
    return viewer


def viewer_url(viewer) -> str:
    return viewer.get_viewer_url()
