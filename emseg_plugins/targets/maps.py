"""Learned instance targets computed from instance ids: binary, contour, distance, affinity.

Every function takes instance ids (Z, Y, X) integers (0 = background) and returns float32
(C, Z, Y, X) maps in [0, 1]; NaN marks voxels whose target is unknown (an affinity partner outside
the array). ``per_slice`` computes contours and distances within each Z section only, as for
anisotropic serial-section stacks (PyTorch Connectomics' 2D target modes).
"""
from __future__ import annotations

from collections.abc import Sequence

import edt
import fastmorph
import numpy as np


def binary_map(ids: np.ndarray) -> np.ndarray:
    """(1, Z, Y, X): 1 inside any instance (PyTC target '0')."""
    return (ids > 0)[None].astype(np.float32)


def contour_map(ids: np.ndarray, width: int = 1, per_slice: bool = False) -> np.ndarray:
    """(1, Z, Y, X): 1 on the inner ``width`` voxels of every instance's border (PyTC target '4').

    A voxel is on the contour when multi-label erosion (``fastmorph``, 3x3(x3) neighbourhood,
    ``width`` iterations) removes it: it lies within ``width`` voxels of background or another id.
    The array border is not a border (a patch edge cuts objects, it does not end them).
    """
    ids = np.ascontiguousarray(ids)
    eroded = np.stack([_erode(s, width) for s in ids]) if per_slice else _erode(ids, width)
    return ((ids > 0) & (eroded != ids))[None].astype(np.float32)


def _erode(ids: np.ndarray, width: int) -> np.ndarray:
    """Multi-label erosion of a 2D or 3D array; edges padded by repetition so they are not borders."""
    padded = np.pad(ids, width, mode="edge")
    inner = tuple(slice(width, -width) for _ in range(ids.ndim))
    return fastmorph.erode(padded, iterations=width)[inner]


def distance_map(ids: np.ndarray, voxel_size: Sequence[float] = (1.0, 1.0, 1.0), per_slice: bool = False) -> np.ndarray:
    """(1, Z, Y, X): each instance's Euclidean distance transform divided by its own maximum (PyTC '5').

    Distances are in nm (``voxel_size`` (z, y, x)) to the nearest voxel of another id or background
    (``edt``'s multi-label transform); 0 on background, 1 at each object's most interior voxel.
    """
    ids = np.ascontiguousarray(ids)
    if per_slice:
        dist = np.stack([edt.edt(s, anisotropy=tuple(voxel_size[1:])) for s in ids]).astype(np.float32)
    else:
        dist = edt.edt(ids, anisotropy=tuple(voxel_size)).astype(np.float32)
    flat_ids = ids.ravel().astype(np.int64)
    _, inverse = np.unique(flat_ids, return_inverse=True)
    peak = np.zeros(inverse.max() + 1, np.float32)
    np.maximum.at(peak, inverse, dist.ravel())
    normalised = dist.ravel() / np.maximum(peak[inverse], 1e-6)
    return np.where(flat_ids > 0, normalised, 0).reshape(1, *ids.shape).astype(np.float32)


def affinity_map(ids: np.ndarray, offsets: Sequence[Sequence[int]]) -> np.ndarray:
    """(len(offsets), Z, Y, X): channel c at voxel v is 1 when v and v + offsets[c] hold the same
    instance, else 0 (PyTC target '2'; long-range offsets allowed); NaN where v + offset leaves the array."""
    out = np.full((len(offsets), *ids.shape), np.nan, np.float32)
    for c, offset in enumerate(offsets):
        here, there = shifted_pair(ids.shape, offset)
        a, b = ids[here], ids[there]
        out[(c, *here)] = ((a == b) & (a > 0)).astype(np.float32)
    return out


def shifted_pair(shape: Sequence[int], offset: Sequence[int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(slices of v, slices of v + offset) over the voxels where both lie inside ``shape``."""
    here = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(offset, shape))
    there = tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(offset, shape))
    return here, there
