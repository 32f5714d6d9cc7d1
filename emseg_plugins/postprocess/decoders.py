"""Instance decoders: predicted maps -> instance ids, registered by name (entry-point group
``emseg_plugins.decoders``), so a third party adds its own the way it adds a model.

A decoder builder ``build(cfg) -> Decoder`` reads ``INFERENCE.DECODE``. The maps a decoder reads
(``needs``) are float arrays in [0, 1]: ``foreground`` (Z, Y, X) (the ``binary`` target when the
model learns one, else the probability of ``INFERENCE.INSTANCE_CLASS``), ``contour`` and
``distance`` (Z, Y, X), ``affinity`` (C, Z, Y, X) for ``TARGET.AFFINITY_OFFSETS``.

Every decoder here is *component-local*: its output on one 26-connected component of its
``foreground_of(maps)`` mask depends only on the maps inside that component. That is what lets
blockwise decoding reproduce a whole-volume decode exactly (``postprocess/blockwise.py``): a block
decoded with a halo that holds a component whole labels it as the whole volume would.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cc3d
import numpy as np
from skimage.segmentation import watershed
from yacs.config import CfgNode as CN

from emseg_plugins.errors import ConfigError
from emseg_plugins.postprocess.instances import connected_instances, relabel, remove_small, watershed_instances
from emseg_plugins.targets.maps import shifted_pair

Maps = dict[str, np.ndarray]


class Decoder:
    """Base of the built-in decoders: ``needs``, the foreground mask, and ``decode(maps, origin)``."""

    needs: tuple[str, ...] = ("foreground",)
    threshold: float = 0.5
    min_size: int = 0

    def foreground_of(self, maps: Maps) -> np.ndarray:
        """bool (Z, Y, X): the voxels that may carry an instance; components of it are decoded independently."""
        return maps["foreground"] >= self.threshold

    def labels(self, maps: Maps, foreground: np.ndarray, origin: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def decode(self, maps: Maps, origin: Sequence[int] = (0, 0, 0)) -> np.ndarray:
        """uint32 ids (Z, Y, X), 0 = background, 1..N in scan order, objects below ``min_size`` voxels dropped.

        ``origin``: the maps' first voxel in the whole volume (decoders that break ties by position use it).
        """
        foreground = self.foreground_of(maps)
        return relabel(remove_small(self.labels(maps, foreground, origin), self.min_size))


def _unit(values) -> np.ndarray:
    """Stored map values -> float32 in [0, 1] (uint8 holds round(255 p))."""
    values = np.asarray(values)
    return values.astype(np.float32) / 255.0 if values.dtype == np.uint8 else values.astype(np.float32)


def maps_reader(arrays, classes: Sequence[str], instance_class: str = ""):
    """region (Z, Y, X slices) -> decoder maps from ``arrays`` (a zarr group, or a dict of (C, Z, Y, X) arrays as
    ``predict_outputs`` returns): ``foreground`` is the ``binary`` target when present, else the
    ``probabilities`` channel of ``instance_class`` (else the first class); every learned map by name."""
    channel = list(classes).index(instance_class) if instance_class else 0

    def read(region) -> Maps:
        foreground = arrays["binary"][(0, *region)] if "binary" in arrays else arrays["probabilities"][(channel, *region)]
        maps = {"foreground": _unit(foreground)}
        for name in ("contour", "distance"):
            if name in arrays:
                maps[name] = _unit(arrays[name][(0, *region)])
        if "affinity" in arrays:
            maps["affinity"] = _unit(arrays["affinity"][(slice(None), *region)])
        return maps

    return read


def _require_probability(key: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigError(f"config: INFERENCE.DECODE.{key} = {value} must be a probability in [0, 1]")


def _seeds(mask: np.ndarray, min_size: int) -> np.ndarray:
    """26-connected components of ``mask`` as uint32 seed ids, components below ``min_size`` dropped."""
    return remove_small(cc3d.connected_components(np.ascontiguousarray(mask), connectivity=26, out_dtype=np.uint32), min_size)


@dataclass
class ConnectedComponents(Decoder):
    """Connected components of the thresholded foreground (touching objects stay merged)."""

    threshold: float = 0.5
    min_size: int = 0
    connectivity: int = 26  # 6 | 18 | 26

    def labels(self, maps, foreground, origin):
        return connected_instances(foreground, self.connectivity)


@dataclass
class DistanceWatershed(Decoder):
    """Seeded watershed on the foreground's own distance transform (seeds ``seed_distance`` deep)."""

    threshold: float = 0.5
    seed_distance: float = 2.0
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    min_size: int = 0

    def labels(self, maps, foreground, origin):
        return watershed_instances(maps["foreground"], self.threshold, self.seed_distance, self.voxel_size)


