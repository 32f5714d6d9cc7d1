"""Valid-voxel masks shared by every loss and metric.

A target voxel is annotated when it is finite (NaN marks an unannotated class/voxel, as CellMap data
does) and the batch's optional ``valid_mask`` is non-zero there.
"""
from __future__ import annotations

import torch


def annotated(target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(target with NaN -> 0, float mask)``; both shaped like ``target`` (B, K, *spatial)."""
    mask = torch.isfinite(target)
    if valid_mask is not None:
        mask = mask & (valid_mask.expand_as(target) > 0)
    return torch.where(mask, target, torch.zeros_like(target)), mask.to(target.dtype)
