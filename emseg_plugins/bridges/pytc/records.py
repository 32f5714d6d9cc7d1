"""PyTC's own architectures and losses as ``pytc.<name>`` records of our registries, and the bridge's status line."""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.bridges.pytc.adapters import PyTCLoss, pairs
from emseg_plugins.bridges.pytc.detect import REPOSITORY, detect
from emseg_plugins.bridges.pytc.line import PREFIX, PyTCLine, target_of
from emseg_plugins.errors import ConfigError, PluginError
from emseg_plugins.registry import PluginRecord

ACTIVATIONS = ("auto", "sigmoid", "none")


def provided_records(kind: str) -> list[PluginRecord]:
    """PyTC's own architectures (``model``) or losses (``loss``) as ``pytc.<name>`` records.

    Empty when PyTC is absent or unusable (``emseg plugins`` reports why) and for other kinds; never our adapters.
    """
    try:
        found = detect()
    except PluginError:
        return []
    if found is None or kind not in ("model", "loss"):
        return []
    table, make = (found.models, model_builder) if kind == "model" else (found.losses, loss_builder)
    records = []
    for name, obj in sorted(table.own().items()):
        target = target_of(obj) if obj is not None else table.builds
        records.append(PluginRecord(PREFIX + name, found.distribution, target, builder=make(found, name, obj), version=found.version))
    return records


def _describe(builder: Callable, found: PyTCLine, what: str, name: str, obj: Any) -> None:
    doc = (inspect.getdoc(obj) or "").strip().splitlines() if obj is not None else []
    builder.__doc__ = f"PyTC {found.line} {what} {name!r}" + (f": {doc[0]}" if doc else "")


def model_builder(found: PyTCLine, name: str, obj: Any) -> Callable[[CN], nn.Module]:
    """Our builder for PyTC's architecture ``name``: channels and patch size from our config, ``MODEL.PYTC.OPTS``."""

    def build(cfg: CN) -> nn.Module:
        return found.build_own_model(name, cfg)

    _describe(build, found, "architecture", name, obj)
    return build


def loss_builder(found: PyTCLine, name: str, obj: Any) -> Callable[[CN], nn.Module]:
    """Our builder for PyTC's loss ``name`` (keyword arguments and activation from ``LOSS.PYTC``)."""

    def build(cfg: CN) -> nn.Module:
        node = cfg.LOSS.PYTC if "PYTC" in cfg.LOSS else None
        kwargs = dict(pairs(list(node.KWARGS), "LOSS.PYTC.KWARGS")) if node is not None else {}
        activation = node.ACTIVATION if node is not None else "auto"
        if activation not in ACTIVATIONS:
            raise ConfigError(f"config: LOSS.PYTC.ACTIVATION = {activation!r} is not one of {', '.join(map(repr, ACTIVATIONS))}")
        try:
            fn = found.create_own_loss(name, kwargs)
        except TypeError as exc:
            raise ConfigError(f"config: LOSS.PYTC.KWARGS {list(node.KWARGS) if node else []} do not suit PyTC loss {name!r} ({exc})") from None
        activation = found.default_activation(name) if activation == "auto" else activation
        return PyTCLoss(fn, activation, found.takes_weight_mask(fn))

    _describe(build, found, "loss", name, obj)
    return build


def status_line() -> str:
    """One line on the bridge for ``emseg plugins``: PyTC found (and how much), absent, or not PyTC."""
    try:
        found = detect()
    except PluginError as exc:
        return f"pytc: unavailable: {exc}"
    if found is None:
        return f"pytc: PyTorch Connectomics not installed (optional; {REPOSITORY})"
    return (f"pytc: {found.describe()}: {len(found.models.own())} architectures and {len(found.losses.own())} losses "
            "selectable as pytc.<name>; `emseg pytc -- ...` runs its trainer with these plugins")
