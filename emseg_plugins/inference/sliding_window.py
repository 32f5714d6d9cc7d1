"""Whole-volume prediction with MONAI's ``SlidingWindowInferer`` (Gaussian or constant blending).

2D models (DATASET.DIMS 2) run slice by slice, each slice carrying INPUT_SLICES neighbours as
channels (edges repeated); 3D models run on the volume. Output: probabilities (K, Z, Y, X) float32,
and for embedding models the blended embedding (E, Z, Y, X) float32.
"""
from __future__ import annotations

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from tqdm import tqdm
from yacs.config import CfgNode as CN

from emseg_plugins.inference.tta import tta_variants, with_tta
from emseg_plugins.models.outputs import embedding_of, full_resolution, logits_of, split_heads
from emseg_plugins.targets import heads


def make_inferer(cfg: CN) -> SlidingWindowInferer:
    i = cfg.INFERENCE
    roi = list(i.INPUT_SIZE[1:]) if cfg.DATASET.DIMS == 2 else list(i.INPUT_SIZE)
    return SlidingWindowInferer(roi_size=roi, sw_batch_size=i.SAMPLES_PER_BATCH, overlap=i.OVERLAP, mode=i.BLENDING, padding_mode="reflect")


def predict_volume(model: torch.nn.Module, image: np.ndarray, cfg: CN, progress: bool = True) -> np.ndarray:
    """image (Z, Y, X) uint8 or float in [0, 1] -> sigmoid probabilities (K, Z, Y, X) float32."""
    return predict_outputs(model, image, cfg, progress)["probabilities"]


@torch.no_grad()
def predict_outputs(model: torch.nn.Module, image: np.ndarray, cfg: CN, progress: bool = True) -> dict[str, np.ndarray]:
    """image (Z, Y, X) -> ``{"probabilities": (K, Z, Y, X)[, "embedding": (E, Z, Y, X)][, target: (C, Z, Y, X)]}``
    float32; each learned target (TARGET.NAMES) comes as its own sigmoid map under its name.

    With INFERENCE.AUG_MODE "mean" each window is predicted under INFERENCE.AUG_NUM flips/transposes,
    un-transformed and averaged (``inference.tta``) before the windows are blended.
    """
    model.eval()
    chosen = tta_variants(cfg)  # checked before any work
    device = next(model.parameters()).device
    inferer = make_inferer(cfg)
    volume = torch.from_numpy(np.ascontiguousarray(image)).float()
    if image.dtype == np.uint8:
        volume /= 255.0

    def network(x: torch.Tensor) -> dict[str, torch.Tensor]:  # MONAI blends each key of a dict output
        return full_resolution(model(x))

    network = with_tta(network, chosen)

    groups = heads(cfg)

    def finish(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = split_heads(out, groups)
        named = {"probabilities": torch.sigmoid(logits_of(out)), "embedding": embedding_of(out)}
        named.update({name: torch.sigmoid(out[name]) for name, _ in groups[1:]})  # learned targets' maps
        return {key: value.float().cpu() for key, value in named.items() if value is not None}

    if cfg.DATASET.DIMS == 3:
        return {key: value[0].numpy() for key, value in finish(inferer(volume[None, None].to(device), network)).items()}
    half = cfg.DATASET.INPUT_SLICES // 2
    depth = volume.shape[0]
    parts = []
    chunk = max(1, cfg.INFERENCE.SAMPLES_PER_BATCH)
    with tqdm(total=depth, desc="predict", unit="slice", disable=not progress, leave=False) as bar:
        for start in range(0, depth, chunk):
            zs = torch.arange(start, min(start + chunk, depth))
            neighbours = (zs[:, None] + torch.arange(-half, half + 1)[None]).clamp(0, depth - 1)  # (B, S)
            parts.append(finish(inferer(volume[neighbours].to(device), network)))
            bar.update(len(zs))
    # slices stacked along Z: (Z, C, Y, X) -> (C, Z, Y, X)
    return {key: torch.cat([p[key] for p in parts]).permute(1, 0, 2, 3).numpy() for key in parts[0]}
