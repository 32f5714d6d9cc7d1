"""Joe Net shapes and options, the dice_bce loss with masking, and the pooled metrics."""
from __future__ import annotations

import pytest
import torch

from emseg_plugins.config import load_config
from emseg_plugins.errors import ConfigError
from emseg_plugins.evaluation.metrics import SegmentationMetrics, format_table
from emseg_plugins.losses.dice_bce import DiceBCELoss
from emseg_plugins.models.joenet import JoeNet
from emseg_plugins.registry import LOSSES, MODELS


@pytest.mark.parametrize("down, up", [("conv", "transposed"), ("maxpool", "bilinear")])
def test_joenet_maps_channels_and_keeps_size(down, up):
    net = JoeNet(in_channels=5, out_channels=3, filters=(8, 16, 32, 64), downsample=down, upsample=up)
    out = net(torch.rand(2, 5, 64, 48))
    assert out.shape == (2, 3, 64, 48)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_joenet_seed_layout_has_four_levels_and_convnext_bottleneck():
    net = JoeNet()
    assert [e.body[2].out_channels for e in net.encoders] == [32, 64, 128]
    depthwise = net.bottleneck[1].body[2]
    assert depthwise.kernel_size == (7, 7) and depthwise.groups == 256


def test_joenet_built_from_config_takes_25d_slices_and_classes():
    cfg = load_config(overrides=["DATASET.INPUT_SLICES", "5", "DATASET.CLASSES", "['nuc', 'mito', 'er']"])
    net = MODELS.build("joenet", cfg)
    assert net.stem.in_channels == 5 and net.head[-1].out_channels == 3
    with pytest.raises(ConfigError, match="MODEL.JOENET.UPSAMPLE = 'nearest' is not one of"):
        MODELS.build("joenet", load_config(overrides=["MODEL.JOENET.UPSAMPLE", "nearest"]))
    with pytest.raises(ConfigError, match=r"INFERENCE.INPUT_SIZE = \[1, 100, 128\] must be a multiple of 8 in Y, X"):
        MODELS.build("joenet", load_config(overrides=["INFERENCE.INPUT_SIZE", "[1, 100, 128]"]))
    with pytest.raises(ConfigError, match="joenet is a 2D model"):
        MODELS.build("joenet", load_config(overrides=["DATASET.DIMS", "3", "DATASET.PATCH_SIZE", "[8, 32, 32]"]))


def test_dice_bce_perfect_prediction_is_near_zero_and_wrong_is_large():
    loss = DiceBCELoss()
    target = (torch.rand(2, 2, 16, 16) > 0.5).float()
    good = loss(20 * (2 * target - 1), target)
    bad = loss(-20 * (2 * target - 1), target)
    assert good < 1e-3 and bad > 10


def test_dice_bce_ignores_nan_targets_and_masked_voxels():
    loss = DiceBCELoss()
    logits = torch.randn(1, 2, 8, 8, requires_grad=True)
    target = (torch.rand(1, 2, 8, 8) > 0.5).float()
    target[:, 1] = float("nan")  # class 1 unannotated
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value)
    assert logits.grad[:, 1].abs().sum() == 0 and logits.grad[:, 0].abs().sum() > 0
    same = loss(logits.detach(), torch.cat([target[:, :1], torch.zeros(1, 1, 8, 8)], 1), torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 8, 8))
    assert torch.isclose(value, same)


def test_dice_bce_with_nothing_annotated_is_zero_without_nan():
    logits = torch.randn(1, 2, 4, 4, requires_grad=True)
    value = DiceBCELoss()(logits, torch.full((1, 2, 4, 4), float("nan")))
    value.backward()
    assert value.item() == 0.0 and torch.all(logits.grad == 0)


def test_dice_bce_from_config_uses_its_node():
    cfg = load_config(overrides=["LOSS.DICE_BCE.BCE_WEIGHT", "0.0"])
    assert LOSSES.build("dice_bce", cfg).bce_weight == 0.0


def test_metrics_pool_counts_over_batches_and_ignore_unannotated():
    metrics = SegmentationMetrics(["nuc", "mito"])
    target = torch.zeros(1, 2, 2, 2)
    target[0, 0, 0] = 1  # nuc: 2 positives
    logits = torch.full((1, 2, 2, 2), -5.0)
    logits[0, 0, 0, 0] = 5  # one true positive
    logits[0, 0, 1, 0] = 5  # one false positive
    target[0, 1, 1, 1] = float("nan")
    logits[0, 1, 1, 1] = 5  # prediction on an unannotated voxel: ignored
    metrics.update(logits, target)
    metrics.update(logits, target)  # pooled, not averaged
    table = metrics.compute()
    assert table["nuc"]["dice"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 2))
    assert table["nuc"]["precision"] == pytest.approx(0.5) and table["nuc"]["recall"] == pytest.approx(0.5)
    assert table["nuc"]["accuracy"] == pytest.approx(4 / 8)
    assert table["mito"]["dice"] == 1.0  # nothing to find, nothing found
    text = format_table(table)
    assert text.splitlines()[0].split() == ["class", "dice", "iou", "precision", "recall", "accuracy"]
    assert text.splitlines()[-1].startswith("mean")


def test_deep_supervision_weights_heads_against_resized_labels():
    from emseg_plugins.losses.deep_supervision import resize_like, supervised_loss

    label = torch.zeros(1, 1, 8, 8)
    label[..., :4, :] = 1
    label[..., 6:, 6:] = float("nan")
    perfect_main = 20 * (2 * torch.nan_to_num(label) - 1)
    small = resize_like(label, torch.zeros(1, 1, 4, 4))
    assert small.shape == (1, 1, 4, 4) and torch.isnan(small[..., 3, 3]) and small[..., :2, :].eq(1).all()
    wrong_aux = -20 * (2 * torch.nan_to_num(small) - 1)
    loss_fn = DiceBCELoss()
    total, parts = supervised_loss(loss_fn, {"logits": perfect_main, "aux": [wrong_aux]}, label, weights=[0.25])
    assert set(parts) == {"main", "aux1"}
    assert parts["main"] < 1e-3 and parts["aux1"] > 10
    assert torch.isclose(total, parts["main"] + 0.25 * parts["aux1"])
    default_total, _ = supervised_loss(loss_fn, {"logits": perfect_main, "aux": [wrong_aux]}, label)
    assert torch.isclose(default_total, parts["main"] + 0.5 * parts["aux1"])  # default 0.5 ** level
    plain, only = supervised_loss(loss_fn, perfect_main, label)
    assert set(only) == {"main"} and torch.isclose(plain, parts["main"])
    with pytest.raises(ConfigError, match="LOSS.AUX_WEIGHTS has 2 weights but the model has 1 auxiliary heads"):
        supervised_loss(loss_fn, {"logits": perfect_main, "aux": [wrong_aux]}, label, weights=[0.5, 0.25])


def test_single_class_metrics_match_the_same_class_among_two():
    """A one-class run (e.g. mito only) pools the same counts as that class's channel of a two-class run."""
    torch.manual_seed(0)
    logits, target = torch.randn(2, 2, 8, 8), (torch.rand(2, 2, 8, 8) > 0.7).float()
    target[0, 1, :2] = float("nan")
    both, single = SegmentationMetrics(["nuc", "mito"]), SegmentationMetrics(["mito"])
    both.update(logits, target)
    single.update(logits[:, 1:], target[:, 1:])
    assert single.compute()["mito"] == pytest.approx(both.compute()["mito"])
