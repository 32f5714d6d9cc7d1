"""MONAI networks as model plugins: ``monai_basic_unet``, ``monai_unet`` and ``mednext`` (S/B/M/L).

The networks are MONAI's own (``monai.networks.nets.BasicUNet``, ``UNet``, ``MedNeXt``); this module
only maps the config onto their arguments, checks the combinations that would fail later, and
adapts MedNeXt's deep-supervision output to the model-output schema (docs/schemas.md).

All three run in 2D (``DATASET.DIMS 2``; 2.5D: in_channels = ``MODEL.IN_PLANES`` x
``DATASET.INPUT_SLICES``) or 3D (``DATASET.DIMS 3``; in_channels = ``MODEL.IN_PLANES``). Outputs:
``len(DATASET.CLASSES)`` logit channels at the input resolution. Every spatial size of a patch must
be a multiple of the network's total downsampling (16 for BasicUNet and MedNeXt, the product of
``MODEL.MONAI_UNET.STRIDES`` for UNet); the builders check ``DATASET.PATCH_SIZE`` (the sliding
windows of ``INFERENCE.INPUT_SIZE`` too).

MedNeXt with ``MODEL.MEDNEXT.DEEP_SUPERVISION True`` is wrapped in :class:`DeepSupervision`:

- training mode: ``{"logits": (B, K, *S), "aux": [(B, K, *S/2), (B, K, *S/4), (B, K, *S/8), (B, K, *S/16)]}``
  (highest resolution first);
- eval mode: the main logits tensor (B, K, *S) only. MONAI's MedNeXt skips its auxiliary heads
  outside training, so validation and sliding-window inference see just the main logits.

So a wrapped model never returns a list or tuple; :func:`emseg_plugins.models.outputs.logits_of`
reads the main logits in both modes. Without deep supervision MedNeXt returns a tensor in both modes.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from monai.networks.nets import BasicUNet, MedNeXt, UNet
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import require_choice
from emseg_plugins.errors import ConfigError
from emseg_plugins.models.config_nodes import (  # noqa: F401  # re-exported
    add_monai_basic_unet_config,
    add_monai_unet_config,
    add_mednext_config,
)
from emseg_plugins.models.patch_sizes import require_multiples
from emseg_plugins.targets import output_channels

NORMS = {"instance": ("instance", {"affine": True}), "batch": "batch"}

# MedNeXt variants exactly as monai.networks.nets.mednext.create_mednext builds them (arXiv 2303.09975,
# Table 1); rebuilt here so that MODEL.MEDNEXT.INIT_FILTERS can differ from the factory's fixed 32.
# tests/test_monai_models.py checks that these match the factory at INIT_FILTERS 32.
MEDNEXT_VARIANTS: dict[str, dict[str, Any]] = {
    "S": dict(encoder_expansion_ratio=2, decoder_expansion_ratio=2, bottleneck_expansion_ratio=2,
              blocks_down=(2, 2, 2, 2), blocks_bottleneck=2, blocks_up=(2, 2, 2, 2)),
    "B": dict(encoder_expansion_ratio=(2, 3, 4, 4), decoder_expansion_ratio=(4, 4, 3, 2), bottleneck_expansion_ratio=4,
              blocks_down=(2, 2, 2, 2), blocks_bottleneck=2, blocks_up=(2, 2, 2, 2)),
    "M": dict(encoder_expansion_ratio=(2, 3, 4, 4), decoder_expansion_ratio=(4, 4, 3, 2), bottleneck_expansion_ratio=4,
              blocks_down=(3, 4, 4, 4), blocks_bottleneck=4, blocks_up=(4, 4, 4, 3)),
    "L": dict(encoder_expansion_ratio=(3, 4, 8, 8), decoder_expansion_ratio=(8, 8, 4, 3), bottleneck_expansion_ratio=8,
              blocks_down=(3, 4, 8, 8), blocks_bottleneck=8, blocks_up=(8, 8, 4, 3)),
}
MEDNEXT_LEVELS = 4  # downsamplings by 2 in every variant
BASIC_UNET_LEVELS = 4  # BasicUNet: four max-pools


class DeepSupervision(nn.Module):
    """Adapts a network returning ``(main, aux1, aux2, ...)`` in training (MONAI MedNeXt's form).

    Training: ``{"logits": main, "aux": [aux1, aux2, ...]}`` in the network's order (for MedNeXt:
    highest resolution first). Eval: the main logits tensor only, as MedNeXt computes no auxiliary
    heads outside training.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, Any]:
        out = self.net(x)
        main, aux = (out[0], list(out[1:])) if isinstance(out, (list, tuple)) else (out, [])
        return {"logits": main, "aux": aux} if self.training else main


# -- checks shared by the builders ----------------------------------------------------------------

def _in_channels(cfg: CN, arch: str) -> int:
    require_choice("DATASET.DIMS", cfg.DATASET.DIMS, (2, 3))
    if cfg.MODEL.IN_PLANES < 1:
        raise ConfigError(f"config: MODEL.IN_PLANES = {cfg.MODEL.IN_PLANES} must be at least 1")
    # DATASET.INPUT_SLICES is 1 for 3D models (config/loader.check_values)
    return cfg.MODEL.IN_PLANES * cfg.DATASET.INPUT_SLICES


def _out_channels(cfg: CN) -> int:
    if not cfg.DATASET.CLASSES:
        raise ConfigError("config: DATASET.CLASSES is empty; name at least one class (e.g. [nuc, mito])")
    return output_channels(cfg)


