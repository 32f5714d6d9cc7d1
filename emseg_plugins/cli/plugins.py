"""emseg plugins: every registered model, loss, dataset and config node, with its distribution.

Plugins come from the entry-point groups emseg_plugins.models / .losses / .datasets / .configs;
a broken or doubly-claimed plugin is listed with its status and reason.
"""
from __future__ import annotations

import argparse
import json

from emseg_plugins.cli.common import add_debug_argument
from emseg_plugins.registry import REGISTRIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_debug_argument(parser)


def run(args: argparse.Namespace) -> int:
    listing = {
        group: [{"name": r.name, "distribution": r.source, "target": r.target, "status": r.status,
                 "problem": r.error or "; ".join(r.rivals) or None} for r in registry.records()]
        for group, registry in REGISTRIES.items()
    }
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for group, rows in listing.items():
        print(f"{group}:")
        for row in rows:
            problem = f"  [{row['status']}: {row['problem']}]" if row["problem"] else ""
            print(f"  {row['name']:<20} {row['distribution']:<24} {row['target']}{problem}")
    return 0
