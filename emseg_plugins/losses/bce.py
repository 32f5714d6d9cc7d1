"""``bce``: binary cross-entropy on logits against targets in [0, 1] (soft targets allowed).

The loss for continuous targets such as the normalised distance transform (``TARGET.NAMES:
[distance]``), where a Dice term would reward the wrong thing. NaN targets and zeros of
``valid_mask`` are ignored (no loss, no gradient); the mean runs over annotated voxels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.losses.region import mask_batch, voxel_mean


class BCELoss(nn.Module):
    """Masked ``binary_cross_entropy_with_logits``: (B, K, *spatial) logits and targets -> scalar."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch = mask_batch(logits, target, valid_mask)
        return voxel_mean(F.binary_cross_entropy_with_logits(batch.logits, batch.target, reduction="none"), batch.mask)


def build_bce(cfg: CN) -> BCELoss:
    """Binary cross-entropy on logits, soft targets allowed (distance maps), unannotated voxels ignored."""
    return BCELoss()
