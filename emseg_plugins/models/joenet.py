"""Joe Net: a light 2D U-Net for nuclei/mito on EM slices (the users' "Joe Net 1" design).

Encoder of pre-activation residual blocks (BN -> act -> 3x3 conv, twice; identity or 1x1 skip), a
ConvNeXt-style bottleneck (depthwise 7x7 + pointwise) at the deepest level, downsampling by strided
conv or max-pool, upsampling by transposed conv or bilinear + 3x3 conv, concatenated skips and a
1x1 head. Input (B, C, Y, X) with C = image channels x 2.5D slices; output logits (B, K, Y, X).
Y and X must be divisible by 2 ** (levels - 1).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import require_choice
from emseg_plugins.errors import ConfigError
from emseg_plugins.models.config_nodes import add_joenet_config  # noqa: F401  # re-exported
from emseg_plugins.models.patch_sizes import require_multiples
from emseg_plugins.targets import output_channels

ACTIVATIONS = {"gelu": nn.GELU, "leaky_relu": lambda: nn.LeakyReLU(0.01), "relu": nn.ReLU}


def _norm_act(channels: int, act: str) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), ACTIVATIONS[act]()]


class PreActResBlock(nn.Module):
    """(BN, act, 3x3 conv) x 2 plus an identity or 1x1-conv shortcut. (B, Cin, H, W) -> (B, Cout, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, act: str):
        super().__init__()
        self.body = nn.Sequential(
            *_norm_act(in_ch, act), nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            *_norm_act(out_ch, act), nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        )
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class ConvNeXtBottleneck(nn.Module):
    """BN, GELU, depthwise KxK; BN, GELU, pointwise 1x1; residual add. Shape-preserving."""

    def __init__(self, channels: int, kernel: int = 7):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels), nn.GELU(),
            nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels, bias=False),
            nn.BatchNorm2d(channels), nn.GELU(),
            nn.Conv2d(channels, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _downsample(channels: int, mode: str) -> nn.Module:
    if mode == "conv":
        return nn.Conv2d(channels, channels, 2, stride=2)
    return nn.MaxPool2d(2)


def _upsample(in_ch: int, out_ch: int, mode: str) -> nn.Module:
    if mode == "transposed":
        return nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(in_ch, out_ch, 3, padding=1))


class JoeNet(nn.Module):
    """U-Net over ``len(filters)`` levels; see the module docstring for the layout."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        filters: Sequence[int] = (32, 64, 128, 256),
        downsample: str = "conv",
        upsample: str = "transposed",
        act: str = "gelu",
        bottleneck_kernel: int = 7,
    ):
        super().__init__()
        if len(filters) < 2:
            raise ValueError(f"JoeNet needs at least 2 levels, got filters={list(filters)}")
        self.stem = nn.Conv2d(in_channels, filters[0], 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        prev = filters[0]
        for level, ch in enumerate(filters[:-1]):
            self.encoders.append(PreActResBlock(prev, ch, act))
            self.downs.append(_downsample(ch, downsample))
            prev = ch
        self.bottleneck = nn.Sequential(PreActResBlock(prev, filters[-1], act),
                                        ConvNeXtBottleneck(filters[-1], bottleneck_kernel))
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for deep, skip in zip(filters[:0:-1], filters[-2::-1]):
            self.ups.append(_upsample(deep, skip, upsample))
            self.decoders.append(PreActResBlock(2 * skip, skip, act))
        self.head = nn.Sequential(*_norm_act(filters[0], act), nn.Conv2d(filters[0], out_channels, 1))
        self.levels = len(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for encode, down in zip(self.encoders, self.downs):
            x = encode(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, decode, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decode(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def build_joenet(cfg: CN) -> JoeNet:
    """JoeNet from ``MODEL`` and ``DATASET`` (classes -> outputs, INPUT_SLICES -> 2.5D inputs)."""
    node = cfg.MODEL.JOENET
    require_choice("MODEL.JOENET.DOWNSAMPLE", node.DOWNSAMPLE, ("conv", "maxpool"))
    require_choice("MODEL.JOENET.UPSAMPLE", node.UPSAMPLE, ("transposed", "bilinear"))
    require_choice("MODEL.ACT_MODE", cfg.MODEL.ACT_MODE, tuple(ACTIVATIONS))
    if cfg.DATASET.DIMS != 2:
        raise ConfigError("config: MODEL.ARCHITECTURE joenet is a 2D model; set DATASET.DIMS 2 (2.5D via DATASET.INPUT_SLICES)")
    require_multiples(cfg, 2 ** (len(cfg.MODEL.FILTERS) - 1), "joenet", f"{len(cfg.MODEL.FILTERS)} levels in MODEL.FILTERS")
    return JoeNet(
        in_channels=cfg.MODEL.IN_PLANES * cfg.DATASET.INPUT_SLICES,
        out_channels=output_channels(cfg),
        filters=cfg.MODEL.FILTERS,
        downsample=node.DOWNSAMPLE,
        upsample=node.UPSAMPLE,
        act=cfg.MODEL.ACT_MODE,
        bottleneck_kernel=node.BOTTLENECK_KERNEL,
    )
