"""emseg new-plugin NAME: scaffold a plugin package that passes its own tests out of the box.

  emseg new-plugin mito_net                 # writes ./emseg-mito-net/
  cd emseg-mito-net && pip install -e . && pytest tests

The package has a setup.py declaring a model (NAME), a loss (NAME_loss), a dataset (NAME_data) and a
config node (MODEL.NAME, DATASET.NAME) as entry points, their module, a config that selects all three,
and tests of the schemas and of a few training steps. See docs/plugins.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from emseg_plugins.cli.common import add_debug_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="plugin name: lowercase letters, digits and _ (e.g. mito_net)")
    parser.add_argument("--output", metavar="DIR", help="where to write the package (default: ./emseg-NAME)")
    add_debug_argument(parser)


def run(args: argparse.Namespace) -> int:
    from emseg_plugins.errors import ConfigError
    from emseg_plugins.registry import CONFIGS, DATASETS, LOSSES, MODELS
    from emseg_plugins.scaffold import names, render

    spelled = names(args.name)
    name = spelled["name"]
    for registry, taken in ((MODELS, name), (LOSSES, f"{name}_loss"), (DATASETS, f"{name}_data"), (CONFIGS, name)):
        if taken in registry:
            raise ConfigError(f"new-plugin: {registry.kind} {taken!r} is already installed; choose another name")
    destination = Path(args.output) if args.output else Path(spelled["distribution"])
    files = render(args.name, destination)
    print(f"wrote {spelled['distribution']} ({len(files)} files) in {destination}:")
    for path in files:
        print(f"  {path}")
    print(f"next: pip install -e {destination} && pytest {destination / 'tests'}")
    return 0
