"""``per_class_combo``: Dice + BCE per class, weighted by class name.

For each class k with annotated voxels in the batch,

    L_k = BCE_WEIGHT * BCE_k + DICE_WEIGHT * (1 - Dice_k)

where BCE_k is the mean binary cross-entropy over that class's annotated voxels and Dice_k the soft
Dice pooled over batch and space (as in ``dice_bce``). The loss is the weighted mean
``sum_k w_k L_k / sum_k w_k`` over those classes, so raising one class's weight raises its share of
the loss while the loss keeps the scale of an unweighted Dice + BCE (with all weights 1 and every
class annotated on the same voxels it equals ``dice_bce``). NaN targets and zeros of ``valid_mask``
are ignored; a batch with nothing annotated gives exactly 0.

Weights are given by class name, one ``"name:weight"`` string each; classes not listed weigh 1.0::

    LOSS:
      NAME: per_class_combo
      PER_CLASS_COMBO:
        CLASS_WEIGHTS: ["nuc:3.5", "endo_mem:3.0", "er_mem:2.5", "mito_mem:1.8"]
"""
from __future__ import annotations

import difflib
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.errors import ConfigError
from emseg_plugins.config.keys import require
from emseg_plugins.losses.config_nodes import add_per_class_combo_config  # noqa: F401  # re-exported
from emseg_plugins.losses.region import mask_batch, soft_dice_per_class, voxel_mean

KEY = "LOSS.PER_CLASS_COMBO.CLASS_WEIGHTS"


class PerClassComboLoss(nn.Module):
    """Weighted mean over classes of ``bce_weight * BCE_k + dice_weight * (1 - Dice_k)``."""

    class_separable = False  # weights by class name: needs every class channel at once (the `masked` wrapper refuses it)

    def __init__(self, class_weights: Sequence[float], bce_weight: float = 1.0, dice_weight: float = 1.0, smooth: float = 1.0):
        super().__init__()
        self.register_buffer("class_weights", torch.as_tensor(list(class_weights), dtype=torch.float32))
        self.bce_weight, self.dice_weight, self.smooth = bce_weight, dice_weight, smooth

    def per_class(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L_k, has_voxels_k)``, both (K,): each class's unweighted loss and whether it counts."""
        if logits.shape[1] != self.class_weights.numel():
            raise ValueError(
                f"per_class_combo has {self.class_weights.numel()} class weights (DATASET.CLASSES) but the logits have {logits.shape[1]} channels"
            )
        batch = mask_batch(logits, target, valid_mask)
        bce = F.binary_cross_entropy_with_logits(batch.logits, batch.target, reduction="none")
        per_class = self.bce_weight * voxel_mean(bce, batch.mask, batch.reduce_dims)
        per_class = per_class + self.dice_weight * soft_dice_per_class(batch, self.smooth)
        return per_class, batch.class_has_voxels()

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        per_class, has_voxels = self.per_class(logits, target, valid_mask)
        weights = torch.where(has_voxels, self.class_weights.to(per_class.device), per_class.new_zeros(()))
        total = weights.sum()
        weighted = torch.where(weights > 0, weights * per_class, per_class.new_zeros(())).sum()
        return torch.where(total > 0, weighted / total.clamp_min(torch.finfo(total.dtype).tiny), weighted)


def parse_class_weights(entries: Sequence[str], classes: Sequence[str]) -> list[float]:
    """One weight per class of ``classes`` from ``"name:weight"`` strings; :class:`ConfigError` on a mistake."""
    weights = {name: 1.0 for name in classes}
    seen: set[str] = set()
    for entry in entries:
        name, sep, raw = str(entry).rpartition(":")
        name = name.strip()
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not sep or not name or not math.isfinite(value):
            raise ConfigError(f"config: {KEY} entry {entry!r} is not \"name:weight\" (e.g. \"nuc:3.5\")")
        if name not in weights:
            close = difflib.get_close_matches(name, list(classes), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"DATASET.CLASSES is {list(classes)}"
            raise ConfigError(f"config: {KEY} weighs class {name!r}, which is not in DATASET.CLASSES; {hint}")
        if name in seen:
            raise ConfigError(f"config: {KEY} weighs class {name!r} twice; keep one entry")
        if value < 0:
            raise ConfigError(f"config: {KEY} weight of class {name!r} is {value}; weights must be >= 0")
        seen.add(name)
        weights[name] = value
    return [weights[name] for name in classes]


def build_per_class_combo(cfg: CN) -> PerClassComboLoss:
    """Dice + BCE per class, weighted by class name (LOSS.PER_CLASS_COMBO.CLASS_WEIGHTS)."""
    node = cfg.LOSS.PER_CLASS_COMBO
    require(node.BCE_WEIGHT >= 0, "LOSS.PER_CLASS_COMBO.BCE_WEIGHT", node.BCE_WEIGHT, ">= 0")
    require(node.DICE_WEIGHT >= 0, "LOSS.PER_CLASS_COMBO.DICE_WEIGHT", node.DICE_WEIGHT, ">= 0")
    require(node.SMOOTH > 0, "LOSS.PER_CLASS_COMBO.SMOOTH", node.SMOOTH, "> 0")
    weights = parse_class_weights(node.CLASS_WEIGHTS, list(cfg.DATASET.CLASSES))
    return PerClassComboLoss(weights, node.BCE_WEIGHT, node.DICE_WEIGHT, node.SMOOTH)
