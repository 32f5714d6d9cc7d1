"""PyTC v1.x (yacs; ``zudi-lin/pytorch_connectomics`` tag v1.0.0) through its public registries.

``connectomics.model.build.MODEL_MAP`` (name -> class called with PyTC's keyword set ``in_channel``,
``out_channel``, ``filters``, ...), ``connectomics.model.loss.Criterion.loss_dict`` (name -> class, instances
called as ``loss(pred, target=..., weight_mask=...)``) and ``connectomics.config.load_cfg(args, add_cfg_func=...)``,
to which :func:`add_cfg_func` adds every emseg config node.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import os
import sys
import warnings
from types import ModuleType
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.bridges.pytc.adapters import ACTIVE, MISSING, PyTCModel, assign, emseg_cfg, lookup, node_paths
from emseg_plugins.bridges.pytc.line import Installation, PyTCLine, dict_table, find_module
from emseg_plugins.config.defaults import get_cfg_defaults
from emseg_plugins.config.nodes import config_nodes
from emseg_plugins.errors import ConfigError, PluginError, PluginWarning
from emseg_plugins.registry import LOSSES, MODELS

ACT_MODES = ("relu", "leaky_relu", "gelu")  # PyTC v1 MODEL.ACT_MODE values emseg models also have
NORM_MODES = {"bn": "bn", "sync_bn": "bn", "in": "in", "gn": "gn"}  # PyTC v1 MODEL.NORM_MODE -> ours
SYNTAX = "PyTC v1 takes --config-file X.yaml [--config-base B.yaml] KEY VALUE ... (e.g. SYSTEM.NUM_GPUS 0)"


class V1(PyTCLine):
    """PyTC v1: yacs config, ``MODEL_MAP`` and ``Criterion.loss_dict``."""

    line = "v1"

    def __init__(self, where: Installation, build: ModuleType, config: ModuleType, loss_dict: dict):
        super().__init__(where, dict_table(build.MODEL_MAP), dict_table(loss_dict))
        self.build, self.config = build, config

    @classmethod
    def probe(cls, where: Installation) -> V1 | None:
        if not all(find_module(f"connectomics.{m}") for m in ("model", "config", "model.build", "model.loss")):
            return None
        build = importlib.import_module("connectomics.model.build")
        loss = importlib.import_module("connectomics.model.loss")
        config = importlib.import_module("connectomics.config")
        loss_dict = getattr(getattr(loss, "Criterion", None), "loss_dict", None)
        load_cfg = getattr(config, "load_cfg", None)
        if not (isinstance(getattr(build, "MODEL_MAP", None), dict) and isinstance(loss_dict, dict) and callable(load_cfg)
                and "add_cfg_func" in inspect.signature(load_cfg).parameters):
            return None
        return cls(where, build, config, loss_dict)

    def model_adapter(self, name: str) -> ModelAdapter:
        return ModelAdapter(name)

    def loss_adapter(self, name: str) -> type:
        return loss_class(name)

    def build_own_model(self, name: str, cfg: CN) -> nn.Module:
        pcfg = self.config.get_cfg_defaults()
        pcfg.MODEL.ARCHITECTURE, pcfg.MODEL.IN_PLANES = name, cfg.MODEL.IN_PLANES * cfg.DATASET.INPUT_SLICES
        pcfg.MODEL.OUT_PLANES, pcfg.MODEL.INPUT_SIZE = len(cfg.DATASET.CLASSES), list(cfg.DATASET.PATCH_SIZE)
        pcfg.DATASET.DO_2D = cfg.DATASET.DIMS == 2
        opts = list(cfg.MODEL.PYTC.OPTS) if "PYTC" in cfg.MODEL else []
        try:
            pcfg.merge_from_list(opts)
        except (KeyError, AssertionError, ValueError) as exc:
            raise ConfigError(f"config: MODEL.PYTC.OPTS {opts}: PyTC refuses it ({exc})") from None
        pcfg.SYSTEM.PARALLEL, pcfg.SYSTEM.NUM_GPUS = "NONE", 0  # Lightning places the model; no DataParallel
        with contextlib.redirect_stdout(io.StringIO()):  # build_model prints the class and parallelism
            return self.build.build_model(pcfg, torch.device("cpu"))

    def create_own_loss(self, name: str, kwargs: dict[str, Any]) -> nn.Module:
        return self.losses.entries()[name](**kwargs)

    def takes_weight_mask(self, fn: nn.Module) -> bool:
        return "weight_mask" in inspect.signature(fn.forward).parameters

    def default_activation(self, name: str) -> str:
        return "none" if "Logits" in name or (name.endswith("CE") and not name.endswith("BCE")) else "sigmoid"

    def run(self, argv: list[str]) -> int:
        """PyTC v1's scripts/main.py, with ``load_cfg(..., add_cfg_func=add_cfg_func)``."""
        if "--config" in argv or any(a.startswith("--config=") for a in argv):
            raise ConfigError(f"emseg pytc: --config is PyTC v2's option; {SYNTAX}")
        from connectomics.engine import Trainer  # PyTC's trainer: imported only to run it
        from connectomics.utils.system import get_args, init_devices

        sys.argv = ["emseg pytc", *argv]
        args = get_args()
        if not args.config_file:
            raise ConfigError(f"emseg pytc: PyTC needs --config-file YAML (after `--`); {SYNTAX}")
        try:
            cfg = self.config.load_cfg(args, add_cfg_func=add_cfg_func)
        except PluginError:
            raise
        except (KeyError, FileNotFoundError, AssertionError, ValueError) as exc:  # yacs: unknown key / bad value / missing file
            raise ConfigError(f"PyTC config ({args.config_file}): {type(exc).__name__}: {exc}") from None
        device = init_devices(args, cfg)
        if args.local_rank in (0, None):
            print("PyTorch: ", torch.__version__)
            print(cfg)
            if not os.path.exists(cfg.DATASET.OUTPUT_PATH):
                print("Output directory: ", cfg.DATASET.OUTPUT_PATH)
                os.makedirs(cfg.DATASET.OUTPUT_PATH)
                self.config.save_all_cfg(cfg, cfg.DATASET.OUTPUT_PATH)
        mode = "test" if args.inference else "train"
        trainer = Trainer(cfg, device, mode, rank=args.local_rank, checkpoint=args.checkpoint)
        if cfg.DATASET.DO_CHUNK_TITLE == 0:
            test_func = trainer.test_singly if cfg.INFERENCE.DO_SINGLY else trainer.test
            test_func() if args.inference else trainer.train()
        else:
            trainer.run_chunk(mode)
        print(f"Rank: {args.local_rank}. Device: {device}. Process is finished!")
        return 0


