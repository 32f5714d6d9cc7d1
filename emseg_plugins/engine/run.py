"""One training run end to end (whole-volume inference from a checkpoint: ``inference.predictor``).

Everything that can fail on bad input (config, plugins, data, checkpoints) is built and checked
before anything is written to the run directory.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl
from yacs.config import CfgNode as CN

from emseg_plugins.engine.checkpoint import check_compatible, checkpoint_dir, discard_after, load_checkpoint, load_weights
from emseg_plugins.engine.data import SegmentationDataModule
from emseg_plugins.engine.module import SegmentationModule
from emseg_plugins.engine.trainer import build_trainer, check_hardware, check_monitor
from emseg_plugins.errors import ConfigError, TrainingError
from emseg_plugins.evaluation.metrics import format_table
from emseg_plugins.inference.writers import write_metrics
from emseg_plugins.losses.multitask import check_batch_keys
from emseg_plugins.registry import DATASETS
from emseg_plugins.utils.atomic import atomic_write_text

Table = dict[str, dict[str, float]]


def train(cfg: CN, init_checkpoint: str | None = None) -> Table:
    """Train (resuming from ``<run>/checkpoints/last.ckpt`` if present); returns the best model's metrics."""
    run_dir = Path(cfg.DATASET.OUTPUT_PATH)
    check_hardware(cfg)
    check_monitor(cfg)
    pl.seed_everything(cfg.SYSTEM.SEED, workers=True, verbose=False)
    module = SegmentationModule(cfg.dump())  # model/loss combinations are checked before any data is read
    data = DATASETS.build(cfg.DATASET.NAME, cfg)
    last = checkpoint_dir(run_dir) / "last.ckpt"
    resume = load_checkpoint(last) if last.exists() else None
    stop_at = None  # a run that early stopping ended stays ended
    if resume is not None:
        check_compatible(resume, cfg, last)
        if resume.get("stopped_early") and cfg.MONITOR.EARLY_STOP_PATIENCE > 0:
            stop_at = resume["global_step"]
        if _is_rank_zero():
            for path in discard_after(last.parent, resume["global_step"]):
                print(f"removed {path.name}: written after {last.name} by the run that stopped", flush=True)
            print(f"resuming from {last} at step {resume['global_step']}"
                  + (" (early stopping ended this run; set MONITOR.EARLY_STOP_PATIENCE 0 to train on)" if stop_at else ""), flush=True)
    elif init_checkpoint:
        start = load_checkpoint(init_checkpoint)
        check_compatible(start, cfg, init_checkpoint)
        load_weights(module, start, init_checkpoint)

    consumed = resume["global_step"] * cfg.SOLVER.ITERATION_STEP + resume.get("skipped_batches", 0) if resume else 0
    datamodule = SegmentationDataModule(cfg, data, start_batch=consumed)
    check_batch_keys(module.terms, datamodule.val_set[0], cfg)
    if cfg.MONITOR.INSTANCE_METRICS and "instance" not in datamodule.val_set[0]:
        raise ConfigError(f"config: MONITOR.INSTANCE_METRICS needs instance ids in the validation samples, but DATASET.NAME "
                          f"{cfg.DATASET.NAME!r} yields none; give the dataset instance labels or set it False")

    if _is_rank_zero():
        atomic_write_text(run_dir / "config.yaml", cfg.dump())
    trainer = build_trainer(cfg, run_dir, stop_at)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None, weights_only=True)
    except RuntimeError as exc:
        if "DataLoader worker" not in str(exc):
            raise
        raise TrainingError(f"a data-loading worker process died ({str(exc).splitlines()[0]}); {last} is kept: run the same "
                            "command again to resume (lower SYSTEM.NUM_CPUS if the workers ran out of memory)") from None
    steps_trained = trainer.global_step

    best = trainer.checkpoint_callback.best_model_path or (str(last) if last.exists() else None)
    trainer.validate(module, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
    table = module.last_val_table
    if trainer.is_global_zero and table is not None:
        write_metrics(run_dir, table, {"checkpoint": best, "global_step": steps_trained})
        print(f"\nvalidation metrics ({Path(best).name if best else 'final weights'}):\n{format_table(table)}\n")
    return table


def _is_rank_zero() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0
