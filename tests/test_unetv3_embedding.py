"""unetv3 (residual 3D U-Net + deep supervision) and the embedding models unet2d_ebd, unetv3_ebd,
unetv3_ebd2 (nearest-prototype classification): shapes, gradients, anisotropy, config checks,
prototype updates and short trainings. Tiny widths and patches: seconds on a CPU."""
from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, run_main
from torch import nn

from emseg_plugins.config import get_cfg_defaults
from emseg_plugins.config.keys import assign
from emseg_plugins.errors import ConfigError
from emseg_plugins.losses.deep_supervision import supervised_loss
from emseg_plugins.losses.discriminative import DiscriminativeLoss
from emseg_plugins.models.embedding import PrototypeUNet, build_unet2d_ebd, build_unetv3_ebd, build_unetv3_ebd2
from emseg_plugins.models.unetv3 import ResUNet, UNetV3, build_unetv3, downsampling
from emseg_plugins.registry import LOSSES

BUILDERS = {"unetv3": build_unetv3, "unetv3_ebd": build_unetv3_ebd, "unetv3_ebd2": build_unetv3_ebd2, "unet2d_ebd": build_unet2d_ebd}
DIMS = {"unetv3": 3, "unetv3_ebd": 3, "unetv3_ebd2": 3, "unet2d_ebd": 2}
PATCH = {2: [1, 16, 16], 3: [4, 16, 16]}
CLASSES = ["nuc", "mito"]
K = len(CLASSES)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is ~10x faster than two on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_cfg(dims: int = 3, *pairs):
    """Defaults (with MODEL.UNETV3 / MODEL.EMBEDDING from the config plugins), tiny widths, then KEY, VALUE pairs."""
    cfg = get_cfg_defaults()
    cfg.DATASET.DIMS = dims
    cfg.DATASET.PATCH_SIZE = PATCH[dims]
    cfg.INFERENCE.INPUT_SIZE = PATCH[dims]
    cfg.DATASET.CLASSES = CLASSES
    cfg.MODEL.FILTERS = [4, 8, 8]
    cfg.MODEL.UNETV3.BLOCKS_PER_LEVEL = 1
    cfg.MODEL.EMBEDDING.DIM = 3
    for key, value in zip(pairs[::2], pairs[1::2]):
        assign(cfg, key, value)
    if "INFERENCE.INPUT_SIZE" not in pairs[::2]:
        cfg.INFERENCE.INPUT_SIZE = list(cfg.DATASET.PATCH_SIZE)  # sliding windows of the training patch size
    return cfg


def image(cfg, batch: int = 2) -> torch.Tensor:
    size = cfg.DATASET.PATCH_SIZE[1:] if cfg.DATASET.DIMS == 2 else cfg.DATASET.PATCH_SIZE
    channels = cfg.MODEL.IN_PLANES * (cfg.DATASET.INPUT_SLICES if cfg.DATASET.DIMS == 2 else 1)
    return torch.rand(batch, channels, *size)


def tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    return [output["logits"], *output.get("aux", []), *([output["embedding"]] if "embedding" in output else [])]


def first_conv(net: nn.Module) -> nn.Module:
    return next(m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)))


# -- shapes, modes, gradients --------------------------------------------------------------------

@pytest.mark.parametrize("name", list(BUILDERS))
def test_train_and_eval_outputs_and_gradients_reach_the_first_layer(name):
    torch.manual_seed(0)
    cfg = make_cfg(DIMS[name])
    net = BUILDERS[name](cfg)
    x = image(cfg)
    spatial = tuple(x.shape[2:])
    out = net.train()(x)
    main = out if isinstance(out, torch.Tensor) else out["logits"]
    assert main.shape == (2, K, *spatial)
    expected_keys = {"unetv3": {"logits", "aux"}, "unetv3_ebd": {"logits", "aux", "embedding"},
                     "unetv3_ebd2": {"logits", "embedding"}, "unet2d_ebd": {"logits", "embedding"}}[name]
    assert set(out) == expected_keys
    assert set(net.outputs) == expected_keys - {"aux"}  # what the engine checks losses against
    if "embedding" in out:
        assert out["embedding"].shape == (2, 3, *spatial)

    sum(t.square().mean() for t in tensors(out)).backward()
    grad = first_conv(net).weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"

    with torch.no_grad():
        evaluated = net.eval()(x)
    if name == "unetv3":
        assert isinstance(evaluated, torch.Tensor) and evaluated.shape == (2, K, *spatial)  # bare tensor, like DeepSupervision
    else:
        assert set(evaluated) == {"logits", "embedding"}  # no aux outside training
        assert evaluated["logits"].shape == (2, K, *spatial) and evaluated["embedding"].shape == (2, 3, *spatial)


