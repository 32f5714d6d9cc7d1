"""Build a run's plugins from its config, and list what is installed (the timm-style entry points).

``build_model(cfg)`` is ``MODELS.build(cfg.MODEL.ARCHITECTURE, cfg)``, and likewise for the loss
(``LOSS.NAME``) and the dataset (``DATASET.NAME``); each raises :class:`~emseg_plugins.errors.PluginError`
for an unknown or broken plugin, naming the closest installed one.
"""
from __future__ import annotations

from typing import Any

from yacs.config import CfgNode as CN

from emseg_plugins.registry import CONFIGS, DATASETS, DECODERS, LOSSES, MODELS, TARGETS, Registry

REGISTRIES: dict[str, Registry] = {"model": MODELS, "loss": LOSSES, "dataset": DATASETS, "config": CONFIGS,
                                   "target": TARGETS, "decoder": DECODERS}


def build_model(cfg: CN) -> Any:
    """The ``MODEL.ARCHITECTURE`` network: image (B, C, [Z,] Y, X) -> logits (B, K, [Z,] Y, X) (docs/schemas.md)."""
    return MODELS.build(cfg.MODEL.ARCHITECTURE, cfg)


def build_loss(cfg: CN) -> Any:
    """The ``LOSS.NAME`` loss: ``loss(logits, label, valid_mask=None) -> scalar tensor``."""
    return LOSSES.build(cfg.LOSS.NAME, cfg)


def build_dataset(cfg: CN) -> Any:
    """The ``DATASET.NAME`` dataset plugin's object (its ``volumes(split)`` and training samples)."""
    return DATASETS.build(cfg.DATASET.NAME, cfg)


def list_plugins() -> dict[str, list[str]]:
    """``{kind: sorted installed names}`` for every registry (model, loss, dataset, config, target, decoder)."""
    return {kind: sorted(registry.names()) for kind, registry in REGISTRIES.items()}
