"""Placeholder while this plugin is being written (replaced in this session)."""
from emseg_plugins.errors import PluginError


def _unbuilt(cfg):
    raise PluginError("this plugin is not built yet")


build_cellmap = _unbuilt


def add_cellmap_config(cfg):
    pass
