"""The procedural EM volume generator: determinism, array contracts, label sanity, difficulty and
touching instances (clusters of mitochondria, pairs of nuclei)."""
from __future__ import annotations

import cc3d
import numpy as np
import pytest
from scipy import ndimage as ndi

from emseg_plugins.datasets.synthetic import build_synthetic
from emseg_plugins.datasets.synthetic_em import SyntheticVolume, make_em_volume
from emseg_plugins.errors import ConfigError

FIELDS = ("image", "nuc", "mito", "mito_ids", "nuc_ids")


@pytest.fixture(scope="module")
def vol() -> SyntheticVolume:
    """A mid-sized volume, big enough for class statistics."""
    return make_em_volume((32, 192, 192), seed=0)


@pytest.fixture(scope="module")
def small() -> SyntheticVolume:
    return make_em_volume((32, 128, 128), seed=1)


def best_threshold_dice(image: np.ndarray, label: np.ndarray) -> float:
    """Best Dice of `label` against any single global threshold of `image`, either direction."""
    label = label.astype(bool)
    hist_label = np.bincount(image[label], minlength=256)
    hist_all = np.bincount(image.ravel(), minlength=256)
    best = 0.0
    for order in (slice(None), slice(None, None, -1)):  # predict image <= t, or image >= t
        tp = np.cumsum(hist_label[order])
        predicted = np.cumsum(hist_all[order])
        best = max(best, float(np.max(2 * tp / (predicted + label.sum()))))
    return best


def test_same_seed_same_volume():
    a, b = make_em_volume((16, 64, 64), seed=3), make_em_volume((16, 64, 64), seed=3)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_different_seed_different_volume():
    a, b = make_em_volume((16, 64, 64), seed=3), make_em_volume((16, 64, 64), seed=4)
    assert not np.array_equal(a.image, b.image)
    assert not np.array_equal(a.mito, b.mito) or not np.array_equal(a.nuc, b.nuc)


def test_does_not_touch_global_random_state():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    make_em_volume((8, 48, 48), seed=0)
    assert np.random.random() == before


@pytest.mark.parametrize("shape", [(4, 32, 32), (1, 16, 16), (5, 40, 24), (12, 64, 96), (40, 48, 48)])
def test_shapes_and_dtypes(shape):
    v = make_em_volume(shape, seed=2)
    assert isinstance(v, SyntheticVolume)
    for name, dtype in zip(FIELDS, (np.uint8, np.uint8, np.uint8, np.uint32, np.uint32)):
        arr = getattr(v, name)
        assert arr.shape == shape, name
        assert arr.dtype == dtype, name
    assert set(np.unique(v.nuc)) <= {0, 1}
    assert set(np.unique(v.mito)) <= {0, 1}
    np.testing.assert_array_equal(v.mito_ids > 0, v.mito == 1)
    np.testing.assert_array_equal(v.nuc_ids > 0, v.nuc == 1)
    assert not np.any(v.mito.astype(bool) & v.nuc.astype(bool))


def test_bad_shape_rejected():
    with pytest.raises(ValueError):
        make_em_volume((16, 16), seed=0)
    with pytest.raises(ValueError):
        make_em_volume((0, 16, 16), seed=0)


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_bad_clustered_fraction_rejected(fraction):
    with pytest.raises(ValueError, match="clustered_fraction"):
        make_em_volume((8, 32, 32), seed=0, clustered_fraction=fraction)


def test_labels_are_binary(vol):
    assert set(np.unique(vol.nuc)) == {0, 1}
    assert set(np.unique(vol.mito)) == {0, 1}


def test_instance_ids_match_semantic_mask(vol, small):
    for v in (vol, small):
        np.testing.assert_array_equal(v.mito_ids > 0, v.mito == 1)
        np.testing.assert_array_equal(v.nuc_ids > 0, v.nuc == 1)


def test_instance_ids_consecutive(small):
    for ids in (np.unique(small.mito_ids), np.unique(small.nuc_ids)):
        n = int(ids.max())
        assert n >= 2
        np.testing.assert_array_equal(ids, np.arange(n + 1))


