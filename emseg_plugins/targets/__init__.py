"""Learned instance targets: what a model learns besides class masks so that touching objects split.

A target plugin (entry-point group ``emseg_plugins.targets``) is a builder ``build(cfg) -> Target``.
``TARGET.NAMES`` selects any combination; each target gets its own output channels after the
``DATASET.CLASSES`` channels, its own batch key (its name) and its own loss term
(``TARGET.LOSSES``/``TARGET.WEIGHTS``). Targets are computed from a sample's instance ids in the
data workers, after augmentation, so sample *i* stays a pure function of (seed, *i*).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import lookup
from emseg_plugins.errors import ConfigError
from emseg_plugins.registry import TARGETS
from emseg_plugins.targets.maps import affinity_map, binary_map, contour_map, distance_map

# PyTorch Connectomics' TARGET_OPT codes for the same targets
PYTC_CODES = {"0": "binary", "2": "affinity", "4": "contour", "5": "distance"}


@dataclass(frozen=True)
class Target:
    """One learned target: ``compute(ids (Z, Y, X)) -> (channels, Z, Y, X)`` float32 in [0, 1], NaN = unknown."""

    name: str
    channels: int
    compute: Callable[[np.ndarray], np.ndarray]
    loss: str = "dice_bce"  # default LOSSES name when TARGET.LOSSES is empty
    pairwise: bool = False  # each value relates a voxel to a partner (affinities): unknown where either is invalid


def target_names(cfg: CN) -> list[str]:
    """``TARGET.NAMES`` with PyTC codes ('0', '2', '4', '5', also '4-...' forms) read as names
    ([] for configs saved before targets existed)."""
    names = cfg.TARGET.NAMES if "TARGET" in cfg else []
    return [PYTC_CODES.get(str(n).split("-")[0], str(n)) for n in names]


def build_targets(cfg: CN) -> list[Target]:
    """Every selected target, checked against the config; :class:`ConfigError` naming the key otherwise."""
    names = target_names(cfg)
    if len(set(names)) != len(names):
        raise ConfigError(f"config: TARGET.NAMES {list(cfg.TARGET.NAMES)} names a target twice; list each once")
    for key in ("TARGET.LOSSES", "TARGET.WEIGHTS"):
        values = lookup(cfg, key)
        if values and len(values) != len(names):
            raise ConfigError(f"config: {key} has {len(values)} entries for {len(names)} TARGET.NAMES; give one per target or none")
    if any(w <= 0 for w in cfg.TARGET.WEIGHTS):
        raise ConfigError(f"config: TARGET.WEIGHTS {list(cfg.TARGET.WEIGHTS)} must all be > 0")
    return [TARGETS.build(name, cfg) for name in names]


def target_losses(cfg: CN, targets: Sequence[Target]) -> list[tuple[Target, str, float]]:
    """(target, loss name, weight) per target, from ``TARGET.LOSSES``/``TARGET.WEIGHTS`` or the defaults."""
    losses = list(cfg.TARGET.LOSSES) or [t.loss for t in targets]
    weights = list(cfg.TARGET.WEIGHTS) or [1.0] * len(targets)
    return list(zip(targets, losses, weights))


def target_channels(cfg: CN) -> int:
    """Output channels all selected targets need together."""
    return sum(t.channels for t in build_targets(cfg))


def output_channels(cfg: CN) -> int:
    """A model's output channels: one per class of ``DATASET.CLASSES``, then every target's."""
    return len(cfg.DATASET.CLASSES) + target_channels(cfg)


def heads(cfg: CN) -> list[tuple[str, slice]]:
    """``[("logits", class channels), (target name, its channels), ...]`` as channel slices of the model output."""
    k = len(cfg.DATASET.CLASSES)
    result, start = [("logits", slice(0, k))], k
    for target in build_targets(cfg):
        result.append((target.name, slice(start, start + target.channels)))
        start += target.channels
    return result


class TargetMaker:
    """Adds each target to a sample, computed from its ``instance`` ids (1, [Z,] Y, X).

    Where the sample's ``valid_mask`` is 0, or no class is annotated (label NaN in every channel), the
    targets are NaN (no loss there); affinities whose partner voxel is invalid are NaN as well.
    """

    def __init__(self, targets: Sequence[Target]):
        self.targets = list(targets)

    def __call__(self, sample: dict) -> dict:
        if not self.targets:
            return sample
        import torch  # the data workers have it already; keeps this module importable without it

        if "instance" not in sample:
            raise ConfigError(f"config: TARGET.NAMES {[t.name for t in self.targets]} are computed from instance ids, but the "
                              f"dataset's samples carry only {', '.join(sorted(sample))}; give the dataset instance labels or drop TARGET.NAMES")
        ids = sample["instance"].numpy()[0]
        volume = ids if ids.ndim == 3 else ids[None]  # 2D samples: one section
        valid = ~np.isnan(sample["label"].numpy()).all(0).reshape(volume.shape)  # a voxel no class annotates
        if sample.get("valid_mask") is not None:
            valid &= sample["valid_mask"].numpy()[0].reshape(volume.shape) > 0
        valid = None if valid.all() else valid
        for target in self.targets:
            maps = target.compute(volume)
            if valid is not None:
                maps = _invalidate(maps, valid, target)
            sample[target.name] = torch.from_numpy(np.ascontiguousarray(maps.reshape(target.channels, *ids.shape)))
        return sample


def _invalidate(maps: np.ndarray, valid: np.ndarray, target: Target) -> np.ndarray:
    """NaN where a voxel is invalid (and, for pairwise targets, where its partner is: recomputed on the mask)."""
    out = np.where(valid[None], maps, np.nan).astype(np.float32)
    if target.pairwise:
        partner_valid = target.compute(valid.astype(np.uint32))  # 1 where both ends lie in the valid region
        out[np.isfinite(partner_valid) & (partner_valid == 0) & valid[None]] = np.nan
    return out


def _per_slice(cfg: CN) -> bool:
    return bool(cfg.TARGET.PER_SLICE) or cfg.DATASET.DIMS == 2


def build_binary(cfg: CN) -> Target:
    """Foreground of any instance (1 channel)."""
    return Target("binary", 1, binary_map)


def build_contour(cfg: CN) -> Target:
    """Instance borders, TARGET.CONTOUR_WIDTH voxels wide (1 channel)."""
    if cfg.TARGET.CONTOUR_WIDTH < 1:
        raise ConfigError(f"config: TARGET.CONTOUR_WIDTH = {cfg.TARGET.CONTOUR_WIDTH} must be at least 1")
    return Target("contour", 1, partial(contour_map, width=cfg.TARGET.CONTOUR_WIDTH, per_slice=_per_slice(cfg)))


def build_distance(cfg: CN) -> Target:
    """Per-instance normalised distance transform, anisotropic (TARGET.VOXEL_SIZE) (1 channel)."""
    size = list(cfg.TARGET.VOXEL_SIZE)
    if len(size) != 3 or min(size) <= 0:
        raise ConfigError(f"config: TARGET.VOXEL_SIZE = {size} must be three positive sizes in nm (z, y, x)")
    return Target("distance", 1, partial(distance_map, voxel_size=size, per_slice=_per_slice(cfg)), loss="bce")


def build_affinity(cfg: CN) -> Target:
    """Affinities to the voxel at each of TARGET.AFFINITY_OFFSETS (one channel per offset)."""
    offsets = [list(o) for o in cfg.TARGET.AFFINITY_OFFSETS]
    patch = list(cfg.DATASET.PATCH_SIZE)
    for offset in offsets:
        if len(offset) != 3 or not any(offset):
            raise ConfigError(f"config: TARGET.AFFINITY_OFFSETS entry {offset} must be a non-zero (z, y, x) offset")
        if cfg.DATASET.DIMS == 2 and offset[0]:
            raise ConfigError(f"config: TARGET.AFFINITY_OFFSETS entry {offset} crosses sections, but DATASET.DIMS is 2; use (0, y, x) offsets")
        if any(abs(o) >= p for o, p in zip(offset, patch)):
            raise ConfigError(f"config: TARGET.AFFINITY_OFFSETS entry {offset} reaches past DATASET.PATCH_SIZE {patch}; "
                              "use shorter offsets or larger patches")
    return Target("affinity", len(offsets), partial(affinity_map, offsets=offsets), pairwise=True)
