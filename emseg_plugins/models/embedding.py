"""U-Nets with a pixel/voxel embedding head: ``unet2d_ebd``, ``unetv3_ebd`` and ``unetv3_ebd2``.

All three reuse the residual U-Net backbone of :mod:`emseg_plugins.models.unetv3` (``MODEL.FILTERS``,
``MODEL.NORM_MODE``, ``MODEL.ACT_MODE`` and ``MODEL.UNETV3``) and add, next to the segmentation head,
an embedding head: a 1x1 conv to E = ``MODEL.EMBEDDING.DIM`` channels. Output in training and eval
(docs/schemas.md), K = ``len(DATASET.CLASSES)``::

    {"logits": (B, K, [Z,] Y, X), "embedding": (B, E, [Z,] Y, X)}   (+ "aux" for unetv3_ebd in training)

- ``unet2d_ebd``: 2D (``DATASET.DIMS 2``), input (B, IN_PLANES x DATASET.INPUT_SLICES, Y, X) (2.5D);
  embedding from the last decoder features. Train the embedding with the ``discriminative`` loss
  (``LOSS.EXTRA ["discriminative"]`` next to a segmentation loss, or call it on ``output["embedding"]``).
- ``unetv3_ebd``: 3D (anisotropic levels as unetv3), embedding from the last decoder features, plus
  unetv3's ``MODEL.UNETV3.AUX_HEADS`` deep-supervision heads (``"aux"``, training only).
- ``unetv3_ebd2``: 3D nearest-neighbour classification (the pipeline's NNC). The embedding comes from the
  last-but-one layer: the input of the last residual block of decoder level 0 (with one block per
  level, the upsampled features concatenated with the skip). The model keeps one prototype per class
  plus background, as buffers (saved in checkpoints):

  * ``prototypes`` (K + 1, E) float32, row 0 background, row k the k-th class of ``DATASET.CLASSES``;
  * ``prototype_count`` (K + 1,) int64: voxels observed per row.

  Training: ``{"logits", "embedding"}`` with logits from the segmentation head (trained by the
  segmentation loss). After each forward pass the engine calls
  ``model.update_prototypes(output["embedding"].detach(), batch["label"])``, which moves each observed
  prototype towards the batch's mean embedding of its voxels as an exponential moving average,
  ``p <- m p + (1 - m) mean`` with m = ``MODEL.EMBEDDING.PROTOTYPE_MOMENTUM`` (the first observation sets
  ``p = mean``). Eval with ``MODEL.EMBEDDING.NN_EVAL True``: the logits become nearest-prototype scores
  ``logit_k = |x - p_bg|^2 - |x - p_k|^2`` (squared L2), positive iff class k's prototype is nearer
  than background's, so sigmoid > 0.5 means exactly that; a class whose prototype (or the background's)
  has not been observed yet keeps the segmentation head's logits. The embedding head is trained only by
  an embedding loss (e.g. ``LOSS.EXTRA ["discriminative"]``); without one it stays a fixed random
  projection of the (trained) decoder features.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from monai.networks.blocks.dynunet_block import UnetOutBlock
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import require
from emseg_plugins.models.config_nodes import add_embedding_config  # noqa: F401  # re-exported
from emseg_plugins.models.unetv3 import DecoderFeatures, ResUNet, UNetV3, aux_head_count, build_backbone
from emseg_plugins.targets import output_channels


class EmbeddingUNet(UNetV3):
    """:class:`UNetV3` + a 1x1-conv embedding head on the last (or last-but-one) decoder features."""

    outputs = ("logits", "embedding")

    def __init__(self, backbone: ResUNet, out_channels: int, embedding_dim: int = 16, aux_heads: int = 0,
                 from_penultimate: bool = False):
        super().__init__(backbone, out_channels, aux_heads)
        self.from_penultimate = from_penultimate
        channels = backbone.penultimate_channels if from_penultimate else backbone.filters[0]
        self.embedding_head = UnetOutBlock(backbone.spatial_dims, channels, embedding_dim)

    def embed(self, features: DecoderFeatures) -> torch.Tensor:
        return self.embedding_head(features.penultimate if self.from_penultimate else features.last)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        features = self.backbone(x)
        out: dict[str, Any] = {"logits": self.head(features.last), "embedding": self.embed(features)}
        if self.training and len(self.aux_heads):
            out["aux"] = self.aux_logits(features)
        return out


class PrototypeUNet(EmbeddingUNet):
    """``unetv3_ebd2``: embedding from the last-but-one layer + nearest-prototype classification in eval
    (module docstring). Buffers ``prototypes`` (K + 1, E) and ``prototype_count`` (K + 1,)."""

    def __init__(self, backbone: ResUNet, out_channels: int, embedding_dim: int = 16, momentum: float = 0.99, nn_eval: bool = True):
        super().__init__(backbone, out_channels, embedding_dim, aux_heads=0, from_penultimate=True)
        self.momentum, self.nn_eval = momentum, nn_eval
        self.register_buffer("prototypes", torch.zeros(out_channels + 1, embedding_dim))
        self.register_buffer("prototype_count", torch.zeros(out_channels + 1, dtype=torch.long))

    @torch.no_grad()
    def update_prototypes(self, embedding: torch.Tensor, label: torch.Tensor) -> None:
        """EMA update from one batch. embedding (B, E, *S); label (B, K, *S) float, 0/1, NaN = not annotated.

        A voxel belongs to class k (row k + 1) when channel k is annotated and > 0.5 (the largest such
        channel if several), to background (row 0) when every channel is annotated and none is > 0.5;
        other voxels (nothing annotated, or only negatives next to NaN channels) are skipped. Under
        torch.distributed the per-row sums and counts are summed over processes first, so every
        process keeps the same prototypes.
        """
        rows, dims = self.prototypes.shape
        if label.shape[0] != embedding.shape[0] or label.shape[1] != rows - 1 or label.shape[2:] != embedding.shape[2:] \
                or embedding.shape[1] != dims:
            raise ValueError(f"update_prototypes: label {tuple(label.shape)} must be (B, {rows - 1}, *S) for embedding "
                             f"{tuple(embedding.shape)} (B, {dims}, *S)")
        x = embedding.detach().float().movedim(1, -1).reshape(-1, dims)
        lab = label.detach().float().to(x.device).movedim(1, -1).reshape(-1, rows - 1)
        known = torch.isfinite(lab)
        positive = known & (lab > 0.5)
        is_class = positive.any(1)
        keep = is_class | known.all(1)
        row = torch.where(is_class, 1 + torch.where(positive, lab, -torch.inf).argmax(1), 0)[keep]
        sums = x.new_zeros(rows, dims).index_add_(0, row, x[keep])
        count = torch.bincount(row, minlength=rows)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
            dist.all_reduce(count)
        mean = sums / count.clamp_min(1)[:, None]
        blended = torch.where((self.prototype_count == 0)[:, None], mean, self.momentum * self.prototypes + (1 - self.momentum) * mean)
        self.prototypes.copy_(torch.where((count > 0)[:, None], blended, self.prototypes))
        self.prototype_count += count

    def prototype_logits(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, E, *S) -> (B, K, *S): |x - p_bg|^2 - |x - p_k|^2 = 2 x.(p_k - p_bg) + |p_bg|^2 - |p_k|^2."""
        background, classes = self.prototypes[0], self.prototypes[1:]
        weight = 2 * (classes - background)  # (K, E)
        bias = background.square().sum() - classes.square().sum(1)  # (K,)
        scores = torch.einsum("ke,be...->bk...", weight, embedding.float())
        return scores + bias.view(1, -1, *[1] * (embedding.ndim - 2))

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        out = super().forward(x)
        if not self.training and self.nn_eval and bool(self.prototype_count[0] > 0):
            seen = (self.prototype_count[1:] > 0).view(1, -1, *[1] * (x.ndim - 2))
            out["logits"] = torch.where(seen, self.prototype_logits(out["embedding"]).to(out["logits"].dtype), out["logits"])
        return out


