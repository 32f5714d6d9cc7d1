"""Test-time augmentation (TTA): run the model on flipped/transposed windows, un-transform, average.

A variant is a set of flips plus an optional Y<->X transpose of the window. Variants are taken in a
fixed order, so ``INFERENCE.AUG_NUM`` = N uses the first N of them:

    1-4    no transpose: identity, flip X, flip Y, flip Y+X (the four YX-plane flips)
    5-8    the same four after a Y<->X transpose (with 1-4: all eight symmetries of the square)
    9-16   (3D models only) the first eight with Z flipped as well

2D and 2.5D models see windows (B, S, Y, X) (S = INPUT_SLICES neighbours as channels): only the YX
plane is transformed; 3D models see (B, C, Z, Y, X). Every output of the model (``logits`` and
``embedding``, (B, K, ...) and (B, E, ...)) is un-transformed with the inverse of its variant before
the mean, so an embedding is averaged over aligned voxels, never over mirrored ones. The mean is
taken over logits, as MONAI's window blending is, so probabilities are sigmoid(mean logit).
A transposed window whose Y and X sizes differ is (X, Y): the models here are fully convolutional.
Each variant is its own forward pass over the window batch, so peak memory stays that of a run
without TTA; one fused pass of B x AUG_NUM windows multiplies it by AUG_NUM, and on the CPU was no
faster (3D, 8 variants: 0.93 s fused vs 0.77-0.87 s separate on a 32 x 128 x 128 volume).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import require, require_choice

AUG_MODES = ("", "mean")


@dataclass(frozen=True)
class Variant:
    """One symmetry: flip Z (3D only), flip Y, flip X, applied after an optional Y<->X transpose."""

    transpose: bool = False
    flip_z: bool = False
    flip_y: bool = False
    flip_x: bool = False

    def dims(self, ndim: int) -> list[int]:
        """Tensor axes flipped for a (B, C, [Z,] Y, X) tensor of ``ndim`` axes."""
        return [d for d, on in ((ndim - 3, self.flip_z and ndim == 5), (ndim - 2, self.flip_y), (ndim - 1, self.flip_x)) if on]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.transpose:
            x = x.transpose(-1, -2)
        dims = self.dims(x.ndim)
        return x.flip(dims) if dims else x

    def invert(self, y: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`apply` (flips undone first, then the transpose)."""
        dims = self.dims(y.ndim)
        y = y.flip(dims) if dims else y
        return y.transpose(-1, -2) if self.transpose else y


def variants(dims: int) -> list[Variant]:
    """All variants for DATASET.DIMS 2 (8) or 3 (16), in the order documented above."""
    plane = [Variant(t, False, fy, fx) for t in (False, True) for fy, fx in ((False, False), (False, True), (True, False), (True, True))]
    return plane if dims == 2 else plane + [Variant(v.transpose, True, v.flip_y, v.flip_x) for v in plane]


def check_tta(cfg: CN) -> None:
    """ConfigError (one line naming the key) for an unknown AUG_MODE or an AUG_NUM out of range."""
    mode, num = cfg.INFERENCE.AUG_MODE, cfg.INFERENCE.AUG_NUM
    require_choice("INFERENCE.AUG_MODE", mode, AUG_MODES)
    most = len(variants(cfg.DATASET.DIMS))
    require(not mode or 1 <= num <= most, "INFERENCE.AUG_NUM", num,
            f"between 1 and {most} for a {cfg.DATASET.DIMS}D model (4 = YX flips, 8 = + transposes{', 16 = + Z flip' if most == 16 else ''})")


def tta_variants(cfg: CN) -> list[Variant]:
    """The variants a config asks for: [] when TTA is off (AUG_MODE "")."""
    check_tta(cfg)
    return variants(cfg.DATASET.DIMS)[: cfg.INFERENCE.AUG_NUM] if cfg.INFERENCE.AUG_MODE else []


Network = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def with_tta(network: Network, chosen: list[Variant]) -> Network:
    """``network`` (window -> dict of (B, C, ...) outputs) averaged over ``chosen`` variants."""
    if not chosen:
        return network

    def averaged(x: torch.Tensor) -> dict[str, torch.Tensor]:
        total: dict[str, torch.Tensor] = {}
        for variant in chosen:
            out = network(variant.apply(x).contiguous())  # a transposed view is slow in CPU convolutions
            for key, value in out.items():
                value = variant.invert(value).float()
                total[key] = total[key] + value if key in total else value
        return {key: value / len(chosen) for key, value in total.items()}

    return averaged
