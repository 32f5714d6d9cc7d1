"""Resample label and probability volumes: up or down, by factors or to another voxel size.

Volumes are (Z, Y, X) or (C, Z, Y, X) (channels are never resampled). A factor > 1 upsamples
(more voxels), < 1 downsamples; one factor per axis (Z, Y, X), integer or fractional.

Output shape: ``round(n * factor)`` on each axis (at least 1 voxel), for every kind. The volume's
extent is kept (voxel *edges* aligned, "grid mode"), so the factor actually applied on an axis is
``out / n``, which differs from the requested one only when ``n * factor`` is not a whole number.
Resampling to a voxel size uses ``factor = voxel_size / target_voxel_size`` (both in nm, Z Y X).

- labels (instance ids, masks): nearest neighbour (``scipy.ndimage.zoom``, order 0) in the stored
  dtype, so ids are never mixed or rounded. An integer upsampling factor repeats each voxel exactly
  ``factor`` times (the same as ``np.repeat``).
- probabilities: linear interpolation (``skimage.transform.resize``, order 1), with skimage's
  Gaussian anti-aliasing when an axis shrinks; computed in float32 and returned in the stored dtype
  (uint8 rounded and clipped to 0..255, float16 and float32 as they are).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.transform import resize

from emseg_plugins.errors import ConfigError

KINDS = ("labels", "probabilities")


def as_factors(factor: float | Sequence[float]) -> tuple[float, float, float]:
    """A scalar or (Z, Y, X) factors -> three positive floats; ConfigError otherwise."""
    values = [float(factor)] * 3 if np.isscalar(factor) else [float(f) for f in factor]
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or min(values) <= 0:
        raise ConfigError(f"--factor {list(values)} must be one positive factor or three (Z, Y, X)")
    return tuple(values)  # type: ignore[return-value]


def factors_for_voxel_size(voxel_size: Sequence[float], target: Sequence[float]) -> tuple[float, float, float]:
    """(Z, Y, X) factors taking voxels of ``voxel_size`` nm to ``target`` nm."""
    if len(voxel_size) != 3 or len(target) != 3 or min(*voxel_size, *target) <= 0:
        raise ConfigError(f"--voxel-size {list(voxel_size)} and --target-voxel-size {list(target)} must be three positive sizes (Z, Y, X) in nm")
    return tuple(float(v) / float(t) for v, t in zip(voxel_size, target))  # type: ignore[return-value]


def output_shape(shape: Sequence[int], factors: Sequence[float]) -> tuple[int, int, int]:
    """Spatial shape after resampling (Z, Y, X): ``max(1, round(n * f))`` per axis."""
    return tuple(max(1, round(n * f)) for n, f in zip(shape[-3:], factors))  # type: ignore[return-value]


def resample(volume: np.ndarray, factors: float | Sequence[float], kind: str) -> np.ndarray:
    """``volume`` (Z, Y, X) or (C, Z, Y, X) resampled by ``factors`` as ``kind`` (labels | probabilities)."""
    if kind not in KINDS:
        raise ConfigError(f"--kind {kind!r} must be one of {', '.join(KINDS)}")
    volume = np.asarray(volume)
    if volume.ndim not in (3, 4):
        raise ConfigError(f"a volume to resample is (Z, Y, X) or (C, Z, Y, X), got shape {volume.shape}")
    if volume.ndim == 4:  # one channel at a time: bounded memory, and channels stay apart
        return np.stack([resample(channel, factors, kind) for channel in volume])
    shape = output_shape(volume.shape, as_factors(factors))
    if shape == volume.shape:
        return volume.copy()
    if kind == "labels" and volume.dtype == bool:  # ndimage writes no bool output
        return resample(volume.view(np.uint8), factors, kind).astype(bool)
    if kind == "labels":
        # zoom with grid_mode derives the exact per-axis factor from the shapes it is given
        zoom = [o / n for o, n in zip(shape, volume.shape)]
        out = ndimage.zoom(volume, zoom, order=0, mode="nearest", grid_mode=True, output=volume.dtype)
        assert out.shape == shape, (out.shape, shape)
        return out
    data = volume.astype(np.float32) / (255.0 if volume.dtype == np.uint8 else 1.0)
    shrinks = any(o < n for o, n in zip(shape, volume.shape))
    out = resize(data, shape, order=1, mode="edge", anti_aliasing=shrinks, preserve_range=True).astype(np.float32)
    if volume.dtype == np.uint8:
        return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
    return out.astype(volume.dtype) if np.issubdtype(volume.dtype, np.floating) else out


def guess_kind(dtype: np.dtype, name: str = "") -> str:
    """``probabilities`` for float volumes and for emseg's uint8 ``probabilities`` dataset, else ``labels``."""
    if np.issubdtype(dtype, np.floating) or name.rsplit("/", 1)[-1] == "probabilities":
        return "probabilities"
    return "labels"
