"""Foreground maps to instance label maps: connected components, seeded watershed, clean-up.

Arrays are (Z, Y, X); voxel sizes are (z, y, x) in nm (only their ratios matter here). Instance ids
are uint32, 0 = background, numbered 1..N in scan order.
"""
from __future__ import annotations

from collections.abc import Sequence

import cc3d
import fastremap
import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

CONNECTIVITY = {6, 18, 26}  # cc3d's 3D neighbourhoods (faces, + edges, + corners)


def relabel(labels: np.ndarray) -> np.ndarray:
    """Ids renumbered 1..N in order of first appearance (0 stays 0), as uint32."""
    renumbered, _ = fastremap.renumber(np.ascontiguousarray(labels), preserve_zero=True, in_place=False)
    return renumbered.astype(np.uint32, copy=False)


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Instances smaller than ``min_size`` voxels set to 0 (ids of the rest unchanged)."""
    if min_size <= 1:
        return labels
    ids, counts = fastremap.unique(labels, return_counts=True)
    small = [int(i) for i, c in zip(ids, counts) if i != 0 and c < min_size]
    return fastremap.mask(labels, small) if small else labels


def connected_instances(mask: np.ndarray, connectivity: int = 26, min_size: int = 0) -> np.ndarray:
    """Binary mask (Z, Y, X) -> instances by ``cc3d`` connected components, small ones removed."""
    if connectivity not in CONNECTIVITY:
        raise ValueError(f"connectivity {connectivity} must be one of {sorted(CONNECTIVITY)}")
    labels = cc3d.connected_components(np.ascontiguousarray(mask, dtype=bool), connectivity=connectivity, out_dtype=np.uint32)
    return relabel(remove_small(labels, min_size))


def watershed_instances(
    probability: np.ndarray, threshold: float = 0.5, seed_distance: float = 2.0,
    voxel_size: Sequence[float] = (1.0, 1.0, 1.0), distance: np.ndarray | None = None, min_size: int = 0,
) -> np.ndarray:
    """Seeded watershed of a foreground map (Z, Y, X) -> instances (uint32).

    The foreground is ``probability >= threshold``. Seeds are the connected regions where the
    distance to the background (``distance`` if the model predicts one, else the Euclidean distance
    transform in units of the smallest voxel side) is at least ``seed_distance``; touching objects
    with separate cores get separate ids. Foreground not reached from any seed keeps no label.
    """
    foreground = probability >= threshold
    if distance is None:
        sampling = np.asarray(voxel_size, float) / min(voxel_size)
        distance = ndimage.distance_transform_edt(foreground, sampling=sampling)
    seeds = cc3d.connected_components(np.ascontiguousarray((distance >= seed_distance) & foreground), connectivity=26)
    labels = watershed(-distance, markers=seeds, mask=foreground).astype(np.uint32)
    return relabel(remove_small(labels, min_size))
