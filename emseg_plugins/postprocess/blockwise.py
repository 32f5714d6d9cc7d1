"""Blockwise instance decoding that reproduces a whole-volume decode, and its stitching.

Each block is decoded together with a halo of context (region E). The block keeps its core,
renumbered 1..n, and also records its *shell*: its own labels of the voxels just outside the core
(one voxel deep, faces, edges and corners), in the same numbering. Stitching pairs, voxel by voxel,
a block's shell id with the id the neighbouring block gave that same voxel in its core, and joins
the pairs (union-find via ``scipy.sparse.csgraph``). Two objects that touch are never joined merely
for touching: only the same voxel seen by two blocks joins ids, so splits made by a decoder survive.

Exactness: the built-in decoders are component-local (``decoders.py``). An object whose foreground
component lies inside E (at least ``MARGIN`` voxels from E's faces that are not the volume's) is
decoded exactly as in the whole volume, by every block that sees it, so the pairs are one-to-one and
the stitched partition equals the whole-volume one. A component that reaches closer to those faces
is *cut*: it is still stitched, but may split or merge differently; blocks count them so the caller
can say so and suggest a larger halo. ``cc`` is exact at any halo (components join through shells).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cc3d
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from emseg_plugins.postprocess.stitch import Box, block_grid, block_offsets

MARGIN = 2  # voxels: a component this close to an inner face of the decoded region may be incomplete
MapsReader = Callable[[Box], dict]  # region (Z, Y, X slices) -> maps of that region


@dataclass
class DecodedBlock:
    """A block's decode: core ids (Z, Y, X) uint32 1..count, shell ids over ``shell_box`` (core zeroed), cut components."""

    core: np.ndarray
    count: int
    shell_box: Box
    shell: np.ndarray
    cut: int


def grow(box: Box, by: Sequence[int], shape: Sequence[int]) -> Box:
    """``box`` grown by ``by`` voxels per axis, clipped to ``shape``."""
    return tuple(slice(max(0, s.start - b), min(n, s.stop + b)) for s, b, n in zip(box, by, shape))


def inside(box: Box, outer: Box) -> Box:
    """``box`` in the coordinates of ``outer`` (which contains it)."""
    return tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(box, outer))


def decode_block(decoder, read_maps: MapsReader, box: Box, halo: Sequence[int], shape: Sequence[int]) -> DecodedBlock:
    """Decode ``box`` with ``halo`` voxels of context (at least 1 per axis, for the shell)."""
    region = grow(box, [max(1, h) for h in halo], shape)
    maps = read_maps(region)
    labels = decoder.decode(maps, origin=[s.start for s in region])
    core_ids = labels[inside(box, region)]
    known = np.unique(core_ids)
    known = known[known > 0]
    shell_box = grow(box, (1, 1, 1), shape)
    shell = _renumber(labels[inside(shell_box, region)], known)
    shell[inside(box, shell_box)] = 0
    return DecodedBlock(_renumber(core_ids, known), len(known), shell_box, shell,
                        _cut_components(decoder.foreground_of(maps), region, box, shape))


def _renumber(ids: np.ndarray, known: np.ndarray) -> np.ndarray:
    """ids -> 1..len(known) by their rank in ``known`` (sorted); ids not in ``known`` -> 0."""
    if not len(known):
        return np.zeros(ids.shape, np.uint32)
    rank = np.clip(np.searchsorted(known, ids), 0, len(known) - 1)
    return np.where((ids > 0) & (known[rank] == ids), rank + 1, 0).astype(np.uint32)


def _cut_components(foreground: np.ndarray, region: Box, box: Box, shape: Sequence[int]) -> int:
    """Foreground components meeting the core that come within MARGIN voxels of an inner face of ``region``."""
    components = cc3d.connected_components(np.ascontiguousarray(foreground), connectivity=26, out_dtype=np.uint32)
    rim = np.zeros(foreground.shape, bool)
    for axis, (s, n) in enumerate(zip(region, shape)):
        index = [slice(None)] * 3
        if s.start > 0:
            index[axis] = slice(0, MARGIN)
            rim[tuple(index)] = True
        if s.stop < n:
            index[axis] = slice(-MARGIN, None)
            rim[tuple(index)] = True
    touching = np.unique(components[rim])
    in_core = np.unique(components[inside(box, region)])
    return int(np.intersect1d(touching[touching > 0], in_core[in_core > 0]).size)


def block_index(block: Sequence[int], grid: Sequence[int]) -> Callable[[Box], np.ndarray]:
    """region -> (Z, Y, X) C-order index of the block owning each voxel of a regular grid of ``block``-sized blocks."""

    def owner(region: Box) -> np.ndarray:
        z, y, x = (np.arange(s.start, s.stop) // b for s, b in zip(region, block))
        return (z[:, None, None] * grid[1] + y[None, :, None]) * grid[2] + x[None, None, :]

    return owner


def shell_pairs(shell: np.ndarray, shell_box: Box, own_offset: int, local, owner, offsets: np.ndarray) -> np.ndarray:
    """(2, n) global id pairs: this block's shell id and the neighbour's core id at the same voxel.

    ``local``: the block-local core ids of the whole volume (numpy/zarr, sliceable); ``owner``: from
    :func:`block_index`; ``offsets``: per block, the global offset of its ids.
    """
    theirs = np.asarray(local[shell_box]).astype(np.int64)
    both = (shell > 0) & (theirs > 0)
    mine = shell[both].astype(np.int64) + own_offset
    other = theirs[both] + offsets[owner(shell_box)[both]]
    return np.unique(np.stack([mine, other]), axis=1) if mine.size else np.zeros((2, 0), np.int64)


def join(pairs: Sequence[np.ndarray], total: int) -> np.ndarray:
    """Lookup global id -> stitched id (0 -> 0), objects numbered 1..N by their smallest global id."""
    edges = np.concatenate(list(pairs), axis=1) if pairs else np.zeros((2, 0), np.int64)
    graph = coo_matrix((np.ones(edges.shape[1]), (edges[0], edges[1])), shape=(total + 1, total + 1))
    _, component = connected_components(graph, directed=False)
    first = np.full(component.max() + 1, total + 1)
    np.minimum.at(first, component[1:], np.arange(1, total + 1))
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    lookup = (rank[component] + 1).astype(np.uint64)
    lookup[0] = 0
    return lookup


def decode_blockwise(decoder, read_maps: MapsReader, shape: Sequence[int], block: Sequence[int], halo: Sequence[int]) -> tuple[np.ndarray, int]:
    """In-memory reference of the pipeline (tests, small volumes): (stitched ids (Z, Y, X) uint64, cut components)."""
    boxes = block_grid(shape, block)
    grid = [len(range(0, s, b)) for s, b in zip(shape, block)]
    local = np.zeros(shape, np.uint32)
    decoded = []
    for box in boxes:
        result = decode_block(decoder, read_maps, box, halo, shape)
        local[box] = result.core
        decoded.append(result)
    offsets = block_offsets([d.count for d in decoded])
    owner = block_index(block, grid)
    lookup = join([shell_pairs(d.shell, d.shell_box, offsets[i], local, owner, offsets) for i, d in enumerate(decoded)],
                  int(sum(d.count for d in decoded)))
    stitched = np.zeros(shape, np.uint64)
    for i, box in enumerate(boxes):
        core = local[box].astype(np.int64)
        stitched[box] = np.where(core > 0, lookup[core + offsets[i]], 0)
    return stitched, sum(d.cut for d in decoded)