# -- our config nodes in PyTC's yacs config ---------------------------------------------------------------------
def add_cfg_func(cfg: CN) -> None:
    """Add every emseg config node to PyTC v1's yacs ``cfg`` (pass as ``load_cfg(args, add_cfg_func=...)``).

    Only the paths a node adds are copied (sections PyTC lacks, e.g. ``LOSS``, are created). A node that
    collides with one of our core keys is a :class:`PluginError`; a node whose path PyTC's config already
    has (PyTC v1's ``MODEL.EMBEDDING`` is an int) is left out with a warning, and the models reading it keep
    its defaults. ``load_cfg`` then merges the yaml into this very object, from which the model and loss
    adapters read the node values.
    """
    ours = get_cfg_defaults()
    added: list[str] = []
    for node in config_nodes():
        if node.problem:
            raise PluginError(node.problem)
        paths = [p for p in node.adds if not p.startswith(("MODEL.PYTC", "LOSS.PYTC"))]  # the reverse bridge's own node
        taken = [p for p in paths if lookup(cfg, p) is not MISSING]
        if taken:
            warnings.warn(f"config node {node.record.name!r} from distribution {node.record.source!r} is not added to PyTC's "
                          f"config: PyTC already has {', '.join(taken)}; under PyTC its keys keep their emseg defaults",
                          PluginWarning, stacklevel=2)
            continue
        for path in paths:
            value = lookup(ours, path)
            assign(cfg, path, value.clone() if isinstance(value, CN) else value)
            added.append(path)
    ACTIVE["cfg"], ACTIVE["added"] = cfg, added


# -- our models and losses in PyTC's registries -------------------------------------------------------------------
class ModelAdapter:
    """PyTC v1 ``MODEL_MAP`` entry: ``build_model`` calls it with PyTC's keyword set and gets a ``PyTCModel``."""

    emseg_adapter = True

    def __init__(self, name: str):
        self.name = name
        self.__doc__ = f"emseg model {name!r} through the emseg PyTC bridge"

    def __call__(self, in_channel: int = 1, out_channel: int = 1, filters: list[int] | None = None,
                 act_mode: str | None = None, norm_mode: str | None = None, **_ignored: Any) -> PyTCModel:
        cfg = emseg_cfg(core_keys(self.name, in_channel, out_channel, filters, act_mode, norm_mode, ACTIVE["cfg"]))
        return PyTCModel(MODELS.build(self.name, cfg), cfg.DATASET.DIMS)


