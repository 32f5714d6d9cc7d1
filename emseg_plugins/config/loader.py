"""Load a run's config: defaults <- ``--config-base`` <- ``--config-file`` (with ``_BASE_``) <- overrides.

Every key and value is checked before it is merged, so a mistake is reported as one line naming
the file, the key and the closest valid key. Only YAML is read; no Python config is executed.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Sequence

import yaml
from yacs.config import CfgNode as CN
from yacs.config import _check_and_coerce_cfg_value_type

from emseg_plugins.config.defaults import get_cfg_defaults
from emseg_plugins.config.keys import all_keys, leaf_name, lookup, parent_node, require, require_choice
from emseg_plugins.errors import ConfigError

# `lookup`, `require` and `require_choice` live in config/keys.py; engine/checkpoint.py and
# datasets/patches.py still import them from here.
__all__ = ["load_config", "read_yaml", "merge_dict", "merge_overrides", "check_values", "lookup", "require", "require_choice"]

BASE_KEY = "_BASE_"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a class, target or plugin name (not a path)

# Keys whose values come from a fixed set: key -> allowed values.
CHOICES: dict[str, tuple[Any, ...]] = {
    "DATASET.DIMS": (2, 3),
    "SOLVER.NONFINITE": ("stop", "skip"),
    "SOLVER.NAME": ("AdamW", "Adam", "SGD"),
    "SOLVER.LR_SCHEDULER_NAME": ("cosine", "plateau", "constant"),
    "SOLVER.PRECISION": ("32", "16-mixed", "bf16-mixed"),
    "INFERENCE.BLENDING": ("gaussian", "constant"),
    "INFERENCE.OUTPUT_FORMAT": ("h5", "zarr"),
    "INFERENCE.SPLIT": ("train", "val", "test"),
}


def load_config(
    config_file: str | Path | None = None,
    config_base: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> CN:
    """The frozen, validated config for a run. Raises :class:`ConfigError` on any mistake."""
    defaults = get_cfg_defaults()
    cfg = defaults.clone()
    for path in (config_base, config_file):
        if path is not None:
            for source, data in _yaml_chain(Path(path), stack=()):
                merge_dict(cfg, data, source)
    merge_overrides(cfg, overrides)
    check_ranges(cfg, defaults)
    check_values(cfg)
    cfg.freeze()
    return cfg


def _yaml_chain(path: Path, stack: tuple[Path, ...]) -> list[tuple[str, dict]]:
    """``[(file, mapping), ...]`` with every ``_BASE_`` ancestor before the file that names it."""
    resolved = path.resolve()
    if resolved in stack:
        cycle = " -> ".join(str(p) for p in (*stack, resolved))
        raise ConfigError(f"{path}: _BASE_ cycle ({cycle}); remove one of the _BASE_ links")
    data = read_yaml(path)
    bases = data.pop(BASE_KEY, None)
    if bases is None:
        bases = []
    elif isinstance(bases, str):
        bases = [bases]
    elif not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _BASE_ must be a path or a list of paths, got {bases!r}")
    chain: list[tuple[str, dict]] = []
    for base in bases:
        chain += _yaml_chain(path.parent / base, (*stack, resolved))
    chain.append((str(path), data))
    return chain


def read_yaml(path: Path) -> dict:
    """The mapping in a YAML file; :class:`ConfigError` when it is missing or not a mapping."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; check the path (configs/ holds the examples)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); a config is a YAML text file, save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of KEY: value, got {type(data).__name__}")
    return data


def merge_dict(cfg: CN, data: dict, source: str) -> None:
    """Merge a nested mapping into ``cfg``, checking each key and value type."""
    _merge_node(cfg, cfg, data, source, prefix="")


def _merge_node(root: CN, node: CN, data: dict, source: str, prefix: str) -> None:
    for key, value in data.items():
        full_key = f"{prefix}{key}"
        if not isinstance(key, str) or key not in node:
            raise ConfigError(f"{source}: unknown key {full_key}{_suggest(root, full_key)}")
        if isinstance(node[key], CN):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {full_key} is a section; give it KEY: value pairs, not {value!r}")
            _merge_node(root, node[key], value, source, f"{full_key}.")
        else:
            node[key] = _coerce(value, node[key], full_key, source)


def merge_overrides(cfg: CN, overrides: Sequence[str]) -> None:
    """Apply ``KEY VALUE`` pairs from the command line (``SOLVER.BASE_LR 1e-4``)."""
    if len(overrides) % 2:
        raise ConfigError(f"command line: overrides come in KEY VALUE pairs; {overrides[-1]!r} has no value")
    for full_key, raw in zip(overrides[::2], overrides[1::2]):
        node, leaf = parent_node(cfg, full_key)
        if node is None or leaf not in node:
            raise ConfigError(f"command line: unknown key {full_key}{_suggest(cfg, full_key)}")
        if isinstance(node[leaf], CN):
            raise ConfigError(f"command line: {full_key} is a section; override one of its keys")
        node[leaf] = _coerce(CN._decode_cfg_value(raw), node[leaf], full_key, "command line")


