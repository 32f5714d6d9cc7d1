"""``blobs``: a procedural volume of bright balls, one set per class; Z split into train and validation.

The image is (Z, Y, X) float in [0, 1]; labels (K, Z, Y, X) are 0/1 with K = len(DATASET.CLASSES):
class k is drawn as DATASET.BLOBS.COUNT balls of intensity 0.4 + 0.5 k / K on a dark background,
blurred and with Gaussian noise. Every random choice comes from DATASET.BLOBS.SEED.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from yacs.config import CfgNode as CN

from emseg_plugins.datasets.patches import Volume, VolumeData
from emseg_plugins.errors import ConfigError


def add_blobs_config(cfg: CN) -> None:
    """DATASET.BLOBS: volume shape, balls per class, radii, held-out Z range and seed."""
    cfg.DATASET.BLOBS = CN()
    cfg.DATASET.BLOBS.SHAPE = [16, 64, 64]  # (Z, Y, X) voxels
    cfg.DATASET.BLOBS.COUNT = 12  # balls per class
    cfg.DATASET.BLOBS.RADIUS = [3.0, 7.0]  # radius range, voxels
    cfg.DATASET.BLOBS.VAL_Z = [12, 16]  # validation slices [start, stop); the others train
    cfg.DATASET.BLOBS.SEED = 0


def make_blobs(shape: tuple[int, int, int], classes: int, count: int, radius: tuple[float, float], seed: int) -> Volume:
    """A ``Volume`` with ``classes`` label channels of random balls."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    labels = np.zeros((classes, *shape), np.uint8)
    image = np.full(shape, 0.1, np.float32)
    for k in range(classes):
        for _ in range(count):
            centre = rng.uniform(0, shape)[:, None, None, None]
            ball = ((grid - centre) ** 2).sum(0) <= rng.uniform(*radius) ** 2
            labels[k][ball & (labels.sum(0) == 0)] = 1  # classes do not overlap
        image[labels[k] > 0] = 0.4 + 0.5 * k / classes
    image = ndimage.gaussian_filter(image, 1.0) + rng.normal(0, 0.03, shape).astype(np.float32)
    return Volume("blobs", np.clip(image, 0, 1), labels)


def build_blobs(cfg: CN) -> VolumeData:
    """Train on the slices outside DATASET.BLOBS.VAL_Z, validate on those inside; test is a second volume."""
    node = cfg.DATASET.BLOBS
    z0, z1 = node.VAL_Z
    if len(node.SHAPE) != 3 or not 0 <= z0 < z1 <= node.SHAPE[0] or z1 - z0 == node.SHAPE[0]:
        raise ConfigError(f"config: DATASET.BLOBS.VAL_Z {list(node.VAL_Z)} must be a proper sub-range of Z in SHAPE {list(node.SHAPE)}")
    if len(node.RADIUS) != 2 or not 0 < node.RADIUS[0] <= node.RADIUS[1]:
        raise ConfigError(f"config: DATASET.BLOBS.RADIUS {list(node.RADIUS)} must be [min, max] with 0 < min <= max")
    k = len(cfg.DATASET.CLASSES)
    full = make_blobs(tuple(node.SHAPE), k, node.COUNT, tuple(node.RADIUS), node.SEED)
    train = [v for v in (full.crop_z("below", 0, z0), full.crop_z("above", z1, node.SHAPE[0])) if v.image.shape[0]]
    test_shape = (z1 - z0, *node.SHAPE[1:])
    return VolumeData(cfg, {"train": train, "val": [full.crop_z("val", z0, z1)],
                            "test": lambda: [make_blobs(test_shape, k, node.COUNT, tuple(node.RADIUS), node.SEED + 1)]})
