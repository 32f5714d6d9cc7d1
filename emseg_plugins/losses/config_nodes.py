"""The built-in losses' config nodes (``emseg_plugins.configs`` entry points), in a module that imports no torch.

Every config load applies every node, so a node lives here, beside nothing heavier than yacs, and not in its
loss's module: ``emseg config --keys`` and a config error answer without importing torch or MONAI. The
builders (``dice_bce.py``, ``region.py``, ``per_class_combo.py``, ``ohem.py``, ``discriminative.py``,
``masked.py``) read these keys and re-export their node's function.
"""
from __future__ import annotations

from yacs.config import CfgNode as CN


def add_dice_bce_config(cfg: CN) -> None:
    """LOSS.DICE_BCE: term weights and the Dice smoothing constant."""
    cfg.LOSS.DICE_BCE = CN()
    cfg.LOSS.DICE_BCE.BCE_WEIGHT = 1.0
    cfg.LOSS.DICE_BCE.DICE_WEIGHT = 1.0
    cfg.LOSS.DICE_BCE.SMOOTH = 1.0


def add_dice_config(cfg: CN) -> None:
    """LOSS.DICE: the smoothing constant added to numerator and denominator."""
    cfg.LOSS.DICE = CN()
    cfg.LOSS.DICE.SMOOTH = 1.0


def add_tversky_config(cfg: CN) -> None:
    """LOSS.TVERSKY: false-positive weight ALPHA, false-negative weight BETA, SMOOTH (as LOSS.DICE's)."""
    cfg.LOSS.TVERSKY = CN()
    cfg.LOSS.TVERSKY.ALPHA = 0.3
    cfg.LOSS.TVERSKY.BETA = 0.7
    cfg.LOSS.TVERSKY.SMOOTH = 1.0


def add_focal_config(cfg: CN) -> None:
    """LOSS.FOCAL: focusing exponent GAMMA; ALPHA balances positives (in [0, 1]; negative = off)."""
    cfg.LOSS.FOCAL = CN()
    cfg.LOSS.FOCAL.GAMMA = 2.0
    cfg.LOSS.FOCAL.ALPHA = -1.0


def add_combo_config(cfg: CN) -> None:
    """LOSS.COMBO: term weights, the focal GAMMA/ALPHA (as LOSS.FOCAL) and the Dice SMOOTH."""
    cfg.LOSS.COMBO = CN()
    cfg.LOSS.COMBO.DICE_WEIGHT = 1.0
    cfg.LOSS.COMBO.FOCAL_WEIGHT = 1.0
    cfg.LOSS.COMBO.GAMMA = 2.0
    cfg.LOSS.COMBO.ALPHA = -1.0
    cfg.LOSS.COMBO.SMOOTH = 1.0


def add_per_class_combo_config(cfg: CN) -> None:
    """LOSS.PER_CLASS_COMBO: ``"name:weight"`` class weights (unlisted classes 1.0), term weights, Dice SMOOTH."""
    cfg.LOSS.PER_CLASS_COMBO = CN()
    cfg.LOSS.PER_CLASS_COMBO.CLASS_WEIGHTS = []  # e.g. ["nuc:3.5", "mito_mem:1.8"]; names from DATASET.CLASSES
    cfg.LOSS.PER_CLASS_COMBO.BCE_WEIGHT = 1.0
    cfg.LOSS.PER_CLASS_COMBO.DICE_WEIGHT = 1.0
    cfg.LOSS.PER_CLASS_COMBO.SMOOTH = 1.0


def add_ohem_config(cfg: CN) -> None:
    """LOSS.OHEM: MODE (fraction | threshold), KEEP_FRACTION, THRESHOLD (a BCE value), MIN_KEPT."""
    cfg.LOSS.OHEM = CN()
    cfg.LOSS.OHEM.MODE = "fraction"  # fraction: the hardest KEEP_FRACTION; threshold: every BCE > THRESHOLD
    cfg.LOSS.OHEM.KEEP_FRACTION = 0.25
    cfg.LOSS.OHEM.THRESHOLD = 0.7  # BCE of a voxel predicted at about 0.5 on its true label (-ln 0.5 = 0.69)
    cfg.LOSS.OHEM.MIN_KEPT = 512  # at least this many (class, voxel) examples per batch, when annotated


def add_discriminative_config(cfg: CN) -> None:
    """LOSS.DISCRIMINATIVE: margins DELTA_V (pull) and DELTA_D (push at 2 * DELTA_D), term weights."""
    cfg.LOSS.DISCRIMINATIVE = CN()
    cfg.LOSS.DISCRIMINATIVE.DELTA_V = 0.5
    cfg.LOSS.DISCRIMINATIVE.DELTA_D = 1.5
    cfg.LOSS.DISCRIMINATIVE.VAR_WEIGHT = 1.0
    cfg.LOSS.DISCRIMINATIVE.DIST_WEIGHT = 1.0
    cfg.LOSS.DISCRIMINATIVE.REG_WEIGHT = 0.001


def add_masked_config(cfg: CN) -> None:
    """LOSS.MASKED: INNER, the loss plugin to wrap (its own config node configures it)."""
    cfg.LOSS.MASKED = CN()
    cfg.LOSS.MASKED.INNER = "dice_bce"
