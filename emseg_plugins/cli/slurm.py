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
import sys
from pathlib import Path

from emseg_plugins.cli.common import add_config_arguments, add_debug_argument
from emseg_plugins.errors import ConfigError, DataError

SCRIPTS = ("predict_array.sh", "finish.sh", "submit.sh")


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


def default_emseg() -> str:
    beside = Path(sys.executable).parent / "emseg"
    return str(beside if beside.exists() else "emseg")


def absolute_uri(uri: str) -> str:
    """Local paths made absolute (jobs start in another directory); cloud URIs unchanged."""
    from emseg_plugins.datasets.volume_io import split_uri
    from emseg_plugins.inference.sources import CLOUD_PREFIXES

    if uri.startswith(CLOUD_PREFIXES):
        return uri
    path, key = split_uri(uri)
    return f"{path.resolve()}:{key}" if key else str(path.resolve())


def predict_argv(args: argparse.Namespace, emseg: str) -> list[str]:
    """The `emseg predict` command of every task (without --blocks), as a list of literal arguments."""
    argv = [emseg, "predict", "--config-file", str(Path(args.config_file).resolve())]
    if args.config_base:
        argv += ["--config-base", str(Path(args.config_base).resolve())]
    argv += ["--checkpoint", str(Path(args.checkpoint).resolve()), "--input", absolute_uri(args.input),
             "--output", str(Path(args.output).resolve()), "--block", *map(str, args.block)]
    if args.halo:
        argv += ["--halo", *map(str, args.halo)]
    if args.instances:
        argv += ["--instances", args.instances, "--min-size", str(args.min_size)]
    argv += ["--dtype", args.dtype, *(["--masks"] if args.masks else []), "--no-progress", *args.opts]
    return argv


def sbatch_options(args: argparse.Namespace, gpus: bool) -> list[str]:
    options = [f"--{name}={value}" for name, value in (("partition", args.partition), ("time", args.time), ("cpus-per-task", args.cpus),
                                                      ("mem", args.mem), ("gpus", args.gpus if gpus else None)) if value is not None]
    return options + list(args.extra_sbatch)


def quoted(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def array_script(command: list[str], blocks_per_task: int, total: int) -> str:
    return f"""#!/bin/bash
# Written by `emseg slurm`: SLURM array task i predicts blocks [i*{blocks_per_task}, min((i+1)*{blocks_per_task}, {total})).
# Submit with submit.sh next to this file. Rerunning a task only does its blocks that are not finished.
set -euo pipefail
: "${{SLURM_ARRAY_TASK_ID:?run this as a SLURM array task (see submit.sh)}}"
blocks_per_task={blocks_per_task}
total_blocks={total}
start=$(( SLURM_ARRAY_TASK_ID * blocks_per_task ))
stop=$(( start + blocks_per_task ))
if (( stop > total_blocks )); then stop=$total_blocks; fi
exec {quoted(command)} --blocks "${{start}}:${{stop}}"
"""


def finish_script(command: list[str]) -> str:
    return f"""#!/bin/bash
# Written by `emseg slurm`: after every array task succeeded, complete the store (any missing block
# is predicted, then instances are stitched across blocks). Submitted by submit.sh.
set -euo pipefail
exec {quoted(command)}
"""


def submit_script(args: argparse.Namespace, tasks: int, scripts: Path) -> str:
    logs = scripts / "logs"
    array = f"0-{tasks - 1}" + (f"%{args.max_running}" if args.max_running else "")
    first = ["sbatch", "--parsable", f"--array={array}", f"--job-name={args.job_name}", f"--output={logs}/predict_%A_%a.log",
             *sbatch_options(args, gpus=True), str(scripts / "predict_array.sh")]
    final = ["sbatch", "--parsable", f"--job-name={args.job_name}-finish", f"--output={logs}/finish_%j.log",
             *sbatch_options(args, gpus=False)]
    return f"""#!/bin/bash
# Written by `emseg slurm`: submit {tasks} array tasks, then finish.sh once they have all succeeded.
set -euo pipefail
mkdir -p {shlex.quote(str(logs))}
array_id=$({quoted(first)})
array_id=${{array_id%%;*}}  # --parsable prints "id" or "id;cluster"
final_id=$({quoted(final)} --dependency="afterok:${{array_id}}" {shlex.quote(str(scripts / "finish.sh"))})
final_id=${{final_id%%;*}}
echo "submitted array job ${{array_id}} ({tasks} tasks) and finish job ${{final_id}} (after the array succeeds)"
"""


def check_arguments(args: argparse.Namespace) -> None:
    if args.blocks_per_task < 1:
        raise ConfigError(f"--blocks-per-task {args.blocks_per_task} must be at least 1")
    for name in ("cpus", "max_running"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} {value} must be at least 1")
    for option in args.extra_sbatch:
        if not option.startswith("-"):
            raise ConfigError(f"--extra-sbatch {option!r} must be an sbatch option such as --account=lab (write it as --extra-sbatch=--account=lab)")
    for name in ("partition", "time", "gpus", "mem", "job_name", "extra_sbatch"):
        values = getattr(args, name)
        for value in values if isinstance(values, list) else [values]:
            if value is not None and ("\n" in value or "\r" in value or "\0" in value):
                raise ConfigError(f"--{name.replace('_', '-')} {value!r} must be on one line")


def run(args: argparse.Namespace) -> int:
    from emseg_plugins.cli.common import quiet_library_warnings
    from emseg_plugins.cli.predict import build_plan
    from emseg_plugins.inference.deploy import check_plan
    from emseg_plugins.utils.atomic import atomic_write_text

    quiet_library_warnings()
    check_arguments(args)
    scripts = Path(args.scripts_dir).resolve()
    existing = [name for name in SCRIPTS if (scripts / name).exists()]
    if existing and not args.overwrite:
        raise DataError(f"{scripts}: already holds {existing[0]}; pass --overwrite to replace the scripts, or choose another --scripts-dir")
    # the plan `emseg predict` will make: checks config, checkpoint, input and block/halo now
    plan, cfg = build_plan(args)
    check_plan(plan, cfg)
    total = len(plan.boxes)
    tasks = -(-total // args.blocks_per_task)
    command = predict_argv(args, args.emseg or default_emseg())
    contents = {"predict_array.sh": array_script(command, args.blocks_per_task, total), "finish.sh": finish_script(command),
                "submit.sh": submit_script(args, tasks, scripts)}
    for name, text in contents.items():
        atomic_write_text(scripts / name, text)
        (scripts / name).chmod(0o755)
    print(f"{scripts}: {tasks} array tasks x {args.blocks_per_task} blocks ({total} blocks of {list(plan.block)}); "
          f"submit with: bash {shlex.quote(str(scripts / 'submit.sh'))}")
    return 0
