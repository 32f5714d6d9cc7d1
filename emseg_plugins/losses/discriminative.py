"""``discriminative``: the instance-embedding loss of De Brabandere, Neven & Van Gool (2017),
"Semantic Instance Segmentation with a Discriminative Loss Function" (arXiv:1708.02551).

**Its call differs from the other losses**::

    loss(embedding, instances, valid_mask=None) -> scalar tensor

* ``embedding``: float (B, E, *spatial), 2D or 3D: the model's ``output["embedding"]`` (docs/schemas.md),
  not class logits;
* ``instances``: integer (B, 1, *spatial) (or (B, *spatial)): the batch's ``instance`` ids. Id 0 is
  background and ids < 0 are ignored: neither takes part in any term;
* ``valid_mask``: optional, broadcastable to ``instances``; voxels where it is 0 are ignored too.

For each image with C >= 1 instances, with mu_c the mean embedding of instance c (its N_c voxels):

    L_var  = 1/C sum_c 1/N_c sum_i [ ||mu_c - x_i|| - delta_v ]_+^2        (pull to the own mean)
    L_dist = 1/(C (C-1)) sum_{cA != cB} [ 2 delta_d - ||mu_cA - mu_cB|| ]_+^2   (push means apart; 0 if C < 2)
    L_reg  = 1/C sum_c ||mu_c||                                               (keep means near the origin)

    L = VAR_WEIGHT L_var + DIST_WEIGHT L_dist + REG_WEIGHT L_reg      (paper: 1, 1, 0.001; norms are L2)

and the batch loss is the mean of L over the images with at least one instance; a batch without any
instance gives exactly 0 with zero gradients. Gradients flow through the means, as in the paper.
All images are computed at once (clusters of the whole batch indexed together), with no loop over
voxels or instances. The paper requires delta_d > 2 delta_v for every embedding to end up closer to
its own instance than to any other.
"""
from __future__ import annotations

import torch
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import require
from emseg_plugins.losses.config_nodes import add_discriminative_config  # noqa: F401  # re-exported
from emseg_plugins.losses.region import zero_loss


def _norm(vectors: torch.Tensor) -> torch.Tensor:
    """L2 norm over the last axis with a finite gradient at 0 (a one-voxel instance sits on its mean)."""
    return vectors.pow(2).sum(-1).clamp_min(1e-12).sqrt()


class DiscriminativeLoss(nn.Module):
    """Variance + distance + regularisation terms (see the module docstring for the call)."""

    inputs = ("embedding", "instance")  # model-output key and batch key it consumes (default: logits, label)

    def __init__(
        self, delta_v: float = 0.5, delta_d: float = 1.5, var_weight: float = 1.0, dist_weight: float = 1.0, reg_weight: float = 0.001
    ):
        super().__init__()
        self.delta_v, self.delta_d = delta_v, delta_d
        self.var_weight, self.dist_weight, self.reg_weight = var_weight, dist_weight, reg_weight

    def forward(self, embedding: torch.Tensor, instances: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        terms = self.terms(embedding, instances, valid_mask)
        if terms is None:
            return zero_loss(embedding)
        var, dist, reg, has = terms
        total = self.var_weight * var + self.dist_weight * dist + self.reg_weight * reg
        return total[has].mean()

    def terms(
        self, embedding: torch.Tensor, instances: torch.Tensor, valid_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Per image (B,): ``(L_var, L_dist, L_reg, has_instances)``; None when no image has any."""
        batch, dims = embedding.shape[0], embedding.shape[1]
        if instances.ndim == embedding.ndim - 1:
            instances = instances.unsqueeze(1)
        if instances.shape[0] != batch or instances.shape[1] != 1 or instances.shape[2:] != embedding.shape[2:]:
            raise ValueError(
                f"discriminative loss: instances {tuple(instances.shape)} must be (B, 1, *spatial) for embedding {tuple(embedding.shape)}"
            )
        keep = instances > 0
        if instances.is_floating_point():  # tolerate float ids (NaN = ignored)
            keep = keep & torch.isfinite(instances)
            instances = torch.nan_to_num(instances, nan=0.0)
        if valid_mask is not None:
            keep = keep & (valid_mask.to(instances.device).expand_as(instances) > 0)
        ids = instances.reshape(batch, -1).long()
        image, voxel = keep.reshape(batch, -1).nonzero(as_tuple=True)
        if image.numel() == 0:
            return None

        x = embedding.float().reshape(batch, dims, -1).transpose(1, 2)[image, voxel]  # (n, E)
        ids = ids[image, voxel]
        span = ids.max() + 1
        keys, cluster = torch.unique(image * span + ids, return_inverse=True)  # clusters sorted by image
        cluster_image = keys // span  # (M,)
        n_clusters = keys.numel()
        size = torch.bincount(cluster, minlength=n_clusters).to(x.dtype)  # N_c
        means = x.new_zeros(n_clusters, dims).index_add(0, cluster, x) / size[:, None]

        per_image_count = torch.bincount(cluster_image, minlength=batch).to(x.dtype)  # C per image
        has = per_image_count > 0

        def per_image(per_cluster: torch.Tensor) -> torch.Tensor:  # (M,) -> (B,) sums over each image's clusters
            return x.new_zeros(batch).index_add(0, cluster_image, per_cluster)

        pull = (_norm(x - means[cluster]) - self.delta_v).clamp_min(0).pow(2)
        var = per_image(x.new_zeros(n_clusters).index_add(0, cluster, pull) / size) / per_image_count.clamp_min(1)
        reg = per_image(_norm(means)) / per_image_count.clamp_min(1)

        first, second = self._pairs_within_images(per_image_count.long())
        push = (2 * self.delta_d - _norm(means[first] - means[second])).clamp_min(0).pow(2)
        pairs = per_image_count * (per_image_count - 1)  # ordered pairs; each unordered pair counted twice
        dist = 2 * x.new_zeros(batch).index_add(0, cluster_image[first], push) / pairs.clamp_min(1)
        return var, dist, reg, has

    @staticmethod
    def _pairs_within_images(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices (i < j) of every pair of clusters of one image; clusters are numbered image by image."""
        firsts, seconds, offset = [], [], 0
        for count in counts.tolist():
            if count > 1:
                i, j = torch.triu_indices(count, count, offset=1, device=counts.device)
                firsts.append(i + offset)
                seconds.append(j + offset)
            offset += count
        if not firsts:
            empty = torch.zeros(0, dtype=torch.long, device=counts.device)
            return empty, empty
        return torch.cat(firsts), torch.cat(seconds)


def build_discriminative(cfg: CN) -> DiscriminativeLoss:
    """De Brabandere et al. 2017 embedding loss: pull to instance means, push means apart."""
    node = cfg.LOSS.DISCRIMINATIVE
    require(node.DELTA_V >= 0, "LOSS.DISCRIMINATIVE.DELTA_V", node.DELTA_V, ">= 0")
    require(node.DELTA_D > 0, "LOSS.DISCRIMINATIVE.DELTA_D", node.DELTA_D, "> 0")
    for key in ("VAR_WEIGHT", "DIST_WEIGHT", "REG_WEIGHT"):
        require(node[key] >= 0, f"LOSS.DISCRIMINATIVE.{key}", node[key], ">= 0")
    return DiscriminativeLoss(node.DELTA_V, node.DELTA_D, node.VAR_WEIGHT, node.DIST_WEIGHT, node.REG_WEIGHT)
