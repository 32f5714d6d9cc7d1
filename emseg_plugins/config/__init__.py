"""yacs configuration: defaults, loading with ``_BASE_`` and overrides, validation."""
from emseg_plugins.config.defaults import get_cfg_defaults
from emseg_plugins.config.loader import load_config

__all__ = ["get_cfg_defaults", "load_config"]
