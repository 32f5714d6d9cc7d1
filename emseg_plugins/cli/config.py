"""emseg config: print the fully resolved config of a run, or every valid key with its default.

  emseg config --config-file configs/demo.yaml SOLVER.BASE_LR 1e-4   # resolved config
  emseg config --keys                                                # all keys with defaults
"""
from __future__ import annotations

import argparse

from emseg_plugins.cli.common import add_config_arguments, add_debug_argument
from emseg_plugins.config import get_cfg_defaults, load_config
from emseg_plugins.config.keys import all_keys, lookup


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keys", action="store_true", help="list every valid key with its default value")
    add_config_arguments(parser, required=False, purpose="config to resolve", overrides="overrides")
    add_debug_argument(parser)


def run(args: argparse.Namespace) -> int:
    if args.keys:
        defaults = get_cfg_defaults()
        for key in all_keys(defaults):
            print(f"{key} = {lookup(defaults, key)!r}")
        return 0
    print(load_config(args.config_file, args.config_base, args.opts).dump(), end="")
    return 0