def _positive_ints(key: str, values: Sequence[int], count: int | None = None) -> list[int]:
    values = list(values)
    if count is not None and len(values) != count:
        raise ConfigError(f"config: {key} = {values} must list {count} values")
    if not values or any(not isinstance(v, int) or v < 1 for v in values):
        raise ConfigError(f"config: {key} = {values} must be positive integers")
    return values


# -- builders -------------------------------------------------------------------------------------

def build_monai_basic_unet(cfg: CN) -> BasicUNet:
    """MONAI BasicUNet (four max-pool levels), 2D or 3D from DATASET.DIMS."""
    node = cfg.MODEL.MONAI_BASIC_UNET
    in_channels = _in_channels(cfg, "monai_basic_unet")
    features = _positive_ints("MODEL.MONAI_BASIC_UNET.FEATURES", node.FEATURES, count=6)
    require_choice("MODEL.MONAI_BASIC_UNET.NORM", node.NORM, tuple(NORMS))
    require_choice("MODEL.MONAI_BASIC_UNET.UPSAMPLE", node.UPSAMPLE, ("deconv", "pixelshuffle", "nontrainable"))
    if not 0 <= node.DROPOUT < 1:
        raise ConfigError(f"config: MODEL.MONAI_BASIC_UNET.DROPOUT = {node.DROPOUT} must be in [0, 1)")
    require_multiples(cfg, 2 ** BASIC_UNET_LEVELS, "monai_basic_unet", f"{BASIC_UNET_LEVELS} max-pools by 2")
    return BasicUNet(
        spatial_dims=cfg.DATASET.DIMS, in_channels=in_channels, out_channels=_out_channels(cfg),
        features=features, norm=NORMS[node.NORM], dropout=node.DROPOUT, upsample=node.UPSAMPLE,
    )


def build_monai_unet(cfg: CN) -> UNet:
    """MONAI UNet (residual units, strided convs), 2D or 3D from DATASET.DIMS."""
    node = cfg.MODEL.MONAI_UNET
    in_channels = _in_channels(cfg, "monai_unet")
    channels = _positive_ints("MODEL.MONAI_UNET.CHANNELS", node.CHANNELS)
    if len(channels) < 2:
        raise ConfigError(f"config: MODEL.MONAI_UNET.CHANNELS = {channels} needs at least 2 levels")
    strides = _positive_ints("MODEL.MONAI_UNET.STRIDES", node.STRIDES, count=len(channels) - 1)
    if node.NUM_RES_UNITS < 0:
        raise ConfigError(f"config: MODEL.MONAI_UNET.NUM_RES_UNITS = {node.NUM_RES_UNITS} must be >= 0")
    if node.KERNEL_SIZE < 1 or node.KERNEL_SIZE % 2 == 0:
        raise ConfigError(f"config: MODEL.MONAI_UNET.KERNEL_SIZE = {node.KERNEL_SIZE} must be a positive odd number")
    require_choice("MODEL.MONAI_UNET.NORM", node.NORM, tuple(NORMS))
    if not 0 <= node.DROPOUT < 1:
        raise ConfigError(f"config: MODEL.MONAI_UNET.DROPOUT = {node.DROPOUT} must be in [0, 1)")
    require_multiples(cfg, math.prod(strides), "monai_unet", f"MODEL.MONAI_UNET.STRIDES = {strides}")
    return UNet(
        spatial_dims=cfg.DATASET.DIMS, in_channels=in_channels, out_channels=_out_channels(cfg),
        channels=channels, strides=strides, kernel_size=node.KERNEL_SIZE, up_kernel_size=node.KERNEL_SIZE,
        num_res_units=node.NUM_RES_UNITS, norm=NORMS[node.NORM], dropout=node.DROPOUT,
    )


def build_mednext(cfg: CN) -> nn.Module:
    """MONAI MedNeXt, variant MODEL.MEDNEXT.SIZE; wrapped in :class:`DeepSupervision` when that is on."""
    node = cfg.MODEL.MEDNEXT
    in_channels = _in_channels(cfg, "mednext")
    require_choice("MODEL.MEDNEXT.SIZE", node.SIZE, tuple(MEDNEXT_VARIANTS))
    if node.KERNEL_SIZE < 1 or node.KERNEL_SIZE % 2 == 0:
        raise ConfigError(f"config: MODEL.MEDNEXT.KERNEL_SIZE = {node.KERNEL_SIZE} must be a positive odd number (3 or 5 in the paper)")
    if node.INIT_FILTERS < 1:
        raise ConfigError(f"config: MODEL.MEDNEXT.INIT_FILTERS = {node.INIT_FILTERS} must be at least 1")
    require_multiples(cfg, 2 ** MEDNEXT_LEVELS, "mednext", f"{MEDNEXT_LEVELS} downsamplings by 2")
    net = MedNeXt(
        spatial_dims=cfg.DATASET.DIMS, in_channels=in_channels, out_channels=_out_channels(cfg),
        init_filters=node.INIT_FILTERS, kernel_size=node.KERNEL_SIZE, deep_supervision=node.DEEP_SUPERVISION,
        use_residual_connection=True, norm_type="group", global_resp_norm=False,  # as create_mednext
        **MEDNEXT_VARIANTS[node.SIZE],
    )
    return DeepSupervision(net) if node.DEEP_SUPERVISION else net
