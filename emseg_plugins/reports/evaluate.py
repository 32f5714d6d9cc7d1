"""Score a checkpoint on a split of any dataset plugin: per-class voxel metrics and, where the volumes
carry instance ids, instance metrics (one-to-one matching by IoU; precision, recall, F1 at IoU 0.5 and 0.75).

``evaluate(cfg, checkpoint)`` predicts ``INFERENCE.SPLIT`` into ``<DATASET.OUTPUT_PATH>/<INFERENCE.OUTPUT_NAME>``
(as ``pytc-train --inference``) and writes there ``metrics.json``, ``metrics.csv`` and, with instance
scores, ``instance_metrics.csv`` (one row per volume, and all volumes pooled). Predicted instances are
the model's own (embedding models with INFERENCE.INSTANCE_CLASS), else the connected components of
``instance_class``'s mask.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from yacs.config import CfgNode as CN

from emseg_plugins.errors import ConfigError, DataError
from emseg_plugins.evaluation.instance_metrics import instance_scores
from emseg_plugins.evaluation.partition_metrics import partition_scores
from emseg_plugins.inference.predictor import infer
from emseg_plugins.inference.writers import write_metrics
from emseg_plugins.postprocess.instances import connected_instances
from emseg_plugins.targets import target_names
from emseg_plugins.registry import DATASETS
from emseg_plugins.utils.atomic import atomic_write_text
from emseg_plugins.visualize.predictions import open_predictions

THRESHOLDS = (0.5, 0.75)  # IoU thresholds of a matched instance pair


@dataclass
class Evaluation:
    """Where the predictions and tables are, the per-class table, and the instance scores (or None)."""

    out_dir: Path
    table: dict[str, dict[str, float]]
    instances: dict | None


def evaluate(cfg: CN, checkpoint: str, instance_class: str = "", min_size: int = 0) -> Evaluation:
    """Predict and score ``cfg.INFERENCE.SPLIT`` with ``checkpoint`` (see the module docstring).

    ``instance_class``: default INFERENCE.INSTANCE_CLASS; ``min_size``: voxels, smaller predicted components are dropped.
    """
    split = cfg.INFERENCE.SPLIT
    instance_class = instance_class or cfg.INFERENCE.INSTANCE_CLASS
    if instance_class and instance_class not in cfg.DATASET.CLASSES:
        raise ConfigError(f"--instance-class {instance_class!r} is not one of DATASET.CLASSES {list(cfg.DATASET.CLASSES)}")
    if min_size < 0:
        raise ConfigError(f"--min-size {min_size} must be >= 0")
    if not Path(checkpoint).is_file():
        raise ConfigError(f"--checkpoint {checkpoint}: no such file; pass a .ckpt from a run's checkpoints/")
    data = DATASETS.build(cfg.DATASET.NAME, cfg)
    volumes = data.volumes(split)
    if all(np.isnan(v.labels.astype(np.float32)).all() for v in volumes):
        raise DataError(f"dataset {cfg.DATASET.NAME!r}: the {split!r} split has no labels to score; "
                        "predict it with `pytc-train --inference` instead")
    out_dir, table = infer(cfg, checkpoint, data)
    instances = instance_metrics(out_dir, volumes, cfg, instance_class, min_size)
    meta = {"checkpoint": str(checkpoint), "split": split, "dataset": cfg.DATASET.NAME}
    if instances:
        meta["instances"] = instances
        write_instance_csv(out_dir / "instance_metrics.csv", instances)
    write_metrics(out_dir, table, meta)
    return Evaluation(out_dir, table, instances)


def instance_metrics(out_dir: Path, volumes, cfg: CN, instance_class: str, min_size: int) -> dict | None:
    """``{"source", "volumes": {name: scores}, "pooled": scores}`` for volumes with instance ids, or None.

    ``scores`` are those of :func:`instance_scores` (per volume); ``pooled`` sums matched, predicted
    and true instances over the volumes before dividing.
    """
    per_volume, source = {}, ""
    suffix = ".zarr" if cfg.INFERENCE.OUTPUT_FORMAT == "zarr" else ".h5"
    for volume in volumes:
        if volume.instances is None:
            continue
        with open_predictions(out_dir / f"{volume.name}{suffix}", cfg.DATASET.CLASSES, cfg.INFERENCE.THRESHOLD) as pred:
            if pred.instances is not None:
                decoded = f" (decoded by {cfg.INFERENCE.DECODER})" if target_names(cfg) else ""
                predicted, source = np.asarray(pred.instances), f"the model's instances{decoded}"
            elif instance_class:
                mask = pred.mask_volume(list(cfg.DATASET.CLASSES).index(instance_class))
                predicted = connected_instances(mask, min_size=min_size)
                source = f"connected components of the {instance_class!r} mask"
            else:
                print(f"note: {volume.name} has instance ids but the model predicts none; "
                      "pass --instance-class CLASS to score the connected components of that class's mask")
                continue
        truth = np.asarray(volume.instances)
        per_volume[volume.name] = {**instance_scores(predicted, truth, THRESHOLDS), **partition_scores(predicted, truth)}
    if not per_volume:
        return None
    return {"source": source, "volumes": per_volume, "pooled": pool(list(per_volume.values()))}


def pool(scores: list[dict[str, float]]) -> dict[str, float]:
    """Precision/recall/F1 from matched counts summed over volumes (matched = precision x predicted)."""
    predicted, true = sum(s["predicted"] for s in scores), sum(s["true"] for s in scores)
    pooled = {"predicted": predicted, "true": true}
    for t in THRESHOLDS:
        matched = sum(s[f"matched@{t:g}"] for s in scores)
        precision = matched / predicted if predicted else float(not true)
        recall = matched / true if true else float(not predicted)
        pooled[f"precision@{t:g}"], pooled[f"recall@{t:g}"] = precision, recall
        pooled[f"f1@{t:g}"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return pooled


def _columns(instances: dict) -> list[str]:
    per_volume_only = ("dice", "iou", "are", "voi_split", "voi_merge")  # not pooled: they do not add up over volumes
    return list(instances["pooled"]) + [c for c in per_volume_only if c in next(iter(instances["volumes"].values()))]


def write_instance_csv(path: Path, instances: dict) -> None:
    """One row per volume and one ``pooled`` row; empty cells where a volume lacks a column."""
    columns = _columns(instances)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["volume", *columns])
    for name, row in [*instances["volumes"].items(), ("pooled", instances["pooled"])]:
        writer.writerow([name, *(f"{row[c]:.6f}" if c in row else "" for c in columns)])
    atomic_write_text(path, buffer.getvalue())


def format_instances(instances: dict) -> str:
    """The instance scores as a fixed-width text table (volumes, then pooled)."""
    columns = _columns(instances)
    rows = [*instances["volumes"].items(), ("pooled", instances["pooled"])]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'volume':<{width}}  " + "  ".join(f"{c:>12}" for c in columns)]
    lines += [f"{name:<{width}}  " + "  ".join(f"{row[c]:>12.4f}" if c in row else f"{'':>12}" for c in columns) for name, row in rows]
    return "\n".join(lines)
