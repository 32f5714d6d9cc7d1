"""Loss plugins dice, tversky, focal, combo, per_class_combo, ohem, discriminative and masked.

Hand-made cases with known values, and the loss contract of docs/schemas.md for every logits loss:
NaN targets / valid_mask zeros give no loss and no gradient (the loss equals the loss of the
annotated crop alone, with the same gradient there), nothing annotated gives exactly 0, 2D and 3D.
Builders are called directly on a default config extended by the plugin's own add_*_config.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from emseg_plugins.config.defaults import get_cfg_defaults
from emseg_plugins.errors import ConfigError
from emseg_plugins.losses.dice_bce import DiceBCELoss
from emseg_plugins.losses.discriminative import add_discriminative_config, build_discriminative
from emseg_plugins.losses.masked import add_masked_config, build_masked
from emseg_plugins.losses.ohem import add_ohem_config, build_ohem
from emseg_plugins.losses.per_class_combo import add_per_class_combo_config, build_per_class_combo
from emseg_plugins.losses.region import (
    add_combo_config,
    add_dice_config,
    add_focal_config,
    add_tversky_config,
    build_combo,
    build_dice,
    build_focal,
    build_tversky,
)
from emseg_plugins.registry import LOSSES

NAN = float("nan")


def make(add, build, *overrides):
    """``build(cfg)`` on the defaults plus the plugin's node, with ``KEY, VALUE, ...`` overrides."""
    cfg = get_cfg_defaults()
    add(cfg)
    cfg.merge_from_list(list(overrides))
    return build(cfg)


# every loss with the logits contract, as configured for the generic tests (classes: nuc, mito)
LOGIT_LOSSES = {
    "dice": (add_dice_config, build_dice, ()),
    "tversky": (add_tversky_config, build_tversky, ()),
    "focal": (add_focal_config, build_focal, ("LOSS.FOCAL.ALPHA", 0.25)),
    "combo": (add_combo_config, build_combo, ()),
    "per_class_combo": (add_per_class_combo_config, build_per_class_combo, ("LOSS.PER_CLASS_COMBO.CLASS_WEIGHTS", ["nuc:3.0", "mito:0.5"])),
    "ohem": (add_ohem_config, build_ohem, ("LOSS.OHEM.KEEP_FRACTION", 0.3, "LOSS.OHEM.MIN_KEPT", 4)),
    "masked": (add_masked_config, build_masked, ()),
}
SHAPES = {"2d": (2, 2, 10, 12), "3d": (2, 2, 4, 6, 8)}


def logit_loss(name):
    add, build, overrides = LOGIT_LOSSES[name]
    return make(add, build, *overrides)


def random_case(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen), (torch.rand(shape, generator=gen) > 0.6).float()


def value_and_grad(loss, logits, target, valid_mask=None):
    logits = logits.clone().requires_grad_(True)
    value = loss(logits, target, valid_mask)
    value.backward()
    return value.detach(), logits.grad


# ---------------------------------------------------------------------------------------------
# the contract, for every logits loss, 2D and 3D
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", SHAPES)
@pytest.mark.parametrize("name", LOGIT_LOSSES)
def test_perfect_prediction_is_near_zero_and_wrong_is_not(name, dims):
    loss = logit_loss(name)
    _, target = random_case(SHAPES[dims])
    assert loss(20 * (2 * target - 1), target) < 1e-3
    assert loss(-20 * (2 * target - 1), target) > 0.5


@pytest.mark.parametrize("dims", SHAPES)
@pytest.mark.parametrize("name", LOGIT_LOSSES)
@pytest.mark.parametrize("how", ["nan", "valid_mask"])
def test_unannotated_voxels_give_no_loss_and_no_gradient(name, dims, how):
    """Annotating only a crop (NaN / valid_mask 0 elsewhere) is the loss of the crop alone."""
    loss = logit_loss(name)
    logits, target = random_case(SHAPES[dims])
    crop = (..., slice(1, -2), slice(2, -3))
    inside = torch.zeros_like(target, dtype=torch.bool)
    inside[crop] = True
    if how == "nan":
        value, grad = value_and_grad(loss, logits, torch.where(inside, target, NAN))
    else:
        valid = inside[:, :1].float()  # (B, 1, ...) broadcast over classes
        value, grad = value_and_grad(loss, 100 * torch.sign(logits) * ~inside + logits * inside, target, valid)
    crop_value, crop_grad = value_and_grad(loss, logits[crop], target[crop])
    assert torch.isfinite(grad).all()
    assert torch.all(grad[~inside] == 0)
    assert torch.allclose(value, crop_value, atol=1e-6)
    assert torch.allclose(grad[crop], crop_grad, atol=1e-7)


