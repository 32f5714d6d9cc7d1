"""emseg predict: predict a volume of any size in blocks, resumable, locally or on Dask.

Examples:
  emseg predict --config-file configs/demo.yaml --checkpoint outputs/demo/checkpoints/last.ckpt \\
      --input em.h5:/main --output pred.zarr
  emseg predict ... --input precomputed://file:///data/em --output pred.zarr --instances cc --min-size 50
  emseg predict ... --scheduler dask --workers 4            # a local Dask cluster of 4 processes
  emseg predict ... --scheduler tcp://head-node:8786        # a running Dask scheduler
  emseg predict ... --blocks 0:100                          # only blocks 0-99 (one SLURM array task)
  emseg predict ... --dtype float16 --masks                 # float16 probabilities and thresholded masks
  emseg predict ... INFERENCE.AUG_MODE mean INFERENCE.AUG_NUM 8   # test-time augmentation (flips, transposes)

Inputs: .h5/.zarr (with :dataset), .tif stacks, PNG slice directories, precomputed layers
(file://, gs://, s3://). The output zarr holds `probabilities` (K x Z x Y x X; uint8 with 255 = 1.0,
or float16 with --dtype float16), with --masks also `masks` (uint8, 1 where p >= INFERENCE.THRESHOLD)
and with --instances also `instances` (uint64, ids consistent across blocks). Run the same command
again after a crash: finished blocks are kept, the rest is done. The sliding window inside each
block follows the config's INFERENCE node (INPUT_SIZE, OVERLAP, BLENDING, SAMPLES_PER_BATCH).
"""
from __future__ import annotations

import argparse

from emseg_plugins.cli.common import add_config_arguments, add_debug_argument, quiet_library_warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="weights (a .ckpt written by pytc-train)")
    parser.add_argument("--input", required=True, metavar="URI", help="volume to predict (see above)")
    parser.add_argument("--output", required=True, metavar="OUT.zarr", help="zarr store to write (resumed if it exists)")
    parser.add_argument("--block", type=int, nargs=3, default=[64, 512, 512], metavar=("Z", "Y", "X"),
                        help="block size in voxels; peak memory grows with it (default 64 512 512, clipped to the volume)")
    parser.add_argument("--halo", type=int, nargs=3, metavar=("Z", "Y", "X"),
                        help="context read around each block (default: a quarter window; 2.5D neighbours in Z for 2D models)")
    parser.add_argument("--instances", metavar="DECODER",
                        help="also decode instances of INFERENCE.INSTANCE_CLASS (default: first class) with a decoder: cc, "
                             "watershed, bc_watershed, bcd_watershed, mutex_watershed (learned maps), or a plugin's; "
                             "parameters in INFERENCE.DECODE; blockwise, equal to a whole-volume decode when --halo covers each object")
    parser.add_argument("--dtype", choices=["uint8", "float16"], default="uint8",
                        help="probabilities as uint8 (round(255 p), default) or float16 (p, twice the bytes)")
    parser.add_argument("--masks", action="store_true", help="also write `masks`: uint8, 1 where p >= INFERENCE.THRESHOLD")
    parser.add_argument("--min-size", type=int, default=0, metavar="VOXELS", help="drop smaller instances (overrides INFERENCE.DECODE.MIN_SIZE)")
    parser.add_argument("--scheduler", default="local", metavar="local|dask|tcp://HOST:PORT",
                        help="where blocks run: this process (default), a local Dask cluster, or a Dask scheduler")
    parser.add_argument("--workers", type=int, default=2, help="processes of the local Dask cluster (default 2)")
    parser.add_argument("--blocks", metavar="START:STOP", help="run only these block indices (for job arrays)")
    parser.add_argument("--overwrite", action="store_true", help="start again if OUT was begun with other settings")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_debug_argument(parser)
    add_config_arguments(parser)


def parse_blocks(text: str | None) -> range | None:
    from emseg_plugins.errors import ConfigError

    if text is None:
        return None
    try:
        start, stop = (int(part) for part in text.split(":"))
    except ValueError:
        raise ConfigError(f"--blocks {text!r} must be START:STOP block indices, e.g. 0:100") from None
    if not 0 <= start < stop:
        raise ConfigError(f"--blocks {text!r} must satisfy 0 <= START < STOP")
    return range(start, stop)


def build_plan(args: argparse.Namespace):
    """(plan, config) from the arguments; reads only the input's shape and the checkpoint."""
    from emseg_plugins.config import load_config
    from emseg_plugins.engine.checkpoint import check_compatible, load_checkpoint
    from emseg_plugins.inference.deploy import check_block_halo, default_halo
    from emseg_plugins.inference.plan import Plan, sha256_of
    from emseg_plugins.inference.sources import open_source

    cfg = load_config(args.config_file, args.config_base, args.opts)
    ckpt = load_checkpoint(args.checkpoint)
    check_compatible(ckpt, cfg, args.checkpoint)
    with open_source(args.input) as source:
        shape = tuple(int(s) for s in source.shape)
    halo = tuple(args.halo) if args.halo else default_halo(cfg)
    check_block_halo(args.block, halo)
    block = tuple(min(b, s) for b, s in zip(args.block, shape))
    plan = Plan(
        input=args.input, output=args.output, checkpoint=str(args.checkpoint), checkpoint_sha256=sha256_of(args.checkpoint),
        cfg_yaml=cfg.dump(), shape=shape, block=block, halo=halo,
        classes=tuple(cfg.DATASET.CLASSES), instances=args.instances or "", min_size=args.min_size,
        dtype=args.dtype, masks=args.masks,
    )
    return plan, cfg


def run(args: argparse.Namespace) -> int:
    from emseg_plugins.inference.deploy import deploy

    quiet_library_warnings()
    blocks = parse_blocks(args.blocks)
    plan, cfg = build_plan(args)
    complete = deploy(plan, cfg, args.scheduler, args.workers, args.overwrite, blocks, progress=not args.no_progress)
    state = "complete" if complete else "partial (run without --blocks, or the other array tasks, to finish)"
    print(f"{plan.output}: {len(plan.boxes)} blocks of {list(plan.block)}, {state}")
    return 0