@dataclass
class ContourWatershed(Decoder):
    """PyTC's ``bc_watershed``: seeds where foreground is confident and contour low, flooded over the
    foreground from low to high ``contour - foreground``."""

    threshold: float = 0.5
    seed_threshold: float = 0.9
    contour_threshold: float = 0.3
    min_seed_size: int = 0
    min_size: int = 0
    needs: tuple[str, ...] = ("foreground", "contour")

    def seed_mask(self, maps: Maps) -> np.ndarray:
        return (maps["foreground"] > self.seed_threshold) & (maps["contour"] < self.contour_threshold)

    def relief(self, maps: Maps) -> np.ndarray:
        return maps["contour"].astype(np.float64) - maps["foreground"]

    def labels(self, maps, foreground, origin):
        seeds = _seeds(self.seed_mask(maps) & foreground, self.min_seed_size)
        return watershed(self.relief(maps), markers=seeds, mask=foreground).astype(np.uint32)


@dataclass
class ContourDistanceWatershed(ContourWatershed):
    """PyTC's ``bcd_watershed``: bc seeds also required ``distance_threshold`` deep (normalised
    distance), flooded from the predicted distance's peaks down."""

    distance_threshold: float = 0.5
    needs: tuple[str, ...] = ("foreground", "contour", "distance")

    def seed_mask(self, maps: Maps) -> np.ndarray:
        return super().seed_mask(maps) & (maps["distance"] > self.distance_threshold)

    def relief(self, maps: Maps) -> np.ndarray:
        return maps["contour"].astype(np.float64) - maps["distance"]


@dataclass
class MutexWatershed(Decoder):
    """Mutex watershed (``mwatershed``) of the affinity graph restricted to the foreground.

    Edge weight ``affinity - bias`` (``long_range_bias`` for offsets longer than one voxel): positive
    attracts, negative repels. Edges that leave the foreground or join two of its components are made
    repulsive, so each component is decoded on its own; ties are broken by a tiny jitter from the
    voxel's position in the whole volume (``origin``), so a block decodes as the volume does.
    """

    offsets: tuple[tuple[int, int, int], ...] = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    threshold: float = 0.5
    bias: float = 0.5
    long_range_bias: float = 0.7
    min_size: int = 0
    needs: tuple[str, ...] = ("affinity",)

    def foreground_of(self, maps: Maps) -> np.ndarray:
        """The ``foreground`` map when given, else voxels with a direct neighbour of affinity >= threshold."""
        if "foreground" in maps:
            return maps["foreground"] >= self.threshold
        affinity, linked = maps["affinity"], np.zeros(maps["affinity"].shape[1:], bool)
        for channel, offset in enumerate(self.offsets):
            if sum(map(abs, offset)) == 1:
                strong = affinity[channel] >= self.threshold
                here, there = shifted_pair(linked.shape, offset)
                linked[here] |= strong[here]
                linked[there] |= strong[here]
        return linked

    def labels(self, maps, foreground, origin):
        import mwatershed  # Rust extension: loaded only by the decoder that needs it

        components = cc3d.connected_components(np.ascontiguousarray(foreground), connectivity=26, out_dtype=np.uint32)
        weights = maps["affinity"].astype(np.float64)
        for channel, offset in enumerate(self.offsets):
            long = sum(map(abs, offset)) > 1
            weights[channel] -= self.long_range_bias if long else self.bias
            weights[channel] += _jitter(weights.shape[1:], origin, channel)
            same = np.zeros(weights.shape[1:], bool)
            here, there = shifted_pair(same.shape, offset)
            same[here] = (components[here] == components[there]) & (components[here] > 0)
            weights[channel][~same] = -2.0  # leaves the foreground or crosses components: a repulsion
        labels = mwatershed.agglom(weights, [list(o) for o in self.offsets])
        return np.where(foreground, labels, 0).astype(np.uint32)


