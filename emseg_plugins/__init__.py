"""emseg-plugins: plugin-based deep-learning segmentation of electron-microscopy volumes.

The public API for plugin authors and notebooks (each name is imported on first use, so
``import emseg_plugins`` stays cheap and imports no torch)::

    cfg = load_config("run.yaml", overrides=["SOLVER.BASE_LR", "1e-4"])
    model, loss, data = build_model(cfg), build_loss(cfg), build_dataset(cfg)
    list_plugins()                      # {"model": [...], "loss": [...], ...}
    MODELS.register("my_net")(builder)  # the registries: MODELS, LOSSES, DATASETS, CONFIGS, TARGETS, DECODERS

``Volume``/``VolumeData`` (datasets.patches) make a dataset plugin out of arrays; ``annotated``
(losses.masking) masks NaN labels in a loss; ``require`` (config.keys) checks a config value with a
one-line :class:`ConfigError`. Errors a user can fix derive from :class:`EmsegError`.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that owns it
_PUBLIC = {
    "build_model": "emseg_plugins.build",
    "build_loss": "emseg_plugins.build",
    "build_dataset": "emseg_plugins.build",
    "list_plugins": "emseg_plugins.build",
    "load_config": "emseg_plugins.config.loader",
    "require": "emseg_plugins.config.keys",
    "Volume": "emseg_plugins.datasets.patches",
    "VolumeData": "emseg_plugins.datasets.patches",
    "annotated": "emseg_plugins.losses.masking",
    **{name: "emseg_plugins.errors" for name in ("EmsegError", "ConfigError", "PluginError", "DataError", "CheckpointError",
                                                 "TrainingError", "PluginWarning")},
    **{name: "emseg_plugins.registry" for name in ("MODELS", "LOSSES", "DATASETS", "CONFIGS", "TARGETS", "DECODERS")},
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'emseg_plugins' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
