"""emseg-plugins: plugin-based deep-learning segmentation of electron-microscopy volumes."""
from emseg_plugins.registry import CONFIGS, DATASETS, LOSSES, MODELS

__version__ = "0.1.0"
__all__ = ["MODELS", "LOSSES", "DATASETS", "CONFIGS", "__version__"]