@pytest.mark.parametrize("name", LOGIT_LOSSES)
def test_scattered_nan_targets_leave_finite_gradients_zero_there(name):
    loss = logit_loss(name)
    logits, target = random_case(SHAPES["2d"], seed=1)
    holes = torch.rand(target.shape, generator=torch.Generator().manual_seed(2)) > 0.5
    value, grad = value_and_grad(loss, logits, torch.where(holes, NAN, target))
    assert torch.isfinite(value) and value > 0
    assert torch.isfinite(grad).all() and torch.all(grad[holes] == 0) and grad[~holes].abs().sum() > 0


@pytest.mark.parametrize("dims", SHAPES)
@pytest.mark.parametrize("name", LOGIT_LOSSES)
def test_nothing_annotated_is_exactly_zero_with_zero_gradients(name, dims):
    loss = logit_loss(name)
    logits, target = random_case(SHAPES[dims])
    for args in [(torch.full_like(target, NAN),), (target, torch.zeros_like(target[:, :1]))]:
        value, grad = value_and_grad(loss, logits, *args)
        assert value.item() == 0.0 and torch.all(grad == 0)


# ---------------------------------------------------------------------------------------------
# dice, tversky, focal, combo
# ---------------------------------------------------------------------------------------------


def one_fn_case():
    """p ~ [1, 0, 0, 0] against [1, 1, 0, 0]: tp = 1, fp = 0, fn = 1."""
    return torch.tensor([20.0, -20.0, -20.0, -20.0]).view(1, 1, 2, 2), torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)


def test_dice_and_tversky_known_values():
    logits, target = one_fn_case()
    dice = make(add_dice_config, build_dice, "LOSS.DICE.SMOOTH", 1e-6)
    assert dice(logits, target).item() == pytest.approx(1 - 2 / 3, abs=1e-5)  # 1 - 2 tp / (|p| + |g|)
    recall_heavy = make(add_tversky_config, build_tversky, "LOSS.TVERSKY.SMOOTH", 1e-6)  # alpha 0.3, beta 0.7
    assert recall_heavy(logits, target).item() == pytest.approx(1 - 1 / 1.7, abs=1e-5)
    precision_heavy = make(add_tversky_config, build_tversky, "LOSS.TVERSKY.SMOOTH", 1e-6, "LOSS.TVERSKY.ALPHA", 0.7, "LOSS.TVERSKY.BETA", 0.3)
    assert precision_heavy(logits, target).item() == pytest.approx(1 - 1 / 1.3, abs=1e-5)


@pytest.mark.parametrize("dims", SHAPES)
def test_tversky_half_half_is_dice_and_dice_is_dice_bce_dice_term(dims):
    logits, target = random_case(SHAPES[dims])
    target[0, 1, :2] = NAN
    dice = make(add_dice_config, build_dice)
    tversky = make(add_tversky_config, build_tversky, "LOSS.TVERSKY.ALPHA", 0.5, "LOSS.TVERSKY.BETA", 0.5)
    value, grad = value_and_grad(dice, logits, target)
    tversky_value, tversky_grad = value_and_grad(tversky, logits, target)
    assert torch.allclose(value, tversky_value, atol=1e-6) and torch.allclose(grad, tversky_grad, atol=1e-7)
    assert torch.allclose(value, DiceBCELoss(bce_weight=0.0)(logits, target), atol=1e-6)


@pytest.mark.parametrize("dims", SHAPES)
def test_focal_with_gamma_zero_is_bce(dims):
    logits, target = random_case(SHAPES[dims])
    focal = make(add_focal_config, build_focal, "LOSS.FOCAL.GAMMA", 0.0)
    assert torch.allclose(focal(logits, target), F.binary_cross_entropy_with_logits(logits, target), atol=1e-6)
    target[:, 0, 0] = NAN
    value, grad = value_and_grad(focal, logits, target)
    bce_value, bce_grad = value_and_grad(DiceBCELoss(dice_weight=0.0), logits, target)
    assert torch.allclose(value, bce_value, atol=1e-6) and torch.allclose(grad, bce_grad, atol=1e-7)


