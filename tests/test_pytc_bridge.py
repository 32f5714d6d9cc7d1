"""The PyTC bridge: detection, adapters both ways, and `emseg pytc` errors.

The unit tests put small stand-in ``connectomics`` packages on sys.path that follow PyTC's real shapes
(v1.0.0: ``connectomics.model.build.MODEL_MAP`` + ``build_model(cfg, device)`` calling
``MODEL_MAP[name](**kwargs)``, ``Criterion.loss_dict`` instances called ``(pred, target=, weight_mask=)``,
``connectomics.config.load_cfg(args, add_cfg_func=)``; v2: ``register_architecture`` under
``connectomics.models.architectures``) and Google's unrelated ``connectomics``. The integration test at the
end runs when the real PyTC is importable (PYTHONPATH pointing at a checkout of its repository).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from conftest import ROOT, run_cli

from emseg_plugins.bridges.pytc import adapters, records, v1
from emseg_plugins.bridges.pytc.config import add_pytc_config
from emseg_plugins.bridges.pytc.detect import REPOSITORY, detect
from emseg_plugins.bridges.pytc.line import find_module
from emseg_plugins.errors import ConfigError, PluginError, PluginWarning
from emseg_plugins.registry import CONFIGS, LOSSES, MODELS

V1_STANDIN = {
    "connectomics/__init__.py": "",
    "connectomics/model/__init__.py": "from .build import build_model\nfrom .loss import Criterion\n",
    "connectomics/model/build.py": '''
        import torch.nn as nn

        class UNet3D(nn.Module):
            """3D U-Net (stand-in): records the keywords build_model passed."""
            def __init__(self, block_type="residual", in_channel=1, out_channel=3, filters=(28, 36), **kwargs):
                super().__init__()
                self.kwargs = dict(block_type=block_type, in_channel=in_channel, out_channel=out_channel, filters=list(filters))
                self.conv = nn.Conv3d(in_channel, out_channel, 1)
            def forward(self, x):
                return self.conv(x)

        MODEL_MAP = {"unet_3d": UNet3D}

        def build_model(cfg, device, rank=None):  # as PyTC v1.0.0: one keyword set for every architecture
            kwargs = {"block_type": cfg.MODEL.BLOCK_TYPE, "in_channel": cfg.MODEL.IN_PLANES, "out_channel": cfg.MODEL.OUT_PLANES,
                      "filters": cfg.MODEL.FILTERS, "act_mode": cfg.MODEL.ACT_MODE, "norm_mode": cfg.MODEL.NORM_MODE,
                      "is_isotropic": False, "pooling": False}
            return MODEL_MAP[cfg.MODEL.ARCHITECTURE](**kwargs).to(device)
    ''',
    "connectomics/model/loss.py": '''
        import torch.nn as nn

        class WeightedBCE(nn.Module):
            """Weighted binary cross-entropy on probabilities (stand-in)."""
            def forward(self, pred, target, weight_mask=None):
                return nn.functional.binary_cross_entropy(pred, target, weight_mask)

        class Criterion:
            loss_dict = {"WeightedBCE": WeightedBCE}
            def get_one_loss(self, lopt, params):  # as PyTC v1.0.0
                assert lopt in self.loss_dict
                return self.loss_dict[lopt]() if params is None else self.loss_dict[lopt](**params)
    ''',
    "connectomics/config/__init__.py": '''
        from yacs.config import CfgNode as CN

        def get_cfg_defaults():
            C = CN()
            C.SYSTEM = CN(); C.SYSTEM.NUM_GPUS = 1; C.SYSTEM.PARALLEL = "DP"
            C.MODEL = CN(); C.MODEL.ARCHITECTURE = "unet_3d"; C.MODEL.BLOCK_TYPE = "residual"; C.MODEL.IN_PLANES = 1
            C.MODEL.OUT_PLANES = 1; C.MODEL.FILTERS = [28, 36, 48, 64, 80]; C.MODEL.ACT_MODE = "elu"; C.MODEL.NORM_MODE = "bn"
            C.MODEL.INPUT_SIZE = [8, 256, 256]; C.MODEL.EMBEDDING = 1; C.MODEL.LOSS_OPTION = [["WeightedBCE"]]
            C.DATASET = CN(); C.DATASET.DO_2D = False
            return C.clone()

        def load_cfg(args, freeze=True, add_cfg_func=None):  # as PyTC v1.0.0
            cfg = get_cfg_defaults()
            if add_cfg_func is not None:
                add_cfg_func(cfg)
            if args.config_base is not None:
                cfg.merge_from_file(args.config_base)
            cfg.merge_from_file(args.config_file)
            cfg.merge_from_list(args.opts)
            if freeze:
                cfg.freeze()
            return cfg
    ''',
}
V2_STANDIN = {
    "connectomics/__init__.py": "__version__ = '2.0.0'\n",
    "connectomics/models/__init__.py": "",
    "connectomics/models/architectures/__init__.py": '''
        import warnings
        _ARCHITECTURE_REGISTRY = {}

        def register_architecture(name):  # as PyTC v2: overwriting warns
            def decorator(builder_fn):
                if name in _ARCHITECTURE_REGISTRY:
                    warnings.warn(f"Architecture '{name}' already registered. Overwriting previous registration.")
                _ARCHITECTURE_REGISTRY[name] = builder_fn
                return builder_fn
            return decorator

        def get_architecture_builder(name):
            return _ARCHITECTURE_REGISTRY[name]

        def list_architectures():
            return sorted(_ARCHITECTURE_REGISTRY)

        @register_architecture("monai_unet")
        def build_monai_unet(cfg):
            """PyTC's own MONAI UNet (stand-in)."""
            raise NotImplementedError
    ''',
}
GOOGLE_STANDIN = {
    "connectomics/__init__.py": "",
    "connectomics/common/__init__.py": "",
    "connectomics/volume/__init__.py": "",
    "connectomics-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: connectomics\nVersion: 0.1\n"
                                           "Summary: Common connectomics library\nHome-page: https://github.com/google-research/connectomics\n",
    "connectomics-0.1.dist-info/top_level.txt": "connectomics\n",
    "connectomics-0.1.dist-info/RECORD": "connectomics/__init__.py,,\n",
}
NO_SHAPE_STANDIN = {"connectomics/__init__.py": "", "connectomics/model/__init__.py": "MODELS = {}\n",
                    "connectomics/config/__init__.py": ""}


def _write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def _forget_connectomics() -> None:
    for name in [m for m in sys.modules if m == "connectomics" or m.startswith("connectomics.")]:
        del sys.modules[name]


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """Put one stand-in ``connectomics`` on sys.path (the global registries' PyTC providers already ran)."""
    if find_module("connectomics") is not None:
        pytest.skip("a real 'connectomics' is importable; the stand-ins would be shadowed")
    MODELS.names(), LOSSES.names(), CONFIGS.names()  # load the providers now, without any connectomics
    saved = dict(adapters.ACTIVE)

    def use(files: dict[str, str]) -> Path:
        root = _write(tmp_path / "site", files)
        monkeypatch.syspath_prepend(str(root))
        _forget_connectomics()
        return root

    yield use
    _forget_connectomics()
    adapters.ACTIVE.update(saved)


def test_v1_install_and_config_nodes_let_pytc_build_our_model_and_loss(standin, tmp_path):
    standin(V1_STANDIN)
    found = detect()
    assert found.line == "v1" and found.distribution == "source checkout"
    report = found.install()
    from connectomics.config import load_cfg
    from connectomics.model.build import MODEL_MAP, UNet3D, build_model
    from connectomics.model.loss import Criterion

    assert {"joenet", "unetv3", "monai_unet"} <= set(report["models"]) and MODEL_MAP["unet_3d"] is UNet3D
    assert "ohem" in report["losses"] and "ohem" in Criterion.loss_dict
    assert MODEL_MAP["emseg.unetv3"].name == "unetv3" and "emseg.ohem" in Criterion.loss_dict  # the aliases always exist
    assert found.install()["models"] == report["models"]  # again: only our own adapters are replaced
    yaml = _write(tmp_path, {"mine.yaml": """
        MODEL: {ARCHITECTURE: monai_unet, IN_PLANES: 1, OUT_PLANES: 2, INPUT_SIZE: [16, 16, 16], ACT_MODE: relu,
                MONAI_UNET: {CHANNELS: [4, 8, 16], STRIDES: [2, 2]}}
        LOSS: {OHEM: {KEEP_FRACTION: 0.5, MIN_KEPT: 0}}
    """}) / "mine.yaml"
    args = argparse.Namespace(config_base=None, config_file=str(yaml), opts=["MODEL.MONAI_UNET.NUM_RES_UNITS", "1"])
    with pytest.warns(PluginWarning, match="config node 'embedding' .* PyTC already has MODEL.EMBEDDING"):
        cfg = load_cfg(args, add_cfg_func=v1.add_cfg_func)  # PyTC v1's MODEL.EMBEDDING (an int) stays PyTC's
    assert cfg.MODEL.EMBEDDING == 1 and cfg.MODEL.MONAI_UNET.NUM_RES_UNITS == 1

    model = build_model(cfg, torch.device("cpu")).eval()
    assert isinstance(model, adapters.PyTCModel) and model.dims == 3
    assert model(torch.rand(1, 1, 16, 16, 16)).shape == (1, 2, 16, 16, 16)
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv3d))
    assert first_conv.out_channels == 4  # our node MODEL.MONAI_UNET, set in PyTC's yaml

    loss = Criterion().get_one_loss("ohem", None)
    assert loss.fn.keep_fraction == 0.5 and loss.fn.min_kept == 0  # from the yaml, through our node
    pred, target = torch.randn(1, 1, 4, 4, 4), (torch.rand(1, 1, 4, 4, 4) > 0.5).float()
    weight = torch.ones_like(target)
    weight[..., :2] = 0
    expected = loss.fn(pred, target, weight)
    assert torch.allclose(loss(pred, target=target, weight_mask=weight * 3.0), expected)  # any positive weight = valid


def test_v1_keyword_set_maps_onto_our_keys(standin):
    with pytest.warns(PluginWarning, match="MODEL.ACT_MODE 'elu' has no emseg counterpart"):
        core = v1.core_keys("unetv3", 2, 3, [8, 16], "elu", "sync_bn", None)
    assert core["MODEL.IN_PLANES"] == 2 and core["DATASET.CLASSES"] == ["class0", "class1", "class2"]
    assert core["MODEL.FILTERS"] == [8, 16] and core["MODEL.NORM_MODE"] == "bn" and "MODEL.ACT_MODE" not in core
    assert core["DATASET.DIMS"] == 3 and "DATASET.PATCH_SIZE" not in core
    from yacs.config import CfgNode as CN

    pytc_cfg = CN({"DATASET": CN({"DO_2D": True}), "MODEL": CN({"INPUT_SIZE": [1, 32, 48]})})
    core = v1.core_keys("joenet", 1, 2, None, "relu", "none", pytc_cfg)
    assert core["DATASET.DIMS"] == 2 and core["DATASET.PATCH_SIZE"] == [1, 32, 48] and core["MODEL.ACT_MODE"] == "relu"
    # a 2D emseg model under PyTC's 5D batches: Z = 1 is removed and put back
    adapters.ACTIVE.update(cfg=pytc_cfg, added=[])
    model = v1.ModelAdapter("joenet")(in_channel=1, out_channel=2, filters=[4, 8], act_mode="relu")
    assert model(torch.rand(2, 1, 1, 32, 48)).shape == (2, 2, 1, 32, 48)


def test_v1_loss_keywords_are_keys_of_the_loss_node(standin):
    assert v1.loss_kwargs_to_keys("ohem", {"keep_fraction": 0.1}) == {"LOSS.OHEM.KEEP_FRACTION": 0.1}
    with pytest.raises(ConfigError, match=r"LOSS_KWARGS_KEY 'gamma' is not an option of emseg loss 'ohem'; its options: keep_fraction, min_kept"):
        v1.loss_kwargs_to_keys("ohem", {"gamma": 2})


def test_v2_registers_our_models_as_architectures(standin):
    standin(V2_STANDIN)
    found = detect()
    assert (found.line, found.version, found.loss_module) == ("v2", "2.0.0", None)
    with pytest.warns(PluginWarning) as caught:
        report = found.install()
    arch = found.arch
    collisions = [str(w.message) for w in caught if "has its own" in str(w.message)]
    assert collisions == ["PyTC v2 has its own model 'monai_unet' (connectomics.models.architectures:build_monai_unet); emseg's "
                          "'monai_unet' (emseg-plugins, emseg_plugins.models.monai_nets:build_monai_unet) is registered in "
                          "PyTC as 'emseg.monai_unet'"]
    assert report["aliased"] == ["monai_unet"] and "monai_unet" not in report["models"] and "unetv3" in report["models"]
    assert [s for s in report["skipped"] if "ohem" in s and "PyTC v2 has no loss registry" in s] == report["skipped"]
    assert arch.get_architecture_builder("monai_unet").__doc__.startswith("PyTC's own")
    assert {"emseg.monai_unet", "emseg.unetv3", "unetv3"} <= set(arch.list_architectures())
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        found.install()
    assert not [w for w in again if "Overwriting" in str(w.message)]  # a second install never re-registers (PyTC would warn)
    ours = arch.get_architecture_builder("emseg.monai_unet")(SimpleNamespace(model=SimpleNamespace(
        in_channels=1, out_channels=2, input_size=[16, 16, 16], arch=SimpleNamespace(params={"MODEL.MONAI_UNET.CHANNELS": [4, 8], "MODEL.MONAI_UNET.STRIDES": [2]}))))
    assert ours(torch.rand(1, 1, 16, 16, 16)).shape == (1, 2, 16, 16, 16)  # emseg's monai_unet, under its alias
    cfg = SimpleNamespace(model=SimpleNamespace(in_channels=1, out_channels=2, input_size=[8, 16, 16],
                                                arch=SimpleNamespace(type="unetv3", params={"MODEL.FILTERS": [4, 8, 16]})))
    model = arch.get_architecture_builder("unetv3")(cfg)
    assert model(torch.rand(1, 1, 8, 16, 16)).shape == (1, 2, 8, 16, 16)  # main logits only, aux heads dropped
    cfg.model.arch.params = {"MODEL.FILTRES": [4]}
    with pytest.raises(ConfigError, match="model.arch.params key 'MODEL.FILTRES' is not an emseg config key"):
        arch.get_architecture_builder("unetv3")(cfg)


def test_pytc_architectures_and_losses_are_pytc_records(standin):
    standin(V1_STANDIN)
    provided = {r.name: r for r in records.provided_records("model")}
    assert list(provided) == ["pytc.unet_3d"]
    assert provided["pytc.unet_3d"].target == "connectomics.model.build:UNet3D"
    assert provided["pytc.unet_3d"].doc == "PyTC v1 architecture 'unet_3d': 3D U-Net (stand-in): records the keywords build_model passed."
    from emseg_plugins.config.defaults import get_cfg_defaults

    cfg = get_cfg_defaults()
    assert cfg.MODEL.PYTC.OPTS == [] and cfg.LOSS.PYTC.ACTIVATION == "auto"  # the pytc node: there with or without PyTC
    add_pytc_config(cfg)
    cfg.DATASET.DIMS, cfg.DATASET.PATCH_SIZE, cfg.MODEL.PYTC.OPTS = 3, [8, 16, 16], ["MODEL.FILTERS", "[4, 8]"]
    net = provided["pytc.unet_3d"].builder(cfg)
    assert net.kwargs == {"block_type": "residual", "in_channel": 1, "out_channel": 2, "filters": [4, 8]}
    cfg.MODEL.PYTC.OPTS = ["MODEL.FILTRES", "[4]"]
    with pytest.raises(ConfigError, match=r"MODEL.PYTC.OPTS .* PyTC refuses it"):
        provided["pytc.unet_3d"].builder(cfg)

    bce = {r.name: r for r in records.provided_records("loss")}["pytc.WeightedBCE"].builder(cfg)
    logits = torch.tensor([[[0.0, 2.0, -1.0, 5.0]]])
    label = torch.tensor([[[1.0, 0.0, float("nan"), 1.0]]])
    valid = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]])
    expected = -(math.log(0.5) + math.log(1 - 1 / (1 + math.exp(-2.0)))) / 4  # PyTC's mean over all 4 voxels, 2 counted
    assert bce(logits, label, valid).item() == pytest.approx(expected, rel=1e-5)
    assert bce(logits, torch.full_like(label, float("nan"))).item() == 0.0


def test_google_connectomics_is_named_as_such(standin):
    root = standin(GOOGLE_STANDIN)
    with pytest.raises(PluginError, match=r"is not PyTorch Connectomics: it is Google's connectomics package"):
        detect()
    assert records.provided_records("model") == []
    result = run_cli("emseg", "pytc", "--", "--config-file", "x.yaml", pythonpath=[root])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "(connectomics 0.1, " in errors[0] and "Google's connectomics package" in errors[0]
    code, out, _ = _emseg(["plugins"])
    assert code == 0 and "pytc: unavailable: the importable 'connectomics'" in out


def _emseg(argv: list[str]) -> tuple[int, str, list[str]]:
    """``emseg ARGV`` in this process: exit status, stdout and the ``error:`` lines of stderr."""
    from emseg_plugins.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main(argv)
    assert "Traceback" not in err.getvalue()
    return exit_.value.code, out.getvalue(), [line for line in err.getvalue().splitlines() if line.startswith("error:")]


def test_pytc_with_neither_registry_shape_is_one_line(standin):
    standin(NO_SHAPE_STANDIN)
    with pytest.raises(PluginError, match=r"has neither registry shape the bridge knows \(v1.x: connectomics.model.build.MODEL_MAP"):
        detect()
    code, _, errors = _emseg(["pytc", "--", "--config-file", "x.yaml"])
    assert code == 2 and len(errors) == 1 and "use a PyTC v1.x or v2.x release" in errors[0]


def test_emseg_pytc_without_pytc_says_how_to_get_it():
    if find_module("connectomics") is not None:
        pytest.skip("a 'connectomics' is importable here")
    code, _, errors = _emseg(["pytc", "--", "--config-file", "x.yaml"])
    expected = (f"error: PyTorch Connectomics is not installed (no 'connectomics' module); install it from "
                f"{REPOSITORY} (it is not on the package registry)")
    assert code == 2 and errors == [expected]


def test_pytc_v1_refuses_v2_syntax_in_one_line(standin):
    standin(V1_STANDIN)
    code, _, errors = _emseg(["pytc", "--", "--config", "x.yaml"])
    assert code == 2 and errors == ["error: emseg pytc: --config is PyTC v2's option; PyTC v1 takes --config-file X.yaml "
                                    "[--config-base B.yaml] KEY VALUE ... (e.g. SYSTEM.NUM_GPUS 0)"]


def test_pytc_v2_refuses_v1_syntax_in_one_line(standin):
    standin(V2_STANDIN)
    for argv in (["--config-file", "x.yaml"], ["--config", "x.yaml", "SYSTEM.NUM_GPUS", "0"]):
        code, _, errors = _emseg(["pytc", "--", *argv])
        assert code == 2 and len(errors) == 1 and errors[0].endswith(
            "; PyTC v2 takes --config X.yaml [--mode train|test|tune|tune-test] key=value ... (e.g. system.num_gpus=0)")
    assert "'SYSTEM.NUM_GPUS' looks like a PyTC v1 KEY VALUE override" in errors[0]


LOAD_CONFIG_CHECK = """
import sys
from emseg_plugins.config import load_config
from emseg_plugins.registry import MODELS
cfg = load_config(sys.argv[1])
print(sorted(m for m in sys.modules if m.startswith(("emseg_plugins.bridges", "connectomics"))), cfg.MODEL.PYTC.OPTS)
MODELS.record("joenet")
print("connectomics" in sys.modules)
print(MODELS.record("pytc.unet_3d").target, "connectomics.model.build" in sys.modules)
"""


def test_load_config_imports_neither_pytc_nor_the_bridge(tmp_path):
    """A config load (and a plain name) imports only the provider's entry module; a pytc.* name probes PyTC."""
    site = _write(tmp_path / "site", V1_STANDIN)  # a PyTC on the path, so importing it would show
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(site), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", LOAD_CONFIG_CHECK, str(ROOT / "tests" / "configs" / "tiny.yaml")],
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    modules, plain, pytc_name = result.stdout.splitlines()
    assert modules == "['emseg_plugins.bridges', 'emseg_plugins.bridges.pytc', 'emseg_plugins.bridges.pytc.config'] []"
    assert plain == "False"
    assert pytc_name == "connectomics.model.build:UNet3D True"


# -- integration: the real PyTC (run with PYTHONPATH=<pytc checkout>:<its requirements>) -------------------------
def _real_pytc():
    try:
        found = detect()
    except PluginError:
        return None
    return found


V2_YAML = """
save_path: {out}
default:
  model:
    arch: {{type: emseg.unetv3, params: {{MODEL.FILTERS: [4, 8, 16], MODEL.UNETV3.AUX_HEADS: 0}}}}
    in_channels: 1
    out_channels: 1
    input_size: [8, 32, 32]
    output_size: [8, 32, 32]
    loss: {{losses: [{{function: DiceLoss, weight: 1.0, pred_slice: "0:1", target_slice: "0:1"}}]}}
  data:
    train: {{image: "random://emseg/train_image", label: "random://emseg/train_label"}}
    val: {{image: "random://emseg/val_image", label: "random://emseg/val_label"}}
    dataloader: {{batch_size: 1, patch_size: [8, 32, 32]}}
train:
  optimization: {{max_epochs: 1, n_steps_per_epoch: 1, precision: "32", optimizer: {{name: AdamW, lr: 1.0e-3}}}}
  monitor: {{checkpoint: {{save_top_k: 1, save_last: true}}}}
  system: {{num_gpus: 0, num_workers: 0, seed: 0}}
"""
real = pytest.mark.skipif(_real_pytc() is None, reason="the real PyTorch Connectomics is not importable")


@real
def test_real_pytc_trains_our_model_and_loss_and_we_train_its_model(tmp_path):
    found = _real_pytc()
    paths = [Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if found.line == "v1":
        rng = np.random.default_rng(0)
        label = np.zeros((16, 64, 64), np.uint8)
        label[4:12, 10:30, 20:50] = 1
        image = (60 + 120 * label + rng.normal(0, 15, label.shape)).clip(0, 255).astype(np.uint8)
        for name, array in (("img.h5", image), ("label.h5", label)):
            with h5py.File(tmp_path / name, "w") as f:
                f["main"] = array
        (tmp_path / "mine.yaml").write_text(textwrap.dedent(f"""
            SYSTEM: {{NUM_GPUS: 0, NUM_CPUS: 0}}
            MODEL: {{ARCHITECTURE: unetv3, FILTERS: [4, 8, 16], INPUT_SIZE: [8, 32, 32], OUTPUT_SIZE: [8, 32, 32],
                    LOSS_OPTION: [[ohem]], OUTPUT_ACT: [[none]], LOSS_WEIGHT: [[1.0]], WEIGHT_OPT: [["0"]], UNETV3: {{AUX_HEADS: 0}}}}
            LOSS: {{OHEM: {{KEEP_FRACTION: 0.5}}}}
            DATASET: {{IMAGE_NAME: img.h5, LABEL_NAME: label.h5, INPUT_PATH: {tmp_path}/, OUTPUT_PATH: {tmp_path}/out, PAD_SIZE: [0, 0, 0]}}
            AUGMENTOR: {{ENABLED: False}}
            SOLVER: {{BASE_LR: 0.01, ITERATION_TOTAL: 2, ITERATION_SAVE: 2, SAMPLES_PER_BATCH: 2}}
            MONITOR: {{ITERATION_NUM: [1, 100]}}
        """))
        result = run_cli("emseg", "pytc", "--", "--config-file", str(tmp_path / "mine.yaml"), pythonpath=paths, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "added models: joenet" in result.stdout and "model:  PyTCModel" in result.stdout
        ckpt = torch.load(tmp_path / "out" / "checkpoint_00002.pth.tar", weights_only=False)
        assert any(k.startswith("model.backbone.") for k in ckpt["state_dict"])  # our unetv3 inside PyTC's checkpoint
        assert "KEEP_FRACTION: 0.5" in (tmp_path / "out" / "config.yaml").read_text()
        arch, loss, opts = "pytc.unet_2d", "pytc.WeightedBCEWithLogitsLoss", '["MODEL.FILTERS", "[4, 8, 12, 16, 20]"]'
    else:
        (tmp_path / "mine.yaml").write_text(V2_YAML.format(out=tmp_path / "out"))
        result = run_cli("emseg", "pytc", "--", "--config", str(tmp_path / "mine.yaml"), "train.optimization.n_steps_per_epoch=2",
                         pythonpath=paths, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "warning: PyTC v2 has its own model 'monai_unet'" in result.stderr and "added models: joenet" in result.stdout
        assert list((tmp_path / "out").rglob("last.ckpt"))  # emseg's unetv3, trained by PyTC v2 under its alias
        arch, loss, opts = "pytc.monai_unet", "dice_bce", "[]"
    run = tmp_path / "ours"
    result = run_cli("pytc-train", "--config-file", str(ROOT / "tests" / "configs" / "tiny.yaml"), "DATASET.OUTPUT_PATH", str(run),
                     "MODEL.ARCHITECTURE", arch, "LOSS.NAME", loss, "MODEL.PYTC.OPTS", opts,
                     "SOLVER.ITERATION_TOTAL", "2", "SOLVER.ITERATION_VAL", "2", pythonpath=paths)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    listing = run_cli("emseg", "plugins", pythonpath=paths)
    assert "pytc: PyTorch Connectomics" in listing.stdout and arch in listing.stdout