def test_mito_and_nucleus_disjoint(vol, small):
    for v in (vol, small):
        assert not np.any(v.mito.astype(bool) & v.nuc.astype(bool))


@pytest.mark.parametrize("seed", [0, 5])
def test_class_fractions(vol, seed):
    v = vol if seed == 0 else make_em_volume((32, 192, 192), seed=seed)
    assert 0.02 <= v.mito.mean() <= 0.12
    assert 0.05 <= v.nuc.mean() <= 0.30


def test_image_uses_the_grey_range(vol):
    assert 100 < vol.image.mean() < 200
    assert vol.image.std() > 15
    assert vol.image.min() < 60 and vol.image.max() > 200


def boundary(mask: np.ndarray) -> np.ndarray:
    """Label voxels with a 6-neighbour outside the label (in 3D)."""
    mask = mask.astype(bool)
    return mask & ~ndi.binary_erosion(mask, border_value=1)


def test_membranes_darker_than_cytoplasm(vol):
    image = vol.image.astype(float)
    background = image[(vol.mito == 0) & (vol.nuc == 0)].mean()
    mito_rim = image[boundary(vol.mito)].mean()
    envelope = image[boundary(vol.nuc)].mean()
    assert mito_rim < background - 30
    assert envelope < background - 30
    # the rim of a label is darker than just outside it: the label ends at the membrane
    outside = ndi.binary_dilation(vol.mito.astype(bool)) & (vol.mito == 0)
    assert mito_rim < image[outside].mean() - 20


def test_single_threshold_is_a_poor_segmenter(vol):
    assert best_threshold_dice(vol.image, vol.mito) < 0.6
    assert best_threshold_dice(vol.image, vol.nuc) < 0.7


def test_dark_distractors_exist(vol):
    """Plenty of dark voxels far from any mitochondrion (droplets, lysosomes, chromatin, walls)."""
    dark = vol.image < np.percentile(vol.image[vol.mito == 1], 25)
    far = ndi.distance_transform_edt(vol.mito == 0) > 4
    assert (dark & far).sum() > 0.3 * (dark & (vol.mito == 1)).sum()


def test_adjacent_slices_correlate(vol):
    img = vol.image.astype(float)
    near = [np.corrcoef(img[z].ravel(), img[z + 1].ravel())[0, 1] for z in range(img.shape[0] - 1)]
    far = np.corrcoef(img[0].ravel(), img[-1].ravel())[0, 1]
    assert min(near) > 0.5
    assert np.mean(near) > far + 0.1
    # labels are 3D objects too
    for lab in (vol.nuc, vol.mito):
        overlap = (lab[1:] & lab[:-1]).sum() / max(1, lab[1:].sum())
        assert overlap > 0.7


# ---------------------------------------------------------------------------- touching instances


def n_components(mask: np.ndarray) -> int:
    """Number of 26-connected components of a binary mask (cc3d)."""
    return int(cc3d.connected_components(mask.astype(np.uint8), connectivity=26, return_N=True)[1])


def n_ids(ids: np.ndarray) -> int:
    return int(np.count_nonzero(np.unique(ids)))


def contacts(ids: np.ndarray) -> np.ndarray:
    """Labelled voxels with a 6-neighbour of another nonzero id: the faces touching instances share."""
    out = np.zeros(ids.shape, bool)
    for axis in range(3):
        a, b = [slice(None)] * 3, [slice(None)] * 3
        a[axis], b[axis] = slice(1, None), slice(None, -1)
        x, y = ids[tuple(a)], ids[tuple(b)]
        shared = (x != 0) & (y != 0) & (x != y)
        out[tuple(a)] |= shared
        out[tuple(b)] |= shared
    return out


def test_touching_mitochondria_merge_in_connected_components(vol):
    """Default seed and fraction: clusters exist, so the foreground's components merge instances."""
    assert n_components(vol.mito_ids > 0) < n_ids(vol.mito_ids)
    assert contacts(vol.mito_ids).any()


