"""emseg pytc: run PyTorch Connectomics' own trainer with every emseg plugin installed in its registries.

Everything after `--` goes to PyTC unchanged, in the syntax of the PyTC line installed:

  # PyTC v1.x (yacs): --config-file, KEY VALUE overrides
  emseg pytc -- --config-base configs/Lucchi-Mitochondria.yaml --config-file mine.yaml SYSTEM.NUM_GPUS 0
  emseg pytc -- --config-file mine.yaml MODEL.ARCHITECTURE unetv3 MODEL.LOSS_OPTION "[['ohem']]"
  # PyTC v2.x (Hydra/OmegaConf): --config, key=value overrides
  emseg pytc -- --config mine.yaml model.arch.type=emseg.unetv3 system.num_gpus=0

Every emseg model is registered in PyTC as emseg.<name>, and as <name> where PyTC has no model of that name
(a name PyTC already uses is reported in one warning line). PyTC v1.x: emseg losses likewise
(MODEL.LOSS_OPTION), and emseg config nodes (e.g. MODEL.UNETV3) are valid keys. PyTC v2.x: emseg models are
registered architectures (model.arch.type). PyTC is not on the package registry; install it from its repository.
"""
from __future__ import annotations

import argparse
from functools import partial


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pytc_args", nargs="*", metavar="-- PYTC_ARGS", help="arguments of PyTC's scripts/main.py")
    # PyTC's arguments pass through untouched (argparse cannot take unknown options as positionals).
    parser.parse_intermixed_args = partial(_pass_through, parser)  # type: ignore[method-assign]


def _pass_through(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    argv = list(argv or [])
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if argv in (["-h"], ["--help"]):
        parser.print_help()
        parser.exit()
    return argparse.Namespace(pytc_args=argv, debug=False)


def run(args: argparse.Namespace) -> int:
    """Find PyTC, install our plugins into it, run its trainer; the exit status."""
    from emseg_plugins.bridges.pytc.detect import require  # imports torch and PyTC: only for this subcommand

    found = require()
    report = found.install()
    print(f"emseg pytc: {found.describe()}; added models: {', '.join(report['models']) or 'none'}; "
          f"losses: {', '.join(report['losses']) or 'none'} (each also as emseg.<name>)", flush=True)
    for line in report["skipped"]:
        print(f"emseg pytc: not added: {line}", flush=True)
    return found.run(args.pytc_args)
