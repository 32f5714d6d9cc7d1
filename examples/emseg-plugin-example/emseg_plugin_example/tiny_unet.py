"""``tiny_unet``: a two-level 2D U-Net, with its config node MODEL.TINY_UNET."""
from __future__ import annotations

import torch
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.errors import ConfigError


class TinyUNet(nn.Module):
    """(B, C, Y, X) -> logits (B, K, Y, X); Y and X even."""

    def __init__(self, in_channels: int, out_channels: int, width: int):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.head = nn.Conv2d(2 * width, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.enc(x)
        return self.head(torch.cat([self.up(self.down(skip)), skip], 1))


def add_tiny_unet_config(cfg: CN) -> None:
    """MODEL.TINY_UNET: the width of the first level."""
    cfg.MODEL.TINY_UNET = CN()
    cfg.MODEL.TINY_UNET.WIDTH = 8  # channels of the first level (the second has twice as many)


def build_tiny_unet(cfg: CN) -> TinyUNet:
    """Two-level 2D U-Net: IN_PLANES x INPUT_SLICES inputs, one logit channel per class."""
    if cfg.DATASET.DIMS != 2:
        raise ConfigError("config: MODEL.ARCHITECTURE tiny_unet is a 2D model; set DATASET.DIMS 2")
    if cfg.MODEL.TINY_UNET.WIDTH < 1:
        raise ConfigError(f"config: MODEL.TINY_UNET.WIDTH = {cfg.MODEL.TINY_UNET.WIDTH} must be at least 1")
    return TinyUNet(cfg.MODEL.IN_PLANES * cfg.DATASET.INPUT_SLICES, len(cfg.DATASET.CLASSES), cfg.MODEL.TINY_UNET.WIDTH)
