"""Region losses for multi-label sigmoid outputs: ``dice``, ``tversky``, ``focal`` and ``combo`` (Dice + focal).

Every loss here follows the loss contract of docs/schemas.md: ``loss(logits, target, valid_mask=None)``
with logits and {0, 1} targets shaped (B, K, *spatial) (2D or 3D); NaN targets and zeros of
``valid_mask`` give neither loss nor gradient, and a batch with nothing annotated gives exactly 0.

The arithmetic is MONAI's (``DiceLoss``, ``TverskyLoss``, ``FocalLoss``). None of them takes a
per-class mask (their ``ignore_index`` is one label value for all classes, and CellMap marks
unannotated voxels per class with NaN), so the masking happens here, before MONAI sees the tensors:

* overlap losses (Dice, Tversky) get ``sigmoid(logits)`` and the target both set to 0 where a voxel is
  not annotated. Such a voxel then adds nothing to tp, fp, fn, nor to either sum, and its gradient is 0,
  which is exactly "ignored". (Zeroing the *logits* instead would not be: sigmoid(0) = 0.5 would count
  as half a false positive.) Channels without any annotated voxel are left out of the channel mean.
* per-voxel losses (focal, BCE) are computed everywhere with NaN targets replaced by 0 and then
  averaged over annotated voxels only with ``torch.where`` (exactly zero loss and gradient elsewhere).

The helpers below are shared with ``per_class_combo``, ``ohem``, ``discriminative`` and ``masked``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.losses import DiceLoss as MonaiDiceLoss
from monai.losses import FocalLoss as MonaiFocalLoss
from monai.losses import TverskyLoss as MonaiTverskyLoss
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import require
from emseg_plugins.losses.config_nodes import (  # noqa: F401  # re-exported
    add_dice_config,
    add_tversky_config,
    add_focal_config,
    add_combo_config,
)
from emseg_plugins.losses.masking import annotated

# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


@dataclass
class Masked:
    """A batch prepared for masked losses: float32 logits, target (NaN -> 0) and a boolean mask."""

    logits: torch.Tensor  # (B, K, *spatial) float32, still attached to the graph
    target: torch.Tensor  # same shape, finite, 0 where not annotated
    mask: torch.Tensor  # same shape, bool: True where the voxel is annotated for that class

    @property
    def reduce_dims(self) -> list[int]:
        """Every axis but the channel axis (batch and space are pooled per class)."""
        return [0, *range(2, self.logits.ndim)]

    def masked_probabilities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sigmoid(logits), target)``, both 0 where not annotated (for overlap losses)."""
        zero = self.logits.new_zeros(())
        return torch.where(self.mask, torch.sigmoid(self.logits), zero), torch.where(self.mask, self.target, zero)

    def class_has_voxels(self) -> torch.Tensor:
        """(K,) bool: the class has at least one annotated voxel in the batch."""
        return self.mask.any(dim=0).reshape(self.mask.shape[1], -1).any(dim=1)


def mask_batch(logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> Masked:
    """Apply :func:`emseg_plugins.losses.masking.annotated` and cast to float32 (mixed precision safe)."""
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same (B, K, *spatial) shape")
    target, mask = annotated(target.float(), None if valid_mask is None else valid_mask.to(target.device))
    return Masked(logits.float(), target, mask > 0)


def zero_loss(tensor: torch.Tensor) -> torch.Tensor:
    """An exact 0 attached to ``tensor``'s graph (backward gives zero gradients, even where it is inf)."""
    return tensor.reshape(-1)[:0].float().sum()


def voxel_mean(per_voxel: torch.Tensor, mask: torch.Tensor, dims: list[int] | None = None) -> torch.Tensor:
    """Mean of ``per_voxel`` over annotated voxels (over ``dims``, default all); 0 where there are none."""
    kept = torch.where(mask, per_voxel, per_voxel.new_zeros(()))
    if dims is None:
        return kept.sum() / mask.sum().clamp_min(1)
    return kept.sum(dims) / mask.sum(dims).clamp_min(1)


def channel_mean(per_class: torch.Tensor, has_voxels: torch.Tensor) -> torch.Tensor:
    """Mean of a (K,) per-class loss over the classes with annotated voxels; 0 if none has any."""
    kept = torch.where(has_voxels, per_class, per_class.new_zeros(()))
    return kept.sum() / has_voxels.sum().clamp_min(1)


def soft_dice_per_class(batch: Masked, smooth: float) -> torch.Tensor:
    """(K,) soft Dice loss ``1 - (2 tp + s) / (sum p + sum g + s)`` pooled over batch and space.

    Same formula as the Dice term of ``dice_bce``; MONAI's ``DiceLoss`` on masked probabilities.
    """
    prob, target = batch.masked_probabilities()
    dice = MonaiDiceLoss(sigmoid=False, batch=True, reduction="none", smooth_nr=smooth, smooth_dr=smooth)
    return dice(prob, target).reshape(-1)


def tversky_per_class(batch: Masked, alpha: float, beta: float, smooth: float) -> torch.Tensor:
    """(K,) Tversky loss ``1 - (tp + s/2) / (tp + alpha fp + beta fn + s/2)`` pooled over batch and space.

    The smoothing is halved so that alpha = beta = 0.5 gives exactly :func:`soft_dice_per_class` with
    the same ``smooth``: (tp + s/2) / (tp + (fp + fn)/2 + s/2) = (2 tp + s) / (sum p + sum g + s).
    """
    prob, target = batch.masked_probabilities()
    tversky = MonaiTverskyLoss(
        sigmoid=False, alpha=alpha, beta=beta, batch=True, reduction="none", smooth_nr=smooth / 2, smooth_dr=smooth / 2
    )
    return tversky(prob, target).reshape(-1)


def focal_per_voxel(batch: Masked, gamma: float, alpha: float | None) -> torch.Tensor:
    """Per-voxel sigmoid focal loss (MONAI); gamma = 0 and alpha = None is the binary cross-entropy."""
    return MonaiFocalLoss(gamma=gamma, alpha=alpha, reduction="none", use_softmax=False)(batch.logits, batch.target)


def _alpha_or_none(alpha: float, full_key: str) -> float | None:
    require(alpha < 0 or 0 <= alpha <= 1, full_key, alpha, "in [0, 1], or negative for no class balancing")
    return None if alpha < 0 else float(alpha)


# --------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------


class DiceLoss(nn.Module):
    """``1 - Dice`` per class (batch and space pooled), averaged over classes with annotated voxels."""

    def __init__(self, smooth: float = 1.0):
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch = mask_batch(logits, target, valid_mask)
        return channel_mean(soft_dice_per_class(batch, self.smooth), batch.class_has_voxels())


class TverskyLoss(nn.Module):
    """``1 - Tversky index`` per class; ``alpha`` weighs false positives, ``beta`` false negatives.

    alpha = beta = 0.5 is the Dice loss; beta > alpha favours recall (small or thin structures).
    """

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0):
        super().__init__()
        self.alpha, self.beta, self.smooth = alpha, beta, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch = mask_batch(logits, target, valid_mask)
        per_class = tversky_per_class(batch, self.alpha, self.beta, self.smooth)
        return channel_mean(per_class, batch.class_has_voxels())


