"""SLURM job scripts that run ``emseg predict`` over block ranges of one deploy (a job array).

``write_scripts(scripts_dir, command, total_blocks, blocks_per_task, sbatch)`` writes::

    predict_array.sh   array task i runs COMMAND --blocks START:STOP for blocks
                       [i * N, min((i + 1) * N, TOTAL)) (i = SLURM_ARRAY_TASK_ID, N = blocks_per_task)
    finish.sh          COMMAND without --blocks: redoes nothing that is done, stitches instances
    submit.sh          submits the array, then finish.sh with --dependency=afterok:<array id>

Every value is quoted with shlex.quote, so the scripts pass it to ``emseg`` and ``sbatch`` literally
(spaces, $, quotes, backticks). Resource options go on sbatch's command line in submit.sh rather than
in #SBATCH lines, so they get the shell's quoting too.
"""
from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emseg_plugins.datasets.volume_io import split_uri
from emseg_plugins.errors import ConfigError, DataError
from emseg_plugins.inference.sources import CLOUD_PREFIXES
from emseg_plugins.utils.atomic import atomic_write_text

SCRIPTS = ("predict_array.sh", "finish.sh", "submit.sh")


@dataclass(frozen=True)
class Sbatch:
    """sbatch resources; each set one becomes one quoted sbatch argument (``gpus`` only for the array tasks)."""

    partition: str | None = None
    time: str | None = None  # e.g. 04:00:00
    gpus: str | None = None  # e.g. 1 or a100:1
    cpus: int | None = None  # --cpus-per-task
    mem: str | None = None  # e.g. 32G
    max_running: int | None = None  # at most this many array tasks at once
    job_name: str = "emseg-predict"
    extra: Sequence[str] = field(default_factory=tuple)  # more sbatch options, e.g. --account=lab

    def options(self, gpus: bool) -> list[str]:
        named = (("partition", self.partition), ("time", self.time), ("cpus-per-task", self.cpus), ("mem", self.mem),
                 ("gpus", self.gpus if gpus else None))
        return [f"--{name}={value}" for name, value in named if value is not None] + list(self.extra)

    def check(self) -> None:
        """:class:`ConfigError` (naming the command-line flag) for values sbatch or the scripts cannot take."""
        for name in ("cpus", "max_running"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {value} must be at least 1")
        for option in self.extra:
            if not option.startswith("-"):
                raise ConfigError(f"--extra-sbatch {option!r} must be an sbatch option such as --account=lab (write it as --extra-sbatch=--account=lab)")
        for name in ("partition", "time", "gpus", "mem", "job_name", "extra"):
            values = getattr(self, name)
            for value in values if isinstance(values, (list, tuple)) else [values]:
                if value is not None and ("\n" in value or "\r" in value or "\0" in value):
                    flag = "extra-sbatch" if name == "extra" else name.replace("_", "-")
                    raise ConfigError(f"--{flag} {value!r} must be on one line")


def default_emseg() -> str:
    """The ``emseg`` beside this interpreter, else ``emseg`` on the jobs' PATH."""
    beside = Path(sys.executable).parent / "emseg"
    return str(beside if beside.exists() else "emseg")


def absolute_uri(uri: str) -> str:
    """Local paths made absolute (jobs start in another directory); cloud URIs unchanged."""
    if uri.startswith(CLOUD_PREFIXES):
        return uri
    path, key = split_uri(uri)
    return f"{path.resolve()}:{key}" if key else str(path.resolve())


def predict_argv(emseg: str, config_file: str, config_base: str | None, checkpoint: str, input_uri: str, output: str,
                 block: Sequence[int], halo: Sequence[int] | None = None, instances: str | None = None, min_size: int = 0,
                 dtype: str = "uint8", masks: bool = False, overrides: Sequence[str] = ()) -> list[str]:
    """The ``emseg predict`` command of every task (without --blocks), as a list of literal arguments."""
    argv = [emseg, "predict", "--config-file", str(Path(config_file).resolve())]
    if config_base:
        argv += ["--config-base", str(Path(config_base).resolve())]
    argv += ["--checkpoint", str(Path(checkpoint).resolve()), "--input", absolute_uri(input_uri),
             "--output", str(Path(output).resolve()), "--block", *map(str, block)]
    if halo:
        argv += ["--halo", *map(str, halo)]
    if instances:
        argv += ["--instances", instances, "--min-size", str(min_size)]
    return argv + ["--dtype", dtype, *(["--masks"] if masks else []), "--no-progress", *overrides]


def quoted(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def array_script(command: Sequence[str], blocks_per_task: int, total: int) -> str:
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


def finish_script(command: Sequence[str]) -> str:
    return f"""#!/bin/bash
# Written by `emseg slurm`: after every array task succeeded, complete the store (any missing block
# is predicted, then instances are stitched across blocks). Submitted by submit.sh.
set -euo pipefail
exec {quoted(command)}
"""


def submit_script(sbatch: Sbatch, tasks: int, scripts: Path) -> str:
    logs = scripts / "logs"
    array = f"0-{tasks - 1}" + (f"%{sbatch.max_running}" if sbatch.max_running else "")
    first = ["sbatch", "--parsable", f"--array={array}", f"--job-name={sbatch.job_name}", f"--output={logs}/predict_%A_%a.log",
             *sbatch.options(gpus=True), str(scripts / "predict_array.sh")]
    final = ["sbatch", "--parsable", f"--job-name={sbatch.job_name}-finish", f"--output={logs}/finish_%j.log",
             *sbatch.options(gpus=False)]
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


def check_scripts_dir(scripts: Path, overwrite: bool) -> None:
    """:class:`DataError` when ``scripts`` already holds scripts and ``overwrite`` is off."""
    existing = [name for name in SCRIPTS if (scripts / name).exists()]
    if existing and not overwrite:
        raise DataError(f"{scripts}: already holds {existing[0]}; pass --overwrite to replace the scripts, or choose another --scripts-dir")


def check_job(blocks_per_task: int, sbatch: Sbatch) -> None:
    """:class:`ConfigError` unless ``blocks_per_task`` >= 1 and ``sbatch`` is usable."""
    if blocks_per_task < 1:
        raise ConfigError(f"--blocks-per-task {blocks_per_task} must be at least 1")
    sbatch.check()


def write_scripts(scripts: Path, command: Sequence[str], total: int, blocks_per_task: int, sbatch: Sbatch) -> int:
    """Write the three scripts (executable) under ``scripts``; returns the number of array tasks (blocks_per_task >= 1)."""
    tasks = -(-total // blocks_per_task)
    contents = {"predict_array.sh": array_script(command, blocks_per_task, total), "finish.sh": finish_script(command),
                "submit.sh": submit_script(sbatch, tasks, scripts)}
    for name, text in contents.items():
        atomic_write_text(scripts / name, text)
        (scripts / name).chmod(0o755)
    return tasks
