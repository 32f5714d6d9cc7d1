"""``unetv3``: residual 3D U-Net with deep-supervision heads (the EM mitochondria pipeline's unetv3).

The backbone :class:`ResUNet` is shared with the embedding models (:mod:`emseg_plugins.models.embedding`)
and runs in 2D or 3D. It is assembled from MONAI's DynUNet blocks (``UnetResBlock``: conv-norm-act-conv-norm
plus a 1x1 projection shortcut; ``get_conv_layer`` for the transposed-conv upsampling); only the level
loop is ours, because ``monai.networks.nets.DynUNet`` allows one block per level and neither exposes its
decoder features (needed by the embedding heads) nor its auxiliary logits at their own resolution (it
interpolates them to full size and stacks them).

Layout over L = ``len(MODEL.FILTERS)`` levels (level 0 = full resolution, level L-1 = bottleneck):

- encoder level i: ``MODEL.UNETV3.BLOCKS_PER_LEVEL`` residual blocks with ``MODEL.FILTERS[i]`` channels;
  the first one of level i > 0 downsamples by a strided conv (stride 2, or 1x2x2 below);
- 3D only, ``MODEL.UNETV3.ANISOTROPIC_LEVELS`` = a: levels 0..a-1 use 1x3x3 kernels, and the step out of
  each of them downsamples by 1x2x2 (Z kept), as the pipeline's unetv3 does for thick EM sections; deeper
  levels use 3x3x3 kernels and downsample by 2. So Z is halved (L-1) - min(a, L-1) times, Y and X L-1 times;
- decoder level i < L-1: transposed conv (kernel = stride) from level i+1, concatenation with the encoder's
  level-i features, ``BLOCKS_PER_LEVEL`` residual blocks (first: 2 F_i -> F_i);
- heads (1x1 convs, MONAI ``UnetOutBlock``): the segmentation logits on decoder level 0, and
  ``MODEL.UNETV3.AUX_HEADS`` auxiliary logits on decoder levels 1, 2, ... (highest resolution first, as the
  mednext ``DeepSupervision`` wrapper and ``losses.deep_supervision`` expect: aux i gets ``LOSS.AUX_WEIGHTS[i]``,
  default 0.5 ** (i + 1), against the label resized by nearest neighbour).

Model output (docs/schemas.md), image (B, C, Z, Y, X) with C = ``MODEL.IN_PLANES``, K = ``len(DATASET.CLASSES)``:

- training, with aux heads: ``{"logits": (B, K, Z, Y, X), "aux": [(B, K, Z/sz1, Y/2, X/2), (B, K, Z/sz2, Y/4, X/4), ...]}``;
- eval (and training without aux heads): the logits tensor (B, K, Z, Y, X), so validation and sliding-window
  inference read it directly.

Every axis of ``DATASET.PATCH_SIZE`` and ``INFERENCE.INPUT_SIZE`` must be a multiple of the total
downsampling along it (:func:`downsampling`); the builder checks this.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from monai.networks.blocks.dynunet_block import UnetOutBlock, UnetResBlock, get_conv_layer
from monai.networks.nets import DynUNet
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import require, require_choice
from emseg_plugins.errors import ConfigError
from emseg_plugins.models.config_nodes import add_unetv3_config  # noqa: F401  # re-exported
from emseg_plugins.models.patch_sizes import require_multiples
from emseg_plugins.targets import output_channels

# MODEL.ACT_MODE -> MONAI activation spec (monai.networks.layers.get_act_layer)
ACTIVATIONS: dict[str, Any] = {"gelu": "gelu", "leaky_relu": ("leakyrelu", {"negative_slope": 0.01}), "relu": "relu", "elu": "elu"}
NORM_MODES = ("bn", "sync_bn", "in", "gn")  # MODEL.NORM_MODE: batch (sync_bn: synchronised under DDP), instance (affine), group norm
GROUPS = 8  # group norm: 8 groups, or the largest divisor of 8 common to every MODEL.FILTERS entry


def norm_spec(mode: str, filters: Sequence[int]) -> Any:
    """MODEL.NORM_MODE -> MONAI norm spec (monai.networks.layers.get_norm_layer)."""
    if mode in ("bn", "sync_bn"):  # sync_bn: the Trainer turns BatchNorm into SyncBatchNorm under DDP
        return "batch"
    if mode == "in":
        return ("instance", {"affine": True})
    return ("group", {"num_groups": math.gcd(GROUPS, *filters)})


def level_geometry(spatial_dims: int, levels: int, anisotropic_levels: int) -> tuple[list[Any], list[Any]]:
    """``(kernels, strides)`` per level: kernel of level i's convs; stride of the step *into* level i
    (level 0: 1). 3D levels below ``anisotropic_levels`` get 1x3x3 kernels and 1x2x2 steps out."""
    if spatial_dims == 2:
        return [3] * levels, [1] + [2] * (levels - 1)
    flat = [i < anisotropic_levels for i in range(levels)]
    kernels = [(1, 3, 3) if f else (3, 3, 3) for f in flat]
    strides = [(1, 1, 1)] + [(1, 2, 2) if flat[i - 1] else (2, 2, 2) for i in range(1, levels)]
    return kernels, strides


def downsampling(spatial_dims: int, levels: int, anisotropic_levels: int = 0) -> tuple[int, ...]:
    """Total downsampling per axis ((Z, Y, X) or (Y, X)): what every patch size must be a multiple of."""
    _, strides = level_geometry(spatial_dims, levels, anisotropic_levels)
    per_axis = [s if isinstance(s, tuple) else (s,) * spatial_dims for s in strides]
    return tuple(math.prod(axis) for axis in zip(*per_axis))


class DecoderFeatures(NamedTuple):
    """What :class:`ResUNet` hands to its heads (shapes for input (B, C, *S))."""

    last: torch.Tensor  # (B, F0, *S): output of decoder level 0, the segmentation head's input
    penultimate: torch.Tensor  # (B, P, *S): input of decoder level 0's last block (P = F0, or 2 F0 with one block per level)
    coarse: list[torch.Tensor]  # outputs of decoder levels 1 .. L-2, highest resolution first: (B, F_i, *S / down_i)


class ResUNet(nn.Module):
    """Residual U-Net backbone (see the module docstring); forward returns :class:`DecoderFeatures`."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        filters: Sequence[int] = (32, 64, 128, 256),
        anisotropic_levels: int = 0,
        blocks_per_level: int = 1,
        norm: Any = "batch",
        act: Any = "gelu",
        dropout: float = 0.0,
    ):
        super().__init__()
        if len(filters) < 2 or blocks_per_level < 1:
            raise ValueError(f"ResUNet needs >= 2 levels and >= 1 block per level, got filters={list(filters)}, blocks={blocks_per_level}")
        self.spatial_dims, self.filters = spatial_dims, list(filters)
        self.kernels, self.strides = level_geometry(spatial_dims, len(filters), anisotropic_levels)

        def block(cin: int, cout: int, level: int, stride: Any = 1) -> UnetResBlock:
            return UnetResBlock(spatial_dims, cin, cout, self.kernels[level], stride, norm_name=norm, act_name=act,
                                dropout=dropout or None)

        self.encoders = nn.ModuleList()
        prev = in_channels
        for level, ch in enumerate(self.filters):  # the last one is the bottleneck
            blocks = [block(prev, ch, level, self.strides[level])] + [block(ch, ch, level) for _ in range(blocks_per_level - 1)]
            self.encoders.append(nn.Sequential(*blocks))
            prev = ch
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()  # index i: decoder level i (0 = full resolution)
        for level, ch in enumerate(self.filters[:-1]):
            step = self.strides[level + 1]
            self.ups.append(get_conv_layer(spatial_dims, self.filters[level + 1], ch, kernel_size=step, stride=step,
                                           conv_only=True, is_transposed=True))
            self.decoders.append(nn.ModuleList([block(2 * ch, ch, level)] + [block(ch, ch, level) for _ in range(blocks_per_level - 1)]))
        self.penultimate_channels = self.filters[0] * (2 if blocks_per_level == 1 else 1)
        self.apply(DynUNet.initialize_weights)  # MONAI DynUNet's Kaiming init

    def forward(self, x: torch.Tensor) -> DecoderFeatures:
        skips = []
        for encode in self.encoders:
            x = encode(x)
            skips.append(x)
        x = skips.pop()  # bottleneck
        outputs, penultimate = [], x
        for level in reversed(range(len(self.decoders))):
            x = torch.cat([self.ups[level](x), skips[level]], dim=1)
            for block in self.decoders[level]:
                penultimate = x
                x = block(x)
            outputs.append(x)
        return DecoderFeatures(last=x, penultimate=penultimate, coarse=outputs[-2::-1])