def _jitter(shape: Sequence[int], origin: Sequence[int], channel: int) -> np.ndarray:
    """(Z, Y, X) values in [0, 1e-7) fixed by the global voxel position and channel (a hash, no RNG)."""
    z, y, x = (np.arange(n, dtype=np.uint64) + np.uint64(o) for n, o in zip(shape, origin))
    key = (z[:, None, None] * np.uint64(73856093)) ^ (y[None, :, None] * np.uint64(19349663)) \
        ^ (x[None, None, :] * np.uint64(83492791)) ^ np.uint64(channel * 2654435761)
    key = (key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    return key.astype(np.float64) / float(1 << 24) * 1e-7


def _node(cfg: CN) -> CN:
    node = cfg.INFERENCE.DECODE
    for key in ("THRESHOLD", "SEED_THRESHOLD", "CONTOUR_THRESHOLD", "DISTANCE_THRESHOLD"):
        _require_probability(key, node[key])
    if node.MIN_SIZE < 0 or node.MIN_SEED_SIZE < 0 or node.SEED_DISTANCE < 0:
        raise ConfigError("config: INFERENCE.DECODE.MIN_SIZE, MIN_SEED_SIZE and SEED_DISTANCE must be >= 0")
    return node


def build_cc(cfg: CN) -> ConnectedComponents:
    """Connected components of the thresholded foreground."""
    node = _node(cfg)
    if node.CONNECTIVITY not in (6, 18, 26):
        raise ConfigError(f"config: INFERENCE.DECODE.CONNECTIVITY = {node.CONNECTIVITY} is not one of 6, 18, 26")
    return ConnectedComponents(node.THRESHOLD, node.MIN_SIZE, node.CONNECTIVITY)


def build_watershed(cfg: CN) -> DistanceWatershed:
    """Seeded watershed of the foreground's distance transform (no learned target needed)."""
    node = _node(cfg)
    if len(node.VOXEL_SIZE) != 3 or min(node.VOXEL_SIZE) <= 0:
        raise ConfigError(f"config: INFERENCE.DECODE.VOXEL_SIZE = {list(node.VOXEL_SIZE)} must be three positive sizes (nm)")
    return DistanceWatershed(node.THRESHOLD, node.SEED_DISTANCE, tuple(node.VOXEL_SIZE), node.MIN_SIZE)


def build_bc_watershed(cfg: CN) -> ContourWatershed:
    """Binary + contour watershed (PyTC bc_watershed); needs the contour target."""
    node = _node(cfg)
    return ContourWatershed(node.THRESHOLD, node.SEED_THRESHOLD, node.CONTOUR_THRESHOLD, node.MIN_SEED_SIZE, node.MIN_SIZE)


def build_bcd_watershed(cfg: CN) -> ContourDistanceWatershed:
    """Binary + contour + distance watershed (PyTC bcd_watershed); needs contour and distance targets."""
    node = _node(cfg)
    return ContourDistanceWatershed(node.THRESHOLD, node.SEED_THRESHOLD, node.CONTOUR_THRESHOLD, node.MIN_SEED_SIZE,
                                    node.MIN_SIZE, distance_threshold=node.DISTANCE_THRESHOLD)


def build_mutex_watershed(cfg: CN) -> MutexWatershed:
    """Mutex watershed of predicted affinities (mwatershed); needs the affinity target."""
    node = _node(cfg)
    offsets = tuple(tuple(int(v) for v in o) for o in cfg.TARGET.AFFINITY_OFFSETS)
    return MutexWatershed(offsets, node.THRESHOLD, node.AFFINITY_BIAS, node.LONG_RANGE_BIAS, node.MIN_SIZE)