def test_unet2d_ebd_takes_25d_slices_times_image_planes_as_channels():
    cfg = make_cfg(2, "DATASET.INPUT_SLICES", 5, "MODEL.IN_PLANES", 2)
    net = build_unet2d_ebd(cfg)
    assert first_conv(net).in_channels == 10
    with torch.no_grad():
        out = net.eval()(image(cfg, batch=1))
    assert out["logits"].shape == (1, K, 16, 16) and out["embedding"].shape == (1, 3, 16, 16)


def test_unetv3_ebd2_embedding_comes_from_the_last_but_one_layer():
    """Its embedding head reads the input of decoder level 0's last block, not that block's output."""
    cfg = make_cfg(3, "MODEL.UNETV3.BLOCKS_PER_LEVEL", 2)
    ebd, ebd2 = build_unetv3_ebd(cfg), build_unetv3_ebd2(cfg)
    seen = {}
    last_block = ebd2.backbone.decoders[0][-1]
    last_block.register_forward_hook(lambda module, inputs, output: seen.update(input=inputs[0], output=output))
    ebd2.embedding_head.register_forward_hook(lambda module, inputs, output: seen.update(head_input=inputs[0]))
    with torch.no_grad():
        ebd2.eval()(image(cfg, batch=1))
    assert seen["head_input"] is seen["input"] and seen["head_input"] is not seen["output"]
    assert first_conv(ebd.embedding_head).in_channels == first_conv(ebd2.embedding_head).in_channels == 4


# -- deep supervision and anisotropy -------------------------------------------------------------

@pytest.mark.parametrize("aux, count", [(-1, 2), (1, 1), (2, 2)])
def test_aux_heads_count_and_lower_resolutions(aux, count):
    cfg = make_cfg(3, "MODEL.FILTERS", [4, 8, 8, 8], "MODEL.UNETV3.AUX_HEADS", aux, "MODEL.UNETV3.ANISOTROPIC_LEVELS", 1,
                   "DATASET.PATCH_SIZE", [8, 32, 32])
    net = build_unetv3(cfg).train()
    out = net(torch.rand(2, 1, 8, 32, 32))
    # level 1: Z kept (1x2x2 step out of the anisotropic level 0); level 2: halved in Z too; highest resolution first
    assert [tuple(a.shape) for a in out["aux"]] == [(2, K, 8, 16, 16), (2, K, 4, 8, 8)][:count]
    label = (torch.rand(2, K, 8, 32, 32) > 0.5).float()
    total, parts = supervised_loss(LOSSES.build("dice_bce", cfg), out, label)
    assert list(parts) == ["main"] + [f"aux{i}" for i in range(1, count + 1)]
    assert torch.isfinite(total)


def test_without_aux_heads_training_returns_the_bare_logits():
    net = build_unetv3(make_cfg(3, "MODEL.UNETV3.AUX_HEADS", 0)).train()
    out = net(torch.rand(1, 1, 4, 16, 16))
    assert isinstance(out, torch.Tensor) and out.shape == (1, K, 4, 16, 16)


