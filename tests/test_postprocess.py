"""Instances from masks (connected components, seeded watershed), stitching across blocks, instance metrics."""
from __future__ import annotations

import numpy as np
import pytest

from emseg_plugins.evaluation.instance_metrics import instance_scores, iou_matrix
from emseg_plugins.postprocess.instances import connected_instances, relabel, remove_small, watershed_instances
from emseg_plugins.postprocess.blockwise import decode_blockwise
from emseg_plugins.postprocess.decoders import ConnectedComponents
from emseg_plugins.postprocess.stitch import block_grid


def balls(shape, centres, radius):
    """Label map with one ball per centre (ids 1..n; later balls overwrite earlier ones)."""
    zz, yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.uint32)
    for i, (z, y, x) in enumerate(centres, start=1):
        labels[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = i
    return labels


def test_connected_components_count_objects_and_drop_small_ones():
    mask = np.zeros((5, 20, 20), bool)
    mask[1:4, 2:6, 2:6] = True  # 48 voxels
    mask[2, 10, 10] = True  # 1 voxel
    mask[1:3, 14:18, 14:18] = True  # 32 voxels
    labels = connected_instances(mask)
    assert labels.dtype == np.uint32 and labels.max() == 3
    assert sorted(np.bincount(labels.ravel())[1:]) == [1, 32, 48]
    cleaned = connected_instances(mask, min_size=2)
    assert cleaned.max() == 2 and not cleaned[2, 10, 10]


def test_connectivity_decides_whether_diagonal_voxels_join():
    mask = np.zeros((1, 3, 3), bool)
    mask[0, 0, 0] = mask[0, 1, 1] = True
    assert connected_instances(mask, connectivity=26).max() == 1
    assert connected_instances(mask, connectivity=6).max() == 2
    with pytest.raises(ValueError, match="connectivity 4"):
        connected_instances(mask, connectivity=4)


def test_watershed_splits_touching_balls_that_connected_components_merge():
    truth = balls((24, 48, 64), [(12, 24, 20), (12, 24, 40)], radius=11)  # overlapping: one blob
    probability = (truth > 0).astype(np.float32)
    assert connected_instances(probability > 0.5).max() == 1
    split = watershed_instances(probability, seed_distance=8)
    assert split.max() == 2
    scores = instance_scores(split, truth)
    assert scores["f1@0.75"] == 1.0 and scores["dice"] == 1.0


def test_watershed_accounts_for_anisotropic_voxels():
    """A slab 3 voxels thick at 30 nm along Z is 90 nm thick: far enough from the background for seeds."""
    probability = np.zeros((5, 40, 40), np.float32)
    probability[1:4, 5:35, 5:35] = 1
    assert watershed_instances(probability, seed_distance=2.5, voxel_size=(1, 1, 1)).max() == 0  # no seed core
    assert watershed_instances(probability, seed_distance=2.5, voxel_size=(30, 10, 10)).max() == 1


def test_relabel_and_remove_small():
    labels = np.array([[[0, 7, 7, 3, 9]]], np.uint64)
    assert relabel(labels).tolist() == [[[0, 1, 1, 2, 3]]]
    assert remove_small(labels, 2).tolist() == [[[0, 7, 7, 0, 0]]]


@pytest.mark.parametrize("block", [(8, 16, 16), (5, 13, 32), (40, 70, 90)])
def test_blockwise_components_stitched_equal_whole_volume_components(block):
    """Independent reference: scipy's 26-connected labelling of the whole mask."""
    from scipy import ndimage

    mask = np.random.default_rng(1).random((20, 35, 45)) > 0.88  # sparse: 26-neighbourhoods percolate above ~0.1
    whole, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    stitched, _ = decode_blockwise(ConnectedComponents(), lambda region: {"foreground": mask[region].astype(np.float32)},
                                   mask.shape, block, (1, 1, 1))
    assert np.array_equal(relabel(stitched), relabel(whole))
    assert stitched.max() == count > 10


def test_block_grid_covers_the_volume_once():
    boxes = block_grid((10, 7, 5), (4, 4, 5))
    cover = np.zeros((10, 7, 5), int)
    for box in boxes:
        cover[box] += 1
    assert len(boxes) == 3 * 2 * 1 and (cover == 1).all()


def test_instance_scores_match_one_to_one():
    truth = np.zeros((1, 10, 30), np.uint32)
    truth[0, 2:8, 2:8], truth[0, 2:8, 12:18], truth[0, 2:8, 22:28] = 1, 2, 3  # 36 voxels each
    pred = np.zeros_like(truth)
    pred[0, 2:8, 2:8] = 5  # exact
    pred[0, 2:8, 12:16] = 6  # IoU 24/36
    pred[0, 0:2, 22:28] = 7  # no overlap
    pred[0, 2:8, 8:10] = 8  # false positive touching nothing
    iou, p_ids, t_ids = iou_matrix(pred, truth)
    assert p_ids.tolist() == [5, 6, 7, 8] and t_ids.tolist() == [1, 2, 3]
    assert iou[1, 1] == pytest.approx(24 / 36) and iou[0, 0] == 1.0
    scores = instance_scores(pred, truth, thresholds=(0.5, 0.75))
    assert scores["precision@0.5"] == pytest.approx(2 / 4) and scores["recall@0.5"] == pytest.approx(2 / 3)
    assert scores["precision@0.75"] == pytest.approx(1 / 4) and scores["recall@0.75"] == pytest.approx(1 / 3)
    assert scores["f1@0.5"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert instance_scores(np.zeros_like(truth), np.zeros_like(truth))["f1@0.5"] == 1.0