def check_ranges(cfg: CN, defaults: CN) -> None:
    """Rules every key obeys, whoever declared it: an integer stays >= min(0, its default) (a negative
    default is a sentinel such as -1 = automatic), and a list of names (identifiers such as class or
    target names; not paths, which may repeat) holds each name once."""
    for key in all_keys(cfg):
        value, default = lookup(cfg, key), lookup(defaults, key)
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(default, int) and value < min(0, default):
            floor = min(0, default)
            raise ConfigError(f"config: {key} = {value} must be >= {floor}" + (f" ({floor} = automatic)" if floor < 0 else ""))
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and NAME.fullmatch(v) for v in value) \
                and len(set(value)) < len(value):
            twice = sorted({v for v in value if list(value).count(v) > 1})
            raise ConfigError(f"config: {key} = {list(value)} names {', '.join(map(repr, twice))} more than once; list each once")


def check_values(cfg: CN) -> None:
    """Cross-key and enumerated-value checks that a type check cannot express."""
    for full_key, allowed in CHOICES.items():
        require_choice(full_key, lookup(cfg, full_key), allowed)
    slices = cfg.DATASET.INPUT_SLICES
    if slices < 1 or slices % 2 == 0:
        raise ConfigError(f"config: DATASET.INPUT_SLICES = {slices} must be a positive odd number (centre slice predicted)")
    if cfg.DATASET.DIMS == 3 and slices != 1:
        raise ConfigError(f"config: DATASET.INPUT_SLICES = {slices} (2.5D slices) needs a 2D model; "
                          "with DATASET.DIMS 3 set DATASET.INPUT_SLICES 1, or use DATASET.DIMS 2")
    if cfg.DATASET.DIMS == 2 and cfg.DATASET.PATCH_SIZE[0] != 1:
        raise ConfigError(f"config: DATASET.PATCH_SIZE = {list(cfg.DATASET.PATCH_SIZE)} must start with 1 when DATASET.DIMS is 2")
    for key in ("DATASET.PATCH_SIZE", "INFERENCE.INPUT_SIZE"):
        size = lookup(cfg, key)
        if len(size) != 3 or min(size) < 1:
            raise ConfigError(f"config: {key} = {list(size)} must be three positive sizes (Z, Y, X)")
    if not cfg.DATASET.CLASSES:
        raise ConfigError("config: DATASET.CLASSES is empty; name at least one class (e.g. [nuc, mito])")
    if cfg.INFERENCE.INSTANCE_CLASS and cfg.INFERENCE.INSTANCE_CLASS not in cfg.DATASET.CLASSES:
        raise ConfigError(f"config: INFERENCE.INSTANCE_CLASS {cfg.INFERENCE.INSTANCE_CLASS!r} is not one of DATASET.CLASSES "
                          f"{list(cfg.DATASET.CLASSES)}; name one of them or leave it empty")
    if not cfg.SOLVER.BASE_LR > 0 or cfg.SOLVER.WEIGHT_DECAY < 0:
        raise ConfigError(f"config: SOLVER.BASE_LR = {cfg.SOLVER.BASE_LR} must be > 0 and SOLVER.WEIGHT_DECAY = {cfg.SOLVER.WEIGHT_DECAY} >= 0")
    if not 0 <= cfg.INFERENCE.OVERLAP < 1:
        raise ConfigError(f"config: INFERENCE.OVERLAP = {cfg.INFERENCE.OVERLAP} must be in [0, 1)")
    for key in ("SOLVER.ITERATION_TOTAL", "SOLVER.ITERATION_VAL", "SOLVER.SAMPLES_PER_BATCH", "SOLVER.ITERATION_STEP"):
        if lookup(cfg, key) < 1:
            raise ConfigError(f"config: {key} = {lookup(cfg, key)} must be at least 1")


def _coerce(value: Any, original: Any, full_key: str, source: str) -> Any:
    if isinstance(original, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # "BASE_LR: 1" means 1.0
    if isinstance(value, str) and not isinstance(original, str):
        value = CN._decode_cfg_value(value)  # YAML reads 1e-3 as a string; yacs decodes it
    try:
        return _check_and_coerce_cfg_value_type(value, original, leaf_name(full_key), full_key)
    except ValueError:
        raise ConfigError(
            f"{source}: {full_key} expects a {type(original).__name__} (default {original!r}), got {value!r}"
        ) from None


def _suggest(cfg: CN, full_key: str) -> str:
    keys = list(all_keys(cfg))
    close = difflib.get_close_matches(full_key, keys, n=1, cutoff=0.5)
    if not close:  # fall back to matching the last part only
        by_leaf = {leaf_name(k): k for k in keys}
        close = [by_leaf[m] for m in difflib.get_close_matches(leaf_name(full_key), list(by_leaf), n=1, cutoff=0.6)]
    return f"; did you mean {close[0]}?" if close else "; `emseg config --keys` lists the valid keys"