@pytest.mark.parametrize("anisotropic, z_sizes", [(0, [8, 4, 2]), (2, [16, 16, 8]), (4, [16, 16, 16])])
def test_anisotropic_levels_use_1x3x3_kernels_and_1x2x2_downsampling(anisotropic, z_sizes):
    cfg = make_cfg(3, "MODEL.FILTERS", [4, 4, 8, 8], "MODEL.UNETV3.ANISOTROPIC_LEVELS", anisotropic, "DATASET.PATCH_SIZE", [16, 32, 32])
    net = build_unetv3(cfg)
    for level, encoder in enumerate(net.backbone.encoders):
        kernels = {m.kernel_size for m in encoder.modules() if isinstance(m, nn.Conv3d) and m.kernel_size != (1, 1, 1)}
        assert kernels == {(1, 3, 3) if level < anisotropic else (3, 3, 3)}
    for level, up in enumerate(net.backbone.ups):  # transposed conv back into level `level`
        assert up.conv.stride == ((1, 2, 2) if level < anisotropic else (2, 2, 2))
    sizes = []
    for encoder in net.backbone.encoders:
        encoder.register_forward_hook(lambda module, inputs, output: sizes.append(tuple(output.shape[2:])))
    with torch.no_grad():
        net.eval()(torch.rand(1, 1, 16, 32, 32))
    assert [s[0] for s in sizes[1:]] == z_sizes  # Z halves fewer times than Y and X ...
    assert [s[1:] for s in sizes[1:]] == [(16, 16), (8, 8), (4, 4)]  # ... which halve at every level
    assert downsampling(3, 4, anisotropic) == (2 ** (3 - min(anisotropic, 3)), 8, 8)


# -- config checks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("pairs, message", [
    (("DATASET.PATCH_SIZE", [6, 32, 32]), r"DATASET.PATCH_SIZE = \[6, 32, 32\] must be a multiple of 4 in Z, 8 in Y, 8 in X .*e.g. \[8, 32, 32\]"),
    (("INFERENCE.INPUT_SIZE", [8, 36, 32]), r"INFERENCE.INPUT_SIZE = \[8, 36, 32\] must be a multiple of 4 in Z, 8 in Y, 8 in X"),
    (("DATASET.PATCH_SIZE", [3, 32, 32], "MODEL.UNETV3.ANISOTROPIC_LEVELS", 2), r"\[3, 32, 32\] must be a multiple of 2 in Z, 8 in Y"),
    (("MODEL.UNETV3.AUX_HEADS", 3), r"MODEL.UNETV3.AUX_HEADS = 3 must be -1 \(all\) or in \[0, 2\]"),
    (("MODEL.UNETV3.ANISOTROPIC_LEVELS", 5), r"MODEL.UNETV3.ANISOTROPIC_LEVELS = 5 must be in \[0, 4\]"),
    (("MODEL.UNETV3.BLOCKS_PER_LEVEL", 0), r"MODEL.UNETV3.BLOCKS_PER_LEVEL = 0 must be at least 1"),
    (("MODEL.NORM_MODE", "ln"), r"MODEL.NORM_MODE = 'ln' is not one of 'bn', 'sync_bn', 'in', 'gn'"),
    (("MODEL.ACT_MODE", "tanh"), r"MODEL.ACT_MODE = 'tanh' is not one of"),
    (("MODEL.FILTERS", [8]), r"MODEL.FILTERS = \[8\] must be at least 2"),
    (("DATASET.DIMS", 2, "DATASET.PATCH_SIZE", [1, 32, 32]), r"unetv3 is a 3D model; set DATASET.DIMS 3 .*2.5D inputs are for 2D models"),
])
def test_unetv3_config_errors(pairs, message):
    cfg = make_cfg(3, "MODEL.FILTERS", [4, 8, 8, 8], "DATASET.PATCH_SIZE", [8, 32, 32], "INFERENCE.INPUT_SIZE", [8, 32, 32], *pairs)
    with pytest.raises(ConfigError, match=message):
        build_unetv3(cfg)


