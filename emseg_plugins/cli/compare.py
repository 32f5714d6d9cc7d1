"""emseg compare: train every combination of a config grid, then write a comparison report.

Examples:
  emseg compare --config-file configs/demo.yaml --grid LOSS.NAME=dice_bce,per_class_combo DATASET.INPUT_SLICES=1,5
  emseg compare --config-file configs/demo.yaml --budget-steps 200 --parallel 2 --output outputs/losses \\
      --grid LOSS.NAME=dice_bce,per_class_combo,ohem
  emseg compare ... --split test       # report sliding-window metrics of the test split instead

Each combination is a normal run directory, <output>/runs/<key=value,...>, trained by pytc-train in
its own process (--parallel at a time). The first combination is the baseline. <output> gets
report.md (per-class Dice with each run's improvement over the first, and Dice/precision/recall of
every run), report.csv (every metric, one row per run and class), dice_per_class.png and
val_dice_curves.png (validation Dice over training, from the runs' TensorBoard files). Run the same
command again to add runs or finish interrupted ones: finished runs are skipped. KEY VALUE overrides
go before --grid and apply to every run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from emseg_plugins.cli.common import add_config_arguments, add_debug_argument, quiet_library_warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid", nargs="+", required=True, metavar="KEY=V1,V2", help="config keys and the values to try")
    parser.add_argument("--budget-steps", type=int, metavar="N", help="optimizer steps per run (SOLVER.ITERATION_TOTAL)")
    parser.add_argument("--parallel", type=int, default=1, metavar="P", help="runs trained at the same time (default 1)")
    parser.add_argument("--output", metavar="DIR", help="where runs and report go (default: the config's DATASET.OUTPUT_PATH)")
    parser.add_argument("--split", choices=["val", "test"], help="report sliding-window metrics of this split (default: "
                        "each run's validation metrics)")
    add_debug_argument(parser)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from emseg_plugins.config import load_config
    from emseg_plugins.errors import ConfigError
    from emseg_plugins.reports.compare import execute, plan_runs
    from emseg_plugins.reports.report import write_report

    quiet_library_warnings()
    if args.parallel < 1:
        raise ConfigError(f"--parallel {args.parallel} must be at least 1")
    base = load_config(args.config_file, args.config_base, args.opts)
    output = Path(args.output or base.DATASET.OUTPUT_PATH)
    runs = plan_runs(args.config_file, args.config_base, args.opts, args.grid, output, args.budget_steps, args.split or "")
    print(f"{len(runs)} runs under {output / 'runs'}", flush=True)
    execute(runs, args.config_file, args.config_base, args.parallel, echo=lambda text: print(text, flush=True))
    grid = " × ".join(f"{key} ∈ {{{', '.join(vals)}}}" for key, vals in _grid_values(runs).items())
    md, csv_path = write_report(output, runs, list(base.DATASET.CLASSES), f"Comparison: {grid}", args.budget_steps)
    print(f"\n{md.read_text().split('## Every run')[0].strip()}\n\nreport: {md}\ntable: {csv_path}")
    failed = [r.name for r in runs if r.status == "failed"]
    return 1 if failed else 0


def _grid_values(runs) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for r in runs:
        for key, value in r.settings.items():
            if value not in values.setdefault(key, []):
                values[key].append(value)
    return values
