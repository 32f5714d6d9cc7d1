"""A two-level 2D U-Net and an L1 loss on probabilities, with the config node MODEL.TINY_UNET."""
import torch
from torch import nn
from yacs.config import CfgNode as CN


class TinyUNet(nn.Module):
    """(B, C, Y, X) -> logits (B, K, Y, X); Y and X even."""

    def __init__(self, in_channels: int, out_channels: int, width: int):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.head = nn.Conv2d(2 * width, out_channels, 1)

    def forward(self, x):
        skip = self.enc(x)
        return self.head(torch.cat([self.up(self.down(skip)), skip], 1))


class SoftL1Loss(nn.Module):
    """Mean |sigmoid(logits) - target| over annotated (finite) voxels."""

    def forward(self, logits, target, valid_mask=None):
        mask = torch.isfinite(target)
        return (torch.sigmoid(logits) - torch.nan_to_num(target)).abs()[mask].mean()


def add_tiny_unet_config(cfg: CN) -> None:
    cfg.MODEL.TINY_UNET = CN()
    cfg.MODEL.TINY_UNET.WIDTH = 8


def build_tiny_unet(cfg: CN) -> TinyUNet:
    return TinyUNet(cfg.MODEL.IN_PLANES * cfg.DATASET.INPUT_SLICES, len(cfg.DATASET.CLASSES), cfg.MODEL.TINY_UNET.WIDTH)


def build_soft_l1(cfg: CN) -> SoftL1Loss:
    return SoftL1Loss()