class UNetV3(nn.Module):
    """:class:`ResUNet` + segmentation head + ``aux_heads`` deep-supervision heads (module docstring)."""

    outputs = ("logits",)  # aux heads are implied by deep supervision

    def __init__(self, backbone: ResUNet, out_channels: int, aux_heads: int = 0):
        super().__init__()
        if not 0 <= aux_heads <= len(backbone.filters) - 2:
            raise ValueError(f"aux_heads={aux_heads} must be in [0, {len(backbone.filters) - 2}] for {len(backbone.filters)} levels")
        self.backbone = backbone
        dims, filters = backbone.spatial_dims, backbone.filters
        self.head = UnetOutBlock(dims, filters[0], out_channels)
        self.aux_heads = nn.ModuleList(UnetOutBlock(dims, filters[level], out_channels) for level in range(1, aux_heads + 1))

    def aux_logits(self, features: DecoderFeatures) -> list[torch.Tensor]:
        """Deep-supervision logits, highest resolution first (training only)."""
        return [head(f) for head, f in zip(self.aux_heads, features.coarse)]

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, Any]:
        features = self.backbone(x)
        logits = self.head(features.last)
        if self.training and len(self.aux_heads):
            return {"logits": logits, "aux": self.aux_logits(features)}
        return logits


# -- config --------------------------------------------------------------------------------------