class FocalLoss(nn.Module):
    """Sigmoid focal loss ``-alpha_t (1 - p_t)^gamma log p_t``, averaged over annotated voxels.

    ``alpha`` None: no class balancing (then gamma = 0 is the binary cross-entropy).
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None):
        super().__init__()
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch = mask_batch(logits, target, valid_mask)
        return voxel_mean(focal_per_voxel(batch, self.gamma, self.alpha), batch.mask)


class ComboLoss(nn.Module):
    """``dice_weight * Dice loss + focal_weight * focal loss`` (each as in :class:`DiceLoss`, :class:`FocalLoss`)."""

    def __init__(
        self, dice_weight: float = 1.0, focal_weight: float = 1.0, gamma: float = 2.0, alpha: float | None = None, smooth: float = 1.0
    ):
        super().__init__()
        self.dice_weight, self.focal_weight = dice_weight, focal_weight
        self.gamma, self.alpha, self.smooth = gamma, alpha, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch = mask_batch(logits, target, valid_mask)
        dice = channel_mean(soft_dice_per_class(batch, self.smooth), batch.class_has_voxels())
        focal = voxel_mean(focal_per_voxel(batch, self.gamma, self.alpha), batch.mask)
        return self.dice_weight * dice + self.focal_weight * focal


# --------------------------------------------------------------------------------------------
# builders (config nodes: losses/config_nodes.py)
# --------------------------------------------------------------------------------------------


def build_dice(cfg: CN) -> DiceLoss:
    """Soft Dice loss per class (MONAI DiceLoss), mean over classes."""
    node = cfg.LOSS.DICE
    require(node.SMOOTH > 0, "LOSS.DICE.SMOOTH", node.SMOOTH, "> 0")
    return DiceLoss(node.SMOOTH)


def build_tversky(cfg: CN) -> TverskyLoss:
    """Tversky loss (MONAI TverskyLoss): ALPHA weighs false positives, BETA false negatives."""
    node = cfg.LOSS.TVERSKY
    require(node.ALPHA >= 0, "LOSS.TVERSKY.ALPHA", node.ALPHA, ">= 0")
    require(node.BETA >= 0, "LOSS.TVERSKY.BETA", node.BETA, ">= 0")
    require(node.ALPHA + node.BETA > 0, "LOSS.TVERSKY.ALPHA + LOSS.TVERSKY.BETA", node.ALPHA + node.BETA, "> 0")
    require(node.SMOOTH > 0, "LOSS.TVERSKY.SMOOTH", node.SMOOTH, "> 0")
    return TverskyLoss(node.ALPHA, node.BETA, node.SMOOTH)


def build_focal(cfg: CN) -> FocalLoss:
    """Focal loss (MONAI FocalLoss) on sigmoid logits: GAMMA focuses on hard voxels."""
    node = cfg.LOSS.FOCAL
    require(node.GAMMA >= 0, "LOSS.FOCAL.GAMMA", node.GAMMA, ">= 0")
    return FocalLoss(node.GAMMA, _alpha_or_none(node.ALPHA, "LOSS.FOCAL.ALPHA"))


def build_combo(cfg: CN) -> ComboLoss:
    """Combo loss: Dice + focal, weighted."""
    node = cfg.LOSS.COMBO
    require(node.DICE_WEIGHT >= 0, "LOSS.COMBO.DICE_WEIGHT", node.DICE_WEIGHT, ">= 0")
    require(node.FOCAL_WEIGHT >= 0, "LOSS.COMBO.FOCAL_WEIGHT", node.FOCAL_WEIGHT, ">= 0")
    require(node.GAMMA >= 0, "LOSS.COMBO.GAMMA", node.GAMMA, ">= 0")
    require(node.SMOOTH > 0, "LOSS.COMBO.SMOOTH", node.SMOOTH, "> 0")
    alpha = _alpha_or_none(node.ALPHA, "LOSS.COMBO.ALPHA")
    return ComboLoss(node.DICE_WEIGHT, node.FOCAL_WEIGHT, node.GAMMA, alpha, node.SMOOTH)