def test_focal_known_values_and_down_weighting_of_easy_voxels():
    logits, target = torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)  # p_t = 0.5
    focal = make(add_focal_config, build_focal)  # gamma 2, no alpha
    assert focal(logits, target).item() == pytest.approx(0.25 * math.log(2), rel=1e-5)
    balanced = make(add_focal_config, build_focal, "LOSS.FOCAL.ALPHA", 0.25)
    assert balanced(logits, target).item() == pytest.approx(0.25 * 0.25 * math.log(2), rel=1e-5)
    assert balanced(logits, 1 - target).item() == pytest.approx(0.75 * 0.25 * math.log(2), rel=1e-5)
    easy = torch.full((1, 1, 1, 1), 3.0)  # p_t = 0.95: focal weight (0.05)^2
    assert focal(easy, target).item() == pytest.approx(torch.sigmoid(-easy).item() ** 2 * F.softplus(-easy).item(), rel=1e-4)


def test_combo_is_weighted_sum_of_dice_and_focal():
    logits, target = random_case(SHAPES["2d"])
    target[1, 0] = NAN
    dice = make(add_dice_config, build_dice)(logits, target)
    focal = make(add_focal_config, build_focal, "LOSS.FOCAL.GAMMA", 1.5)(logits, target)
    combo = make(add_combo_config, build_combo, "LOSS.COMBO.DICE_WEIGHT", 0.3, "LOSS.COMBO.FOCAL_WEIGHT", 2.0, "LOSS.COMBO.GAMMA", 1.5)
    assert torch.allclose(combo(logits, target), 0.3 * dice + 2.0 * focal, atol=1e-6)


@pytest.mark.parametrize(
    "add, build, key, value",
    [
        (add_focal_config, build_focal, "LOSS.FOCAL.ALPHA", 1.5),
        (add_focal_config, build_focal, "LOSS.FOCAL.GAMMA", -1.0),
        (add_tversky_config, build_tversky, "LOSS.TVERSKY.BETA", -0.1),
        (add_dice_config, build_dice, "LOSS.DICE.SMOOTH", 0.0),
        (add_combo_config, build_combo, "LOSS.COMBO.FOCAL_WEIGHT", -1.0),
    ],
)
def test_region_config_mistakes_name_the_key(add, build, key, value):
    with pytest.raises(ConfigError, match=f"config: {key} = "):
        make(add, build, key, value)


# ---------------------------------------------------------------------------------------------
# per_class_combo
# ---------------------------------------------------------------------------------------------


def per_class_combo(*weights, classes=("nuc", "mito")):
    return make(
        add_per_class_combo_config, build_per_class_combo,
        "DATASET.CLASSES", list(classes), "LOSS.PER_CLASS_COMBO.CLASS_WEIGHTS", list(weights),
    )


@pytest.mark.parametrize("dims", SHAPES)
def test_per_class_combo_weights_each_class_as_configured(dims):
    logits, target = random_case(SHAPES[dims])
    nuc, mito = (DiceBCELoss()(logits[:, k : k + 1], target[:, k : k + 1]) for k in (0, 1))  # each class alone
    assert torch.allclose(per_class_combo()(logits, target), DiceBCELoss()(logits, target), atol=1e-6)
    assert torch.allclose(per_class_combo()(logits, target), (nuc + mito) / 2, atol=1e-6)
    assert torch.allclose(per_class_combo("nuc:3")(logits, target), (3 * nuc + mito) / 4, atol=1e-6)
    assert torch.allclose(per_class_combo("mito:3.5", "nuc:0.5")(logits, target), (0.5 * nuc + 3.5 * mito) / 4, atol=1e-6)
    assert torch.allclose(per_class_combo("nuc:0")(logits, target), mito, atol=1e-6)
    # a class with nothing annotated drops out; its weight does not dilute the others
    target[:, 1] = NAN
    assert torch.allclose(per_class_combo("mito:9")(logits, target), nuc, atol=1e-6)


def test_per_class_combo_gradient_scales_with_class_weight():
    logits, target = random_case(SHAPES["2d"])
    _, plain = value_and_grad(per_class_combo(), logits, target)
    _, heavy = value_and_grad(per_class_combo("nuc:3"), logits, target)
    assert torch.allclose(heavy[:, 0], plain[:, 0] * 2 * 3 / 4, atol=1e-7)  # weight 3 of total 4 vs 1 of 2
    assert torch.allclose(heavy[:, 1], plain[:, 1] * 2 / 4, atol=1e-7)


