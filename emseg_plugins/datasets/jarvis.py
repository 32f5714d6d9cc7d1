"""``jarvis``: EM image and label layers read with CloudVolume (neuroglancer precomputed), as in the Joe Net notes.

One bounding box (``DATASET.JARVIS.BOUNDS``, voxels at ``MIP``) of the image layer and of one label
layer per class is downloaded once into memory: the image as uint8 (other dtypes rescaled, see
:func:`to_uint8`), each label layer binarised (nonzero -> 1, uint8), and the segment ids of the
``INSTANCE_CLASS`` layer kept, renumbered 1..N, as the volume's instances. CloudVolume cutouts are
(X, Y, Z, C); every array here is (Z, Y, X). The box is split by a held-out Z range
(``SPLIT: z``) or a held-out XY corner (``SPLIT: corner``); an optional ``TEST_BOUNDS`` box is the
test split. The same code reads ``gs://``, ``s3://`` and ``file://`` paths (docs/datasets_jarvis.md).

Every layer's metadata (info file, MIP, resolution, bounds) is checked when the dataset is built;
voxels are downloaded on first use of a split, so ``--inference`` on the test split never fetches
the training box.
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import require, require_choice
from emseg_plugins.datasets.config_nodes import add_jarvis_config  # noqa: F401  # re-exported
from emseg_plugins.datasets.patches import Volume, VolumeData
from emseg_plugins.errors import ConfigError, DataError

KEY = "DATASET.JARVIS"
SPLITS = ("z", "corner")
CORNERS = ("x0y0", "x1y0", "x0y1", "x1y1")


@dataclass(frozen=True)
class Box:
    """A [start, stop) box in voxels at one MIP, (x, y, z) as CloudVolume orders it."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.start, self.stop))[::-1]

    def inside(self, bounds) -> bool:
        return all(lo <= a and b <= hi for a, b, lo, hi in zip(self.start, self.stop, bounds.minpt, bounds.maxpt))

    def __str__(self) -> str:
        return str([*self.start, *self.stop])


@dataclass(frozen=True)
class Layer:
    """An opened CloudVolume layer and the config key that named it (for error messages)."""

    key: str
    path: str
    volume: Any  # cloudvolume.CloudVolume, imported lazily

    @property
    def where(self) -> str:
        return f"{self.key} {self.path!r}"


def build_jarvis(cfg: CN) -> VolumeData:
    """CloudVolume layers (image + class labels) in a bounding box at a MIP, as the Joe Net notes load them.

    Check the config and every layer's metadata now; download each split's voxels on first use."""
    node = cfg.DATASET.JARVIS
    label_paths = check_config(cfg)
    image = open_layer("DATASET.JARVIS.IMAGE", node.IMAGE, node)
    labels = {c: open_layer(f"DATASET.JARVIS.LABELS {c}", p, node) for c, p in label_paths.items()}
    check_layers(image, labels)
    box = Box(tuple(node.BOUNDS[:3]), tuple(node.BOUNDS[3:]))
    test_box = Box(tuple(node.TEST_BOUNDS[:3]), tuple(node.TEST_BOUNDS[3:])) if node.TEST_BOUNDS else None
    for key, b in (("BOUNDS", box), ("TEST_BOUNDS", test_box)):
        if b is not None:
            check_box(f"{KEY}.{key}", b, image, labels, node.MIP)

    def read(b: Box, name: str) -> Volume:
        return load_volume(name, b, image, labels, node)

    whole = functools.cache(lambda: split_volume(read(box, "jarvis"), node))
    splits: dict[str, list[Volume] | Callable[[], list[Volume]]] = {
        "train": lambda: whole()["train"],
        "val": lambda: whole()["val"],
        "test": (lambda: [read(test_box, "jarvis-test")]) if test_box else [],
    }
    return VolumeData(cfg, splits)


