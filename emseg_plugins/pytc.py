"""Bridge to PyTorch Connectomics (PyTC), both ways, through PyTC's public registries only.

PyTC is never a dependency: it is found at run time by its registries.

- v1.x (yacs, ``zudi-lin/pytorch_connectomics`` tag v1.0.0): ``connectomics.model.build.MODEL_MAP``
  (name -> class called with PyTC's keyword set ``in_channel``, ``out_channel``, ``filters``, ...),
  ``connectomics.model.loss.Criterion.loss_dict`` (name -> class, instances called as
  ``loss(pred, target=..., weight_mask=...)``) and ``connectomics.config.load_cfg(args, add_cfg_func=...)``.
- v2.x (OmegaConf/Hydra, ``PytorchConnectomics/pytorch_connectomics``): ``register_architecture`` /
  ``list_architectures`` / ``get_architecture_builder`` in ``connectomics.models.architectures`` (or
  ``connectomics.models.arch`` in late-2025 releases); builders take the whole config. Its losses
  (``connectomics.models.losses.create_loss``) are read from a dict rebuilt on every call, so v2 has no
  loss registry to add to; v1 and v2 have no dataset registry either (docs/plugins.md says so).

Into PyTC, :func:`install` adds every emseg model (and, v1, every loss) under its emseg name, wrapped in
an adapter for PyTC's calling convention; :func:`add_cfg_func` adds every emseg config node to PyTC's yacs
config. Out of PyTC, :func:`provided_records` lists PyTC's architectures and losses as ``pytc.<name>`` in
our registries, so ``MODEL.ARCHITECTURE: pytc.unet_3d`` works in an emseg yaml.

The registry's ``connectomics`` package is Google's unrelated library with the same import name; it is
recognised and reported as such.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.errors import ConfigError, PluginError, PluginWarning
from emseg_plugins.registry import LOSSES, MODELS, PluginRecord

PREFIX = "pytc."  # PyTC's own plugins appear in our registries as pytc.<name>
REPOSITORY = "https://github.com/zudi-lin/pytorch_connectomics"
V1_ACT_MODES = ("relu", "leaky_relu", "gelu")  # PyTC v1 MODEL.ACT_MODE values emseg models also have
V1_NORM_MODES = {"bn": "bn", "sync_bn": "bn", "in": "in", "gn": "gn"}  # PyTC v1 MODEL.NORM_MODE -> ours


@dataclass
class PyTC:
    """The PyTC found at run time: its line (``v1``/``v2``), version, and its registries."""

    line: str
    version: str
    distribution: str
    location: str
    model_map: dict | None = None  # v1 connectomics.model.build.MODEL_MAP
    loss_dict: dict | None = None  # v1 connectomics.model.loss.Criterion.loss_dict
    config: ModuleType | None = None  # v1 connectomics.config (load_cfg, get_cfg_defaults)
    build: ModuleType | None = None  # v1 connectomics.model.build (build_model)
    arch: ModuleType | None = None  # v2 module with register_architecture / list_architectures / get_architecture_builder
    losses: ModuleType | None = None  # v2 module with create_loss / list_available_losses

    def describe(self) -> str:
        return f"PyTorch Connectomics {self.version} ({self.line}.x, {self.distribution}) at {self.location}"


# -- detection ---------------------------------------------------------------------------------------------
def detect() -> PyTC | None:
    """The installed PyTC, or None when no ``connectomics`` is importable.

    :class:`PluginError` when ``connectomics`` is importable but is not PyTC (e.g. Google's package),
    when PyTC fails to import, or when it has neither the v1 nor the v2 registry shape.
    """
    if _find("connectomics") is None:
        return None
    top = importlib.import_module("connectomics")
    location = str(getattr(top, "__file__", None) or list(getattr(top, "__path__", [])) or "?")
    distribution, version, about = _distribution()
    version = version or str(getattr(top, "__version__", "") or "unknown version")
    found = PyTC("?", version, distribution, location)
    try:
        if _v1_shape(found) or _v2_shape(found):
            return found
    except ImportError as exc:  # PyTC itself is there but one of its requirements is not
        if (getattr(exc, "name", None) or "").startswith("connectomics"):
            raise PluginError(f"PyTorch Connectomics {version} at {location} is incomplete ({exc}); reinstall it") from None
        raise PluginError(f"PyTorch Connectomics at {location} failed to import ({type(exc).__name__}: {exc}); "
                          "install its requirements (see docs/plugins.md)") from None
    if not any(_find(f"connectomics.{sub}") for sub in ("model", "models", "engine", "training")):
        google = "google" in about.lower() or any(_find(f"connectomics.{sub}") for sub in ("common", "volume", "segclr"))
        which = ("it is Google's connectomics package (google-research/connectomics), which only shares the import name"
                 if google else "it has none of PyTC's packages (connectomics.model, connectomics.models)")
        raise PluginError(f"the importable 'connectomics' ({distribution} {version}, {location}) is not PyTorch Connectomics: "
                          f"{which}; install PyTC from {REPOSITORY} to use the PyTC bridge")
    raise PluginError(f"PyTorch Connectomics {version} at {location} has neither registry shape the bridge knows "
                      "(v1.x: connectomics.model.build.MODEL_MAP and connectomics.model.loss.Criterion.loss_dict; "
                      "v2.x: register_architecture in connectomics.models.architectures or connectomics.models.arch); "
                      "use a PyTC v1.x or v2.x release")


def require() -> PyTC:
    """:func:`detect`, but :class:`PluginError` when nothing named ``connectomics`` is installed."""
    found = detect()
    if found is None:
        raise PluginError(f"PyTorch Connectomics is not installed (no 'connectomics' module); install it from {REPOSITORY} "
                          "(it is not on the package registry)")
    return found


def _find(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a missing parent package, or a module without __spec__
        return None


def _distribution() -> tuple[str, str, str]:
    """(distribution name, version, summary + home page) of whatever provides the ``connectomics`` module."""
    names = importlib.metadata.packages_distributions().get("connectomics") or []
    for name in names:
        try:
            meta = importlib.metadata.metadata(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        about = " ".join(str(meta.get(k) or "") for k in ("Summary", "Home-page", "Author", "Author-email"))
        about += " " + " ".join(meta.get_all("Project-URL") or [])
        return name, meta.get("Version") or "", about
    return "source checkout", "", ""


def _v1_shape(found: PyTC) -> bool:
    if not all(_find(f"connectomics.{m}") for m in ("model", "config", "model.build", "model.loss")):
        return False
    build = importlib.import_module("connectomics.model.build")
    loss = importlib.import_module("connectomics.model.loss")
    config = importlib.import_module("connectomics.config")
    model_map = getattr(build, "MODEL_MAP", None)
    loss_dict = getattr(getattr(loss, "Criterion", None), "loss_dict", None)
    load_cfg = getattr(config, "load_cfg", None)
    if not (isinstance(model_map, dict) and isinstance(loss_dict, dict) and callable(load_cfg)
            and "add_cfg_func" in inspect.signature(load_cfg).parameters):
        return False
    found.line, found.model_map, found.loss_dict, found.config, found.build = "v1", model_map, loss_dict, config, build
    return True


def _v2_shape(found: PyTC) -> bool:
    for name in ("connectomics.models.architectures", "connectomics.models.arch"):
        if _find(name) is None:
            continue
        arch = importlib.import_module(name)
        if all(callable(getattr(arch, f, None)) for f in ("register_architecture", "list_architectures", "get_architecture_builder")):
            found.line, found.arch = "v2", arch
            for losses in ("connectomics.models.losses", "connectomics.models.loss"):
                if _find(losses) is not None and callable(getattr(importlib.import_module(losses), "create_loss", None)):
                    found.losses = importlib.import_module(losses)
                    break
            return True
    return False


def _is_adapter(obj: Any) -> bool:
    return bool(getattr(obj, "emseg_adapter", False))


# -- into PyTC: config nodes ----------------------------------------------------------------------------------
_ACTIVE: dict[str, Any] = {"cfg": None, "added": []}  # the PyTC yacs config add_cfg_func last added our nodes to, and those paths


def add_cfg_func(cfg: CN) -> None:
    """Add every emseg config node to PyTC v1's yacs ``cfg`` (pass as ``load_cfg(args, add_cfg_func=...)``).

    Only the paths a node adds are copied (sections PyTC lacks, e.g. ``LOSS``, are created). A node that
    collides with one of our core keys is a :class:`PluginError`; a node whose path PyTC's config already
    has (PyTC v1's ``MODEL.EMBEDDING`` is an int) is left out with a warning, and the models reading it keep
    its defaults. ``load_cfg`` then merges the yaml into this very object, from which the model and loss
    adapters read the node values.
    """
    from emseg_plugins.config.defaults import get_cfg_defaults
    from emseg_plugins.plugin_kit import config_nodes

    ours = get_cfg_defaults()
    added: list[str] = []
    for node in config_nodes():
        if node.problem:
            raise PluginError(node.problem)
        paths = [p for p in node.adds if not p.startswith(("MODEL.PYTC", "LOSS.PYTC"))]  # the reverse bridge's own node
        taken = [p for p in paths if _lookup(cfg, p) is not _MISSING]
        if taken:
            warnings.warn(f"config node {node.record.name!r} from distribution {node.record.source!r} is not added to PyTC's "
                          f"config: PyTC already has {', '.join(taken)}; under PyTC its keys keep their emseg defaults",
                          PluginWarning, stacklevel=2)
            continue
        for path in paths:
            value = _lookup(ours, path)
            _assign(cfg, path, value.clone() if isinstance(value, CN) else value)
            added.append(path)
    _ACTIVE["cfg"], _ACTIVE["added"] = cfg, added


_MISSING = object()


def _lookup(cfg: Any, path: str) -> Any:
    node = cfg
    for part in path.split("."):
        if not isinstance(node, CN) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _assign(cfg: CN, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = cfg
    for part in parents:
        if part not in node:
            node[part] = CN()
        node = node[part]
    node[leaf] = value


def _node_paths(name: str) -> list[str]:
    """The paths the config node named ``name`` adds (e.g. ``ohem`` -> ``["LOSS.OHEM"]``)."""
    from emseg_plugins.plugin_kit import config_nodes

    return [p for node in config_nodes() if node.record.name == name for p in node.adds]


def emseg_cfg(core: dict[str, Any]) -> CN:
    """Our config for an adapter: defaults, every plugin node's values from the active PyTC config, then ``core``."""
    from emseg_plugins.config.defaults import get_cfg_defaults

    cfg = get_cfg_defaults()
    active = _ACTIVE["cfg"]
    for path in _ACTIVE["added"] if active is not None else []:
        value = _lookup(active, path)
        if value is not _MISSING:
            _assign(cfg, path, value.clone() if isinstance(value, CN) else value)
    for path, value in core.items():
        _assign(cfg, path, value)
    return cfg


# -- into PyTC: models ----------------------------------------------------------------------------------------
class PyTCModel(nn.Module):
    """An emseg model as PyTC trains it: returns the main logits only (no deep-supervision list).

    2D emseg models also take PyTC's (B, C, 1, Y, X) inputs: the singleton Z is removed and put back.
    """

    def __init__(self, model: nn.Module, dims: int):
        super().__init__()
        self.model, self.dims = model, dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeeze = self.dims == 2 and x.dim() == 5 and x.shape[2] == 1
        out = self.model(x[:, :, 0] if squeeze else x)
        logits = out["logits"] if isinstance(out, dict) else out  # docs/schemas.md: tensor or dict with logits
        return logits.unsqueeze(2) if squeeze else logits


class V1ModelAdapter:
    """PyTC v1 ``MODEL_MAP`` entry: ``build_model`` calls it with PyTC's keyword set and gets a ``PyTCModel``."""

    emseg_adapter = True

    def __init__(self, name: str):
        self.name = name
        self.__doc__ = f"emseg model {name!r} through the emseg PyTC bridge"

    def __call__(self, in_channel: int = 1, out_channel: int = 1, filters: list[int] | None = None,
                 act_mode: str | None = None, norm_mode: str | None = None, **_ignored: Any) -> PyTCModel:
        cfg = emseg_cfg(v1_core(self.name, in_channel, out_channel, filters, act_mode, norm_mode, _ACTIVE["cfg"]))
        return PyTCModel(MODELS.build(self.name, cfg), cfg.DATASET.DIMS)


def v1_core(name: str, in_channel: int, out_channel: int, filters: list[int] | None, act_mode: str | None,
            norm_mode: str | None, pytc_cfg: CN | None) -> dict[str, Any]:
    """PyTC v1's model keywords (and its config's DO_2D / INPUT_SIZE) -> our core keys.

    Classes are named ``class0``... (only their number matters to a model); an ``act_mode`` or ``norm_mode``
    our models do not have (PyTC's default ``elu``) keeps our default, with a warning.
    """
    core: dict[str, Any] = {"MODEL.ARCHITECTURE": name, "MODEL.IN_PLANES": int(in_channel), "DATASET.INPUT_SLICES": 1,
                            "DATASET.CLASSES": [f"class{i}" for i in range(int(out_channel))]}
    if filters:
        core["MODEL.FILTERS"] = [int(f) for f in filters]
    if act_mode in V1_ACT_MODES:
        core["MODEL.ACT_MODE"] = act_mode
    elif act_mode is not None:
        warnings.warn(f"PyTC MODEL.ACT_MODE {act_mode!r} has no emseg counterpart ({', '.join(V1_ACT_MODES)}); "
                      f"{name} keeps its default", PluginWarning, stacklevel=3)
    if norm_mode in V1_NORM_MODES:
        core["MODEL.NORM_MODE"] = V1_NORM_MODES[norm_mode]
    do_2d = bool(pytc_cfg.DATASET.DO_2D) if pytc_cfg is not None and "DO_2D" in pytc_cfg.DATASET else False
    core["DATASET.DIMS"] = 2 if do_2d else 3
    size = list(pytc_cfg.MODEL.INPUT_SIZE) if pytc_cfg is not None and "INPUT_SIZE" in pytc_cfg.MODEL else []
    if len(size) == 3:
        patch = [1, size[1], size[2]] if do_2d else size
        core["DATASET.PATCH_SIZE"] = core["INFERENCE.INPUT_SIZE"] = patch
    return core


def v2_model_builder(name: str) -> Callable[[Any], PyTCModel]:
    """A PyTC v2 architecture builder ``build(cfg)`` for the emseg model ``name``.

    Reads ``cfg.model.in_channels``, ``out_channels``, ``input_size`` (2 values = 2D, 3 = 3D) and
    ``cfg.model.arch.params`` (our dotted keys, e.g. ``{"MODEL.UNETV3.DEPTH": 3}``) when present.
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
        for key, value in dict(params).items():
            if _lookup(emseg_cfg({}), str(key)) is _MISSING:
                raise ConfigError(f"PyTC config: model.arch.params key {key!r} is not an emseg config key "
                                  f"(`emseg config --keys` lists them)")
            core[str(key)] = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig" else value
        cfg_ours = emseg_cfg(core)
        return PyTCModel(MODELS.build(name, cfg_ours), dims)

    build.__doc__ = f"emseg model {name!r} through the emseg PyTC bridge"
    build.emseg_adapter = True  # type: ignore[attr-defined]
    return build


# -- into PyTC: losses (v1 only) --------------------------------------------------------------------------------
def v1_loss_class(name: str) -> type:
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
    paths = _node_paths(name)
    ours = emseg_cfg({})
    keys = {}
    for key, value in kwargs.items():
        matches = [f"{p}.{key.upper()}" for p in paths if _lookup(ours, f"{p}.{key.upper()}") is not _MISSING]
        if not matches:
            known = sorted(k.lower() for p in paths for k, v in _lookup(ours, p).items()) if paths else []
            raise ConfigError(f"PyTC config: MODEL.LOSS_KWARGS_KEY {key!r} is not an option of emseg loss {name!r}; "
                              f"its options: {', '.join(known) or 'none'}")
        keys[matches[0]] = value
    return keys


# -- into PyTC: install -----------------------------------------------------------------------------------------
def install(found: PyTC | None = None) -> dict[str, list[str]]:
    """Register every emseg model (and, v1, loss) in PyTC's registries; returns what was added and skipped.

    A name PyTC already uses for its own model or loss is left to PyTC (listed under ``skipped``); running
    install twice replaces only our own adapters.
    """
    found = found or require()
    report: dict[str, list[str]] = {"models": [], "losses": [], "skipped": []}
    for record in MODELS.records():
        if record.status != "ok" or record.name.startswith(PREFIX):
            continue
        if found.line == "v1":
            if record.name in found.model_map and not _is_adapter(found.model_map[record.name]):  # type: ignore[operator]
                report["skipped"].append(f"model {record.name}: PyTC has its own")
                continue
            found.model_map[record.name] = V1ModelAdapter(record.name)  # type: ignore[index]
        else:
            if record.name in found.arch.list_architectures():  # type: ignore[union-attr]
                if not _is_adapter(found.arch.get_architecture_builder(record.name)):  # type: ignore[union-attr]
                    report["skipped"].append(f"model {record.name}: PyTC has its own")
                continue
            found.arch.register_architecture(record.name)(v2_model_builder(record.name))  # type: ignore[union-attr]
        report["models"].append(record.name)
    for record in LOSSES.records():
        if record.status != "ok" or record.name.startswith(PREFIX):
            continue
        if found.line != "v1":
            report["skipped"].append(f"loss {record.name}: PyTC v2 has no loss registry (create_loss reads a fixed dict)")
            continue
        if record.name in found.loss_dict and not _is_adapter(found.loss_dict[record.name]):  # type: ignore[operator]
            report["skipped"].append(f"loss {record.name}: PyTC has its own")
            continue
        found.loss_dict[record.name] = v1_loss_class(record.name)  # type: ignore[index]
        report["losses"].append(record.name)
    return report


# -- out of PyTC: pytc.<name> records in our registries ---------------------------------------------------------
def provided_records(kind: str) -> list[PluginRecord]:
    """PyTC's own architectures (``model``), losses (``loss``) or our ``pytc`` config node (``config``).

    Empty when PyTC is absent or unusable (``emseg plugins`` reports why); never lists our own adapters.
    """
    try:
        found = detect()
    except PluginError:
        return []
    if found is None:
        return []
    if kind == "config":
        return [PluginRecord("pytc", "emseg-plugins", f"{__name__}:add_pytc_config", builder=add_pytc_config)]
    names: dict[str, Any] = {}
    if kind == "model":
        if found.line == "v1":
            names = {n: c for n, c in found.model_map.items() if not _is_adapter(c)}  # type: ignore[union-attr]
        else:
            names = {n: found.arch.get_architecture_builder(n) for n in found.arch.list_architectures()}  # type: ignore[union-attr]
            names = {n: b for n, b in names.items() if not _is_adapter(b)}
        make: Callable[..., Any] = pytc_model_builder
    elif kind == "loss":
        if found.line == "v1":
            names = {n: c for n, c in found.loss_dict.items() if not _is_adapter(c)}  # type: ignore[union-attr]
        elif found.losses is not None and callable(getattr(found.losses, "list_available_losses", None)):
            names = {n: None for n in found.losses.list_available_losses()}
        make = pytc_loss_builder
    else:
        return []
    records = []
    for name, obj in sorted(names.items()):
        target = f"{obj.__module__}:{getattr(obj, '__qualname__', name)}" if obj is not None else f"{found.losses.__name__}:create_loss"
        records.append(PluginRecord(PREFIX + name, found.distribution, target, builder=make(found, name, obj), version=found.version))
    return records


def add_pytc_config(cfg: CN) -> None:
    """MODEL.PYTC and LOSS.PYTC: options for PyTC's own models and losses selected as pytc.<name>."""
    cfg.MODEL.PYTC = CN()
    # PyTC config overrides for a pytc.* model, as PyTC's command line takes them: KEY VALUE pairs, e.g.
    # ["MODEL.BLOCK_TYPE", "residual_se", "MODEL.FILTERS", "[8, 16, 24, 32, 40]"] (v1) or ["model.monai.norm", "instance"] (v2)
    cfg.MODEL.PYTC.OPTS = []
    cfg.LOSS.PYTC = CN()
    # activation on the logits before a pytc.* loss: auto | sigmoid | none (auto: none for *Logits*/CE losses and all of v2, else sigmoid)
    cfg.LOSS.PYTC.ACTIVATION = "auto"
    cfg.LOSS.PYTC.KWARGS = []  # keyword arguments of the pytc.* loss as KEY VALUE pairs, e.g. ["smooth", "1.0"]


def _pairs(values: list[str], key: str) -> list[tuple[str, Any]]:
    if len(values) % 2:
        raise ConfigError(f"config: {key} = {list(values)} must be KEY VALUE pairs")
    return [(str(k), CN._decode_cfg_value(v) if isinstance(v, str) else v) for k, v in zip(values[::2], values[1::2])]


def pytc_model_builder(found: PyTC, name: str, obj: Any) -> Callable[[CN], nn.Module]:
    """Our builder for PyTC's architecture ``name``: in/out channels and patch size from our config."""

    def build(cfg: CN) -> nn.Module:
        in_channels = cfg.MODEL.IN_PLANES * cfg.DATASET.INPUT_SLICES
        out_channels = len(cfg.DATASET.CLASSES)
        opts = list(cfg.MODEL.PYTC.OPTS) if "PYTC" in cfg.MODEL else []
        if found.line == "v1":
            pcfg = found.config.get_cfg_defaults()  # type: ignore[union-attr]
            pcfg.MODEL.ARCHITECTURE, pcfg.MODEL.IN_PLANES, pcfg.MODEL.OUT_PLANES = name, in_channels, out_channels
            pcfg.MODEL.INPUT_SIZE = list(cfg.DATASET.PATCH_SIZE)
            pcfg.DATASET.DO_2D = cfg.DATASET.DIMS == 2
            try:
                pcfg.merge_from_list(opts)
            except (KeyError, AssertionError, ValueError) as exc:
                raise ConfigError(f"config: MODEL.PYTC.OPTS {opts}: PyTC refuses it ({exc})") from None
            pcfg.SYSTEM.PARALLEL, pcfg.SYSTEM.NUM_GPUS = "NONE", 0  # Lightning places the model; no DataParallel
            with contextlib.redirect_stdout(io.StringIO()):  # build_model prints the class and parallelism
                return found.build.build_model(pcfg, torch.device("cpu"))  # type: ignore[union-attr]
        from omegaconf import OmegaConf  # a PyTC v2 requirement

        pcfg = OmegaConf.structured(_v2_config_class())
        if "arch" in pcfg.model:
            pcfg.model.arch.type = name
        else:
            pcfg.model.architecture = name
        pcfg.model.in_channels, pcfg.model.out_channels = in_channels, out_channels
        size = list(cfg.DATASET.PATCH_SIZE)
        pcfg.model.input_size = size[1:] if cfg.DATASET.DIMS == 2 else size
        for key, value in _pairs(opts, "MODEL.PYTC.OPTS"):
            OmegaConf.update(pcfg, key, value, merge=True)
        return found.arch.get_architecture_builder(name)(pcfg)  # type: ignore[union-attr]

    doc = (inspect.getdoc(obj) or "").strip().splitlines() if obj is not None else []
    build.__doc__ = f"PyTC {found.line} architecture {name!r}" + (f": {doc[0]}" if doc else "")
    return build


def _v2_config_class() -> type:
    for module, attr in (("connectomics.config", "Config"), ("connectomics.config.hydra_config", "Config")):
        if _find(module) is not None and hasattr(importlib.import_module(module), attr):
            return getattr(importlib.import_module(module), attr)
    raise PluginError("PyTorch Connectomics v2: no Config class in connectomics.config; update the bridge for this release")


class PyTCLoss(nn.Module):
    """A PyTC loss behind our loss schema: NaN labels and ``valid_mask`` zeros are ignored.

    Ignored voxels get prediction and target 0 and (v1) weight 0, so weighted losses skip them and Dice-type
    sums do not see them; a batch with nothing annotated gives 0.
    """

    def __init__(self, fn: nn.Module, activation: str, weighted: bool):
        super().__init__()
        self.fn, self.activation, self.weighted = fn, activation, weighted

    def forward(self, logits: torch.Tensor, label: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        from emseg_plugins.losses.masking import annotated

        target, mask = annotated(label, valid_mask)
        if not mask.any():
            return logits.sum() * 0.0
        pred = torch.sigmoid(logits) if self.activation == "sigmoid" else logits
        pred = pred * mask
        if self.weighted:
            return self.fn(pred, target=target, weight_mask=mask)
        return self.fn(pred, target)


def pytc_loss_builder(found: PyTC, name: str, obj: Any) -> Callable[[CN], nn.Module]:
    """Our builder for PyTC's loss ``name`` (kwargs and activation from ``LOSS.PYTC``)."""

    def build(cfg: CN) -> nn.Module:
        node = cfg.LOSS.PYTC if "PYTC" in cfg.LOSS else None
        kwargs = dict(_pairs(list(node.KWARGS), "LOSS.PYTC.KWARGS")) if node is not None else {}
        activation = node.ACTIVATION if node is not None else "auto"
        if activation not in ("auto", "sigmoid", "none"):
            raise ConfigError(f"config: LOSS.PYTC.ACTIVATION = {activation!r} is not one of 'auto', 'sigmoid', 'none'")
        if activation == "auto":
            activation = "none" if found.line == "v2" or "Logits" in name or (name.endswith("CE") and not name.endswith("BCE")) else "sigmoid"
        try:
            fn = found.loss_dict[name](**kwargs) if found.line == "v1" else found.losses.create_loss(name, **kwargs)  # type: ignore[index,union-attr]
        except TypeError as exc:
            raise ConfigError(f"config: LOSS.PYTC.KWARGS {list(node.KWARGS) if node else []} do not suit PyTC loss {name!r} ({exc})") from None
        weighted = found.line == "v1" and "weight_mask" in inspect.signature(fn.forward).parameters
        return PyTCLoss(fn, activation, weighted)

    doc = (inspect.getdoc(obj) or "").strip().splitlines() if obj is not None else []
    build.__doc__ = f"PyTC {found.line} loss {name!r}" + (f": {doc[0]}" if doc else "")
    return build


def status_line() -> str:
    """One line on the bridge for ``emseg plugins``: PyTC found (and how much), absent, or not PyTC."""
    try:
        found = detect()
    except PluginError as exc:
        return f"pytc: unavailable: {exc}"
    if found is None:
        return f"pytc: PyTorch Connectomics not installed (optional; {REPOSITORY})"
    models = len(provided_records("model"))
    losses = len(provided_records("loss"))
    return (f"pytc: {found.describe()}: {models} architectures and {losses} losses selectable as pytc.<name>; "
            "`emseg pytc -- ...` runs its trainer with these plugins")
