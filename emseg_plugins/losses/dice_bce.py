"""``dice_bce``: binary cross-entropy + soft Dice per channel, averaged over channels.

Logits (B, K, *spatial) against {0, 1} targets of the same shape; NaN targets and zeros of the
optional ``valid_mask`` are ignored (no loss, no gradient). The soft Dice is written here because
MONAI's ``MaskedDiceLoss`` takes a single mask channel for all classes, and CellMap marks
unannotated voxels per class.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.losses.masking import annotated


class DiceBCELoss(nn.Module):
    """``bce_weight * BCE + dice_weight * (1 - Dice)``; each channel's Dice pools batch and space."""

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0, smooth: float = 1.0):
        super().__init__()
        self.bce_weight, self.dice_weight, self.smooth = bce_weight, dice_weight, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        target, mask = annotated(target.to(logits.dtype), valid_mask)
        logits = logits.float()
        bce = F.binary_cross_entropy_with_logits(logits, target.float(), weight=mask.float(), reduction="sum")
        bce = bce / mask.sum().clamp_min(1.0)
        reduce = [0, *range(2, logits.ndim)]  # all but the channel axis
        prob = torch.sigmoid(logits) * mask
        inter = (prob * target).sum(reduce)
        denom = prob.sum(reduce) + (target * mask).sum(reduce)
        has_voxels = mask.sum(reduce) > 0
        dice = (2 * inter + self.smooth) / (denom + self.smooth)
        dice_loss = ((1 - dice) * has_voxels).sum() / has_voxels.sum().clamp_min(1)
        return self.bce_weight * bce + self.dice_weight * dice_loss


def add_dice_bce_config(cfg: CN) -> None:
    """LOSS.DICE_BCE: term weights and the Dice smoothing constant."""
    cfg.LOSS.DICE_BCE = CN()
    cfg.LOSS.DICE_BCE.BCE_WEIGHT = 1.0
    cfg.LOSS.DICE_BCE.DICE_WEIGHT = 1.0
    cfg.LOSS.DICE_BCE.SMOOTH = 1.0


def build_dice_bce(cfg: CN) -> DiceBCELoss:
    node = cfg.LOSS.DICE_BCE
    return DiceBCELoss(node.BCE_WEIGHT, node.DICE_WEIGHT, node.SMOOTH)