# -- config -----------------------------------------------------------------------------------------
def check_config(cfg: CN) -> dict[str, str]:
    """Validate DATASET.JARVIS without touching any layer; returns {class: cloudpath} for DATASET.CLASSES."""
    node = cfg.DATASET.JARVIS
    if not node.IMAGE:
        raise ConfigError(f"config: {KEY}.IMAGE is empty; set it to the image layer's cloudpath (gs://..., s3://... or file:///...)")
    layers = parse_labels(node.LABELS)
    missing = [c for c in cfg.DATASET.CLASSES if c not in layers]
    if missing:
        raise ConfigError(f"config: DATASET.CLASSES {missing} have no layer in {KEY}.LABELS {list(node.LABELS)}; "
                          f"add \"{missing[0]}=<cloudpath>\" or drop the class from DATASET.CLASSES")
    require(node.MIP >= 0, f"{KEY}.MIP", node.MIP, "0 or more")
    check_bounds(f"{KEY}.BOUNDS", node.BOUNDS, required=True)
    check_bounds(f"{KEY}.TEST_BOUNDS", node.TEST_BOUNDS, required=False)
    require_choice(f"{KEY}.SPLIT", node.SPLIT, SPLITS)
    depth = node.BOUNDS[5] - node.BOUNDS[2]
    if node.SPLIT == "z":
        z = list(node.VAL_Z)
        require(len(z) == 2 and 0 <= z[0] < z[1] <= depth and z[1] - z[0] < depth, f"{KEY}.VAL_Z", z,
                f"[start, stop) slices relative to BOUNDS' z0, a proper sub-range of the box's {depth} slices")
    else:
        require_choice(f"{KEY}.VAL_CORNER", node.VAL_CORNER, CORNERS)
        require(0 < node.VAL_FRACTION < 1, f"{KEY}.VAL_FRACTION", node.VAL_FRACTION, "between 0 and 1 (exclusive)")
    r = list(node.IMAGE_RANGE)
    require(not r or (len(r) == 2 and r[0] < r[1]), f"{KEY}.IMAGE_RANGE", r, "[] or [low, high] with low < high")
    require(node.PARALLEL >= 1, f"{KEY}.PARALLEL", node.PARALLEL, "at least 1")
    return {c: layers[c] for c in cfg.DATASET.CLASSES}


def parse_labels(entries: list[str]) -> dict[str, str]:
    """``["nuc=gs://...", ...]`` -> ``{"nuc": "gs://..."}`` (yacs has no free-form mappings)."""
    layers: dict[str, str] = {}
    for entry in entries:
        name, sep, path = str(entry).partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ConfigError(f"config: {KEY}.LABELS entry {entry!r} must read \"class=cloudpath\", e.g. \"mito=gs://bucket/mito\"")
        if name in layers:
            raise ConfigError(f"config: {KEY}.LABELS names class {name!r} twice; keep one \"{name}=...\" entry")
        layers[name] = path
    return layers


def check_bounds(key: str, bounds: list, required: bool) -> None:
    if not bounds and not required:
        return
    ok = len(bounds) == 6 and all(isinstance(v, int) for v in bounds) and all(bounds[i] < bounds[i + 3] for i in range(3))
    require(ok, key, list(bounds), "x0, y0, z0, x1, y1, z1 voxels at MIP with x0 < x1, y0 < y1, z0 < z1")


# -- layers -----------------------------------------------------------------------------------------
def open_layer(key: str, path: str, node: CN) -> Layer:
    """Open ``path`` at ``node.MIP``; any CloudVolume failure becomes one DataError line naming the path."""
    # imported here, not at the top: every CLI start imports this module to register the node, few read layers
    from cloudvolume import CloudVolume
    from cloudvolume.exceptions import ScaleUnavailableError

    options = {"fill_missing": node.FILL_MISSING, "parallel": node.PARALLEL, "progress": node.PROGRESS,
               "cache": os.path.expanduser(node.CACHE) if node.CACHE else False, "bounded": True}
    try:
        volume = CloudVolume(path, mip=node.MIP, **options)
    except ScaleUnavailableError:
        volume = CloudVolume(path, mip=0, **options)
        scales = ", ".join(f"{m}: {list(map(int, volume.scales[m]['resolution']))} nm" for m in volume.available_mips)
        raise DataError(f"{KEY}.MIP = {node.MIP} is not available in {key} {path!r}, which has MIPs {{{scales}}}; "
                        "choose one of them") from None
    except Exception as exc:  # noqa: BLE001 -- CloudVolume raises many types (InfoUnavailableError, UnsupportedProtocolError, auth, JSON)
        raise DataError(f"{key} {path!r} is not a readable neuroglancer-precomputed layer ({reason(exc)}); "
                        "check the path and credentials (docs/datasets_jarvis.md)") from None
    if volume.num_channels != 1:
        raise DataError(f"{key} {path!r} has {volume.num_channels} channels; point it at a single-channel layer")
    return Layer(key, path, volume)


def check_layers(image: Layer, labels: dict[str, Layer]) -> None:
    """Every label layer must share the image's voxel size at MIP (so voxels line up)."""
    resolution = list(map(float, image.volume.resolution))
    for layer in labels.values():
        other = list(map(float, layer.volume.resolution))
        if other != resolution:
            raise DataError(f"{layer.where} has resolution {other} nm at MIP {layer.volume.mip} but {image.where} has "
                            f"{resolution} nm; point both at layers of the same voxel grid")


