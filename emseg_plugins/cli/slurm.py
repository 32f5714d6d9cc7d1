"""emseg slurm: write SLURM job scripts that run `emseg predict` over block ranges (a job array).

Example:
  emseg slurm --config-file configs/demo.yaml --checkpoint run/checkpoints/last.ckpt \\
      --input /data/em.h5:/main --output /scratch/pred.zarr --block 64 512 512 --instances watershed \\
      --blocks-per-task 20 --partition gpu --gpus 1 --cpus 4 --mem 32G --time 04:00:00 \\
      --extra-sbatch=--account=lab --scripts-dir slurm/
  bash slurm/submit.sh

Writes to --scripts-dir:
  predict_array.sh   array task i runs `emseg predict ... --blocks START:STOP` for blocks
                     [i * N, min((i + 1) * N, TOTAL)) (i = SLURM_ARRAY_TASK_ID, N = --blocks-per-task)
  finish.sh          `emseg predict ...` without --blocks: redoes nothing that is done, stitches
                     instances across blocks and reports the store complete
  submit.sh          submits the array, then finish.sh with --dependency=afterok:<array id>
  logs/              one log per task (created by submit.sh)

The input, config and checkpoint are checked now (as `emseg predict` would), so a bad argument
fails here rather than in 1000 queued jobs. Every value taken from the arguments is quoted with
shlex.quote; the scripts pass it to `emseg` and `sbatch` literally (spaces, $, quotes, backticks).
Resource options go on sbatch's command line in submit.sh rather than in #SBATCH lines, so they
get the shell's quoting too. The array tasks write disjoint blocks of one zarr store, so they
may run in any order and be resubmitted after failures (finished blocks are kept).
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from emseg_plugins.cli.common import add_config_arguments, add_debug_argument, quiet_library_warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="weights (a .ckpt written by pytc-train)")
    parser.add_argument("--input", required=True, metavar="URI", help="volume to predict (as for emseg predict)")
    parser.add_argument("--output", required=True, metavar="OUT.zarr", help="zarr store the tasks write")
    parser.add_argument("--blocks-per-task", type=int, required=True, metavar="N", help="blocks predicted by one array task")
    parser.add_argument("--scripts-dir", required=True, metavar="DIR", help="where the scripts (and logs/) go")
    predict = parser.add_argument_group("passed to emseg predict")
    predict.add_argument("--block", type=int, nargs=3, default=[64, 512, 512], metavar=("Z", "Y", "X"), help="block size (default 64 512 512)")
    predict.add_argument("--halo", type=int, nargs=3, metavar=("Z", "Y", "X"), help="context around each block")
    predict.add_argument("--instances", choices=["cc", "watershed"], help="also label instances, stitched by finish.sh")
    predict.add_argument("--min-size", type=int, default=0, metavar="VOXELS", help="drop smaller instances")
    predict.add_argument("--dtype", choices=["uint8", "float16"], default="uint8", help="probability dtype (default uint8)")
    predict.add_argument("--masks", action="store_true", help="also write thresholded masks")
    sbatch = parser.add_argument_group("sbatch options (each becomes one quoted sbatch argument)")
    sbatch.add_argument("--partition", metavar="P", help="--partition=P")
    sbatch.add_argument("--time", metavar="T", help="--time=T, e.g. 04:00:00")
    sbatch.add_argument("--gpus", metavar="G", help="--gpus=G for the array tasks, e.g. 1 or a100:1")
    sbatch.add_argument("--cpus", type=int, metavar="C", help="--cpus-per-task=C")
    sbatch.add_argument("--mem", metavar="M", help="--mem=M, e.g. 32G")
    sbatch.add_argument("--max-running", type=int, metavar="K", help="at most K array tasks at once (--array=...%%K)")
    sbatch.add_argument("--job-name", default="emseg-predict", help="job name (default emseg-predict)")
    sbatch.add_argument("--extra-sbatch", action="append", default=[], metavar="OPTION",
                        help="another sbatch option, e.g. --extra-sbatch=--account=lab (repeatable)")
    parser.add_argument("--emseg", metavar="PATH", help="emseg executable the jobs run (default: this environment's)")
    parser.add_argument("--overwrite", action="store_true", help="replace scripts already in --scripts-dir")
    add_debug_argument(parser)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from emseg_plugins.cli.predict import build_plan  # lazy: reads the checkpoint with torch
    from emseg_plugins.inference.deploy import check_plan
    from emseg_plugins.inference.slurm import Sbatch, check_job, check_scripts_dir, default_emseg, predict_argv, write_scripts

    quiet_library_warnings()
    sbatch = Sbatch(args.partition, args.time, args.gpus, args.cpus, args.mem, args.max_running, args.job_name, tuple(args.extra_sbatch))
    check_job(args.blocks_per_task, sbatch)
    scripts = Path(args.scripts_dir).resolve()
    check_scripts_dir(scripts, args.overwrite)
    # the plan `emseg predict` will make: checks config, checkpoint, input and block/halo now
    plan, cfg = build_plan(args)
    check_plan(plan, cfg)
    command = predict_argv(args.emseg or default_emseg(), args.config_file, args.config_base, args.checkpoint, args.input, args.output,
                           args.block, args.halo, args.instances, args.min_size, args.dtype, args.masks, args.opts)
    tasks = write_scripts(scripts, command, len(plan.boxes), args.blocks_per_task, sbatch)
    print(f"{scripts}: {tasks} array tasks x {args.blocks_per_task} blocks ({len(plan.boxes)} blocks of {list(plan.block)}); "
          f"submit with: bash {shlex.quote(str(scripts / 'submit.sh'))}")
    return 0
