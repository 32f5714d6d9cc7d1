"""MONAI model plugins (monai_basic_unet, monai_unet, mednext): shapes, gradients, deep supervision,
2.5D inputs, and the config combinations rejected at build time. Tiny widths and patches: seconds on a CPU."""
from __future__ import annotations

import pytest
import torch
from monai.networks.nets.mednext import create_mednext
from torch import nn

from emseg_plugins.config import get_cfg_defaults
from emseg_plugins.config.keys import assign
from emseg_plugins.config.loader import load_config
from emseg_plugins.errors import ConfigError
from emseg_plugins.models.monai_nets import (
    MEDNEXT_VARIANTS, DeepSupervision, add_mednext_config, add_monai_basic_unet_config, add_monai_unet_config,
    build_mednext, build_monai_basic_unet, build_monai_unet,
)

BUILDERS = {"monai_basic_unet": build_monai_basic_unet, "monai_unet": build_monai_unet, "mednext": build_mednext}
PATCH = {2: [1, 32, 32], 3: [16, 32, 32]}
CLASSES = ["nuc", "mito", "er"]


def make_cfg(dims: int = 2, *pairs):
    """Defaults + the three model nodes, tiny widths, ``dims`` with a fitting patch, then KEY, VALUE pairs."""
    cfg = get_cfg_defaults()
    for add in (add_monai_basic_unet_config, add_monai_unet_config, add_mednext_config):
        add(cfg)
    cfg.DATASET.DIMS = dims
    cfg.DATASET.PATCH_SIZE = PATCH[dims]
    cfg.INFERENCE.INPUT_SIZE = PATCH[dims]
    cfg.DATASET.CLASSES = CLASSES
    cfg.MODEL.MONAI_BASIC_UNET.FEATURES = [4, 4, 8, 8, 16, 4]
    cfg.MODEL.MONAI_UNET.CHANNELS = [4, 8, 8, 16, 16]
    cfg.MODEL.MONAI_UNET.NUM_RES_UNITS = 1
    cfg.MODEL.MEDNEXT.INIT_FILTERS = 4
    for key, value in zip(pairs[::2], pairs[1::2]):
        assign(cfg, key, value)
    return cfg


def image(cfg, batch: int = 2, channels: int = 1) -> torch.Tensor:
    size = cfg.DATASET.PATCH_SIZE[1:] if cfg.DATASET.DIMS == 2 else cfg.DATASET.PATCH_SIZE
    return torch.rand(batch, channels, *size)


def heads(output) -> list[torch.Tensor]:
    return [output["logits"], *output.get("aux", [])] if isinstance(output, dict) else [output]


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_forward_shape_and_gradients_reach_every_parameter(name, dims):
    torch.manual_seed(0)
    cfg = make_cfg(dims)
    net = BUILDERS[name](cfg)
    x = image(cfg)
    output = net(x)
    main = heads(output)[0]
    assert main.shape == (2, len(CLASSES), *x.shape[2:])
    sum(h.square().mean() for h in heads(output)).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no (finite) gradient for {missing[:5]}"


@pytest.mark.parametrize("dims", [2, 3])
def test_mednext_deep_supervision_dict_in_training_tensor_in_eval(dims):
    torch.manual_seed(0)
    cfg = make_cfg(dims)
    net = build_mednext(cfg)
    assert isinstance(net, DeepSupervision)
    x = image(cfg)
    train_out = net.train()(x)
    assert set(train_out) == {"logits", "aux"}
    spatial = x.shape[2:]
    assert [tuple(a.shape) for a in train_out["aux"]] == [
        (2, len(CLASSES), *(s // 2 ** level for s in spatial)) for level in (1, 2, 3, 4)
    ]
    with torch.no_grad():
        eval_out = net.eval()(x)
    assert isinstance(eval_out, torch.Tensor)  # no aux heads outside training (documented)
    torch.testing.assert_close(eval_out, train_out["logits"].detach())  # GroupNorm: same in both modes


def test_mednext_without_deep_supervision_is_the_bare_monai_network():
    net = build_mednext(make_cfg(2, "MODEL.MEDNEXT.DEEP_SUPERVISION", False))
    assert not isinstance(net, DeepSupervision) and not hasattr(net, "out_blocks")
    out = net.train()(image(make_cfg(2)))
    assert isinstance(out, torch.Tensor) and out.shape == (2, len(CLASSES), 32, 32)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_25d_slices_times_image_planes_are_the_input_channels(name):
    cfg = make_cfg(2, "DATASET.INPUT_SLICES", 3, "MODEL.IN_PLANES", 2)
    net = BUILDERS[name](cfg)
    first_conv = next(m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)))
    assert first_conv.in_channels == 6
    with torch.no_grad():
        out = net.eval()(image(cfg, batch=1, channels=6))
    assert out.shape == (1, len(CLASSES), 32, 32)