@pytest.mark.parametrize(
    "entry, message",
    [
        ("golgi:2.0", "LOSS.PER_CLASS_COMBO.CLASS_WEIGHTS weighs class 'golgi', which is not in DATASET.CLASSES"),
        ("mitoo:2.0", "did you mean 'mito'"),
        ("nuc=3", "is not \"name:weight\""),
        ("nuc:heavy", "is not \"name:weight\""),
        ("nuc:-1", "weights must be >= 0"),
    ],
)
def test_per_class_combo_config_mistakes_are_one_line_config_errors(entry, message):
    with pytest.raises(ConfigError, match=message) as error:
        per_class_combo(entry)
    assert "\n" not in str(error.value) and "LOSS.PER_CLASS_COMBO.CLASS_WEIGHTS" in str(error.value)


def test_per_class_combo_takes_the_14_class_table():
    table = {"endo_mem": 3.0, "endo_lum": 3.0, "nuc": 3.5, "pm": 2.5, "er_mem": 2.5, "er_lum": 2.0, "ves_mem": 2.0,
             "mito_mem": 1.8, "mito_lum": 1.5, "ves_lum": 1.5, "ecs": 1.5, "golgi_lum": 1.5, "mito_ribo": 1.0, "golgi_mem": 1.0}
    loss = per_class_combo(*[f"{name}:{weight}" for name, weight in table.items()], classes=[*table, "cell"])
    assert loss.class_weights.tolist() == pytest.approx([*table.values(), 1.0])  # unlisted "cell" weighs 1
    assert torch.isfinite(loss(*random_case((1, 15, 8, 8))))


# ---------------------------------------------------------------------------------------------
# ohem
# ---------------------------------------------------------------------------------------------


def ohem(*overrides):
    return make(add_ohem_config, build_ohem, *overrides)


def ohem_case(shape):
    """Targets 1, logits 0.0, -0.1, -0.2 ...: the BCE grows with the voxel index. The last voxel is
    unannotated with logit +10, the hardest for any target value (NaN -> 0 included): never kept."""
    count = math.prod(shape)
    logits = -0.1 * torch.arange(count, dtype=torch.float32).view(shape)
    logits.view(-1)[-1] = 10.0
    target = torch.ones(shape)
    target.view(-1)[-1] = NAN
    return logits, target


@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (2, 1, 2, 2, 2)])
def test_ohem_keeps_exactly_the_hardest_annotated_fraction(shape):
    logits, target = ohem_case(shape)  # 15 annotated
    value, grad = value_and_grad(ohem("LOSS.OHEM.KEEP_FRACTION", 0.25, "LOSS.OHEM.MIN_KEPT", 0), logits, target)
    hardest = [11, 12, 13, 14]  # ceil(0.25 * 15) = 4 hardest annotated
    assert torch.nonzero(grad.view(-1)).view(-1).tolist() == hardest
    bce = F.softplus(-logits.view(-1))  # BCE with target 1
    assert value.item() == pytest.approx(bce[hardest].mean().item(), rel=1e-6)


def test_ohem_min_kept_and_threshold():
    logits, target = ohem_case((1, 1, 4, 4))
    bce = F.softplus(-logits.view(-1))
    kept = lambda loss: torch.nonzero(value_and_grad(loss, logits, target)[1].view(-1)).view(-1).tolist()  # noqa: E731
    assert kept(ohem("LOSS.OHEM.KEEP_FRACTION", 0.01, "LOSS.OHEM.MIN_KEPT", 3)) == [12, 13, 14]
    assert kept(ohem("LOSS.OHEM.MIN_KEPT", 100)) == list(range(15))  # capped at the annotated count
    threshold = (bce[9] + bce[10]).item() / 2
    assert kept(ohem("LOSS.OHEM.MODE", "threshold", "LOSS.OHEM.THRESHOLD", threshold, "LOSS.OHEM.MIN_KEPT", 2)) == [10, 11, 12, 13, 14]
    assert kept(ohem("LOSS.OHEM.MODE", "threshold", "LOSS.OHEM.THRESHOLD", threshold, "LOSS.OHEM.MIN_KEPT", 7)) == list(range(8, 15))
    nothing_hard = ohem("LOSS.OHEM.MODE", "threshold", "LOSS.OHEM.THRESHOLD", 100.0, "LOSS.OHEM.MIN_KEPT", 0)
    value, grad = value_and_grad(nothing_hard, logits, target)
    assert value.item() == 0.0 and torch.all(grad == 0)


