"""``synthetic``: procedural EM volumes (no download), split by a held-out Z range.

The volume comes from :func:`make_em_volume`; the slices in ``DATASET.SYNTHETIC.VAL_Z`` are the
validation split (as the Joe Net notes hold out Z 880-900 of 800-900), the rest train, and an
independently drawn volume (seed + 1) is the test split.  ``DATASET.SYNTHETIC.INSTANCE_CLASS``
chooses which class's instance ids (``mito``: mitochondria, ``nuc``: nuclei) the volumes carry
for instance targets and embedding losses; in both some instances touch each other.
"""
from __future__ import annotations

import numpy as np
from yacs.config import CfgNode as CN

from emseg_plugins.datasets.config_nodes import add_synthetic_config  # noqa: F401  # re-exported
from emseg_plugins.datasets.patches import Volume, VolumeData
from emseg_plugins.datasets.synthetic_em import SyntheticVolume, make_em_volume
from emseg_plugins.errors import ConfigError

CLASS_LAYERS = {"nuc": "nuc", "mito": "mito"}  # CellMap class name -> SyntheticVolume field
INSTANCE_LAYERS = {"mito": "mito_ids", "nuc": "nuc_ids"}  # INSTANCE_CLASS -> SyntheticVolume field


def build_synthetic(cfg: CN) -> VolumeData:
    """Procedural EM volume (nuc, mito, instance ids of one of them), split by a held-out Z range; no download."""
    node = cfg.DATASET.SYNTHETIC
    unknown = [c for c in cfg.DATASET.CLASSES if c not in CLASS_LAYERS]
    if unknown:
        raise ConfigError(f"config: DATASET.CLASSES {unknown} not drawn by the synthetic dataset; use a subset of {list(CLASS_LAYERS)}")
    if node.INSTANCE_CLASS not in INSTANCE_LAYERS:
        raise ConfigError(f"config: DATASET.SYNTHETIC.INSTANCE_CLASS {node.INSTANCE_CLASS!r} must be one of {list(INSTANCE_LAYERS)}")
    z0, z1 = node.VAL_Z
    if len(node.SHAPE) != 3 or not 0 <= z0 < z1 <= node.SHAPE[0] or z1 - z0 == node.SHAPE[0]:
        raise ConfigError(f"config: DATASET.SYNTHETIC.VAL_Z {list(node.VAL_Z)} must be a proper sub-range [start, stop) of Z in SHAPE {list(node.SHAPE)}")
    full = _volume("synthetic", make_em_volume(tuple(node.SHAPE), node.SEED), cfg.DATASET.CLASSES, node.INSTANCE_CLASS)
    train = [full.crop_z("train-below", 0, z0), full.crop_z("train-above", z1, node.SHAPE[0])]
    test_shape = (z1 - z0, *node.SHAPE[1:])
    splits = {
        "train": [v for v in train if v.image.shape[0] > 0],
        "val": [full.crop_z("val", z0, z1)],
        "test": lambda: [_volume("synthetic-test", make_em_volume(test_shape, node.SEED + 1), cfg.DATASET.CLASSES, node.INSTANCE_CLASS)],
    }
    return VolumeData(cfg, splits)


def _volume(name: str, synthetic: SyntheticVolume, classes: list[str], instance_class: str = "mito") -> Volume:
    """The requested class channels; instance ids of `instance_class` (``mito`` or ``nuc``), for
    instance targets and embedding losses."""
    labels = np.stack([getattr(synthetic, CLASS_LAYERS[c]) for c in classes])
    return Volume(name, synthetic.image, labels, instances=getattr(synthetic, INSTANCE_LAYERS[instance_class]))
