"""Comparison runs: every combination of a config grid trained as a normal run directory.

``--grid LOSS.NAME=dice_bce,per_class_combo DATASET.INPUT_SLICES=1,5`` gives four runs, the first
value of each key varying slowest; the first run (every key at its first value) is the baseline of
the report. Each run lives in ``<output>/runs/<name>`` (``name``: ``loss.name=dice_bce,dataset.input_slices=1``)
and is trained in its own process (``parallel`` at a time; a process per run keeps runs apart: thread
settings, Lightning's global state, a crash, and the log of everything it prints, C libraries included),
its output in ``train.log`` there. A run whose ``metrics.json`` exists and whose ``config.yaml`` equals the
resolved config is finished and skipped; an interrupted one resumes from its ``last.ckpt``.
"""
from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from yacs.config import CfgNode as CN

from emseg_plugins.config import load_config
from emseg_plugins.errors import ConfigError


@dataclass
class GridRun:
    """One combination: its grid ``settings`` (key -> value text), overrides, resolved config and directory."""

    name: str
    settings: dict[str, str]
    overrides: list[str]
    cfg: CN
    run_dir: Path
    split: str = ""  # "" = report the training run's validation metrics; else sliding-window metrics of this split
    status: str = field(default="pending")  # pending | skipped | trained | failed

    @property
    def metrics_file(self) -> Path:
        return (self.run_dir / f"predictions-{self.split}" / "metrics.json") if self.split else self.run_dir / "metrics.json"

    def finished(self) -> bool:
        config = self.run_dir / "config.yaml"
        return self.metrics_file.exists() and config.exists() and config.read_text() == self.cfg.dump()