def test_embedding_model_config_errors():
    with pytest.raises(ConfigError, match=r"unet2d_ebd is a 2D model; set DATASET.DIMS 2"):
        build_unet2d_ebd(make_cfg(3))
    with pytest.raises(ConfigError, match=r"unetv3_ebd2 is a 3D model"):
        build_unetv3_ebd2(make_cfg(2))
    with pytest.raises(ConfigError, match=r"DATASET.PATCH_SIZE = \[1, 18, 16\] must be a multiple of 4 in Y, 4 in X for unet2d_ebd"):
        build_unet2d_ebd(make_cfg(2, "DATASET.PATCH_SIZE", [1, 18, 16]))
    with pytest.raises(ConfigError, match=r"MODEL.EMBEDDING.DIM = 0 must be at least 1"):
        build_unetv3_ebd(make_cfg(3, "MODEL.EMBEDDING.DIM", 0))
    with pytest.raises(ConfigError, match=r"MODEL.EMBEDDING.PROTOTYPE_MOMENTUM = 1.0 must be in \[0, 1\)"):
        build_unetv3_ebd2(make_cfg(3, "MODEL.EMBEDDING.PROTOTYPE_MOMENTUM", 1.0))


def test_norm_modes_build_monai_norm_layers():
    kinds = {mode: {type(m) for m in build_unetv3(make_cfg(3, "MODEL.NORM_MODE", mode, "MODEL.FILTERS", [4, 6, 8])).modules()}
             for mode in ("bn", "in", "gn")}
    assert nn.BatchNorm3d in kinds["bn"] and nn.InstanceNorm3d in kinds["in"] and nn.GroupNorm in kinds["gn"]
    groups = {m.num_groups for m in build_unetv3(make_cfg(3, "MODEL.NORM_MODE", "gn", "MODEL.FILTERS", [4, 6, 8])).modules()
              if isinstance(m, nn.GroupNorm)}
    assert groups == {2}  # gcd(8, 4, 6, 8)


def test_cli_rejects_a_patch_not_divisible_by_the_downsampling(tmp_path):
    run_dir = tmp_path / "run"
    done = run_main("pytc-train", "--config-file", str(TINY), "DATASET.OUTPUT_PATH", str(run_dir), "MODEL.ARCHITECTURE", "unetv3",
                   "DATASET.DIMS", "3", "MODEL.FILTERS", "[4, 8, 8]", "DATASET.PATCH_SIZE", "[5, 32, 32]",
                   "INFERENCE.INPUT_SIZE", "[8, 32, 32]", "DATASET.SYNTHETIC.SHAPE", "[24, 64, 64]", "DATASET.SYNTHETIC.VAL_Z", "[12, 24]")
    assert done.returncode == 2, done.stderr
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "DATASET.PATCH_SIZE = [5, 32, 32] must be a multiple of 2 in Z" in errors[0]
    assert "Traceback" not in done.stderr
    assert not run_dir.exists()


# -- prototypes (unetv3_ebd2) ------------------------------------------------------------------------

def prototype_net(momentum: float = 0.99, classes: int = 2, dim: int = 2, nn_eval: bool = True) -> PrototypeUNet:
    return PrototypeUNet(ResUNet(3, 1, (4, 4), blocks_per_level=1), classes, dim, momentum=momentum, nn_eval=nn_eval)


CENTRES = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])  # background, class 1 (nuc), class 2 (mito)