@pytest.mark.parametrize("size", list(MEDNEXT_VARIANTS))
def test_mednext_size_letters_match_monai_factory(size):
    """Built on the meta device (no memory, no forward): the S/B/M/L table equals create_mednext's."""
    cfg = make_cfg(3, "MODEL.MEDNEXT.SIZE", size, "MODEL.MEDNEXT.INIT_FILTERS", 32, "DATASET.CLASSES", ["mito"])
    with torch.device("meta"):
        ours = build_mednext(cfg).net
        theirs = create_mednext(size, spatial_dims=3, in_channels=1, out_channels=1, kernel_size=3, deep_supervision=True)
    variant = MEDNEXT_VARIANTS[size]
    assert [len(stage) for stage in ours.enc_stages] == list(variant["blocks_down"])
    assert len(ours.bottleneck) == variant["blocks_bottleneck"]
    assert [len(stage) for stage in ours.dec_stages] == list(variant["blocks_up"])
    shapes = lambda net: {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes(ours) == shapes(theirs)
    if size == "S":  # the paper's / CellMap notes' 5.6M parameters for MedNeXt-S (3D, kernel 3)
        assert 5.5e6 < sum(p.numel() for p in ours.parameters()) < 5.7e6


@pytest.mark.parametrize("name", list(BUILDERS))
def test_25d_slices_on_a_3d_model_is_a_config_error(name):
    overrides = ["MODEL.ARCHITECTURE", name, "DATASET.DIMS", "3", "DATASET.PATCH_SIZE", "[16, 32, 32]", "DATASET.INPUT_SLICES", "3"]
    with pytest.raises(ConfigError, match=r"DATASET.INPUT_SLICES = 3 \(2.5D slices\) needs a 2D model"):
        load_config(overrides=overrides)


@pytest.mark.parametrize("name, dims, patch, multiple", [
    ("monai_basic_unet", 2, [1, 32, 40], 16),
    ("mednext", 3, [8, 32, 32], 16),
    ("monai_unet", 3, [16, 32, 36], 16),
])
def test_patch_not_a_multiple_of_the_downsampling_is_a_config_error(name, dims, patch, multiple):
    with pytest.raises(ConfigError, match=rf"DATASET.PATCH_SIZE = \[.*\] must be a multiple of {multiple} in .*{name}"):
        BUILDERS[name](make_cfg(dims, "DATASET.PATCH_SIZE", patch))


def test_monai_unet_multiple_follows_its_strides():
    cfg = make_cfg(2, "MODEL.MONAI_UNET.CHANNELS", [4, 8, 16], "MODEL.MONAI_UNET.STRIDES", [2, 2], "DATASET.PATCH_SIZE", [1, 12, 20])
    assert build_monai_unet(cfg)(image(cfg)).shape == (2, len(CLASSES), 12, 20)
    with pytest.raises(ConfigError, match=r"INFERENCE.INPUT_SIZE = \[1, 12, 18\] must be a multiple of 4 in Y, X"):
        build_monai_unet(make_cfg(2, "MODEL.MONAI_UNET.CHANNELS", [4, 8, 16], "MODEL.MONAI_UNET.STRIDES", [2, 2],
                                  "DATASET.PATCH_SIZE", [1, 12, 20], "INFERENCE.INPUT_SIZE", [1, 12, 18]))
    with pytest.raises(ConfigError, match=r"multiple of 4 in Y, X .*e\.g\. \[1, 12, 24\]"):
        build_monai_unet(make_cfg(2, "MODEL.MONAI_UNET.CHANNELS", [4, 8, 16], "MODEL.MONAI_UNET.STRIDES", [2, 2],
                                  "DATASET.PATCH_SIZE", [1, 12, 22]))


@pytest.mark.parametrize("name, pairs, message", [
    ("mednext", ("MODEL.MEDNEXT.SIZE", "XL"), r"MODEL.MEDNEXT.SIZE = 'XL' is not one of 'S', 'B', 'M', 'L'"),
    ("mednext", ("MODEL.MEDNEXT.KERNEL_SIZE", 4), r"MODEL.MEDNEXT.KERNEL_SIZE = 4 must be a positive odd number"),
    ("monai_unet", ("MODEL.MONAI_UNET.STRIDES", [2, 2]), r"MODEL.MONAI_UNET.STRIDES = \[2, 2\] must list 4 values"),
    ("monai_basic_unet", ("MODEL.MONAI_BASIC_UNET.FEATURES", [4, 8, 16]), r"FEATURES = \[4, 8, 16\] must list 6 values"),
    ("monai_basic_unet", ("MODEL.MONAI_BASIC_UNET.NORM", "group"), r"MODEL.MONAI_BASIC_UNET.NORM = 'group' is not one of"),
])
def test_bad_values_are_one_line_config_errors(name, pairs, message):
    with pytest.raises(ConfigError, match=message) as info:
        BUILDERS[name](make_cfg(2, *pairs))
    assert "\n" not in str(info.value)
