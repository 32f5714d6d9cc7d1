"""Predict the challenge's test crops from the raw EM of a data root.

For each test crop (the manifest rows sharing one crop id) the box covering all its rows is read from
``DATA_ROOT/<dataset>/<dataset>.zarr/<RAW_NAME>`` at the model's voxel size (the training
``DATASET.CELLMAP.VOXEL_SIZE`` stored in the checkpoint), with ``CELLMAP_CHALLENGE.CONTEXT`` voxels of
context on every side (edge values past the volume), predicted with the sliding window of
:func:`~emseg_plugins.inference.sliding_window.predict_outputs`, and cut back to the box. Each manifest
label that the model predicts is written to the processed layout of the challenge (``PROCESSED_PATH``)::

    OUT/<dataset>.zarr/crop<id>/<label>     (Z, Y, X) array, attrs voxel_size and translation (nm, z-y-x)

instance labels (``CELLMAP_CHALLENGE.INSTANCE_CLASSES``) as uint32 ids from the thresholded probability
(connected components or seeded watershed of :mod:`emseg_plugins.postprocess.instances`), the others as
uint8 masks (``probability >= INFERENCE.THRESHOLD``). Arrays stay at the model's voxel size;
``emseg cellmap submit`` resamples them into each crop's space. A crop is written whole (built under a
temporary name, then renamed), so an interrupted run is resumed by running it again.
"""
from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import zarr
from tqdm import tqdm
from yacs.config import CfgNode as CN

from emseg_plugins.challenge.manifest import ROOT_MANIFEST, TestCrop, by_crop, select
from emseg_plugins.datasets.cellmap_layout import (
    RAW_NAME,
    Level,
    format_size,
    level_at,
    read_multiscales,
)
from emseg_plugins.engine.checkpoint import (
    check_compatible,
    checkpoint_config,
    load_checkpoint,
)
from emseg_plugins.errors import ConfigError, DataError
from emseg_plugins.inference.deploy import default_halo
from emseg_plugins.inference.predictor import restore_model
from emseg_plugins.inference.sliding_window import predict_outputs
from emseg_plugins.registry import DECODERS


@dataclass
class PredictReport:
    """Crops written, crops already complete (skipped), crops whose dataset is not under DATA_ROOT, labels no output channel predicts."""

    written: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    no_data: list[str] = field(default_factory=list)
    not_predicted: list[tuple[int, str]] = field(default_factory=list)


def challenge_node(cfg: CN) -> CN:
    """``cfg.CELLMAP_CHALLENGE``, or the node's defaults when the config was loaded without it."""
    if "CELLMAP_CHALLENGE" in cfg:
        return cfg.CELLMAP_CHALLENGE
    from emseg_plugins.challenge.config import add_challenge_config

    scratch = CN()
    add_challenge_config(scratch)
    return scratch.CELLMAP_CHALLENGE


def model_voxel_size(cfg: CN, ckpt: dict) -> tuple[float, float, float]:
    """The voxel size (nm, z-y-x) the checkpoint was trained at (its DATASET.CELLMAP.VOXEL_SIZE), else the config's."""
    saved = checkpoint_config(ckpt)
    node = saved.DATASET.get("CELLMAP") if "DATASET" in saved else None
    size = node.get("VOXEL_SIZE") if node is not None else None
    size = size or cfg.DATASET.CELLMAP.VOXEL_SIZE
    return tuple(float(v) for v in size)


def crop_box(rows: Sequence[TestCrop], level: Level) -> tuple[np.ndarray, np.ndarray]:
    """(first, stop) voxel indices (Z, Y, X) on ``level`` covering every row's box [translation, translation + shape x voxel)."""
    start = np.min([r.translation for r in rows], axis=0)
    stop = np.max([np.asarray(r.translation) + np.asarray(r.shape) * np.asarray(r.voxel_size) for r in rows], axis=0)
    origin, size = np.asarray(level.translation), np.asarray(level.voxel_size)
    first = np.floor((start - origin) / size + 1e-6).astype(int)
    last = np.ceil((stop - origin) / size - 1e-6).astype(int)
    return first, np.maximum(last, first + 1)


def read_with_context(array: zarr.Array, first: np.ndarray, stop: np.ndarray, context: Sequence[int]) -> np.ndarray:
    """``array[first - context : stop + context]`` (Z, Y, X); parts past the volume take the nearest edge value."""
    lo, hi = first - np.asarray(context), stop + np.asarray(context)
    shape = np.asarray(array.shape[-3:])
    a, b = np.clip(lo, 0, shape), np.clip(hi, 0, shape)
    if np.any(b <= a):
        raise DataError(f"box {lo.tolist()}..{hi.tolist()} lies outside the raw EM {shape.tolist()}")
    block = array[tuple(slice(int(x), int(y)) for x, y in zip(a, b))]
    pad = [(int(x - lo_), int(hi_ - y)) for x, y, lo_, hi_ in zip(a, b, lo, hi)]
    return np.pad(block, pad, mode="edge") if any(p for pair in pad for p in pair) else block


