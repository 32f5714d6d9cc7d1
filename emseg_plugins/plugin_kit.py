"""What the plugin kit checks: config nodes that collide with core keys, and builders that return the wrong kind.

Config nodes are applied and checked in :mod:`emseg_plugins.config.nodes` (re-exported here); this module
builds each plugin with a config and checks what its builder returns.
"""
from __future__ import annotations

from dataclasses import dataclass

from yacs.config import CfgNode as CN

from emseg_plugins.config.nodes import ConfigNode, apply_config_nodes, config_nodes, flatten
from emseg_plugins.errors import EmsegError, PluginError
from emseg_plugins.registry import PluginRecord, Registry

__all__ = ["BuildCheck", "ConfigNode", "apply_config_nodes", "check_build", "config_nodes", "flatten"]


@dataclass
class BuildCheck:
    """The outcome of building one plugin with a config: ok, skipped (needs other settings) or broken."""

    kind: str
    name: str
    status: str
    detail: str = ""


def check_build(registry: Registry, record: PluginRecord, cfg: CN, key: str) -> BuildCheck:
    """Build ``record`` with ``cfg`` (``key`` set to its name) and check what its builder returned."""
    trial = cfg.clone()
    trial.defrost()
    node, _, leaf = key.rpartition(".")
    trial[node][leaf] = record.name
    try:
        registry.build(record.name, trial)
    except PluginError as exc:
        return BuildCheck(registry.kind, record.name, "broken", str(exc))
    except EmsegError as exc:  # the plugin works, but these settings do not suit it
        return BuildCheck(registry.kind, record.name, "skipped", f"not built with this config: {exc}")
    except Exception as exc:  # noqa: BLE001  # an unexpected failure inside a third-party builder
        return BuildCheck(registry.kind, record.name, "broken",
                          f"{registry.kind} {record.name!r} from distribution {record.source!r} ({record.target}) "
                          f"raised {type(exc).__name__}: {exc}")
    return BuildCheck(registry.kind, record.name, "ok")
