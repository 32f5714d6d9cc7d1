"""The built-in models' config nodes (``emseg_plugins.configs`` entry points), in a module that imports no torch.

Every config load applies every node, so a node lives here, beside nothing heavier than yacs, and not in its
model's module: ``emseg config --keys`` and a config error answer without importing torch or MONAI. The
builders (``joenet.py``, ``monai_nets.py``, ``unetv3.py``, ``embedding.py``) read these keys and re-export
their node's function.
"""
from __future__ import annotations

from yacs.config import CfgNode as CN


def add_joenet_config(cfg: CN) -> None:
    """MODEL.JOENET: the choices the Joe Net notes leave open."""
    cfg.MODEL.JOENET = CN()
    cfg.MODEL.JOENET.DOWNSAMPLE = "conv"  # conv (strided 2x2) | maxpool
    cfg.MODEL.JOENET.UPSAMPLE = "transposed"  # transposed | bilinear (bilinear + 3x3 conv)
    cfg.MODEL.JOENET.BOTTLENECK_KERNEL = 7


def add_monai_basic_unet_config(cfg: CN) -> None:
    """MODEL.MONAI_BASIC_UNET: MONAI BasicUNet's arguments (defaults: MONAI's)."""
    cfg.MODEL.MONAI_BASIC_UNET = CN()
    cfg.MODEL.MONAI_BASIC_UNET.FEATURES = [32, 32, 64, 128, 256, 32]  # 5 encoder levels + the last decoder's
    cfg.MODEL.MONAI_BASIC_UNET.NORM = "instance"  # instance | batch
    cfg.MODEL.MONAI_BASIC_UNET.UPSAMPLE = "deconv"  # deconv | pixelshuffle | nontrainable
    cfg.MODEL.MONAI_BASIC_UNET.DROPOUT = 0.0


def add_monai_unet_config(cfg: CN) -> None:
    """MODEL.MONAI_UNET: MONAI UNet's arguments (residual units, strided-conv downsampling)."""
    cfg.MODEL.MONAI_UNET = CN()
    cfg.MODEL.MONAI_UNET.CHANNELS = [16, 32, 64, 128, 256]  # one per level
    cfg.MODEL.MONAI_UNET.STRIDES = [2, 2, 2, 2]  # one fewer than CHANNELS
    cfg.MODEL.MONAI_UNET.NUM_RES_UNITS = 2
    cfg.MODEL.MONAI_UNET.KERNEL_SIZE = 3
    cfg.MODEL.MONAI_UNET.NORM = "instance"  # instance | batch
    cfg.MODEL.MONAI_UNET.DROPOUT = 0.0


def add_mednext_config(cfg: CN) -> None:
    """MODEL.MEDNEXT: MONAI MedNeXt variant S/B/M/L, kernel size and deep supervision."""
    cfg.MODEL.MEDNEXT = CN()
    cfg.MODEL.MEDNEXT.SIZE = "S"  # S | B | M | L (blocks and expansion ratios of the MedNeXt paper)
    cfg.MODEL.MEDNEXT.KERNEL_SIZE = 3  # odd; the paper's 3 or 5
    cfg.MODEL.MEDNEXT.DEEP_SUPERVISION = True  # 4 auxiliary heads at 1/2 .. 1/16 (LOSS.AUX_WEIGHTS)
    cfg.MODEL.MEDNEXT.INIT_FILTERS = 32  # channels at full resolution (the paper: 32)


def add_unetv3_config(cfg: CN) -> None:
    """MODEL.UNETV3: the residual U-Net backbone (also used by unet2d_ebd, unetv3_ebd, unetv3_ebd2)."""
    cfg.MODEL.UNETV3 = CN()
    cfg.MODEL.UNETV3.ANISOTROPIC_LEVELS = 1  # 3D: shallow levels with 1x3x3 kernels and 1x2x2 downsampling (0 = isotropic)
    cfg.MODEL.UNETV3.BLOCKS_PER_LEVEL = 1  # residual blocks (2 convs + shortcut each) per encoder and decoder level
    cfg.MODEL.UNETV3.AUX_HEADS = -1  # deep-supervision heads on decoder levels 1, 2, ...; -1 = all (len(MODEL.FILTERS) - 2)
    cfg.MODEL.UNETV3.DROPOUT = 0.0  # dropout after every conv of the residual blocks


def add_embedding_config(cfg: CN) -> None:
    """MODEL.EMBEDDING: the embedding head of unet2d_ebd / unetv3_ebd / unetv3_ebd2 (backbone: MODEL.UNETV3)."""
    cfg.MODEL.EMBEDDING = CN()
    cfg.MODEL.EMBEDDING.DIM = 16  # E: channels of output["embedding"]
    cfg.MODEL.EMBEDDING.PROTOTYPE_MOMENTUM = 0.99  # unetv3_ebd2: p <- m p + (1 - m) batch mean, in [0, 1)
    cfg.MODEL.EMBEDDING.NN_EVAL = True  # unetv3_ebd2: eval logits from the nearest prototype (False: segmentation head)