def test_ohem_config_mistakes():
    with pytest.raises(ConfigError, match="LOSS.OHEM.MODE = 'hardest' is not one of 'fraction', 'threshold'"):
        ohem("LOSS.OHEM.MODE", "hardest")
    with pytest.raises(ConfigError, match=r"LOSS.OHEM.KEEP_FRACTION = 0.0 must be in \(0, 1\]"):
        ohem("LOSS.OHEM.KEEP_FRACTION", 0.0)


# ---------------------------------------------------------------------------------------------
# discriminative
# ---------------------------------------------------------------------------------------------


def discriminative(*overrides):
    return make(add_discriminative_config, build_discriminative, *overrides)


def clusters(points_by_instance, spatial):
    """A (1, E, *spatial) embedding and (1, 1, *spatial) ids from {id: [embedding vectors]}; other voxels background."""
    dims = len(next(iter(points_by_instance.values()))[0])
    count = math.prod(spatial)
    embedding = torch.randn(1, dims, count, generator=torch.Generator().manual_seed(3)) * 50  # wild background
    ids = torch.zeros(1, 1, count, dtype=torch.long)
    voxel = 0
    for instance, points in points_by_instance.items():
        for point in points:
            embedding[0, :, voxel] = torch.tensor(point)
            ids[0, 0, voxel] = instance
            voxel += 2  # leave background voxels in between
    return embedding.view(1, dims, *spatial), ids.view(1, 1, *spatial)


@pytest.mark.parametrize("spatial", [(4, 6), (2, 3, 4)])
def test_discriminative_is_zero_for_tight_far_clusters_and_positive_otherwise(spatial):
    loss = discriminative("LOSS.DISCRIMINATIVE.REG_WEIGHT", 0.0)  # delta_v 0.5, delta_d 1.5: push below 3.0
    tight_far = {1: [[0.0, 0.0], [0.4, 0.0], [0.0, 0.4]], 7: [[4.0, 0.0], [4.2, 0.3]], 9: [[0.0, -3.2]]}
    value, grad = value_and_grad(loss, *clusters(tight_far, spatial))
    assert value.item() == 0.0 and torch.all(grad == 0)
    loose = {**tight_far, 1: [[0.0, 0.0], [1.5, 0.0], [0.0, 0.4]]}  # one point beyond delta_v of its mean
    close = {**tight_far, 7: [[2.0, 0.0], [2.2, 0.3]]}  # means 2.1 apart < 2 delta_d
    for case in (loose, close):
        value, grad = value_and_grad(loss, *clusters(case, spatial))
        assert value > 0 and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_discriminative_known_terms_and_weights():
    # 1-D embedding. Instance 1 at 0 and 2 (mean 1, both 1 from it); instance 2 at 1.5 (mean 1.5).
    embedding, ids = clusters({1: [[0.0], [2.0]], 2: [[1.5]]}, (2, 4))
    var = ((1 - 0.5) ** 2 + 0) / 2  # [1 - delta_v]^2 for instance 1, 0 for instance 2, over C = 2
    dist = (2 * 1.5 - 0.5) ** 2  # both ordered pairs, over C (C - 1) = 2
    reg = (1.0 + 1.5) / 2
    assert discriminative()(embedding, ids).item() == pytest.approx(var + dist + 0.001 * reg, rel=1e-5)
    weighted = discriminative("LOSS.DISCRIMINATIVE.VAR_WEIGHT", 2.0, "LOSS.DISCRIMINATIVE.DIST_WEIGHT", 0.5, "LOSS.DISCRIMINATIVE.REG_WEIGHT", 1.0)
    assert weighted(embedding, ids).item() == pytest.approx(2 * var + 0.5 * dist + reg, rel=1e-5)


