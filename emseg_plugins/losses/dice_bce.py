"""``dice_bce``: binary cross-entropy + soft Dice per channel, averaged over channels.

Logits (B, K, *spatial) against {0, 1} targets of the same shape; NaN targets and zeros of the
optional ``valid_mask`` are ignored (no loss, no gradient). The masked BCE and the masked MONAI
Dice come from :mod:`emseg_plugins.losses.region`, shared with ``dice`` and ``per_class_combo``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.losses.config_nodes import add_dice_bce_config  # noqa: F401  # re-exported
from emseg_plugins.losses.region import channel_mean, mask_batch, soft_dice_per_class, voxel_mean


class DiceBCELoss(nn.Module):
    """``bce_weight * BCE + dice_weight * (1 - Dice)``; each channel's Dice pools batch and space."""

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0, smooth: float = 1.0):
        super().__init__()
        self.bce_weight, self.dice_weight, self.smooth = bce_weight, dice_weight, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch = mask_batch(logits, target, valid_mask)
        bce = voxel_mean(F.binary_cross_entropy_with_logits(batch.logits, batch.target, reduction="none"), batch.mask)
        dice = channel_mean(soft_dice_per_class(batch, self.smooth), batch.class_has_voxels())
        return self.bce_weight * bce + self.dice_weight * dice


def build_dice_bce(cfg: CN) -> DiceBCELoss:
    """Soft Dice + BCE on sigmoid logits, ignoring unannotated voxels (the demo's loss)."""
    node = cfg.LOSS.DICE_BCE
    return DiceBCELoss(node.BCE_WEIGHT, node.DICE_WEIGHT, node.SMOOTH)