def core_keys(name: str, in_channel: int, out_channel: int, filters: list[int] | None, act_mode: str | None,
              norm_mode: str | None, pytc_cfg: CN | None) -> dict[str, Any]:
    """PyTC v1's model keywords (and its config's DO_2D / INPUT_SIZE) -> our core keys.

    Classes are named ``class0``... (only their number matters to a model); an ``act_mode`` or ``norm_mode``
    our models do not have (PyTC's default ``elu``) keeps our default, with a warning.
    """
    core: dict[str, Any] = {"MODEL.ARCHITECTURE": name, "MODEL.IN_PLANES": int(in_channel), "DATASET.INPUT_SLICES": 1,
                            "DATASET.CLASSES": [f"class{i}" for i in range(int(out_channel))]}
    if filters:
        core["MODEL.FILTERS"] = [int(f) for f in filters]
    if act_mode in ACT_MODES:
        core["MODEL.ACT_MODE"] = act_mode
    elif act_mode is not None:
        warnings.warn(f"PyTC MODEL.ACT_MODE {act_mode!r} has no emseg counterpart ({', '.join(ACT_MODES)}); "
                      f"{name} keeps its default", PluginWarning, stacklevel=3)
    if norm_mode in NORM_MODES:
        core["MODEL.NORM_MODE"] = NORM_MODES[norm_mode]
    do_2d = bool(pytc_cfg.DATASET.DO_2D) if pytc_cfg is not None and "DO_2D" in pytc_cfg.DATASET else False
    core["DATASET.DIMS"] = 2 if do_2d else 3
    size = list(pytc_cfg.MODEL.INPUT_SIZE) if pytc_cfg is not None and "INPUT_SIZE" in pytc_cfg.MODEL else []
    if len(size) == 3:
        patch = [1, size[1], size[2]] if do_2d else size
        core["DATASET.PATCH_SIZE"] = core["INFERENCE.INPUT_SIZE"] = patch
    return core


def loss_class(name: str) -> type:
    """A class for PyTC v1's ``Criterion.loss_dict``: ``cls(**LOSS_KWARGS)`` then ``(pred, target, weight_mask)``.

    ``pred`` must be logits (PyTC ``MODEL.OUTPUT_ACT: [['none']]``, its default); ``weight_mask`` zeros are
    ignored voxels (our ``valid_mask``). Keyword arguments set keys of the loss's own node
    (``keep_fraction`` -> ``LOSS.OHEM.KEEP_FRACTION``).
    """

    class EmsegLoss(nn.Module):
        emseg_adapter = True

        def __init__(self, **kwargs: Any):
            super().__init__()
            self.fn = LOSSES.build(name, emseg_cfg({"LOSS.NAME": name, **loss_kwargs_to_keys(name, kwargs)}))

        def forward(self, pred: torch.Tensor, target: torch.Tensor, weight_mask: torch.Tensor | None = None) -> torch.Tensor:
            valid = None if weight_mask is None else (weight_mask > 0).to(pred.dtype)
            return self.fn(pred, target.to(pred.dtype), valid)

    EmsegLoss.__name__ = EmsegLoss.__qualname__ = f"Emseg_{name}"
    EmsegLoss.__doc__ = f"emseg loss {name!r} through the emseg PyTC bridge (pred: logits)"
    return EmsegLoss


def loss_kwargs_to_keys(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """PyTC v1 ``LOSS_KWARGS`` of an emseg loss -> keys of its config node; :class:`ConfigError` on unknown ones."""
    paths = node_paths(name)
    ours = emseg_cfg({})
    keys = {}
    for key, value in kwargs.items():
        matches = [f"{p}.{key.upper()}" for p in paths if lookup(ours, f"{p}.{key.upper()}") is not MISSING]
        if not matches:
            known = sorted(k.lower() for p in paths for k in lookup(ours, p)) if paths else []
            raise ConfigError(f"PyTC config: MODEL.LOSS_KWARGS_KEY {key!r} is not an option of emseg loss {name!r}; "
                              f"its options: {', '.join(known) or 'none'}")
        keys[matches[0]] = value
    return keys
