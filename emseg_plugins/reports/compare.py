"""Comparison runs: every combination of a config grid trained as a normal run directory.

``--grid LOSS.NAME=dice_bce,per_class_combo DATASET.INPUT_SLICES=1,5`` gives four runs, the first
value of each key varying slowest; the first run (every key at its first value) is the baseline of
the report. Each run lives in ``<output>/runs/<name>`` (``name``: ``loss.name=dice_bce,dataset.input_slices=1``)
and is trained by ``pytc-train`` in its own process (``parallel`` at a time), its output in
``train.log`` there. A run whose ``metrics.json`` exists and whose ``config.yaml`` equals the
resolved config is finished and skipped; an interrupted one resumes from its ``last.ckpt``.
"""
from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from yacs.config import CfgNode as CN

from emseg_plugins.config import load_config
from emseg_plugins.errors import ConfigError

TRAIN = "import sys; from emseg_plugins.cli.train import main; main(sys.argv[1:])"  # pytc-train in this interpreter


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


def train_commands(run: GridRun, config_file: str, config_base: str | None) -> list[list[str]]:
    """The ``pytc-train`` command lines of a run (training, then inference on ``run.split`` if set)."""
    base = [sys.executable, "-c", TRAIN, "--config-file", str(config_file)]
    if config_base:
        base += ["--config-base", str(config_base)]
    commands = [[*base, *run.overrides]]
    if run.split:
        commands.append([*base, "--inference", *run.overrides,
                         "INFERENCE.SPLIT", run.split, "INFERENCE.OUTPUT_NAME", f"predictions-{run.split}"])
    return commands


def execute(runs: list[GridRun], config_file: str, config_base: str | None, parallel: int = 1, echo=print) -> None:
    """Train every unfinished run, ``parallel`` processes at a time; sets each run's ``status``."""
    if parallel < 1:
        raise ConfigError(f"--parallel {parallel} must be at least 1")
    env = dict(os.environ)
    if parallel > 1:  # share the cores instead of every process using all of them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))
    todo = []
    for run in runs:
        if run.finished():
            run.status = "skipped"
            echo(f"{run.name}: finished before, skipped")
        else:
            todo.append(run)
    active: list[tuple[GridRun, subprocess.Popen, list[list[str]], object]] = []

    def start(run: GridRun, commands: list[list[str]]) -> None:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        log = open(run.run_dir / "train.log", "a")  # noqa: SIM115 -- closed when the process ends
        echo(f"{run.name}: training (log: {run.run_dir / 'train.log'})")
        active.append((run, subprocess.Popen(commands[0], stdout=log, stderr=subprocess.STDOUT, env=env), commands[1:], log))

    queue = list(todo)
    while queue or active:
        while queue and len(active) < parallel:
            run = queue.pop(0)
            start(run, train_commands(run, config_file, config_base))
        time.sleep(0.2)
        for entry in list(active):
            run, process, rest, log = entry
            if process.poll() is None:
                continue
            active.remove(entry)
            log.close()
            if process.returncode != 0:
                run.status = "failed"
                echo(f"{run.name}: failed (exit status {process.returncode}); see {run.run_dir / 'train.log'}")
            elif rest:
                echo(f"{run.name}: predicting the {run.split!r} split")
                run.run_dir.mkdir(parents=True, exist_ok=True)
                log = open(run.run_dir / "train.log", "a")  # noqa: SIM115
                active.append((run, subprocess.Popen(rest[0], stdout=log, stderr=subprocess.STDOUT, env=env), rest[1:], log))
            else:
                run.status = "trained"
                echo(f"{run.name}: done")
