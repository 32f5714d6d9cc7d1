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
from pathlib import Path

from emseg_plugins.cli.common import add_config_arguments, add_debug_argument, quiet_library_warnings
from emseg_plugins.config import load_config


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
    from emseg_plugins.reports.evaluate import evaluate, format_instances  # lazy: torch and the model plugins

    quiet_library_warnings()
    plain = load_config(args.config_file, args.config_base, args.opts)
    output = Path(args.output).resolve() if args.output else Path(plain.DATASET.OUTPUT_PATH) / f"evaluate-{args.split}"
    # predictions go to DATASET.OUTPUT_PATH / INFERENCE.OUTPUT_NAME; an absolute name puts them at --output
    cfg = load_config(args.config_file, args.config_base,
                      [*args.opts, "INFERENCE.SPLIT", args.split, "INFERENCE.OUTPUT_NAME", str(output.absolute())])
    result = evaluate(cfg, args.checkpoint, args.instance_class or "", args.min_size)
    out_dir, instances = result.out_dir, result.instances
    if instances:
        print(f"instance metrics ({instances['source']}):\n{format_instances(instances)}\n")
    print(f"tables: {out_dir / 'metrics.json'}, "
          f"{out_dir / 'metrics.csv'}" + (f", {out_dir / 'instance_metrics.csv'}" if instances else ""))
    return 0