def clustered_batch(nan_rows: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Embedding (1, 2, 1, 4, 6) clustered by class, label (1, 2, 1, 4, 6), and the per-voxel class row (or -1)."""
    torch.manual_seed(0)
    rows = torch.tensor([[0, 0, 1, 1, 2, 2]] * 4)  # (Y, X) class row per voxel
    if nan_rows:
        rows[3] = -1  # unannotated: must be ignored
    embedding = CENTRES[rows.clamp_min(0)] + 0.1 * torch.randn(4, 6, 2)
    embedding[rows == -1] = torch.tensor([100.0, -100.0])  # far away: would drag any prototype it touched
    label = torch.stack([(rows == 1).float(), (rows == 2).float()])  # (K, Y, X)
    label[:, rows == -1] = float("nan")
    return embedding.permute(2, 0, 1)[None, :, None], label[None, :, None], rows


def test_update_prototypes_averages_annotated_voxels_per_class_and_ignores_nan():
    net = prototype_net()
    embedding, label, rows = clustered_batch()
    net.update_prototypes(embedding, label)
    flat = embedding[0, :, 0].permute(1, 2, 0)  # (Y, X, E)
    expected = torch.stack([flat[rows == r].mean(0) for r in range(3)])
    torch.testing.assert_close(net.prototypes, expected)  # the first observation sets the mean
    assert net.prototype_count.tolist() == [6, 6, 6]  # the 6 NaN voxels are not counted
    assert (net.prototypes - CENTRES).abs().max() < 0.2


def test_partially_annotated_voxels_count_only_when_a_known_channel_is_positive():
    net = prototype_net(classes=2, dim=1)
    embedding = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 4, 1, 1)
    nan = float("nan")
    label = torch.tensor([[1.0, nan],   # nuc positive, mito unknown -> nuc
                          [0.0, nan],   # nuc negative, mito unknown -> skipped (could be mito)
                          [1.0, 1.0],   # both positive -> the first (argmax)
                          [0.0, 0.0]])  # everything negative -> background
    net.update_prototypes(embedding, label.T.reshape(1, 2, 4, 1, 1))
    assert net.prototype_count.tolist() == [1, 2, 0]
    torch.testing.assert_close(net.prototypes[:, 0], torch.tensor([4.0, 2.0, 0.0]))


def test_prototypes_move_as_an_exponential_moving_average():
    net = prototype_net(momentum=0.75, classes=1, dim=1)
    label = torch.tensor([0.0, 1.0]).view(1, 1, 2, 1, 1)
    net.update_prototypes(torch.tensor([0.0, 8.0]).view(1, 1, 2, 1, 1), label)
    net.update_prototypes(torch.tensor([4.0, 0.0]).view(1, 1, 2, 1, 1), label)
    torch.testing.assert_close(net.prototypes[:, 0], torch.tensor([0.75 * 0 + 0.25 * 4, 0.75 * 8 + 0.25 * 0]))
    net.update_prototypes(torch.tensor([100.0]).view(1, 1, 1, 1, 1), torch.tensor([float("nan")]).view(1, 1, 1, 1, 1))
    torch.testing.assert_close(net.prototypes[:, 0], torch.tensor([1.0, 6.0]))  # nothing annotated: unchanged
    assert net.prototype_count.tolist() == [2, 2]


def test_nearest_prototype_logits_classify_a_hand_made_case():
    net = prototype_net()
    embedding, label, _ = clustered_batch()
    net.update_prototypes(embedding, label)
    queries = torch.tensor([[0.2, -0.1], [3.5, 0.5], [0.4, 3.0], [2.1, 0.0], [-5.0, 3.0], [3.0, 3.2]])  # (Q, E)
    logits = net.prototype_logits(queries.T.reshape(1, 2, 6, 1, 1))[0, :, :, 0, 0].T  # (Q, K)
    nearest_to_class = torch.tensor([[False, False], [True, False], [False, True], [True, False], [False, True], [True, True]])
    assert torch.equal(logits > 0, nearest_to_class)
    distances = torch.cdist(queries, net.prototypes).square()  # (Q, K + 1)
    torch.testing.assert_close(logits, distances[:, :1] - distances[:, 1:], rtol=1e-4, atol=1e-4)


def test_eval_uses_prototypes_once_observed_and_the_segmentation_head_before():
    torch.manual_seed(0)
    net = prototype_net().eval()
    x = torch.rand(1, 1, 2, 8, 8)
    with torch.no_grad():
        before = net(x)
        torch.testing.assert_close(before["logits"], net.head(net.backbone(x).last))  # nothing observed yet
        # prototypes from the model's own embedding: background = its left half, nuc = its right half (mito never seen)
        label = torch.zeros(1, 2, 2, 8, 8)
        label[:, 0, :, :, 4:] = 1
        net.update_prototypes(before["embedding"], label)
        after = net(x)
    expected = net.prototype_logits(before["embedding"])
    torch.testing.assert_close(after["logits"][:, 0], expected[:, 0])
    torch.testing.assert_close(after["logits"][:, 1], before["logits"][:, 1])  # mito prototype unseen: segmentation head
    voxels = before["embedding"][0].flatten(1).T
    distances = torch.cdist(voxels, net.prototypes[:2]).square()
    assert torch.equal((after["logits"][0, 0].flatten() > 0), distances[:, 1] < distances[:, 0])
    net.nn_eval = False
    with torch.no_grad():
        torch.testing.assert_close(net(x)["logits"], before["logits"])
    net.nn_eval = True
    net.train()  # training always reads the segmentation head (the segmentation loss trains it)
    torch.testing.assert_close(net(x)["logits"], net.head(net.backbone(x).last))


def test_prototypes_persist_through_a_state_dict_round_trip():
    cfg = make_cfg(3)
    net = build_unetv3_ebd2(cfg)
    embedding = torch.randn(2, 3, 4, 16, 16)
    net.update_prototypes(embedding, (torch.rand(2, K, 4, 16, 16) > 0.5).float())
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert {"prototypes", "prototype_count"} <= set(state)
    restored = build_unetv3_ebd2(cfg)
    restored.load_state_dict(state)
    assert torch.equal(restored.prototypes, net.prototypes) and torch.equal(restored.prototype_count, net.prototype_count)
    x = torch.rand(1, 1, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(restored.eval()(x)["logits"], net.eval()(x)["logits"])


# -- short trainings ---------------------------------------------------------------------------------

def blobs(batch: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Smooth random blobs (B, 1, *shape) in {0, 1}."""
    noise = torch.rand(batch, 1, *[max(1, s // 4) for s in shape], generator=generator)
    return (F.interpolate(noise, size=shape, mode="trilinear" if len(shape) == 3 else "bilinear", align_corners=False) > 0.6).float()


def losses_of_training(net: torch.nn.Module, step_loss, steps: int = 40) -> list[float]:
    """AdamW (lr 1e-2) for ``steps`` steps of ``step_loss(net)``; the loss of each step."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    history = []
    for _ in range(steps):
        loss = step_loss(net)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


def assert_learned(history: list[float]) -> None:
    first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
    assert last < 0.6 * first, history


def test_unetv3_with_aux_heads_learns_a_tiny_synthetic_task():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    cfg = make_cfg(3, "MODEL.FILTERS", [4, 8, 8], "DATASET.PATCH_SIZE", [4, 16, 16], "DATASET.CLASSES", ["mito"])
    loss_fn = LOSSES.build("dice_bce", cfg)

    def step_loss(net):
        label = blobs(2, (4, 16, 16), g)
        x = label * 0.5 + 0.25 + 0.1 * torch.randn(label.shape, generator=g)  # bright blobs on grey, noisy
        out = net(x)
        assert len(out["aux"]) == 1
        return supervised_loss(loss_fn, out, label)[0]

    assert_learned(losses_of_training(build_unetv3(cfg).train(), step_loss))


def test_unet2d_ebd_learns_instance_embeddings_with_the_discriminative_loss():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    cfg = make_cfg(2, "DATASET.PATCH_SIZE", [1, 16, 16], "MODEL.EMBEDDING.DIM", 4)
    loss_fn = DiscriminativeLoss()
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")

    def step_loss(net):
        instances = torch.zeros(2, 1, 16, 16, dtype=torch.long)
        for b in range(2):  # three discs per image at random places
            for i in range(1, 4):
                cy, cx = torch.randint(3, 13, (2,), generator=g).tolist()
                instances[b, 0][(yy - cy) ** 2 + (xx - cx) ** 2 <= 5] = i
        x = (instances > 0).float() * 0.6 + 0.2 + 0.05 * torch.randn(2, 1, 16, 16, generator=g)
        return loss_fn(net(x)["embedding"], instances)

    assert_learned(losses_of_training(build_unet2d_ebd(cfg).train(), step_loss))


def test_segmentation_models_are_unetv3_subclasses_sharing_one_backbone():
    """No duplicated U-Net code: the three embedding models extend UNetV3 and hold a ResUNet."""
    nets = [build_unetv3(make_cfg(3)), build_unetv3_ebd(make_cfg(3)), build_unetv3_ebd2(make_cfg(3)), build_unet2d_ebd(make_cfg(2))]
    assert all(isinstance(n, UNetV3) and isinstance(n.backbone, ResUNet) for n in nets)
