"""emseg evaluate: metrics of any checkpoint on a split of any dataset plugin.

Examples:
  emseg evaluate --config-file configs/demo.yaml --checkpoint outputs/demo/checkpoints/last.ckpt
  emseg evaluate --config-file configs/demo.yaml --checkpoint C --split test --instance-class mito --min-size 20

The split is predicted with sliding windows (as `pytc-train --inference`) into --output (default
<DATASET.OUTPUT_PATH>/evaluate-<split>), which then holds the predictions (<volume>.h5/.zarr),
metrics.json and metrics.csv (Dice, IoU, precision, recall, accuracy per class and their mean).
Where the volumes carry instance ids, instance metrics (one-to-one matching by IoU; precision,
recall and F1 at IoU 0.5 and 0.75) are added: predicted instances are the model's own (embedding
models with INFERENCE.INSTANCE_CLASS), else the connected components of --instance-class's mask.
They go to instance_metrics.csv (one row per volume, and all volumes pooled) and into metrics.json.
"""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np

from emseg_plugins.cli.common import add_config_arguments, add_debug_argument, quiet_library_warnings

THRESHOLDS = (0.5, 0.75)  # IoU thresholds of a matched instance pair


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="weights to evaluate (.ckpt written by pytc-train)")
    parser.add_argument("--split", default="val", choices=["val", "test", "train"], help="split to predict and score (default val)")
    parser.add_argument("--output", metavar="DIR", help="predictions and tables (default <DATASET.OUTPUT_PATH>/evaluate-<split>)")
    parser.add_argument("--instance-class", metavar="CLASS",
                        help="class whose predicted mask is split into instances by connected components "
                             "(default INFERENCE.INSTANCE_CLASS) when the model predicts none")
    parser.add_argument("--min-size", type=int, default=0, metavar="VOXELS", help="drop smaller predicted components (default 0)")
    add_debug_argument(parser)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from emseg_plugins.config import load_config
    from emseg_plugins.engine.run import infer, write_metrics
    from emseg_plugins.errors import ConfigError, DataError
    from emseg_plugins.registry import DATASETS

    quiet_library_warnings()
    plain = load_config(args.config_file, args.config_base, args.opts)
    output = Path(args.output).resolve() if args.output else Path(plain.DATASET.OUTPUT_PATH) / f"evaluate-{args.split}"
    # infer() writes to DATASET.OUTPUT_PATH / INFERENCE.OUTPUT_NAME; an absolute name puts it at --output
    cfg = load_config(args.config_file, args.config_base,
                      [*args.opts, "INFERENCE.SPLIT", args.split, "INFERENCE.OUTPUT_NAME", str(output.absolute())])
    instance_class = args.instance_class or cfg.INFERENCE.INSTANCE_CLASS
    if instance_class and instance_class not in cfg.DATASET.CLASSES:
        raise ConfigError(f"--instance-class {instance_class!r} is not one of DATASET.CLASSES {list(cfg.DATASET.CLASSES)}")
    if args.min_size < 0:
        raise ConfigError(f"--min-size {args.min_size} must be >= 0")
    if not Path(args.checkpoint).is_file():
        raise ConfigError(f"--checkpoint {args.checkpoint}: no such file; pass a .ckpt from a run's checkpoints/")
    data = DATASETS.build(cfg.DATASET.NAME, cfg)
    volumes = data.volumes(args.split)
    if all(np.isnan(v.labels.astype(np.float32)).all() for v in volumes):
        raise DataError(f"dataset {cfg.DATASET.NAME!r}: the {args.split!r} split has no labels to score; "
                        "predict it with `pytc-train --inference` instead")

    out_dir, table = infer(cfg, args.checkpoint, data)
    instances = instance_metrics(out_dir, volumes, cfg, instance_class, args.min_size)
    meta = {"checkpoint": str(args.checkpoint), "split": args.split, "dataset": cfg.DATASET.NAME}
    if instances:
        meta["instances"] = instances
        write_instance_csv(out_dir / "instance_metrics.csv", instances)
        print(f"instance metrics ({instances['source']}):\n{format_instances(instances)}\n")
    write_metrics(out_dir, table, meta)
    print(f"tables: {out_dir / 'metrics.json'}, "
          f"{out_dir / 'metrics.csv'}" + (f", {out_dir / 'instance_metrics.csv'}" if instances else ""))
    return 0


def instance_metrics(out_dir: Path, volumes, cfg, instance_class: str, min_size: int) -> dict | None:
    """``{"source", "volumes": {name: scores}, "pooled": scores}`` for volumes with instance ids, or None.

    ``scores`` are those of :func:`instance_scores` (per volume); ``pooled`` sums matched, predicted
    and true instances over the volumes before dividing.
    """
    from emseg_plugins.evaluation.instance_metrics import instance_scores
    from emseg_plugins.postprocess.instances import connected_instances
    from emseg_plugins.visualize.predictions import open_predictions

    per_volume, source = {}, ""
    suffix = ".zarr" if cfg.INFERENCE.OUTPUT_FORMAT == "zarr" else ".h5"
    for volume in volumes:
        if volume.instances is None:
            continue
        with open_predictions(out_dir / f"{volume.name}{suffix}", cfg.DATASET.CLASSES, cfg.INFERENCE.THRESHOLD) as pred:
            if pred.instances is not None:
                predicted, source = np.asarray(pred.instances), "the model's instances"
            elif instance_class:
                mask = pred.mask_volume(list(cfg.DATASET.CLASSES).index(instance_class))
                predicted = connected_instances(mask, min_size=min_size)
                source = f"connected components of the {instance_class!r} mask"
            else:
                print(f"note: {volume.name} has instance ids but the model predicts none; "
                      "pass --instance-class CLASS to score the connected components of that class's mask")
                continue
        per_volume[volume.name] = instance_scores(predicted, np.asarray(volume.instances), THRESHOLDS)
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
    return list(instances["pooled"]) + [c for c in ("dice", "iou") if c in next(iter(instances["volumes"].values()))]


def write_instance_csv(path: Path, instances: dict) -> None:
    from emseg_plugins.utils.atomic import atomic_write_text

    columns = _columns(instances)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["volume", *columns])
    for name, row in [*instances["volumes"].items(), ("pooled", instances["pooled"])]:
        writer.writerow([name, *(f"{row[c]:.6f}" if c in row else "" for c in columns)])
    atomic_write_text(path, buffer.getvalue())


def format_instances(instances: dict) -> str:
    columns = _columns(instances)
    rows = [*instances["volumes"].items(), ("pooled", instances["pooled"])]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'volume':<{width}}  " + "  ".join(f"{c:>12}" for c in columns)]
    lines += [f"{name:<{width}}  " + "  ".join(f"{row[c]:>12.4f}" if c in row else f"{'':>12}" for c in columns) for name, row in rows]
    return "\n".join(lines)