def to_unit_range(raw: np.ndarray) -> np.ndarray:
    """Grey levels -> float32 in [0, 1] by the dtype's maximum (as the cellmap dataset plugin trains)."""
    if np.issubdtype(raw.dtype, np.integer):
        return raw.astype(np.float32) / float(np.iinfo(raw.dtype).max)
    return raw.astype(np.float32)


def labels_from_probability(probability: np.ndarray, label: str, cfg: CN, voxel_size: Sequence[float]) -> np.ndarray:
    """(Z, Y, X) probability -> uint32 instance ids (instance labels, CELLMAP_CHALLENGE.INSTANCE_METHOD) or a uint8 0/1 mask."""
    node, threshold = challenge_node(cfg), cfg.INFERENCE.THRESHOLD
    if label not in node.INSTANCE_CLASSES:
        return (probability >= threshold).astype(np.uint8)
    return instance_decoder(cfg, voxel_size).decode({"foreground": probability})


def instance_decoder(cfg: CN, voxel_size: Sequence[float] = (1.0, 1.0, 1.0)):
    """The ``DECODERS`` entry CELLMAP_CHALLENGE.INSTANCE_METHOD with the node's threshold, seeds, size and connectivity."""
    node = challenge_node(cfg)
    decode = cfg.clone()
    decode.defrost()
    decode.INFERENCE.DECODE.update(THRESHOLD=cfg.INFERENCE.THRESHOLD, SEED_DISTANCE=node.SEED_DISTANCE, VOXEL_SIZE=list(voxel_size),
                                   MIN_SIZE=node.MIN_SIZE, CONNECTIVITY=node.CONNECTIVITY)
    return DECODERS.build(node.INSTANCE_METHOD, decode)


def check_challenge_config(cfg: CN) -> None:
    node = challenge_node(cfg)
    if node.CONNECTIVITY not in (6, 18, 26):
        raise ConfigError(f"config: CELLMAP_CHALLENGE.CONNECTIVITY = {node.CONNECTIVITY} is not one of 6, 18, 26")
    if node.INSTANCE_METHOD not in DECODERS:
        raise ConfigError(f"config: CELLMAP_CHALLENGE.INSTANCE_METHOD = {node.INSTANCE_METHOD!r} is not a decoder; one of {', '.join(DECODERS.names())}")
    needs = [m for m in instance_decoder(cfg).needs if m != "foreground"]
    if needs:
        raise ConfigError(f"config: CELLMAP_CHALLENGE.INSTANCE_METHOD = {node.INSTANCE_METHOD!r} needs the learned {', '.join(needs)} map(s); "
                          "test crops are decoded from class probabilities: use cc or watershed")
    if node.CONTEXT and (len(node.CONTEXT) != 3 or min(node.CONTEXT) < 0):
        raise ConfigError(f"config: CELLMAP_CHALLENGE.CONTEXT = {list(node.CONTEXT)} must be empty or three sizes >= 0 (Z, Y, X voxels)")
    if node.MIN_SIZE < 0:
        raise ConfigError(f"config: CELLMAP_CHALLENGE.MIN_SIZE = {node.MIN_SIZE} must be >= 0")


