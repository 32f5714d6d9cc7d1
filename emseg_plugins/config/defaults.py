"""Default config: PyTorch Connectomics' top-level vocabulary plus one node per plugin.

Keys follow PyTC v1 names where PyTC has them (``SOLVER.BASE_LR``, ``SOLVER.ITERATION_TOTAL``,
``MODEL.ARCHITECTURE``, ``INFERENCE.STRIDE`` ...). Plugins add their own nodes through the
``emseg_plugins.configs`` entry-point group (detectron2's ``add_xxx_config(cfg)`` pattern), so yacs
still rejects a typo anywhere else.
"""
from __future__ import annotations

from yacs.config import CfgNode as CN

from emseg_plugins.config.base import base_defaults
from emseg_plugins.config.nodes import apply_config_nodes


def get_cfg_defaults() -> CN:
    """A fresh, mutable default config with every installed config plugin's node added.

    :class:`PluginError` when a plugin's node changes or removes a key it does not own.
    """
    cfg = base_defaults()
    apply_config_nodes(cfg)
    return cfg
