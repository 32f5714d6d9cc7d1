"""A third-party plugin distribution: one model, one loss and their config nodes.

    pip install -e examples/emseg-example-plugin
    emseg plugins                      # shows tiny_unet and l1_dice from emseg-example-plugin
    pytc-train --config-file examples/emseg-example-plugin/tiny.yaml
"""
from setuptools import setup

setup(
    name="emseg-example-plugin",
    version="0.1.0",
    description="Example third-party plugin for emseg-plugins",
    packages=["emseg_example_plugin"],
    install_requires=["emseg-plugins"],
    entry_points={
        "emseg_plugins.models": ["tiny_unet = emseg_example_plugin.tiny_unet:build_tiny_unet"],
        "emseg_plugins.losses": ["soft_l1 = emseg_example_plugin.tiny_unet:build_soft_l1"],
        "emseg_plugins.configs": ["tiny_unet = emseg_example_plugin.tiny_unet:add_tiny_unet_config"],
    },
)
