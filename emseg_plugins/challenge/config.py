"""CELLMAP_CHALLENGE: the config node of the challenge workflow (``emseg cellmap predict|submit|evaluate``)."""
from __future__ import annotations

from yacs.config import CfgNode as CN

# Labels the challenge scores as instances: ``INSTANCE_CLASSES`` of
# cellmap-segmentation-challenge src/cellmap_segmentation_challenge/config.py. Every other label is semantic.
INSTANCE_CLASSES = ("nuc", "vim", "ves", "endo", "lyso", "ld", "perox", "mito", "np", "mt", "cell", "instance")


def add_challenge_config(cfg: CN) -> None:
    """CELLMAP_CHALLENGE: manifest source, context, instance post-processing of test-crop predictions."""
    cfg.CELLMAP_CHALLENGE = CN()
    node = cfg.CELLMAP_CHALLENGE
    node.MANIFEST = ""  # test-crop manifest CSV (official format): a path or http(s)/file URL; "" = installed challenge package's, else packaged copy
    node.CROPS = []  # test crop ids to predict, e.g. [557, 980]; empty = every manifest crop whose dataset is under DATA_ROOT
    node.CONTEXT = []  # EM context read around each crop, voxels (Z, Y, X) at the model's voxel size; empty = a quarter window (2.5D: the neighbours in Z)
    node.INSTANCE_CLASSES = list(INSTANCE_CLASSES)  # labels written (and scored) as instance ids; the rest are thresholded masks
    node.INSTANCE_METHOD = "cc"  # a decoder on the class probability: cc (connected components) | watershed (seeded by the distance transform)
    node.CONNECTIVITY = 26  # cc: 6 | 18 | 26
    node.SEED_DISTANCE = 2.0  # watershed: seeds where the distance to the background is at least this (voxels)
    node.MIN_SIZE = 0  # instances smaller than this many voxels are removed (0 = keep all)