def predict_test_crops(cfg: CN, checkpoint: str | Path, output: str | Path, crops: Sequence[TestCrop], overwrite: bool = False,
                       progress: bool = True) -> PredictReport:
    """Predict every test crop of ``crops`` (manifest rows) whose dataset is under ``DATASET.CELLMAP.DATA_ROOT``."""
    check_challenge_config(cfg)
    node = challenge_node(cfg)
    ckpt = load_checkpoint(checkpoint)
    check_compatible(ckpt, cfg, checkpoint)
    data_root = Path(cfg.DATASET.CELLMAP.DATA_ROOT) if "CELLMAP" in cfg.DATASET else None
    if data_root is None or not str(cfg.DATASET.CELLMAP.DATA_ROOT):
        raise ConfigError("config: DATASET.CELLMAP.DATA_ROOT is empty; set it to the folder holding <dataset>/<dataset>.zarr")
    if not data_root.is_dir():
        raise DataError(f"DATASET.CELLMAP.DATA_ROOT {str(data_root)!r}: directory not found; point it at the folder holding "
                        "<dataset>/<dataset>.zarr (where `csc fetch-data` wrote the data)")
    raw_name = cfg.DATASET.CELLMAP.RAW_NAME or RAW_NAME
    tolerance = float(cfg.DATASET.CELLMAP.VOXEL_TOLERANCE)
    voxel_size = model_voxel_size(cfg, ckpt)
    classes = list(cfg.DATASET.CLASSES)
    context = tuple(node.CONTEXT) if node.CONTEXT else default_halo(cfg)
    report = PredictReport()
    groups = by_crop(select(crops, list(node.CROPS)))
    plans = []
    for crop_id, rows in groups.items():
        raw_group = data_root / rows[0].dataset / f"{rows[0].dataset}.zarr" / raw_name
        if not raw_group.is_dir():
            report.no_data.append(f"crop{crop_id} ({rows[0].dataset})")
            continue
        wanted = [r for r in rows if r.class_label in classes]
        report.not_predicted += [(crop_id, r.class_label) for r in rows if r.class_label not in classes]
        if wanted:
            plans.append((crop_id, rows, wanted, raw_group))
    if report.no_data:
        warnings.warn(f"{len(report.no_data)} test crops have no raw EM under {data_root} and are not predicted: "
                      f"{', '.join(report.no_data[:20])}{' ...' if len(report.no_data) > 20 else ''}", UserWarning, stacklevel=2)
    if not plans:
        local = data_root / ROOT_MANIFEST  # e.g. the synthetic stand-in's held-out crops
        hint = (f"; {data_root} lists its own test crops: pass --manifest {local} (or set CELLMAP_CHALLENGE.MANIFEST)"
                if local.is_file() and len(report.no_data) == len(groups) else "")
        raise DataError(f"{data_root}: none of the {len(groups)} selected test crops can be predicted (raw EM of their dataset "
                        f"missing, or none of their labels in DATASET.CLASSES {classes}); fetch the test crops' datasets or "
                        f"check CELLMAP_CHALLENGE.MANIFEST / --crops{hint}")
    model, _ = restore_model(checkpoint, ckpt, gpu=cfg.SYSTEM.NUM_GPUS > 0)
    output = Path(output)
    for crop_id, rows, wanted, raw_group in tqdm(plans, desc="test crops", unit="crop", disable=not progress):
        dataset = rows[0].dataset
        container = output / f"{dataset}.zarr"
        final = container / f"crop{crop_id}"
        if final.is_dir() and not overwrite and all((final / r.class_label / ".zarray").is_file() for r in wanted):
            report.skipped.append(crop_id)
            continue
        level = level_at(read_multiscales(raw_group), voxel_size, tolerance)
        if level is None:
            sizes = ", ".join(format_size(lv.voxel_size) for lv in read_multiscales(raw_group))
            raise DataError(f"{raw_group}: no raw EM level at the model's voxel size {format_size(voxel_size)} nm (levels: {sizes}); "
                            "train at one of those voxel sizes (DATASET.CELLMAP.VOXEL_SIZE)")
        first, stop = crop_box(wanted, level)
        raw = zarr.open_array(str(raw_group / level.path), mode="r")
        image = to_unit_range(read_with_context(raw, first, stop, context))
        with torch.inference_mode():
            probabilities = predict_outputs(model, image, cfg, progress=False)["probabilities"]
        inner = tuple(slice(c, c + int(n)) for c, n in zip(context, stop - first))
        translation = [float(t + f * v) for t, f, v in zip(level.translation, first, level.voxel_size)]
        _write_crop(container, final, {r.class_label: labels_from_probability(probabilities[(classes.index(r.class_label),) + inner],
                                                                               r.class_label, cfg, level.voxel_size) for r in wanted},
                    list(level.voxel_size), translation)
        report.written.append(crop_id)
    return report


def _write_crop(container: Path, final: Path, arrays: dict[str, np.ndarray], voxel_size: list[float], translation: list[float]) -> None:
    """Write one crop group under a temporary name, then rename it into place (replacing an older one)."""
    zarr.open_group(str(container), mode="a")  # the <dataset>.zarr group (.zgroup)
    tmp = container / f".{final.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    group = zarr.open_group(str(tmp), mode="w")
    for label, data in arrays.items():
        chunks = tuple(min(64, s) for s in data.shape)
        array = group.create_dataset(label, data=data, chunks=chunks)
        array.attrs.update(voxel_size=voxel_size, translation=translation)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def describe(report: PredictReport) -> str:
    """One paragraph summarising a :class:`PredictReport`."""
    parts = [f"predicted {len(report.written)} crops"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} already complete (kept; --overwrite to redo)")
    if report.no_data:
        parts.append(f"{len(report.no_data)} without raw EM under DATA_ROOT")
    if report.not_predicted:
        labels = sorted({label for _, label in report.not_predicted})
        parts.append(f"{len(report.not_predicted)} crop/labels not among DATASET.CLASSES ({', '.join(labels[:10])}"
                     f"{' ...' if len(labels) > 10 else ''})")
    return "; ".join(parts)

