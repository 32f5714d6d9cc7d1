"""Config plugins' nodes: apply each to the core defaults and report collisions with keys it does not own.

A config plugin (``emseg_plugins.configs``) must *add* its own node, e.g. ``cfg.MODEL.TINY_UNET = CN()``; it
must never change or remove a key that the core defaults, or another plugin, already defined. Each node is
applied to a fresh copy of the core defaults, in name order, and compared before/after: a changed or removed
key is a collision, reported as one line naming the plugin, its distribution and the key.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from yacs.config import CfgNode as CN

from emseg_plugins.config.base import base_defaults
from emseg_plugins.errors import PluginError
from emseg_plugins.registry import CONFIGS, PluginRecord


@dataclass
class ConfigNode:
    """One config plugin: the dotted paths it adds (topmost only, e.g. ``MODEL.TINY_UNET``) or its problem."""

    record: PluginRecord
    adds: list[str] = field(default_factory=list)
    problem: str | None = None


def flatten(cfg: CN, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted path, value)`` of every section (value ``CN``) and leaf of ``cfg``."""
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        yield path, value
        if isinstance(value, CN):
            yield from flatten(value, f"{path}.")


def config_nodes(records: list[PluginRecord] | None = None) -> list[ConfigNode]:
    """Apply every loadable config plugin in turn to the core defaults; record what each adds or breaks."""
    cfg = base_defaults()
    owner: dict[str, str] = {path: "the core defaults" for path, _ in flatten(cfg)}
    nodes = []
    for record in CONFIGS.records() if records is None else records:
        node = ConfigNode(record)
        nodes.append(node)
        if record.status != "ok":
            continue
        before = {path: _snapshot(value) for path, value in flatten(cfg)}
        trial = cfg.clone()
        try:
            record.builder(trial)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001  # a third-party node builder may fail in any way
            node.problem = f"config node {record.name!r} from distribution {record.source!r} ({record.target}) raised {type(exc).__name__}: {exc}"
            continue
        after = dict(flatten(trial))
        node.problem = _collision(record, before, after, owner)
        if node.problem:
            continue
        new = [p for p in after if p not in before]
        node.adds = [p for p in new if p.rpartition(".")[0] not in new]
        for path in new:
            owner[path] = f"config node {record.name!r} ({record.source})"
        cfg = trial
    return nodes


def _snapshot(value: Any) -> Any:
    return "<section>" if isinstance(value, CN) else (list(value) if isinstance(value, (list, tuple)) else value)


def _collision(record: PluginRecord, before: dict[str, Any], after: dict[str, Any], owner: dict[str, str]) -> str | None:
    """One line if ``record``'s node changed or removed a key that existed before it ran."""
    for path, old in before.items():
        who = owner.get(path, "the core defaults")
        what = "core key" if who == "the core defaults" else f"key (added by {who})"
        if path not in after:
            change = "removes"
        elif _snapshot(after[path]) != old:
            change = "changes" if old != "<section>" else "replaces section"
        else:
            continue
        detail = f" ({old!r} -> {_snapshot(after[path])!r})" if change == "changes" else ""
        return (f"config node {record.name!r} from distribution {record.source!r} ({record.target}) {change} {what} "
                f"{path}{detail}; a plugin must only add its own node, e.g. cfg.MODEL.{record.name.upper()} = CN()")
    return None


def apply_config_nodes(cfg: CN, strict: bool = True) -> None:
    """Add every config plugin's node to ``cfg``; :class:`PluginError` on the first collision
    (``strict``), else nodes with a problem are left out (``emseg plugins --check`` reports them)."""
    for node in config_nodes():
        if node.problem:
            if not strict:
                continue
            raise PluginError(node.problem)
        if node.record.status == "ok":
            node.record.builder(cfg)  # type: ignore[misc]
