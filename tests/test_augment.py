"""Augmentation (MONAI dictionary transforms + EM transforms) and foreground / class-balanced sampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY, run_main, tiny_args
from scipy import ndimage as ndi
from torch.utils.data import DataLoader

from emseg_plugins.config import load_config
from emseg_plugins.datasets.augment import (
    Augment,
    MissingSectiond,
    MotionBlurd,
    line_kernel,
)
from emseg_plugins.datasets.patches import PatchSpec, RandomPatches, Volume
from emseg_plugins.errors import ConfigError

NAN_ID = 7  # instance id marking the unannotated block in pattern_sample


def pattern_sample(shape: tuple[int, ...], seed: int = 0) -> dict[str, torch.Tensor]:
    """image == label == smooth random blobs; instance = blob ids (ids >= 10) and NAN_ID on a block
    whose label is NaN; valid_mask 1 everywhere. Shapes (1, [Z,] Y, X)."""
    rng = np.random.default_rng(seed)
    blobs = ndi.gaussian_filter(rng.normal(size=shape), 3) > 0
    ids, _ = ndi.label(blobs)
    instance = np.where(ids > 0, ids + 9, 0)
    label = blobs.astype(np.float32)
    block = (slice(None),) * (len(shape) - 2) + (slice(4, 12), slice(20, 30))
    label[block], instance[block] = np.nan, NAN_ID
    return {"image": torch.from_numpy(blobs.astype(np.float32))[None], "label": torch.from_numpy(label)[None],
            "instance": torch.from_numpy(instance.astype(np.int64))[None], "valid_mask": torch.ones(1, *shape)}


def spatial_only(**options) -> Augment:
    return Augment(flip=options.pop("flip", True), rotate90=options.pop("rotate90", True), intensity=0.0, **options)


def check_consistent(sample: dict[str, torch.Tensor], out: dict[str, torch.Tensor], exact: bool) -> None:
    """Targets moved with the image; ids and NaN never invented; padding unannotated."""
    assert {k: (v.shape, v.dtype) for k, v in out.items()} == {k: (v.shape, v.dtype) for k, v in sample.items()}
    label, instance, valid = out["label"][0], out["instance"][0], out["valid_mask"][0]
    assert set(instance.unique().tolist()) <= set(sample["instance"].unique().tolist())  # nearest: no new ids
    assert set(valid.unique().tolist()) <= {0.0, 1.0}
    # NaN exactly where the NaN block went (its instance id travels with it) or outside the source image
    assert torch.equal(label.isnan(), (instance == NAN_ID) | (valid == 0))
    assert torch.all(instance[valid == 0] == 0)
    annotated = ~label.isnan()
    agree = ((out["image"][0] > 0.5).float() == label)[annotated].float().mean()
    assert agree == 1.0 if exact else agree > 0.97  # bilinear image vs nearest label differ only at edges


@pytest.mark.parametrize("shape", [(48, 48), (8, 48, 48)])
def test_flips_and_rot90_move_every_key_exactly(shape):
    augment, sample = spatial_only(), pattern_sample(shape)
    outs = [augment(sample, np.random.default_rng(i)) for i in range(12)]
    for out in outs:
        check_consistent(sample, out, exact=True)
        assert not torch.any(out["valid_mask"] == 0)  # no padding for flips / 90-degree rotations
    assert len({out["image"].numpy().tobytes() for out in outs}) > 4  # they do transform


@pytest.mark.parametrize("shape", [(48, 48), (6, 48, 48)])
@pytest.mark.parametrize("options", [{"rotate_p": 1.0}, {"elastic_p": 1.0, "elastic_spacing": 12, "elastic_magnitude": (2.0, 3.0)}])
def test_rotation_and_elastic_keep_targets_on_the_image(shape, options):
    augment, sample = spatial_only(flip=False, rotate90=False, **options), pattern_sample(shape)
    padded = 0
    for i in range(4):
        out = augment(sample, np.random.default_rng(i))
        check_consistent(sample, out, exact=False)
        assert not torch.equal(out["label"].nan_to_num(), sample["label"].nan_to_num())
        padded += int((out["valid_mask"] == 0).sum())
    if "rotate_p" in options:
        assert padded > 0  # corners came from outside the image: unannotated, not background


def test_instance_ids_above_float32_precision_survive_resampling():
    sample = pattern_sample((40, 40))
    sample["instance"] = torch.where(sample["instance"] > 0, sample["instance"] + 2**40, 0)
    out = spatial_only(rotate_p=1.0)(sample, np.random.default_rng(3))
    assert set(out["instance"].unique().tolist()) <= set(sample["instance"].unique().tolist())
    assert (out["instance"] > 2**40).sum() > 0.5 * (sample["instance"] > 2**40).sum()


def test_anisotropic_3d_never_mixes_sections_isotropic_does():
    z = torch.arange(8, dtype=torch.float32).div(10)[:, None, None].expand(8, 32, 32)  # each slice one value
    sample = {"image": z[None].clone(), "label": (z[None] > 0.35).float()}
    spatial = {"rotate_p": 1.0, "elastic_p": 1.0, "elastic_spacing": 8}
    flat = spatial_only(**spatial)
    for i in range(6):
        image = flat(sample, np.random.default_rng(i))["image"][0]
        per_slice = image.flatten(1)
        assert torch.allclose(per_slice.min(1).values, per_slice.max(1).values, atol=1e-5)  # still one value per slice
        values = per_slice[:, 0]
        assert torch.allclose(values, z[:, 0, 0]) or torch.allclose(values, z[:, 0, 0].flip(0))  # at most a Z flip
    cube = {"image": torch.arange(16.0).div(20)[:, None, None].expand(16, 16, 16)[None].clone(), "label": torch.zeros(1, 16, 16, 16)}
    iso = spatial_only(isotropic=True, **spatial)
    mixed = [not torch.allclose(o.flatten(1).min(1).values, o.flatten(1).max(1).values, atol=1e-5)
             for o in (iso(cube, np.random.default_rng(i))["image"][0] for i in range(4))]
    assert any(mixed)


def test_25d_flip_reverses_slices_and_keeps_the_centre():
    image = torch.arange(5.0).div(10)[:, None, None].expand(5, 16, 16).clone()
    sample = {"image": image, "label": torch.zeros(1, 16, 16)}
    orders = {tuple(spatial_only()(sample, np.random.default_rng(i))["image"][:, 0, 0].mul(10).round().int().tolist()) for i in range(20)}
    assert orders == {(0, 1, 2, 3, 4), (4, 3, 2, 1, 0)}


def test_missing_section_blanks_exactly_one_slice_and_keeps_labels():
    image = torch.rand(1, 6, 16, 16) * 0.5 + 0.25
    label = (torch.rand(1, 6, 16, 16) > 0.5).float()
    t = MissingSectiond("image", prob=1.0, num_sections=1, fill="zero")
    for seed in range(5):
        t.set_random_state(seed)
        out = t({"image": image, "label": label})
        blank = [z for z in range(6) if torch.all(out["image"][0, z] == 0)]
        assert len(blank) == 1
        kept = [z for z in range(6) if z not in blank]
        assert torch.equal(out["image"][:, kept], image[:, kept]) and torch.equal(out["label"], label)
    centre_hits = []
    for seed in range(20):  # 2.5D: never the centre slice
        t.set_random_state(seed)
        out = t({"image": torch.rand(5, 8, 8) + 0.1})["image"]
        centre_hits.append(bool(torch.all(out[2] == 0)))
        assert sum(bool(torch.all(c == 0)) for c in out) == 1
    assert not any(centre_hits)


def test_misalignment_shifts_image_and_targets_above_the_split_equally():
    sample = pattern_sample((8, 40, 40), seed=1)
    image, label = sample["image"][0], sample["label"][0]
    augment = spatial_only(flip=False, rotate90=False, misalign_p=1.0, misalign_displacement=5, misalign_slip_ratio=0.0)
    for seed in range(3):
        out = augment(sample, np.random.default_rng(seed))
        moved = [z for z in range(8) if not torch.equal(out["image"][0, z], image[z])]
        split = moved[0]
        assert moved == list(range(split, 8))  # translation: every section from the split on
        oi, ol, ov = out["image"][0], out["label"][0], out["valid_mask"][0]
        shift = next((dy, dx) for dy in range(-5, 6) for dx in range(-5, 6)
                     if torch.equal(oi[split, 6:-6, 6:-6], image[split, 6 - dy:34 - dy, 6 - dx:34 - dx]))
        dy, dx = shift
        for z in moved:
            assert torch.equal(oi[z, 6:-6, 6:-6], image[z, 6 - dy:34 - dy, 6 - dx:34 - dx])
            assert torch.equal(ol[z, 6:-6, 6:-6].nan_to_num(-1), label[z, 6 - dy:34 - dy, 6 - dx:34 - dx].nan_to_num(-1))
        strip = ov[split] == 0
        assert int(strip.sum()) == 40 * 40 - (40 - abs(dy)) * (40 - abs(dx))  # the uncovered strip ...
        assert torch.all(ol[split][strip].isnan()) and torch.all(ov[:split] == 1)  # ... holds no annotation


def test_motion_blur_changes_some_sections_of_the_image_only():
    assert torch.isclose(line_kernel(9, 0.7).sum(), torch.tensor(1.0))
    assert torch.equal(line_kernel(5, 0.0)[2], torch.full((5,), 0.2))  # angle 0: a horizontal line
    image, label = torch.rand(1, 6, 24, 24), (torch.rand(1, 6, 24, 24) > 0.5).float()
    t = MotionBlurd("image", prob=1.0, sections=2, kernel_size=7)
    t.set_random_state(4)
    out = t({"image": image, "label": label})
    changed = [z for z in range(6) if not torch.equal(out["image"][0, z], image[0, z])]
    assert 1 <= len(changed) <= 2 and torch.equal(out["label"], label)
    assert all(out["image"][0, z].std() < 0.6 * image[0, z].std() for z in changed)  # blurred noise loses contrast
    flat = t({"image": torch.full((1, 16, 16), 0.4)})["image"]  # 2D: the slice itself; a constant stays constant
    assert torch.allclose(flat, torch.tensor(0.4))


def full_cfg(*overrides: str):
    probabilities = ["ROTATE", "ELASTIC", "GAMMA", "NOISE", "BLUR", "MISSINGSECTION", "MISALIGNMENT", "MOTIONBLUR"]
    return load_config(TINY, overrides=[*[x for name in probabilities for x in (f"AUGMENTOR.{name}.P", "0.5")], *overrides])


def ramp_volume(shape=(10, 48, 48)) -> Volume:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, shape, dtype=np.uint8)
    labels = (ndi.gaussian_filter(rng.normal(size=(2, *shape)), (0, 1, 3, 3)) > 0).astype(np.uint8)
    return Volume("v", image, labels, instances=ndi.label(labels[0])[0])


def test_full_augmentation_is_a_pure_function_of_seed_and_index_with_workers():
    volume, spec = ramp_volume(), PatchSpec((1, 32, 32), 2, 3)
    augment = Augment.from_cfg(full_cfg())
    a = RandomPatches([volume], spec, 8, seed=5, augment=augment)
    b = RandomPatches([volume], spec, 8, seed=5, augment=Augment.from_cfg(full_cfg()))
    assert all(torch.equal(a[i][k].nan_to_num(), b[i][k].nan_to_num()) for i in (0, 3) for k in a[i])
    assert len({a[i]["image"].numpy().tobytes() for i in range(8)}) == 8
    serial = next(iter(DataLoader(a, batch_size=8)))
    parallel = next(iter(DataLoader(a, batch_size=8, num_workers=2)))
    assert all(torch.equal(serial[k].nan_to_num(), parallel[k].nan_to_num()) for k in serial)
    c = RandomPatches([volume], spec, 8, seed=6, augment=augment)
    assert not torch.equal(a[0]["image"], c[0]["image"])


def test_default_config_augments_2d_samples_keeping_dtypes():
    cfg = load_config(TINY)
    sample = PatchSpec.from_cfg(cfg).sample(ramp_volume(), (3, 4, 4))
    out = Augment.from_cfg(cfg)(sample, np.random.default_rng(0))
    assert {k: (v.shape, v.dtype) for k, v in out.items()} == {k: (v.shape, v.dtype) for k, v in sample.items()}
    assert 0 <= float(out["image"].min()) and float(out["image"].max()) <= 1
    assert Augment.from_cfg(load_config(TINY, overrides=["AUGMENTOR.ENABLED", "False"])) is None


def rare_class_volume() -> Volume:
    """Class 0 covers half of every slice; class 1 is one 3 x 3 spot in one slice of 12 x 96 x 96."""
    labels = np.zeros((2, 12, 96, 96), np.uint8)
    labels[0, :, :, :48] = 1
    labels[1, 7, 60:63, 80:83] = 1
    return Volume("rare", np.zeros((12, 96, 96), np.uint8), labels)


@pytest.mark.parametrize("sampler, low, high", [("uniform", 0.0, 0.05), ("class_balanced", 0.4, 0.6), ("foreground", 0.0, 0.05)])
def test_sampler_statistics(sampler, low, high):
    patches = RandomPatches([rare_class_volume()], PatchSpec((1, 16, 16), 2, 1), 600, seed=0, augment=None,
                            sampler=sampler, foreground_fraction=1.0)
    samples = [patches[i]["label"] for i in range(600)]
    rare = np.mean([bool(s[1].max() == 1) for s in samples])
    assert low <= rare <= high  # class_balanced: half the patches hold the rare class (1 of 2 classes drawn)
    if sampler != "uniform":  # every patch centred on labelled voxels
        assert all(s.amax() == 1 for s in samples)
    else:
        assert np.mean([bool(s.amax() == 1) for s in samples]) < 0.9


def test_bad_augmentor_and_sampler_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"AUGMENTOR.GAMMA.RANGE = \[2.0, 1.0\]"):
        Augment.from_cfg(load_config(TINY, overrides=["AUGMENTOR.GAMMA.RANGE", "[2.0, 1.0]"]))
    with pytest.raises(ConfigError, match="DATASET.SAMPLER = 'balanced' is not one of"):
        RandomPatches([rare_class_volume()], PatchSpec((1, 16, 16), 2, 1), 4, 0, None, sampler="balanced")
    run_dir = tmp_path / "run"
    result = run_main("pytc-train", *tiny_args(run_dir, "AUGMENTOR.ROTATE.P", "1.5"))
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and lines == ["error: config: AUGMENTOR.ROTATE.P = 1.5 must be a probability in [0, 1]"], result.stderr
    assert "Traceback" not in result.stderr and not run_dir.exists()
