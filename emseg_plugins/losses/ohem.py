"""``ohem``: online hard example mining over voxels, on the per-voxel binary cross-entropy.

Every annotated (class, voxel) pair of the batch competes as one example: all classes, samples and
positions are pooled. Unannotated ones (NaN target, ``valid_mask`` 0) never compete, so they are
never kept and get no gradient. The kept examples are

* ``MODE: fraction``: the ``ceil(KEEP_FRACTION * n)`` hardest of the ``n`` annotated examples;
* ``MODE: threshold``: every example whose BCE exceeds ``THRESHOLD``;

and in both modes at least the ``MIN_KEPT`` hardest (at most all ``n``). The loss is the mean BCE of
the kept examples; the selection itself carries no gradient. A batch with nothing annotated (or, with
``MIN_KEPT: 0``, nothing above the threshold) gives exactly 0.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import require, require_choice
from emseg_plugins.losses.config_nodes import add_ohem_config  # noqa: F401  # re-exported
from emseg_plugins.losses.region import mask_batch, zero_loss

MODES = ("fraction", "threshold")


class OHEMLoss(nn.Module):
    """Mean BCE over the hardest annotated examples (see the module docstring)."""

    def __init__(self, mode: str = "fraction", keep_fraction: float = 0.25, threshold: float = 0.7, min_kept: int = 512):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"ohem mode {mode!r} is not one of {MODES}")
        self.mode, self.keep_fraction, self.threshold, self.min_kept = mode, keep_fraction, threshold, min_kept

    def kept_count(self, hardness: torch.Tensor, annotated: int) -> int:
        """How many of the ``annotated`` examples to keep, given their losses ``hardness`` (annotated only)."""
        if self.mode == "fraction":
            # round() first so that e.g. 0.3 * 10 = 3.0000000000000004 keeps 3, not 4
            chosen = math.ceil(round(self.keep_fraction * annotated, 6))
        else:
            chosen = int((hardness > self.threshold).sum())
        return min(max(chosen, self.min_kept), annotated)

    def kept(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Bool tensor shaped like ``logits``: the examples this batch keeps."""
        per_voxel, mask = self._per_voxel(logits, target, valid_mask)
        flat = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)
        index = self._kept_index(per_voxel, mask)
        if index is not None:
            flat[index] = True
        return flat.view(mask.shape)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        per_voxel, mask = self._per_voxel(logits, target, valid_mask)
        index = self._kept_index(per_voxel, mask)
        if index is None or index.numel() == 0:  # nothing annotated, or nothing hard enough to keep
            return zero_loss(logits)
        return per_voxel.reshape(-1)[index].mean()

    def _per_voxel(self, logits, target, valid_mask) -> tuple[torch.Tensor, torch.Tensor]:
        batch = mask_batch(logits, target, valid_mask)
        return F.binary_cross_entropy_with_logits(batch.logits, batch.target, reduction="none"), batch.mask

    def _kept_index(self, per_voxel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        flat_mask = mask.reshape(-1)
        annotated = int(flat_mask.sum())
        if annotated == 0:
            return None
        # unannotated examples get -inf hardness so they can never be among the top k (k <= annotated)
        hardness = torch.where(flat_mask, per_voxel.detach().reshape(-1), per_voxel.new_tensor(-math.inf))
        k = self.kept_count(hardness[flat_mask], annotated)
        return hardness.topk(k, sorted=False).indices


def build_ohem(cfg: CN) -> OHEMLoss:
    """Online hard example mining: BCE over the hardest voxels (a fraction or above a threshold)."""
    node = cfg.LOSS.OHEM
    require_choice("LOSS.OHEM.MODE", node.MODE, MODES)
    require(0 < node.KEEP_FRACTION <= 1, "LOSS.OHEM.KEEP_FRACTION", node.KEEP_FRACTION, "in (0, 1]")
    require(node.THRESHOLD >= 0, "LOSS.OHEM.THRESHOLD", node.THRESHOLD, ">= 0")
    require(node.MIN_KEPT >= 0, "LOSS.OHEM.MIN_KEPT", node.MIN_KEPT, ">= 0")
    return OHEMLoss(node.MODE, node.KEEP_FRACTION, node.THRESHOLD, node.MIN_KEPT)
