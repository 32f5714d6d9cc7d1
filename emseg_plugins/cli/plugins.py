"""emseg plugins: every registered model, loss, dataset and config node, with distribution, version and doc.

Plugins come from the entry-point groups emseg_plugins.models / .losses / .datasets / .configs, and from
the providers (emseg_plugins.providers) under their prefix: with PyTorch Connectomics installed, its own
architectures and losses as pytc.<name>. A broken or doubly-claimed plugin is listed with its status and
reason; each provider adds one status line.

  emseg plugins                       # the listing
  emseg plugins --json                # the same, machine-readable
  emseg plugins --check               # also import every plugin, check every config node for collisions with
                                      # core keys, build every model and loss (and the selected dataset) and
                                      # check what each builder returns; exit status 2 if any is broken
  emseg plugins --check --config-file my.yaml DATASET.NAME mine    # build with these settings
"""
from __future__ import annotations

import argparse
import json
import sys

from emseg_plugins.cli.common import add_debug_argument
from emseg_plugins.config import load_config
from emseg_plugins.config.base import base_defaults
from emseg_plugins.config.loader import merge_overrides
from emseg_plugins.config.nodes import apply_config_nodes, config_nodes
from emseg_plugins.errors import PluginError
from emseg_plugins.plugin_kit import check_build
from emseg_plugins.registry import REGISTRIES, PluginRecord, providers

BUILD_KEYS = {"models": "MODEL.ARCHITECTURE", "losses": "LOSS.NAME", "datasets": "DATASET.NAME"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--check", action="store_true",
                        help="build every model and loss (and the selected dataset) and report broken plugins (exit 2)")
    parser.add_argument("--config-file", metavar="YAML", help="with --check: the config to build with (default: the defaults)")
    parser.add_argument("--config-base", metavar="YAML", help="with --check: config merged before --config-file")
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE", help="with --check: overrides, e.g. DATASET.NAME volume")
    add_debug_argument(parser)


def _row(record: PluginRecord) -> dict:
    return {"name": record.name, "distribution": record.source, "version": record.version, "target": record.target,
            "status": record.status, "problem": record.error or "; ".join(record.rivals) or None, "doc": record.doc}


def run(args: argparse.Namespace) -> int:
    listing = {group: [_row(r) for r in registry.records()] for group, registry in REGISTRIES.items()}
    nodes = {node.record.name: node for node in config_nodes()}
    for row in listing["configs"]:
        node = nodes.get(row["name"])
        row["adds"] = node.adds if node else []
        if node and node.problem:
            row["status"], row["problem"] = "collision", node.problem
    problems = [row["problem"] for rows in listing.values() for row in rows if row["status"] == "collision"]
    if args.check:
        problems += _build_checks(args, listing)
    if args.json:
        print(json.dumps(listing, indent=2))
    else:
        _print_table(listing)
    if args.check:
        broken = [p for p in problems if p]
        for problem in broken:
            print(f"error: {problem}", file=sys.stderr)
        if not broken and not args.json:
            print("all plugins load and build", file=sys.stderr)
        return 2 if broken else 0
    return 0


def _build_checks(args: argparse.Namespace, listing: dict[str, list[dict]]) -> list[str]:
    """Import failures and conflicts, then builds: every model and loss, and the config's dataset."""
    problems = [f"{group[:-1]} {row['name']!r} from distribution {row['distribution']!r}: {row['problem']}"
                for group, rows in listing.items() for row in rows if row["status"] in ("broken", "conflict")]
    if args.config_file:
        cfg = load_config(args.config_file, args.config_base, args.opts)
    else:  # the defaults without the colliding nodes, which are reported above
        cfg = base_defaults()
        apply_config_nodes(cfg, strict=False)
    if not args.config_file and args.opts:
        merge_overrides(cfg, args.opts)
    for group, key in BUILD_KEYS.items():
        registry = REGISTRIES[group]
        records = {r.name: r for r in registry.records()}
        for row in listing[group]:
            record = records[row["name"]]
            if record.status != "ok":
                continue
            provided = "." in record.name  # a provider's: another framework builds it
            if provided or (group == "datasets" and record.name != cfg.DATASET.NAME):
                row["check"] = "not built" + (" (a provider's)" if provided else " (reads data; select it to build it)")
                continue
            result = check_build(registry, record, cfg, key)
            row["check"] = result.status + (f": {result.detail}" if result.status == "skipped" else "")
            if result.status == "broken":
                row["status"], row["problem"] = "broken", result.detail
                problems.append(result.detail)
    return problems


def _print_table(listing: dict[str, list[dict]]) -> None:
    for group, rows in listing.items():
        print(f"{group}:")
        for row in rows:
            origin = f"{row['distribution']} {row['version']}".strip()
            doc = f"adds {', '.join(row['adds'])}" if group == "configs" and row.get("adds") else row["doc"]
            problem = f"  [{row['status']}: {row['problem']}]" if row["problem"] else ""
            check = f"  ({row['check']})" if row.get("check") and not row["check"].startswith("ok") else ""
            print(f"  {row['name']:<22} {origin:<28} {doc}{problem}{check}")
    for entry in providers():
        print(_provider_status(entry))


def _provider_status(entry) -> str:
    """The provider's own status line, or why it could not give one."""
    try:
        return entry.load().status()
    except PluginError as exc:
        return f"{entry.name}: unavailable: {exc}"
    except Exception as exc:  # noqa: BLE001  # a third-party provider may fail in any way
        return f"{entry.name}: unavailable: provider from distribution {entry.source!r} ({entry.target}) raised {type(exc).__name__}: {exc}"