def require_dims(cfg: CN, dims: int, arch: str) -> None:
    """:class:`ConfigError` unless ``DATASET.DIMS`` is ``dims``."""
    if cfg.DATASET.DIMS == dims:
        return
    if dims == 3:
        raise ConfigError(f"config: MODEL.ARCHITECTURE {arch} is a 3D model; set DATASET.DIMS 3 "
                          f"(DATASET.DIMS = {cfg.DATASET.DIMS}; 2D and 2.5D inputs are for 2D models such as unet2d_ebd or joenet)")
    raise ConfigError(f"config: MODEL.ARCHITECTURE {arch} is a 2D model; set DATASET.DIMS 2 "
                      f"(DATASET.DIMS = {cfg.DATASET.DIMS}; 2.5D via DATASET.INPUT_SLICES; unetv3 is the 3D one)")


def build_backbone(cfg: CN, dims: int, arch: str) -> ResUNet:
    """:class:`ResUNet` from MODEL.FILTERS / NORM_MODE / ACT_MODE / IN_PLANES and MODEL.UNETV3, after
    checking DATASET.DIMS and the patch sizes. 2D: in_channels = IN_PLANES x DATASET.INPUT_SLICES (2.5D)."""
    node = cfg.MODEL.UNETV3
    require_dims(cfg, dims, arch)
    filters = list(cfg.MODEL.FILTERS)
    require(len(filters) >= 2 and all(isinstance(f, int) and f >= 1 for f in filters), "MODEL.FILTERS", filters,
            "at least 2 positive channel counts (one per level)")
    require_choice("MODEL.NORM_MODE", cfg.MODEL.NORM_MODE, NORM_MODES)
    require_choice("MODEL.ACT_MODE", cfg.MODEL.ACT_MODE, tuple(ACTIVATIONS))
    require(cfg.MODEL.IN_PLANES >= 1, "MODEL.IN_PLANES", cfg.MODEL.IN_PLANES, "at least 1")
    require(node.BLOCKS_PER_LEVEL >= 1, "MODEL.UNETV3.BLOCKS_PER_LEVEL", node.BLOCKS_PER_LEVEL, "at least 1")
    require(0 <= node.DROPOUT < 1, "MODEL.UNETV3.DROPOUT", node.DROPOUT, "in [0, 1)")
    require(0 <= node.ANISOTROPIC_LEVELS <= len(filters), "MODEL.UNETV3.ANISOTROPIC_LEVELS", node.ANISOTROPIC_LEVELS,
            f"in [0, {len(filters)}] (the number of levels, len(MODEL.FILTERS))")
    if not cfg.DATASET.CLASSES:
        raise ConfigError("config: DATASET.CLASSES is empty; name at least one class (e.g. [nuc, mito])")
    anisotropic = node.ANISOTROPIC_LEVELS if dims == 3 else 0
    multiples = downsampling(dims, len(filters), anisotropic)
    why = f"{len(filters)} levels in MODEL.FILTERS"
    if dims == 3:
        why += f" and MODEL.UNETV3.ANISOTROPIC_LEVELS {anisotropic}: Z kept in {min(anisotropic, len(filters) - 1)} of the {len(filters) - 1} downsamplings"
    require_multiples(cfg, multiples, arch, why)
    return ResUNet(
        spatial_dims=dims,
        in_channels=cfg.MODEL.IN_PLANES * (cfg.DATASET.INPUT_SLICES if dims == 2 else 1),
        filters=filters,
        anisotropic_levels=anisotropic,
        blocks_per_level=node.BLOCKS_PER_LEVEL,
        norm=norm_spec(cfg.MODEL.NORM_MODE, filters),
        act=ACTIVATIONS[cfg.MODEL.ACT_MODE],
        dropout=node.DROPOUT,
    )


def aux_head_count(cfg: CN) -> int:
    """MODEL.UNETV3.AUX_HEADS resolved (-1 = every decoder level below full resolution) and checked."""
    most = len(cfg.MODEL.FILTERS) - 2
    count = cfg.MODEL.UNETV3.AUX_HEADS
    require(count == -1 or 0 <= count <= most, "MODEL.UNETV3.AUX_HEADS", count,
            f"-1 (all) or in [0, {most}] (decoder levels below full resolution with {len(cfg.MODEL.FILTERS)} levels in MODEL.FILTERS)")
    return most if count == -1 else count


def build_unetv3(cfg: CN) -> UNetV3:
    """``unetv3``: 3D residual U-Net with MODEL.UNETV3.AUX_HEADS deep-supervision heads."""
    backbone = build_backbone(cfg, 3, "unetv3")
    return UNetV3(backbone, output_channels(cfg), aux_head_count(cfg))
