"""A third-party plugin distribution: one model, one loss, one dataset and their config nodes.

    pip install -e examples/emseg-plugin-example
    emseg plugins                      # tiny_unet, soft_l1 and blobs, from emseg-plugin-example
    pytc-train --config-file examples/emseg-plugin-example/tiny.yaml
    pytest examples/emseg-plugin-example/tests
"""
from setuptools import setup

setup(
    name="emseg-plugin-example",
    version="0.2.0",
    description="Example third-party plugin for emseg-plugins: a model, a loss and a dataset",
    packages=["emseg_plugin_example"],
    install_requires=["emseg-plugins"],
    entry_points={
        "emseg_plugins.models": ["tiny_unet = emseg_plugin_example.tiny_unet:build_tiny_unet"],
        "emseg_plugins.losses": ["soft_l1 = emseg_plugin_example.soft_l1:build_soft_l1"],
        "emseg_plugins.datasets": ["blobs = emseg_plugin_example.blobs:build_blobs"],
        "emseg_plugins.configs": [
            "tiny_unet = emseg_plugin_example.tiny_unet:add_tiny_unet_config",
            "blobs = emseg_plugin_example.blobs:add_blobs_config",
        ],
    },
)