def test_discriminative_batches_images_and_ignores_background_masked_and_empty():
    loss = discriminative()
    a = clusters({1: [[0.0, 0.0], [1.5, 0.0]], 2: [[1.0, 1.0]]}, (3, 4))
    b = clusters({5: [[0.0, 2.0], [0.1, 2.0], [3.0, 3.0]]}, (3, 4))
    both = loss(torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]]))
    assert both.item() == pytest.approx((loss(*a).item() + loss(*b).item()) / 2, rel=1e-5)
    # an image without instances does not count in the mean
    empty_ids = torch.zeros_like(b[1])
    assert loss(torch.cat([a[0], b[0]]), torch.cat([a[1], empty_ids])).item() == pytest.approx(loss(*a).item(), rel=1e-6)
    # background and valid_mask == 0 voxels neither change the loss nor get gradient
    embedding, ids = a
    valid = torch.ones_like(ids, dtype=torch.float32)
    valid.view(-1)[2] = 0  # hides the second point of instance 1
    value, grad = value_and_grad(loss, embedding, ids, valid)
    hidden = clusters({1: [[0.0, 0.0]], 2: [[1.0, 1.0]]}, (3, 4))
    assert value.item() == pytest.approx(loss(*hidden).item(), rel=1e-6)
    ignored = ((ids == 0) | (valid == 0)).expand_as(grad)
    assert torch.all(grad[ignored] == 0) and grad[~ignored].abs().sum() > 0
    value, grad = value_and_grad(loss, embedding, torch.zeros_like(ids))
    assert value.item() == 0.0 and torch.all(grad == 0)


# ---------------------------------------------------------------------------------------------
# masked
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def registered():
    """Register in-process loss builders under test-only names; removed afterwards."""
    names = []

    def register(name, builder):
        LOSSES.register(name)(builder)
        names.append(name)

    yield register
    for name in names:
        LOSSES._records.pop(name, None)


def unmasked_bce(cfg):
    """A loss that does not mask itself: NaN targets make it NaN."""
    return lambda logits, target, valid_mask=None: F.binary_cross_entropy_with_logits(logits, target)


def test_masked_makes_an_unmasking_loss_ignore_nan_and_valid_mask(registered):
    registered("test_unmasked_bce", unmasked_bce)
    loss = make(add_masked_config, build_masked, "LOSS.MASKED.INNER", "test_unmasked_bce")
    logits, target = random_case(SHAPES["3d"])
    target[0, 0, :2] = NAN
    assert torch.isnan(unmasked_bce(None)(logits, target))
    value, grad = value_and_grad(loss, logits, target)
    finite = torch.isfinite(target)
    per_class = [F.binary_cross_entropy_with_logits(logits[:, k][finite[:, k]], target[:, k][finite[:, k]]) for k in (0, 1)]
    assert value.item() == pytest.approx(sum(per_class).item() / 2, rel=1e-6)
    assert torch.isfinite(grad).all() and torch.all(grad[~finite] == 0)
    valid = torch.ones_like(target[:, :1])
    valid[1] = 0
    assert torch.allclose(loss(logits, target, valid), loss(logits[:1], target[:1]), atol=1e-6)


def test_masked_default_wraps_dice_bce():
    loss = make(add_masked_config, build_masked)
    assert isinstance(loss.inner, DiceBCELoss)
    logits, target = random_case(SHAPES["2d"])
    assert torch.allclose(loss(logits, target), DiceBCELoss()(logits, target), atol=1e-6)


def test_masked_refuses_to_wrap_itself_or_discriminative(registered):
    with pytest.raises(ConfigError, match="LOSS.MASKED.INNER = 'masked'"):
        make(add_masked_config, build_masked, "LOSS.MASKED.INNER", "masked")
    registered("test_masked_alias", build_masked)  # another name bound to the same builder
    with pytest.raises(ConfigError, match="LOSS.MASKED.INNER = 'test_masked_alias'"):
        make(add_masked_config, build_masked, "LOSS.MASKED.INNER", "test_masked_alias")
    registered("test_rewrapping", lambda cfg: LOSSES.build("test_masked_alias", cfg))  # a cycle through a wrapper
    with pytest.raises(ConfigError, match="wraps masked in itself"):
        make(add_masked_config, build_masked, "LOSS.MASKED.INNER", "test_rewrapping")
    registered("test_discriminative", build_discriminative)
    with pytest.raises(ConfigError, match="cannot be masked"):
        make(add_masked_config, build_masked, "LOSS.MASKED.INNER", "test_discriminative")
    registered("test_per_class_combo", build_per_class_combo)
    with pytest.raises(ConfigError, match="select it as LOSS.NAME directly"):
        make(add_masked_config, build_masked, "LOSS.MASKED.INNER", "test_per_class_combo")