def split_values(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``; commas inside brackets stay (``[1,64,64],[1,128,128]``)."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += (char in "[(") - (char in "])")
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    values.append(current)
    return [v.strip() for v in values]


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """``["KEY=v1,v2", ...]`` -> ``[(KEY, [v1, v2]), ...]``; :class:`ConfigError` on a malformed item."""
    grid = []
    for item in items:
        key, sep, text = item.partition("=")
        values = split_values(text)
        if not sep or not key or "" in values:
            raise ConfigError(f"--grid {item!r} must be KEY=VALUE[,VALUE...], e.g. LOSS.NAME=dice_bce,per_class_combo "
                              "(put KEY VALUE overrides before --grid)")
        if key in (k for k, _ in grid):
            raise ConfigError(f"--grid names {key} twice; give all its values in one KEY=V1,V2")
        grid.append((key, values))
    if not grid:
        raise ConfigError("--grid needs at least one KEY=V1,V2")
    return grid


def run_name(settings: dict[str, str]) -> str:
    """Directory name of a combination: ``key=value`` pairs (keys lower-case), comma-separated, path-safe."""
    text = ",".join(f"{key.lower()}={value}" for key, value in settings.items())
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


def plan_runs(
    config_file: str, config_base: str | None, opts: list[str], grid_items: list[str], output: Path,
    budget_steps: int | None = None, split: str = "",
) -> list[GridRun]:
    """Every combination's resolved, checked config (nothing is written); ConfigError on any bad one."""
    from emseg_plugins.engine.module import SegmentationModule

    if budget_steps is not None and budget_steps < 1:
        raise ConfigError(f"--budget-steps {budget_steps} must be at least 1")
    grid = parse_grid(grid_items)
    keys = [key for key, _ in grid]
    runs, checked = [], {}
    for values in itertools.product(*(v for _, v in grid)):
        settings = dict(zip(keys, values))
        name = run_name(settings)
        run_dir = output / "runs" / name
        overrides = [*opts, *itertools.chain.from_iterable(settings.items())]
        if budget_steps is not None:
            overrides += ["SOLVER.ITERATION_TOTAL", str(budget_steps)]
        overrides += ["DATASET.OUTPUT_PATH", str(run_dir)]
        cfg = load_config(config_file, config_base, overrides)
        if budget_steps is not None and cfg.SOLVER.ITERATION_VAL > budget_steps:  # at least one validation per run
            overrides[-2:-2] = ["SOLVER.ITERATION_VAL", str(budget_steps)]
            cfg = load_config(config_file, config_base, overrides)
        plugins = (cfg.MODEL.ARCHITECTURE, cfg.LOSS.NAME, tuple(cfg.LOSS.EXTRA), cfg.DATASET.NAME)
        if plugins not in checked:  # model/loss/dataset names and their combination, before any run starts
            from emseg_plugins.registry import DATASETS

            DATASETS.get(cfg.DATASET.NAME)
            checked[plugins] = SegmentationModule(cfg.dump()) is not None
        runs.append(GridRun(name, settings, overrides, cfg, run_dir, split))
    return runs


def jobs(run: GridRun) -> list[tuple[list[str], bool]]:
    """The (overrides, inference) of a run's processes: training, then inference on ``run.split`` if set."""
    steps = [(run.overrides, False)]
    if run.split:
        steps.append(([*run.overrides, "INFERENCE.SPLIT", run.split, "INFERENCE.OUTPUT_NAME", f"predictions-{run.split}"], True))
    return steps


def run_job(log: str, threads: int | None, config_file: str, config_base: str | None, overrides: list[str], inference: bool) -> None:
    """Body of a run's process: ``pytc-train [--inference]`` as a function call, everything printed appended to ``log``.

    Exit status 0, 2 after a one-line user error, 1 after a crash (with its traceback in the log).
    """
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # before torch is imported in this process
    with open(log, "a") as stream:
        for fd in (1, 2):
            os.dup2(stream.fileno(), fd)
    from emseg_plugins.utils.commandline import plain_plugin_warnings, quiet_library_warnings, run_command

    plain_plugin_warnings()
    quiet_library_warnings()
    args = argparse.Namespace(config_file=config_file, config_base=config_base, opts=overrides, inference=inference)
    sys.exit(run_command(_train_or_infer, args))


def _train_or_infer(args: argparse.Namespace) -> None:
    from emseg_plugins.engine.run import train
    from emseg_plugins.inference.predictor import infer

    cfg = load_config(args.config_file, args.config_base, args.opts)
    (infer if args.inference else train)(cfg)


def execute(runs: list[GridRun], config_file: str, config_base: str | None, parallel: int = 1, echo=print) -> None:
    """Train every unfinished run, ``parallel`` processes at a time; sets each run's ``status``."""
    if parallel < 1:
        raise ConfigError(f"--parallel {parallel} must be at least 1")
    threads = max(1, (os.cpu_count() or 1) // parallel) if parallel > 1 else None  # share the cores
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, as a command would be
    todo = []
    for run in runs:
        if run.finished():
            run.status = "skipped"
            echo(f"{run.name}: finished before, skipped")
        else:
            todo.append(run)
    active: list[tuple[GridRun, multiprocessing.process.BaseProcess, list[tuple[list[str], bool]]]] = []

    def start(run: GridRun, steps: list[tuple[list[str], bool]]) -> None:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        overrides, inference = steps[0]
        process = spawn.Process(target=run_job, args=(str(run.run_dir / "train.log"), threads, str(config_file),
                                                      str(config_base) if config_base else None, overrides, inference))
        process.start()
        active.append((run, process, steps[1:]))

    queue = list(todo)
    while queue or active:
        while queue and len(active) < parallel:
            run = queue.pop(0)
            echo(f"{run.name}: training (log: {run.run_dir / 'train.log'})")
            start(run, jobs(run))
        time.sleep(0.2)
        for entry in list(active):
            run, process, rest = entry
            if process.is_alive():
                continue
            process.join()
            active.remove(entry)
            if process.exitcode != 0:
                run.status = "failed"
                echo(f"{run.name}: failed (exit status {process.exitcode}); see {run.run_dir / 'train.log'}")
            elif rest:
                echo(f"{run.name}: predicting the {run.split!r} split")
                start(run, rest)
            else:
                run.status = "trained"
                echo(f"{run.name}: done")
