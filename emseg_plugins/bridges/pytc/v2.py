"""PyTC v2.x (Hydra/OmegaConf; ``PytorchConnectomics/pytorch_connectomics`` 2.x) through its public registries.

``register_architecture`` / ``list_architectures`` / ``get_architecture_builder`` in
``connectomics.models.architectures`` (or ``connectomics.models.arch`` in late-2025 releases); builders take
the whole config. Its losses (``connectomics.models.losses.create_loss``) come from a dict rebuilt on every
call, so v2 has no loss registry to add to (its losses are still listed and built as ``pytc.<name>``).
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.bridges.pytc.adapters import MISSING, PyTCModel, emseg_cfg, lookup, pairs
from emseg_plugins.bridges.pytc.line import Installation, PyTCLine, Table, find_module
from emseg_plugins.errors import ConfigError, PluginError
from emseg_plugins.registry import MODELS

ARCH_MODULES = ("connectomics.models.architectures", "connectomics.models.arch")
LOSS_MODULES = ("connectomics.models.losses", "connectomics.models.loss")
CONFIG_CLASSES = (("connectomics.config", "Config"), ("connectomics.config.hydra_config", "Config"))
V1_KEY = re.compile(r"[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+")  # SYSTEM.NUM_GPUS: a v1 override key
SYNTAX = "PyTC v2 takes --config X.yaml [--mode train|test|tune|tune-test] key=value ... (e.g. system.num_gpus=0)"


class V2(PyTCLine):
    """PyTC v2: OmegaConf config, an architecture registry, ``create_loss``."""

    line = "v2"

    def __init__(self, where: Installation, arch: ModuleType, losses: ModuleType | None):
        listed = getattr(losses, "list_available_losses", None)
        super().__init__(
            where,
            Table(lambda: {n: arch.get_architecture_builder(n) for n in arch.list_architectures()},
                  lambda name, builder: arch.register_architecture(name)(builder)),
            Table(lambda: dict.fromkeys(listed() if callable(listed) else []),
                  read_only="PyTC v2 has no loss registry (create_loss reads a fixed dict)",
                  builds=f"{getattr(losses, '__name__', '?')}:create_loss"))
        self.arch, self.loss_module = arch, losses

    @classmethod
    def probe(cls, where: Installation) -> V2 | None:
        for name in ARCH_MODULES:
            if find_module(name) is None:
                continue
            arch = importlib.import_module(name)
            if all(callable(getattr(arch, f, None)) for f in ("register_architecture", "list_architectures", "get_architecture_builder")):
                losses = next((importlib.import_module(m) for m in LOSS_MODULES if find_module(m) is not None
                               and callable(getattr(importlib.import_module(m), "create_loss", None))), None)
                return cls(where, arch, losses)
        return None

    def model_adapter(self, name: str) -> Any:
        return model_builder(name)

    def build_own_model(self, name: str, cfg: CN) -> nn.Module:
        from omegaconf import OmegaConf  # a PyTC v2 requirement, so imported only with it

        pcfg = OmegaConf.structured(config_class())
        if "arch" in pcfg.model:
            pcfg.model.arch.type = name
        else:
            pcfg.model.architecture = name
        pcfg.model.in_channels = cfg.MODEL.IN_PLANES * cfg.DATASET.INPUT_SLICES
        pcfg.model.out_channels = len(cfg.DATASET.CLASSES)
        size = list(cfg.DATASET.PATCH_SIZE)
        pcfg.model.input_size = size[1:] if cfg.DATASET.DIMS == 2 else size
        for key, value in pairs(list(cfg.MODEL.PYTC.OPTS) if "PYTC" in cfg.MODEL else [], "MODEL.PYTC.OPTS"):
            OmegaConf.update(pcfg, key, value, merge=True)
        return self.arch.get_architecture_builder(name)(pcfg)

    def create_own_loss(self, name: str, kwargs: dict[str, Any]) -> nn.Module:
        return self.loss_module.create_loss(name, **kwargs)

    def run(self, argv: list[str]) -> int:
        """PyTC v2's scripts/main.py: torch safe-globals, PyTC's repository root for ``--demo``, then its runtime."""
        if any(a == "--config-file" or a.startswith(("--config-file=", "--config-base")) for a in argv):
            raise ConfigError(f"emseg pytc: --config-file is PyTC v1's option; {SYNTAX}")
        if pair := next((a for a in argv if V1_KEY.fullmatch(a)), None):
            raise ConfigError(f"emseg pytc: {pair!r} looks like a PyTC v1 KEY VALUE override; {SYNTAX}")
        if find_module("connectomics.runtime.cli") is None or find_module("connectomics.runtime.dispatch") is None:
            raise PluginError("this PyTorch Connectomics v2 release has no connectomics.runtime entry point; run its "
                              "scripts/main.py from Python after `from emseg_plugins.bridges.pytc.detect import require; "
                              "require().install()`")
        # PyTC's runtime and OmegaConf: imported only to run it (as its scripts/main.py does)
        from connectomics.runtime.cli import parse_args, setup_config
        from connectomics.runtime.dispatch import dispatch_runtime, prepare_cli_args
        from omegaconf.errors import OmegaConfBaseException

        register_safe_globals()
        suppress = getattr(importlib.import_module("connectomics.runtime.dispatch"), "suppress_nonzero_rank_stdout", None)
        if callable(suppress):
            suppress()
        sys.argv = ["emseg pytc", *argv]
        args = parse_args()
        prepare_cli_args(args, repository_root())
        try:
            cfg = setup_config(args)
        except (OmegaConfBaseException, KeyError, FileNotFoundError, ValueError) as exc:  # PyTC's config checks
            message = " ".join(str(exc).split())
            raise ConfigError(f"PyTC config ({args.config}): {type(exc).__name__}: {message}") from None
        dispatch_runtime(args, cfg)
        return 0


def repository_root() -> Path:
    """The PyTC checkout (the directory holding ``connectomics/``), which its scripts/main.py passes as REPO_ROOT."""
    return Path(importlib.import_module("connectomics").__file__).resolve().parents[1]


def register_safe_globals() -> None:
    """PyTC's config dataclasses as torch safe globals, so its checkpoints load with ``weights_only`` (as main.py)."""
    if find_module("connectomics.runtime.torch_safe_globals") is not None:
        importlib.import_module("connectomics.runtime.torch_safe_globals").register_torch_safe_globals()


