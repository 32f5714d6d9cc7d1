"""Placeholder while this plugin is being written (replaced in this session)."""
from emseg_plugins.errors import PluginError


def _unbuilt(cfg):
    raise PluginError("this plugin is not built yet")


build_unet2d_ebd = _unbuilt
build_unetv3_ebd = _unbuilt
build_unetv3_ebd2 = _unbuilt


def add_embedding_config(cfg):
    pass