# -- config --------------------------------------------------------------------------------------

def _embedding_dim(cfg: CN) -> int:
    require(cfg.MODEL.EMBEDDING.DIM >= 1, "MODEL.EMBEDDING.DIM", cfg.MODEL.EMBEDDING.DIM, "at least 1")
    return cfg.MODEL.EMBEDDING.DIM


def build_unet2d_ebd(cfg: CN) -> EmbeddingUNet:
    """2D/2.5D residual U-Net + embedding head (no deep supervision)."""
    backbone = build_backbone(cfg, 2, "unet2d_ebd")
    return EmbeddingUNet(backbone, output_channels(cfg), _embedding_dim(cfg))


def build_unetv3_ebd(cfg: CN) -> EmbeddingUNet:
    """3D unetv3 + embedding head on the last decoder features, with unetv3's aux heads."""
    backbone = build_backbone(cfg, 3, "unetv3_ebd")
    return EmbeddingUNet(backbone, output_channels(cfg), _embedding_dim(cfg), aux_heads=aux_head_count(cfg))


def build_unetv3_ebd2(cfg: CN) -> PrototypeUNet:
    """3D unetv3 + last-but-one-layer embedding + nearest-prototype eval."""
    node = cfg.MODEL.EMBEDDING
    backbone = build_backbone(cfg, 3, "unetv3_ebd2")
    require(0 <= node.PROTOTYPE_MOMENTUM < 1, "MODEL.EMBEDDING.PROTOTYPE_MOMENTUM", node.PROTOTYPE_MOMENTUM, "in [0, 1)")
    return PrototypeUNet(backbone, len(cfg.DATASET.CLASSES), _embedding_dim(cfg), node.PROTOTYPE_MOMENTUM, node.NN_EVAL)
