"""Patch sampling (2D, 2.5D, 3D), resumable sampling, sliding-window prediction and writers."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import zarr

from conftest import TINY
from emseg_plugins.config import load_config
from emseg_plugins.datasets.patches import Augment, GridPatches, PatchSpec, RandomPatches, Volume, tile_corners
from emseg_plugins.engine.data import ResumeSampler
from emseg_plugins.errors import DataError
from emseg_plugins.inference.sliding_window import predict_volume
from emseg_plugins.inference.writers import write_predictions
from emseg_plugins.registry import DATASETS


def ramp_volume(shape=(6, 16, 16)) -> Volume:
    """image[z] == 10 * z everywhere; label channel 0 == z parity."""
    z = np.arange(shape[0])[:, None, None]
    image = np.broadcast_to(10 * z, shape).astype(np.uint8)
    labels = np.broadcast_to(z % 2, shape)[None].astype(np.uint8)
    return Volume("ramp", image, labels)


def test_25d_sample_stacks_neighbours_and_repeats_edges():
    spec = PatchSpec((1, 8, 8), dims=2, input_slices=3)
    sample = spec.sample(ramp_volume(), (0, 4, 4))
    assert sample["image"].shape == (3, 8, 8) and sample["label"].shape == (1, 8, 8)
    assert [round(float(c.mean()) * 255) for c in sample["image"]] == [0, 0, 10]  # z = -1 repeats z = 0
    assert float(sample["label"].mean()) == 0.0  # centre slice z = 0
    centre = spec.sample(ramp_volume(), (3, 0, 0))
    assert [round(float(c.mean()) * 255) for c in centre["image"]] == [20, 30, 40]
    assert float(centre["label"].mean()) == 1.0


def test_3d_sample_shapes():
    sample = PatchSpec((4, 8, 8), dims=3, input_slices=1).sample(ramp_volume(), (1, 0, 8))
    assert sample["image"].shape == (1, 4, 8, 8) and sample["label"].shape == (1, 4, 8, 8)


def test_random_patches_are_a_pure_function_of_seed_and_index():
    spec = PatchSpec((1, 8, 8), 2, 1)
    a = RandomPatches([ramp_volume()], spec, 10, seed=3, augment=Augment(True, True, 0.1))
    b = RandomPatches([ramp_volume()], spec, 10, seed=3, augment=Augment(True, True, 0.1))
    for i in (0, 7):
        assert torch.equal(a[i]["image"], b[i]["image"])
    assert not all(torch.equal(a[i]["image"], a[i + 1]["image"]) for i in range(5))


def test_grid_tiles_cover_every_voxel():
    corners = tile_corners((5, 20, 17), (1, 8, 8))
    covered = np.zeros((5, 20, 17), bool)
    for z, y, x in corners:
        covered[z, y : y + 8, x : x + 8] = True
    assert covered.all()
    assert len(GridPatches([ramp_volume((5, 20, 17))], PatchSpec((1, 8, 8), 2, 1))) == len(corners) == 5 * 3 * 3


def test_patch_larger_than_volume_is_a_data_error():
    with pytest.raises(DataError, match="smaller than DATASET.PATCH_SIZE"):
        GridPatches([ramp_volume()], PatchSpec((1, 32, 32), 2, 1))


def test_resume_sampler_skips_done_samples_and_shards_by_rank():
    assert list(ResumeSampler(10, skip=4)) == [4, 5, 6, 7, 8, 9] and len(ResumeSampler(10, skip=4)) == 10
    ranks = [list(ResumeSampler(10, rank, 2, skip=1)) for rank in (0, 1)]
    assert ranks == [[2, 4, 6, 8], [3, 5, 7, 9]]


def test_synthetic_splits_hold_out_the_val_z_range():
    cfg = load_config(TINY)
    data = DATASETS.build("synthetic", cfg)
    train, val = data.volumes("train"), data.volumes("val")
    assert [v.image.shape[0] for v in train] == [8] and val[0].image.shape == (4, 64, 64)
    assert val[0].labels.shape == (2, 4, 64, 64)
    test = data.volumes("test")
    assert test[0].image.shape == (4, 64, 64) and not np.array_equal(test[0].image, val[0].image)


class MeanOfChannels(torch.nn.Module):
    """A 'model' whose logit is (mean of its input channels - 0.5) * 20, per class: easy to predict."""

    def __init__(self, classes: int):
        super().__init__()
        self.classes = classes
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return ((x.mean(1, keepdim=True) - 0.5) * 20).repeat(1, self.classes, *[1] * (x.ndim - 2)) + self.dummy


@pytest.mark.parametrize("dims, slices", [(2, 1), (2, 3), (3, 1)])
def test_sliding_window_reassembles_the_volume(dims, slices):
    rng = np.random.default_rng(0)
    image = (rng.random((6, 40, 36)) > 0.5).astype(np.uint8) * 255
    size = "[1, 16, 16]" if dims == 2 else "[4, 16, 16]"
    cfg = load_config(overrides=["DATASET.DIMS", str(dims), "DATASET.PATCH_SIZE", size, "INFERENCE.INPUT_SIZE", size,
                                 "DATASET.INPUT_SLICES", str(slices)])
    probs = predict_volume(MeanOfChannels(2), image, cfg, progress=False)
    assert probs.shape == (2, 6, 40, 36) and probs.dtype == np.float32
    if slices == 1:  # each voxel's own value decides
        np.testing.assert_array_equal(probs[0] > 0.5, image > 127)
    else:  # mean over z-1, z, z+1 (edges repeated)
        padded = np.concatenate([image[:1], image, image[-1:]]).astype(float) / 255
        expected = (padded[:-2] + padded[1:-1] + padded[2:]) / 3 > 0.5
        np.testing.assert_array_equal(probs[1] > 0.5, expected)


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_writers_store_probabilities_masks_and_classes(tmp_path, suffix):
    probs = np.linspace(0, 1, 2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    path = write_predictions(tmp_path / f"pred{suffix}", probs, ["nuc", "mito"], threshold=0.5)
    store = h5py.File(path) if suffix == ".h5" else zarr.open_group(str(path), mode="r")
    np.testing.assert_allclose(store["probabilities"][:], probs, atol=1e-3)
    np.testing.assert_array_equal(store["masks"][:], probs >= 0.5)
    assert list(store.attrs["classes"]) == ["nuc", "mito"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"pred{suffix}"]  # no temporary left behind
