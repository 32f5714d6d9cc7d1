"""What every command shares: config arguments, and user errors as one line with exit status 2."""
from __future__ import annotations

import argparse

from emseg_plugins.utils.commandline import (  # noqa: F401  # re-exported: the commands import them from here
    EXIT_USER_ERROR,
    ArgumentParser,
    plain_plugin_warnings,
    quiet_library_warnings,
    run_command,
)

plain_plugin_warnings()  # plugin warnings as one plain line in every command


def add_config_arguments(parser: argparse.ArgumentParser, required: bool = True, purpose: str = "run config (may name _BASE_ files)",
                         overrides: str = "overrides, e.g. SOLVER.BASE_LR 1e-4 DATASET.OUTPUT_PATH outputs/x") -> None:
    """``--config-file``, ``--config-base`` and trailing ``KEY VALUE`` overrides (as PyTC's main.py).

    ``purpose``: what the command reads the config for (``--config-file``'s help); ``overrides``: their help.
    """
    parser.add_argument("--config-file", required=required, metavar="YAML", help=purpose)
    parser.add_argument("--config-base", metavar="YAML", help="config merged before --config-file (PyTC style)")
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE", help=overrides)


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")


def parse_intermixed(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_intermixed_args(argv)`` (flags may follow KEY VALUE overrides), also for a parser
    with subcommands, which argparse refuses: the first word that names one picks it, and its own parser
    parses every other word (flags before the subcommand included)."""
    commands = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if commands is None:
        return parser.parse_intermixed_args(argv)
    name = next((word for word in argv if word in commands.choices), None)
    if name not in commands.choices:
        return parser.parse_args(argv)  # argparse's own one-line error: missing or unknown subcommand (or --help)
    at = argv.index(name)
    namespace = argparse.Namespace(**{commands.dest: name})
    return commands.choices[name].parse_intermixed_args(argv[:at] + argv[at + 1:], namespace)
