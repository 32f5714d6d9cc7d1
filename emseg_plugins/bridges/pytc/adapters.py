"""What both PyTC lines share: an emseg model as PyTC trains it, a PyTC loss behind our loss schema, and the
emseg config an adapter builds from (our defaults plus the node values of the PyTC config being run)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.config.defaults import get_cfg_defaults
from emseg_plugins.config.nodes import config_nodes
from emseg_plugins.errors import ConfigError
from emseg_plugins.losses.masking import annotated

MISSING = object()
# The PyTC v1 yacs config that add_cfg_func last added our nodes to, and the paths it added: the adapters
# PyTC builds later read their node values from it.
ACTIVE: dict[str, Any] = {"cfg": None, "added": []}


def is_adapter(obj: Any) -> bool:
    """Whether ``obj`` is one of our adapters (never listed as PyTC's own, replaced on reinstall)."""
    return bool(getattr(obj, "emseg_adapter", False))


def lookup(cfg: Any, path: str) -> Any:
    """The value at dotted ``path`` of a yacs config, or :data:`MISSING`."""
    node = cfg
    for part in path.split("."):
        if not isinstance(node, CN) or part not in node:
            return MISSING
        node = node[part]
    return node


def assign(cfg: CN, path: str, value: Any) -> None:
    """Set dotted ``path`` of a yacs config, creating the sections it lacks."""
    *parents, leaf = path.split(".")
    node = cfg
    for part in parents:
        if part not in node:
            node[part] = CN()
        node = node[part]
    node[leaf] = value


def node_paths(name: str) -> list[str]:
    """The paths the config node named ``name`` adds (e.g. ``ohem`` -> ``["LOSS.OHEM"]``)."""
    return [p for node in config_nodes() if node.record.name == name for p in node.adds]


def emseg_cfg(core: dict[str, Any]) -> CN:
    """Our config for an adapter: defaults, every plugin node's values from the active PyTC config, then ``core``."""
    cfg = get_cfg_defaults()
    active = ACTIVE["cfg"]
    for path in ACTIVE["added"] if active is not None else []:
        value = lookup(active, path)
        if value is not MISSING:
            assign(cfg, path, value.clone() if isinstance(value, CN) else value)
    for path, value in core.items():
        assign(cfg, path, value)
    return cfg


def pairs(values: list[str], key: str) -> list[tuple[str, Any]]:
    """``[KEY, VALUE, ...]`` -> ``[(KEY, decoded VALUE), ...]``; :class:`ConfigError` on an odd count."""
    if len(values) % 2:
        raise ConfigError(f"config: {key} = {list(values)} must be KEY VALUE pairs")
    return [(str(k), CN._decode_cfg_value(v) if isinstance(v, str) else v) for k, v in zip(values[::2], values[1::2])]


class PyTCModel(nn.Module):
    """An emseg model as PyTC trains it: returns the main logits only (no deep-supervision list).

    2D emseg models also take PyTC's (B, C, 1, Y, X) inputs: the singleton Z is removed and put back.
    """

    def __init__(self, model: nn.Module, dims: int):
        super().__init__()
        self.model, self.dims = model, dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeeze = self.dims == 2 and x.dim() == 5 and x.shape[2] == 1
        out = self.model(x[:, :, 0] if squeeze else x)
        logits = out["logits"] if isinstance(out, dict) else out  # docs/schemas.md: tensor or dict with logits
        return logits.unsqueeze(2) if squeeze else logits


class PyTCLoss(nn.Module):
    """A PyTC loss behind our loss schema: NaN labels and ``valid_mask`` zeros are ignored.

    Ignored voxels get prediction and target 0 and (``weighted``) weight 0, so weighted losses skip them and
    Dice-type sums do not see them; a batch with nothing annotated gives 0.
    """

    def __init__(self, fn: nn.Module, activation: str, weighted: bool):
        super().__init__()
        self.fn, self.activation, self.weighted = fn, activation, weighted

    def forward(self, logits: torch.Tensor, label: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        target, mask = annotated(label, valid_mask)
        if not mask.any():
            return logits.sum() * 0.0
        pred = torch.sigmoid(logits) if self.activation == "sigmoid" else logits
        pred = pred * mask
        if self.weighted:
            return self.fn(pred, target=target, weight_mask=mask)
        return self.fn(pred, target)