def config_class() -> type:
    """PyTC v2's structured ``Config`` class."""
    for module, attr in CONFIG_CLASSES:
        if find_module(module) is not None and hasattr(importlib.import_module(module), attr):
            return getattr(importlib.import_module(module), attr)
    raise PluginError("PyTorch Connectomics v2: no Config class in connectomics.config; update the bridge for this release")


def model_builder(name: str) -> Any:
    """A PyTC v2 architecture builder ``build(cfg)`` for the emseg model ``name``.

    Reads ``cfg.model.in_channels``, ``out_channels``, ``input_size`` (2 values = 2D, 3 = 3D) and
    ``cfg.model.arch.params`` (our dotted keys, e.g. ``{"MODEL.UNETV3.DEPTH": 3}``) when present.
    A model that does not run with that many dimensions is a :class:`ConfigError` saying so.
    """

    def build(cfg: Any) -> PyTCModel:
        model_cfg = cfg.model
        size = [int(s) for s in (getattr(model_cfg, "input_size", None) or [])]
        dims = 2 if len(size) == 2 else 3
        core: dict[str, Any] = {"MODEL.ARCHITECTURE": name, "MODEL.IN_PLANES": int(model_cfg.in_channels),
                                "DATASET.INPUT_SLICES": 1, "DATASET.DIMS": dims,
                                "DATASET.CLASSES": [f"class{i}" for i in range(int(model_cfg.out_channels))]}
        if size:
            core["DATASET.PATCH_SIZE"] = core["INFERENCE.INPUT_SIZE"] = [1, *size] if dims == 2 else size
        params = getattr(getattr(model_cfg, "arch", None), "params", None) or {}
        known = emseg_cfg({})
        for key, value in dict(params).items():
            if lookup(known, str(key)) is MISSING:
                raise ConfigError(f"PyTC config: model.arch.params key {key!r} is not an emseg config key "
                                  f"(`emseg config --keys` lists them)")
            core[str(key)] = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig" else value
        try:
            model = MODELS.build(name, emseg_cfg(core))
        except ConfigError as exc:
            if "DATASET.DIMS" not in str(exc):
                raise
            raise ConfigError(f"PyTC config: model.input_size {size} makes a {dims}D model, which emseg model {name!r} is not "
                              f"(PyTC v2: 2 values [Y, X] with data.train.do_2d: true = 2D, 3 values = 3D)") from None
        return PyTCModel(model, dims)

    build.__doc__ = f"emseg model {name!r} through the emseg PyTC bridge"
    build.emseg_adapter = True  # type: ignore[attr-defined]
    return build
