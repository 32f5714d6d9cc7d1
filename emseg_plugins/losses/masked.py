"""``masked``: NaN/``valid_mask`` masking around a loss that does not mask itself.

``LOSS.MASKED.INNER`` names any loss plugin (default ``dice_bce``); it is built through the
``emseg_plugins.losses`` registry with the same config. The wrapper hands it only annotated voxels:
for each class k it gathers the voxels annotated for k (finite target, ``valid_mask`` non-zero) over
the whole batch and calls

    inner(logits_k, target_k, None)   with logits_k, target_k shaped (1, 1, N_k)

then averages the results over the classes that have annotated voxels. Unannotated voxels are never
seen by the inner loss, so they give neither loss nor gradient whatever the inner loss does, and a
batch with nothing annotated gives exactly 0 (the inner loss is then not called).

So the inner loss must work on a (1, 1, N) tensor and be separable over classes: per-voxel and
region losses (BCE, L1, Dice, focal, Tversky...) are; losses needing the spatial layout (boundary,
skeleton) or the class axis (softmax, per-class weights) must mask themselves instead. Region
losses see batch and space pooled per class (as ``dice_bce``'s Dice already does); per-voxel means
become per-class means averaged over classes.

Wrapping ``masked`` in itself is a :class:`ConfigError`, as is wrapping a loss that declares other
``inputs`` than logits and labels (``discriminative``: embeddings and instance ids) or
``class_separable = False`` (``per_class_combo``: it needs every class channel, and masks itself).
Those are attributes of the built loss (docs/schemas.md), so a third-party loss declares them too.
"""
from __future__ import annotations

from contextvars import ContextVar
from typing import Callable

import torch
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.errors import ConfigError
from emseg_plugins.losses.config_nodes import add_masked_config  # noqa: F401  # re-exported
from emseg_plugins.losses.multitask import SEGMENTATION_INPUTS
from emseg_plugins.losses.region import mask_batch, zero_loss
from emseg_plugins.registry import LOSSES

LossFn = Callable[..., torch.Tensor]

# True while build_masked builds its inner loss: a builder reached again meanwhile is a wrapping cycle
# (e.g. INNER names another plugin name bound to build_masked, or a wrapper that builds `masked`).
_BUILDING: ContextVar[bool] = ContextVar("emseg_masked_building", default=False)


class MaskedLoss(nn.Module):
    """Apply ``inner`` class by class to the annotated voxels only (see the module docstring)."""

    def __init__(self, inner: LossFn):
        super().__init__()
        self.inner = inner  # an nn.Module inner loss becomes a submodule (moves with .to(device))

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch = mask_batch(logits, target, valid_mask)
        losses = []
        for k in range(batch.logits.shape[1]):
            keep = batch.mask[:, k]
            if bool(keep.any()):
                losses.append(self.inner(batch.logits[:, k][keep].view(1, 1, -1), batch.target[:, k][keep].view(1, 1, -1), None))
        if not losses:
            return zero_loss(logits)
        return torch.stack([loss.float().reshape(()) for loss in losses]).mean()


def build_masked(cfg: CN) -> MaskedLoss:
    """Any loss plugin (LOSS.MASKED.INNER) with NaN targets as 'not annotated': no loss, no gradient."""
    inner = cfg.LOSS.MASKED.INNER
    if inner == "masked" or _BUILDING.get():
        raise ConfigError(f"config: LOSS.MASKED.INNER = {inner!r} wraps masked in itself; name the loss to mask (e.g. 'dice_bce')")
    builder = LOSSES.get(inner)
    if builder is build_masked:
        raise ConfigError(f"config: LOSS.MASKED.INNER = {inner!r} is the masked loss itself; name the loss to mask (e.g. 'dice_bce')")
    token = _BUILDING.set(True)
    try:
        loss = builder(cfg)
    finally:
        _BUILDING.reset(token)
    check_maskable(loss, inner)
    return MaskedLoss(loss)


def check_maskable(loss: LossFn, name: str) -> None:
    """:class:`ConfigError` unless ``loss`` takes (logits, labels) and is separable over classes, as it declares."""
    inputs = tuple(getattr(loss, "inputs", SEGMENTATION_INPUTS))
    if inputs != SEGMENTATION_INPUTS:
        raise ConfigError(f"config: LOSS.MASKED.INNER = {name!r} takes the model's {inputs[0]} and the batch's {inputs[1]} "
                          "(its `inputs`), not logits and labels; it cannot be masked")
    if not getattr(loss, "class_separable", True):
        raise ConfigError(f"config: LOSS.MASKED.INNER = {name!r} needs all class channels at once (class_separable = False) "
                          "and masks NaN itself; select it as LOSS.NAME directly")
