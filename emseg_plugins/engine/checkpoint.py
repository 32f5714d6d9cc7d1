"""Checkpoints: atomic writes, safe loading (``weights_only``) and config compatibility checks."""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from yacs.config import CfgNode as CN

from emseg_plugins.config.loader import lookup
from emseg_plugins.errors import CheckpointError
from emseg_plugins.evaluation.instance_validation import mode_of
from emseg_plugins.utils.atomic import atomic_path

# Keys that decide the model's weights and outputs: a checkpoint must agree on all of them.
MODEL_KEYS = ("MODEL", "DATASET.CLASSES", "DATASET.DIMS", "DATASET.INPUT_SLICES", "TARGET.NAMES", "TARGET.AFFINITY_OFFSETS")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that never leaves a half-written file and loads without pickled code."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return relocate(load_checkpoint(path), Path(path).parent)


def relocate(ckpt: dict[str, Any], directory: Path) -> dict[str, Any]:
    """Point the checkpoint callbacks' saved paths at ``directory`` (where the checkpoint now lies), so a
    run directory that was moved or copied keeps its top-k bookkeeping (Lightning drops it otherwise)."""
    for state in ckpt.get("callbacks", {}).values():
        if not isinstance(state, dict) or not state.get("dirpath") or Path(state["dirpath"]) == directory:
            continue
        state["dirpath"] = str(directory)
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if state.get(key):
                state[key] = str(directory / Path(state[key]).name)
        state["best_k_models"] = {str(directory / Path(k).name): v for k, v in state.get("best_k_models", {}).items()}
    return ckpt


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, loaded with ``weights_only=True``; :class:`CheckpointError` if unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; check --checkpoint (runs keep them in <run>/checkpoints/)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise CheckpointError(f"{path}: refused: the checkpoint carries pickled code or objects, which are never executed; re-save it as a plain state_dict") from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (unreadable pickle); point --checkpoint at a .ckpt written by pytc-train") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (truncated or another format); point --checkpoint at a .ckpt written by pytc-train") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "cfg_yaml" not in ckpt.get("hyper_parameters", {}):
        raise CheckpointError(f"{path}: not an emseg-plugins checkpoint (no state_dict/config inside); use a .ckpt written by pytc-train")
    try:
        saved = checkpoint_config(ckpt)
    except Exception:  # noqa: BLE001  # yacs raises several kinds on text that is not a config
        saved = None
    if not isinstance(saved, CN) or "MODEL" not in saved:
        raise CheckpointError(f"{path}: the config saved in the checkpoint is not a run config; use a .ckpt written by pytc-train")
    return ckpt


def load_weights(module: torch.nn.Module, ckpt: dict[str, Any], path: str | Path) -> None:
    """``module.load_state_dict(ckpt["state_dict"])``; :class:`CheckpointError` when the weights do not fit."""
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        detail = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise CheckpointError(f"{path}: its weights do not fit the model its config builds ({detail}); "
                              "the file was changed or comes from another version of the model") from None


def checkpoint_config(ckpt: dict[str, Any]) -> CN:
    return CN.load_cfg(ckpt["hyper_parameters"]["cfg_yaml"])


def check_compatible(ckpt: dict[str, Any], cfg: CN, path: str | Path) -> None:
    """:class:`CheckpointError` naming the first model-defining key where ``ckpt`` and ``cfg`` differ.

    Only keys both configs have are compared: a node that only one side has belongs to a plugin
    installed or removed since training (e.g. PyTC's ``MODEL.PYTC``), which this model does not read.
    A model whose own node is gone cannot be built, and that is reported where it is built.
    """
    saved = checkpoint_config(ckpt)
    for key in MODEL_KEYS:
        difference = _first_difference(key, lookup(cfg, key), lookup(saved, key))
        if difference is not None:
            key, mine, theirs = difference
            raise CheckpointError(
                f"{path}: checkpoint was trained with {key} = {theirs!r} but the config has {mine!r}; "
                "use another DATASET.OUTPUT_PATH, or match the config to the checkpoint"
            )


def _first_difference(key: str, mine: Any, theirs: Any) -> tuple[str, Any, Any] | None:
    """(dotted key, mine, theirs) of the first differing leaf present on both sides, else None."""
    if isinstance(mine, CN) and isinstance(theirs, CN):
        for sub in sorted(set(mine) & set(theirs)):
            found = _first_difference(f"{key}.{sub}", mine[sub], theirs[sub])
            if found is not None:
                return found
        return None
    if mine is None or theirs is None:  # a key only one side has (e.g. TARGET in checkpoints older than targets)
        return None
    return None if mine == theirs else (key, mine, theirs)


def discard_after(directory: Path, step: int) -> list[Path]:
    """Remove what a killed run left past ``last.ckpt`` (at ``step``): scored checkpoints of later steps,
    which the resumed run writes again, and temporary files of writes that never finished."""
    leftovers = [p for p in directory.glob("step*-*.ckpt") if (m := re.match(r"step(\d+)-", p.name)) and int(m[1]) > step]
    leftovers += list(directory.glob(".*.tmp"))
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def checkpoint_dir(run_dir: str | Path) -> Path:
    """Where a run keeps its checkpoints: ``<run>/checkpoints``."""
    return Path(run_dir) / "checkpoints"


def checkpoint_tag(metric: str) -> str:
    """The score's name in a scored checkpoint's file name: ``dice`` for val/dice_mean, else the metric's
    last part (``step000600-dice0.9312.ckpt``, ``step000600-are0.1250.ckpt``)."""
    return "dice" if metric == "val/dice_mean" else re.sub(r"[^A-Za-z0-9_]", "_", metric.rsplit("/", 1)[-1])


def best_checkpoint(run_dir: str | Path, metric: str = "val/dice_mean") -> Path:
    """The run's best scored checkpoint for ``metric`` (by the score in its file name; lowest for errors),
    else ``last.ckpt``; :class:`CheckpointError` when it has none."""
    directory, tag = checkpoint_dir(run_dir), checkpoint_tag(metric)
    pattern = re.compile(rf"step\d+-{re.escape(tag)}(-?[0-9.]+(?:e-?\d+)?|nan)$")
    scored = [(float(m[1]), p) for p in directory.glob("step*.ckpt") if (m := pattern.match(p.stem))]
    scored = [(score, p) for score, p in scored if score == score]  # NaN scores never win
    last = directory / "last.ckpt"
    if not scored and not last.exists():
        raise CheckpointError(f"{run_dir}: the run has no checkpoints yet; train it first or pass --checkpoint")
    if not scored:
        return last
    pick = min if mode_of(metric) == "min" else max
    return pick(scored, key=lambda item: item[0])[1]