def check_box(key: str, box: Box, image: Layer, labels: dict[str, Layer], mip: int) -> None:
    """The box must lie inside the bounds of every layer."""
    for layer in (image, *labels.values()):
        bounds = layer.volume.bounds
        if not box.inside(bounds):
            raise DataError(f"{key} {box} (x0, y0, z0, x1, y1, z1 voxels at MIP {mip}) is not inside the bounds "
                            f"{[*map(int, bounds.minpt), *map(int, bounds.maxpt)]} of {layer.where}; choose a box inside them")


def reason(exc: BaseException) -> str:
    """The first line of an exception's message, without CloudVolume's terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# -- voxels -----------------------------------------------------------------------------------------
def download(layer: Layer, box: Box, renumber: bool = False) -> np.ndarray:
    """The box's voxels as (Z, Y, X) (CloudVolume returns (X, Y, Z, C)); ids 1..N when ``renumber``."""
    from cloudvolume import Bbox

    try:
        cutout = layer.volume.download(Bbox(box.start, box.stop), renumber=renumber)
    except Exception as exc:  # noqa: BLE001 -- missing chunks without FILL_MISSING, network, permissions
        raise DataError(f"{layer.where}: reading box {box} failed ({reason(exc)}); set {KEY}.FILL_MISSING True "
                        "to read missing chunks as 0, or check access to the layer") from None
    array = cutout[0] if renumber else cutout  # renumber=True returns (array, {old id: new id})
    return np.ascontiguousarray(np.asarray(array)[..., 0].transpose(2, 1, 0))


def load_volume(name: str, box: Box, image: Layer, labels: dict[str, Layer], node: CN) -> Volume:
    """Image (uint8), binarised labels (K, Z, Y, X) uint8 and, if configured, instance ids."""
    range_ = tuple(node.IMAGE_RANGE) or None
    pixels = to_uint8(download(image, box), range_)
    masks, instances = [], None
    for cls, layer in labels.items():
        keep_ids = cls == node.INSTANCE_CLASS and layer.volume.layer_type == "segmentation"
        data = download(layer, box, renumber=keep_ids)
        masks.append((data != 0).view(np.uint8))
        if keep_ids:
            instances = data  # ids 1..N (CloudVolume renumber: uint16 or wider as needed, not the uint64 on disk)
    return Volume(name, pixels, np.stack(masks), instances=instances)


def to_uint8(image: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """uint8 is kept; any other dtype is mapped linearly from ``value_range`` (default: the array's own
    min..max) onto 0..255, rounded and clipped. A constant image becomes 0."""
    if image.dtype == np.uint8:
        return image
    low, high = value_range if value_range else (float(image.min()), float(image.max()))
    out = np.zeros(image.shape, np.uint8)
    if high > low:
        for z in range(image.shape[0]):  # slice by slice: a float copy of the whole box would triple the memory
            scaled = (image[z].astype(np.float32) - low) * (255.0 / (high - low))
            out[z] = np.clip(np.rint(scaled), 0, 255)
    return out


# -- splits -----------------------------------------------------------------------------------------
def split_volume(volume: Volume, node: CN) -> dict[str, list[Volume]]:
    """{"train": [...], "val": [...]}: a held-out Z range, or a held-out XY corner with the rest as two boxes."""
    depth, height, width = volume.image.shape
    if node.SPLIT == "z":
        z0, z1 = node.VAL_Z
        train = [volume.crop_z("train-below", 0, z0), volume.crop_z("train-above", z1, depth)]
        return {"train": [v for v in train if v.image.shape[0]], "val": [volume.crop_z("val", z0, z1)]}
    ny, nx = (min(max(1, round(n * node.VAL_FRACTION)), max(1, n - 1)) for n in (height, width))  # keep some to train
    high_x, high_y = node.VAL_CORNER[1] == "1", node.VAL_CORNER[3] == "1"
    held_y = slice(height - ny, height) if high_y else slice(0, ny)
    rest_y = slice(0, height - ny) if high_y else slice(ny, height)
    held_x = slice(width - nx, width) if high_x else slice(0, nx)
    rest_x = slice(0, width - nx) if high_x else slice(nx, width)
    train = [crop_yx(volume, "train-rows", rest_y, slice(0, width)),  # full width, Y outside the corner
             crop_yx(volume, "train-side", held_y, rest_x)]  # the corner's rows beside it
    return {"train": [v for v in train if v.image.size], "val": [crop_yx(volume, "val", held_y, held_x)]}


def crop_yx(volume: Volume, suffix: str, ys: slice, xs: slice) -> Volume:
    """A Y/X window of every array (Volume only offers crop_z), named ``<name>-<suffix>``."""
    def cut(a):
        return None if a is None else np.ascontiguousarray(a[..., ys, xs])
    return Volume(f"{volume.name}-{suffix}", cut(volume.image), cut(volume.labels), cut(volume.instances), cut(volume.valid_mask))
