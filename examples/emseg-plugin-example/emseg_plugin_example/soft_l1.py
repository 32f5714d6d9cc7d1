"""``soft_l1``: class-balanced mean |sigmoid(logits) - label| over annotated voxels (no config node).

Plain L1 is minimised by the median, i.e. by predicting background wherever foreground is rare; averaging
the foreground and background errors separately keeps the rare class learnable.
"""
from __future__ import annotations

import torch
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.losses.masking import annotated


class SoftL1Loss(nn.Module):
    """logits, label (B, K, ...) -> scalar; NaN labels and valid_mask zeros are ignored; 0 if nothing is annotated."""

    def forward(self, logits: torch.Tensor, label: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        target, mask = annotated(label, valid_mask)
        error = (torch.sigmoid(logits) - target).abs()
        terms = [(error * w).sum() / w.sum() for w in (mask * target, mask * (1 - target)) if w.sum() > 0]
        return torch.stack(terms).mean() if terms else logits.sum() * 0.0


def build_soft_l1(cfg: CN) -> SoftL1Loss:
    """Class-balanced mean absolute error between probabilities and labels, over annotated voxels."""
    return SoftL1Loss()
