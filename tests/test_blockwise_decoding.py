"""Blockwise decoding equals whole-volume decoding, for every decoder, over >= 8 blocks.

The maps are computed from known instances (touching clusters placed across block corners), smoothed,
noised and quantised to uint8 steps as `emseg predict` stores them, so decoders see ties and soft edges.
"""
from __future__ import annotations

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from emseg_plugins.postprocess.blockwise import decode_blockwise
from emseg_plugins.postprocess.stitch import block_grid
from emseg_plugins.postprocess.decoders import (
    ConnectedComponents, ContourDistanceWatershed, ContourWatershed, DistanceWatershed, MutexWatershed,
)
from emseg_plugins.targets.maps import affinity_map, binary_map, contour_map, distance_map

SHAPE, BLOCK, HALO = (32, 96, 96), (16, 32, 32), (12, 14, 14)
OFFSETS = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 3), (0, 3, 0))


def touching_clusters(seed: int = 0) -> np.ndarray:
    """(Z, Y, X) ids: clusters of 2-3 touching ellipsoids centred on block corners and faces."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    ids, n = np.zeros(SHAPE, np.uint32), 0
    for cz in (16,):
        for cy in (16, 32, 64, 80):
            for cx in (16, 32, 64, 80):
                if (cy in (16, 80)) == (cx in (16, 80)) and rng.random() < 0.5:
                    continue
                base = np.array([cz, cy, cx], float) + rng.uniform(-2, 2, 3)
                for _ in range(int(rng.integers(2, 4))):
                    centre, radii = base + rng.uniform(-3, 3, 3), rng.uniform(2.5, 4.5, 3)
                    inside = sum(((g - c) / r) ** 2 for g, c, r in zip((zz, yy, xx), centre, radii)) <= 1
                    n += 1
                    ids[inside & (ids == 0)] = n
    return ids


@pytest.fixture(scope="module")
def maps():
    ids = touching_clusters()
    rng = np.random.default_rng(1)

    def soften(a):
        noisy = ndimage.gaussian_filter(a.astype(np.float32), 0.7) + rng.normal(0, 0.05, a.shape)
        return np.round(np.clip(noisy, 0, 1) * 255) / 255  # uint8 steps: many ties

    affinity = np.stack([soften(np.nan_to_num(a)) for a in affinity_map(ids, OFFSETS)])
    return ids, {"foreground": soften(binary_map(ids)[0]), "contour": soften(contour_map(ids)[0]),
                 "distance": soften(distance_map(ids)[0]), "affinity": affinity}


def read(maps):
    return lambda region: {k: v[(slice(None), *region)] if v.ndim == 4 else v[region] for k, v in maps.items()}


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a and b group the voxels identically (ids may differ by a relabelling)."""
    pairs = np.unique(np.stack([a.ravel().astype(np.int64), b.ravel().astype(np.int64)]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b)) and ((pairs[0] == 0) == (pairs[1] == 0)).all()


DECODERS = {
    "cc": ConnectedComponents(),
    "watershed": DistanceWatershed(seed_distance=2.0),
    "bc_watershed": ContourWatershed(),
    "bcd_watershed": ContourDistanceWatershed(),
    "mutex_watershed": MutexWatershed(offsets=OFFSETS, min_size=5),
}


@pytest.mark.parametrize("name", list(DECODERS))
def test_blockwise_partition_equals_the_whole_volume_decode(maps, name):
    ids, predicted = maps
    decoder = DECODERS[name]
    whole = decoder.decode(read(predicted)(tuple(slice(0, s) for s in SHAPE)))
    blockwise, cut = decode_blockwise(decoder, read(predicted), SHAPE, BLOCK, HALO)
    assert cut == 0
    assert len(np.unique(whole)) > 10  # a real partition, not a trivial one
    assert same_partition(whole, blockwise)


def test_clusters_cross_block_corners_and_objects_touch(maps):
    ids, _ = maps
    assert len(block_grid(SHAPE, BLOCK)) >= 8
    blocks_per_object = [len({tuple(v // np.array(BLOCK)) for v in np.argwhere(ids == i)}) for i in range(1, ids.max() + 1)]
    assert max(blocks_per_object) >= 4  # some object spans a block corner
    assert cc3d.connected_components(ids > 0, connectivity=26).max() < ids.max()  # touching objects


def test_small_halo_reports_cut_components_and_cc_stays_exact(maps):
    _, predicted = maps
    blockwise, cut = decode_blockwise(DECODERS["bc_watershed"], read(predicted), SHAPE, BLOCK, (1, 1, 1))
    assert cut > 0
    whole = DECODERS["cc"].decode(read(predicted)(tuple(slice(0, s) for s in SHAPE)))
    assert same_partition(whole, decode_blockwise(DECODERS["cc"], read(predicted), SHAPE, BLOCK, (1, 1, 1))[0])


def test_face_contact_would_merge_what_the_decoder_split(maps):
    """Touching objects split by bc_watershed stay split after stitching (unlike a face-contact union)."""
    ids, predicted = maps
    decoder = DECODERS["bc_watershed"]
    blockwise, _ = decode_blockwise(decoder, read(predicted), SHAPE, BLOCK, HALO)
    cc = DECODERS["cc"].decode(read(predicted)(tuple(slice(0, s) for s in SHAPE)))
    assert len(np.unique(blockwise)) > len(np.unique(cc))
