"""pytc-train: train a config (combined train/validation run), or --inference with a checkpoint.

Examples:
  pytc-train --config-file configs/demo.yaml
  pytc-train --config-file configs/demo.yaml SOLVER.ITERATION_TOTAL 2000 DATASET.OUTPUT_PATH outputs/long
  pytc-train --config-file configs/demo.yaml --inference            # best checkpoint of the run
  pytc-train --config-file configs/demo.yaml --inference --checkpoint outputs/demo/checkpoints/last.ckpt

A run directory (DATASET.OUTPUT_PATH) holds config.yaml, checkpoints/ (top-k + last.ckpt),
tensorboard/, metrics.json and metrics.csv. Starting again on a directory with last.ckpt resumes.
"""
from __future__ import annotations

import argparse
import sys

from emseg_plugins.cli.common import (
    ArgumentParser,
    add_config_arguments,
    add_debug_argument,
    quiet_library_warnings,
    run_command,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", metavar="CKPT",
                        help="with --inference: weights to predict with; without: initial weights for training")
    parser.add_argument("--inference", action="store_true",
                        help="predict INFERENCE.SPLIT with sliding windows instead of training")
    add_debug_argument(parser)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from emseg_plugins.config import load_config

    quiet_library_warnings()
    cfg = load_config(args.config_file, args.config_base, args.opts)  # before torch: a config error answers at once
    if args.inference:
        from emseg_plugins.inference.predictor import infer

        infer(cfg, args.checkpoint)
    else:
        from emseg_plugins.engine.run import train

        train(cfg, args.checkpoint)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="pytc-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_intermixed_args(argv)  # flags may follow the KEY VALUE overrides
    sys.exit(run_command(run, args))
