"""Loss over a model output with optional deep-supervision heads (docs/schemas.md).

The main logits get weight 1; auxiliary logits ``output["aux"][i]`` (lower resolution) get
``LOSS.AUX_WEIGHTS[i]``, or 0.5 ** (i + 1) when that list is empty, against the label resized to
their size by nearest-neighbour (NaN labels stay NaN, so unannotated voxels stay ignored).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from emseg_plugins.errors import ConfigError
from emseg_plugins.models.outputs import aux_of, logits_of


def aux_weights(configured: Sequence[float], count: int) -> list[float]:
    """Weights for ``count`` auxiliary heads; :class:`ConfigError` when the config lists another number."""
    if not configured:
        return [0.5 ** (i + 1) for i in range(count)]
    if len(configured) != count:
        raise ConfigError(f"config: LOSS.AUX_WEIGHTS has {len(configured)} weights but the model has {count} auxiliary heads")
    return list(configured)


def resize_like(tensor: torch.Tensor | None, reference: torch.Tensor) -> torch.Tensor | None:
    """Nearest-neighbour resize of (B, C, *spatial) to ``reference``'s spatial size."""
    if tensor is None or tensor.shape[2:] == reference.shape[2:]:
        return tensor
    return F.interpolate(tensor.float(), size=reference.shape[2:], mode="nearest-exact")


def supervised_loss(
    loss_fn: Callable[..., torch.Tensor], output: Any, label: torch.Tensor,
    valid_mask: torch.Tensor | None = None, weights: Sequence[float] = (),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(total, {"main": ..., "aux1": ..., ...})`` for a tensor or dict model output."""
    parts = {"main": loss_fn(logits_of(output), label, valid_mask)}
    heads = aux_of(output)
    total = parts["main"]
    for i, (head, weight) in enumerate(zip(heads, aux_weights(weights, len(heads))), start=1):
        parts[f"aux{i}"] = loss_fn(head, resize_like(label, head), resize_like(valid_mask, head))
        total = total + weight * parts[f"aux{i}"]
    return total, parts
