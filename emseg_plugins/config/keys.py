"""Dotted config keys (``SOLVER.BASE_LR``): look up, assign, list, and one-line checks of values.

The one place that walks a yacs ``CfgNode`` along a dotted key; every other module calls these.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from yacs.config import CfgNode as CN

from emseg_plugins.errors import ConfigError


def leaf_name(full_key: str) -> str:
    """``"SOLVER.BASE_LR"`` -> ``"BASE_LR"``."""
    return full_key.rsplit(".", 1)[-1]


def parent_node(cfg: CN, full_key: str, create: bool = False) -> tuple[CN | None, str]:
    """(the node that holds the key's leaf, the leaf's name); the node is None where a parent is missing
    or not a section, unless ``create`` adds the missing sections."""
    *parents, leaf = full_key.split(".")
    node = cfg
    for part in parents:
        if create and part not in node:
            node[part] = CN()
        node = node.get(part) if isinstance(node, CN) else None
        if not isinstance(node, CN):
            return None, leaf
    return node, leaf


def lookup(cfg: CN, full_key: str, default: Any = None) -> Any:
    """The value (or section) at a dotted key, or ``default`` where the path does not exist."""
    node, leaf = parent_node(cfg, full_key)
    return node[leaf] if node is not None and leaf in node else default


def assign(cfg: CN, full_key: str, value: Any, create: bool = False) -> None:
    """Set the value at a dotted key; :class:`ConfigError` for an unknown key unless ``create``."""
    node, leaf = parent_node(cfg, full_key, create)
    if node is None or (leaf not in node and not create):
        raise ConfigError(f"config: unknown key {full_key}; `emseg config --keys` lists the valid keys")
    node[leaf] = value


def all_keys(cfg: CN, prefix: str = "") -> Iterable[str]:
    """Every leaf key of ``cfg`` as a dotted path."""
    for key, value in cfg.items():
        if isinstance(value, CN):
            yield from all_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def require(ok: bool, full_key: str, value: Any, rule: str) -> None:
    """:class:`ConfigError` ``config: KEY = value must be RULE`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"config: {full_key} = {value!r} must be {rule}")


def require_choice(full_key: str, value: Any, allowed: Sequence[Any]) -> None:
    """:class:`ConfigError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"config: {full_key} = {value!r} is not one of {', '.join(map(repr, allowed))}")