def test_touching_nuclei_merge_in_connected_components(vol, small):
    for v in (vol, small):
        assert n_components(v.nuc_ids > 0) < n_ids(v.nuc_ids)
        assert contacts(v.nuc_ids).any()


def test_every_instance_id_is_one_component(vol, small):
    for v in (vol, small):
        for ids in (v.mito_ids, v.nuc_ids):
            # given the ids themselves, cc3d labels each id's own 26-connected components
            assert int(cc3d.connected_components(ids, connectivity=26, return_N=True)[1]) == n_ids(ids)


def test_a_fraction_of_mitochondria_touch_another(vol):
    ids = vol.mito_ids
    touching = np.unique(ids[contacts(ids)])
    assert 0.2 <= len(touching) / n_ids(ids) <= 0.7


def test_clustered_fraction_zero_keeps_instances_apart():
    v = make_em_volume((32, 128, 128), seed=1, clustered_fraction=0.0)
    for ids in (v.mito_ids, v.nuc_ids):
        assert n_ids(ids) >= 1
        assert n_components(ids > 0) == n_ids(ids)
        assert not contacts(ids).any()


def test_contact_between_mitochondria_is_a_dark_line(vol):
    """Each mitochondrion keeps its own outer membrane, so where two touch the image shows a dark
    double membrane: the shared border voxels are darker than the matrix of the touching ones."""
    image = vol.image.astype(float)
    ids = vol.mito_ids
    border = contacts(ids)
    touching = np.isin(ids, np.unique(ids[border])) & (ids > 0)
    # interior: >= 3 voxels away from the background and from any contact
    interior = touching & (ndi.distance_transform_edt((ids > 0) & ~border) >= 3)
    assert border.sum() > 50 and interior.sum() > 500
    assert image[border].mean() < image[interior].mean() - 10


def test_contact_between_nuclei_is_a_dark_line(vol):
    image = vol.image.astype(float)
    border = contacts(vol.nuc_ids)
    interior = ndi.distance_transform_edt((vol.nuc_ids > 0) & ~border) >= 6
    assert image[border].mean() < image[interior].mean() - 20


# ---------------------------------------------------------------------------- the dataset plugin


def synthetic_cfg(**node):
    from yacs.config import CfgNode as CN

    from emseg_plugins.datasets.synthetic import add_synthetic_config

    cfg = CN()
    cfg.DATASET = CN()
    cfg.DATASET.NAME = "synthetic"
    cfg.DATASET.CLASSES = ["nuc", "mito"]
    add_synthetic_config(cfg)
    cfg.DATASET.SYNTHETIC.SHAPE = [12, 64, 64]
    cfg.DATASET.SYNTHETIC.VAL_Z = [8, 12]
    for key, value in node.items():
        cfg.DATASET.SYNTHETIC[key] = value
    return cfg


def test_instance_class_defaults_to_mito():
    assert synthetic_cfg().DATASET.SYNTHETIC.INSTANCE_CLASS == "mito"


@pytest.mark.parametrize("instance_class, field", [("mito", "mito_ids"), ("nuc", "nuc_ids")])
def test_instance_class_selects_the_instance_ids(monkeypatch, instance_class, field):
    import emseg_plugins.datasets.synthetic as synthetic

    seen = {}

    class Data:  # VolumeData stand-in: the splits are what is checked
        def __init__(self, cfg, splits):
            seen.update(splits)

    monkeypatch.setattr(synthetic, "VolumeData", Data)
    build_synthetic(synthetic_cfg(INSTANCE_CLASS=instance_class))
    expected = getattr(make_em_volume((12, 64, 64), 0), field)
    np.testing.assert_array_equal(seen["val"][0].instances, expected[8:12])
    np.testing.assert_array_equal(seen["test"]()[0].instances, getattr(make_em_volume((4, 64, 64), 1), field))


def test_bad_instance_class_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"DATASET\.SYNTHETIC\.INSTANCE_CLASS") as err:
        build_synthetic(synthetic_cfg(INSTANCE_CLASS="er"))
    assert "\n" not in str(err.value) and "'er'" in str(err.value)
