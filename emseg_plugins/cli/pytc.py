"""emseg pytc: run PyTorch Connectomics' own trainer with every emseg plugin installed in its registries.

Everything after `--` goes to PyTC unchanged, exactly as to PyTC's scripts/main.py:

  emseg pytc -- --config-base configs/Lucchi-Mitochondria.yaml --config-file mine.yaml SYSTEM.NUM_GPUS 0
  emseg pytc -- --config-file mine.yaml MODEL.ARCHITECTURE unetv3 MODEL.LOSS_OPTION "[['ohem']]"

PyTC v1.x: emseg models and losses are selectable by name (MODEL.ARCHITECTURE, MODEL.LOSS_OPTION) and
emseg config nodes (e.g. MODEL.UNETV3) are valid keys. PyTC v2.x: emseg models are registered
architectures (model.arch.type). PyTC is not on the package registry; install it from its repository.
"""
from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from emseg_plugins.errors import ConfigError, PluginError


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
    from emseg_plugins import pytc

    found = pytc.require()
    report = pytc.install(found)
    print(f"emseg pytc: {found.describe()}; added models: {', '.join(report['models']) or 'none'}; "
          f"losses: {', '.join(report['losses']) or 'none'}", flush=True)
    for line in report["skipped"]:
        print(f"emseg pytc: not added: {line}", flush=True)
    if found.line == "v1":
        return _run_v1(found, args.pytc_args)
    return _run_v2(args.pytc_args)


def _run_v1(found, argv: list[str]) -> int:
    """PyTC v1's scripts/main.py, with load_cfg(..., add_cfg_func=our config nodes)."""
    import os

    import torch
    from connectomics.engine import Trainer
    from connectomics.utils.system import get_args, init_devices

    from emseg_plugins.pytc import add_cfg_func

    sys.argv = ["emseg pytc", *argv]
    args = get_args()
    if not args.config_file:
        raise ConfigError("emseg pytc: PyTC needs --config-file YAML (after `--`)")
    try:
        cfg = found.config.load_cfg(args, add_cfg_func=add_cfg_func)
    except PluginError:
        raise
    except (KeyError, FileNotFoundError, AssertionError, ValueError) as exc:  # yacs: unknown key / bad value / missing file
        raise ConfigError(f"PyTC config ({args.config_file}): {type(exc).__name__}: {exc}") from None
    device = init_devices(args, cfg)
    if args.local_rank in (0, None):
        print("PyTorch: ", torch.__version__)
        print(cfg)
        if not os.path.exists(cfg.DATASET.OUTPUT_PATH):
            print("Output directory: ", cfg.DATASET.OUTPUT_PATH)
            os.makedirs(cfg.DATASET.OUTPUT_PATH)
            found.config.save_all_cfg(cfg, cfg.DATASET.OUTPUT_PATH)
    mode = "test" if args.inference else "train"
    trainer = Trainer(cfg, device, mode, rank=args.local_rank, checkpoint=args.checkpoint)
    if cfg.DATASET.DO_CHUNK_TITLE == 0:
        test_func = trainer.test_singly if cfg.INFERENCE.DO_SINGLY else trainer.test
        test_func() if args.inference else trainer.train()
    else:
        trainer.run_chunk(mode)
    print(f"Rank: {args.local_rank}. Device: {device}. Process is finished!")
    return 0


def _run_v2(argv: list[str]) -> int:
    """PyTC v2's scripts/main.py (connectomics.runtime), our models registered as architectures."""
    from emseg_plugins.pytc import _find

    if _find("connectomics.runtime.cli") is None or _find("connectomics.runtime.dispatch") is None:
        raise PluginError("this PyTorch Connectomics v2 release has no connectomics.runtime entry point; run its "
                          "scripts/main.py from Python after `from emseg_plugins.pytc import install; install()`")
    from connectomics.runtime.cli import parse_args, setup_config
    from connectomics.runtime.dispatch import dispatch_runtime, prepare_cli_args

    sys.argv = ["emseg pytc", *argv]
    args = parse_args()
    prepare_cli_args(args, Path.cwd())
    dispatch_runtime(args, setup_config(args))
    return 0
