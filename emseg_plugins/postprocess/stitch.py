"""Block grids and id offsets shared by chunked prediction and blockwise decoding.

Blocks tile a (Z, Y, X) volume in C order; block b numbers its instances 1..n_b and gets the global
offset sum(n_a for a before b). Joining ids across blocks is ``postprocess/blockwise.py``'s job.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

Box = tuple[slice, slice, slice]


def block_grid(shape: Sequence[int], block: Sequence[int]) -> list[Box]:
    """Non-overlapping blocks of ``block`` voxels covering ``shape`` (Z, Y, X), in C order."""
    starts = [range(0, s, b) for s, b in zip(shape, block)]
    return [tuple(slice(o, min(o + b, s)) for o, b, s in zip(corner, block, shape)) for corner in itertools.product(*starts)]


def block_offsets(counts: Sequence[int]) -> np.ndarray:
    """Global-id offset of each block: the number of instances in all blocks before it."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def apply_lookup(local: np.ndarray, offset: int, lookup: np.ndarray) -> np.ndarray:
    """One block's local ids -> stitched ids (0 stays 0)."""
    local = np.asarray(local).astype(np.int64)
    return np.where(local > 0, lookup[local + offset], 0).astype(lookup.dtype)
