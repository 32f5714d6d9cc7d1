"""emseg: the umbrella command. Each subcommand is a module here with add_arguments and run."""
from __future__ import annotations

import argparse
import importlib
import sys

from emseg_plugins.cli.common import ArgumentParser, parse_intermixed, run_command

# subcommand -> (module, one-line help); later subcommands are added here.
SUBCOMMANDS = {
    "train": ("emseg_plugins.cli.train", "train a config (same as pytc-train)"),
    "plugins": ("emseg_plugins.cli.plugins", "list installed models, losses, datasets and config nodes"),
    "config": ("emseg_plugins.cli.config", "show the resolved config or every valid key"),
    "predict": ("emseg_plugins.cli.predict", "predict a volume of any size in blocks (resumable, Dask)"),
    "cellmap": ("emseg_plugins.cli.cellmap", "CellMap challenge: predict test crops, package submission.zarr, score it"),
    "pytc": ("emseg_plugins.cli.pytc", "run PyTorch Connectomics' trainer with these plugins: emseg pytc -- ARGS"),
    "new-plugin": ("emseg_plugins.cli.new_plugin", "scaffold a plugin package (model, loss, dataset, config node, test)"),
    "compare": ("emseg_plugins.cli.compare", "train a grid of configs and write a comparison report with plots"),
    "evaluate": ("emseg_plugins.cli.evaluate", "metrics of a checkpoint on a split (per class, instances; JSON, CSV)"),
    "view": ("emseg_plugins.cli.view", "pictures of slices with labels and predictions, or a neuroglancer viewer"),
    "instances": ("emseg_plugins.cli.instances", "decode instances of a prediction (cc, watershed, or learned maps: bc/bcd_watershed, mutex_watershed)"),
    "resample": ("emseg_plugins.cli.resample", "up/downsample label or probability volumes (factors or voxel size)"),
    "slurm": ("emseg_plugins.cli.slurm", "write SLURM job-array scripts running emseg predict over block ranges"),
}


def main(argv: list[str] | None = None) -> int:
    commands = "\n".join(f"  {name:<10} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items())
    parser = ArgumentParser(
        prog="emseg", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="EM segmentation with plugins: train, inspect, predict.",
        epilog=f"commands:\n{commands}\n\n`emseg COMMAND --help` explains each.",
    )
    parser.add_argument("command", choices=list(SUBCOMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    top = parser.parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[top.command][0])
    sub = ArgumentParser(prog=f"emseg {top.command}", description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(sub)
    args = parse_intermixed(sub, top.args)  # flags may follow KEY VALUE overrides
    sys.exit(run_command(module.run, args))
