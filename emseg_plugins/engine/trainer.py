"""A Lightning ``Trainer`` from the config: steps, validation cadence, precision, devices, callbacks."""
from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.strategies import StrategyRegistry
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import require_choice
from emseg_plugins.engine.checkpoint import AtomicCheckpointIO, checkpoint_dir, checkpoint_tag
from emseg_plugins.evaluation.instance_validation import NAMES as INSTANCE_NAMES
from emseg_plugins.evaluation.instance_validation import mode_of
from emseg_plugins.evaluation.metrics import METRIC_NAMES
from emseg_plugins.errors import ConfigError


def check_hardware(cfg: CN) -> None:
    """:class:`ConfigError` for SYSTEM settings this machine or Lightning cannot honour."""
    strategies = ("auto", *StrategyRegistry.available_strategies())
    require_choice("SYSTEM.STRATEGY", cfg.SYSTEM.STRATEGY, strategies)
    if cfg.SYSTEM.NUM_GPUS > torch.cuda.device_count():
        raise ConfigError(f"config: SYSTEM.NUM_GPUS = {cfg.SYSTEM.NUM_GPUS} but {torch.cuda.device_count()} GPUs are visible; "
                          "set SYSTEM.NUM_GPUS 0 to train on the CPU")
    if cfg.SYSTEM.DEVICES < 1 or cfg.SYSTEM.NUM_NODES < 1:
        raise ConfigError(f"config: SYSTEM.DEVICES = {cfg.SYSTEM.DEVICES} and SYSTEM.NUM_NODES = {cfg.SYSTEM.NUM_NODES} must be at least 1")
    if cfg.MODEL.NORM_MODE == "sync_bn" and cfg.SYSTEM.NUM_GPUS == 0 and cfg.SYSTEM.DEVICES > 1:
        raise ConfigError("config: MODEL.NORM_MODE = 'sync_bn' needs GPUs (torch's SyncBatchNorm runs on CUDA only); "
                          "use bn for CPU processes, or a model with instance/group norm")


def check_monitor(cfg: CN) -> None:
    """:class:`ConfigError` unless ``MONITOR.CHECKPOINT_METRIC`` names a value validation logs."""
    logged = {"val/loss", *(f"val/{m}_mean" for m in METRIC_NAMES), *(f"val/{c}/{m}" for c in cfg.DATASET.CLASSES for m in METRIC_NAMES)}
    if cfg.MONITOR.INSTANCE_METRICS:
        logged |= {f"val/{name}" for name in INSTANCE_NAMES}
    metric = cfg.MONITOR.CHECKPOINT_METRIC
    if metric not in logged:
        hint = " (set MONITOR.INSTANCE_METRICS True to log it)" if metric.removeprefix("val/") in INSTANCE_NAMES else ""
        raise ConfigError(f"config: MONITOR.CHECKPOINT_METRIC = {metric!r} is not logged by validation{hint}; "
                          f"e.g. val/dice_mean, val/loss, val/{cfg.DATASET.CLASSES[0]}/iou")


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` steps (else at every validation) and once more when
    training ends, so a finished run's ``last.ckpt`` holds its final step whatever the cadence."""

    def __init__(self, dirpath: Path, every_n_train_steps: int | None):
        super().__init__(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, enable_version_counter=False,
                         every_n_train_steps=every_n_train_steps)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.save_checkpoint(Path(self.dirpath) / "last.ckpt", weights_only=False)  # the full state (resumable); Lightning asks when unset


def build_trainer(cfg: CN, run_dir: str | Path, stop_at: int | None = None) -> pl.Trainer:
    """Trainer for ``SOLVER.ITERATION_TOTAL`` optimizer steps (or up to ``stop_at``), validating every
    ``SOLVER.ITERATION_VAL``."""
    s, m = cfg.SOLVER, cfg.MONITOR
    callbacks: list[pl.Callback] = [
        ModelCheckpoint(  # the best by validation score; first, so it is trainer.checkpoint_callback
            dirpath=checkpoint_dir(run_dir),
            filename=f"step{{step:06d}}-{checkpoint_tag(m.CHECKPOINT_METRIC)}{{{m.CHECKPOINT_METRIC}:.4f}}",
            auto_insert_metric_name=False,
            enable_version_counter=False,  # a step redone after a kill rewrites its own file, never adds a -v1
            monitor=m.CHECKPOINT_METRIC, mode=mode_of(m.CHECKPOINT_METRIC), save_top_k=m.CHECKPOINT_TOP_K,
        ),
        LastCheckpoint(checkpoint_dir(run_dir), s.ITERATION_SAVE or None),
        LearningRateMonitor(logging_interval="step"),
    ]
    if m.EARLY_STOP_PATIENCE > 0:
        callbacks.append(EarlyStopping(monitor=m.CHECKPOINT_METRIC, mode=mode_of(m.CHECKPOINT_METRIC), patience=m.EARLY_STOP_PATIENCE))
    if m.IMAGES > 0:  # prediction panels in TensorBoard at every validation
        from emseg_plugins.visualize.tensorboard_images import ValidationImages
        callbacks.append(ValidationImages(m.IMAGES, list(cfg.DATASET.CLASSES), cfg.INFERENCE.THRESHOLD))
    if m.PROGRESS_BAR:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, m.LOG_EVERY_N_STEPS // 2)))
    on_gpu = cfg.SYSTEM.NUM_GPUS > 0
    return pl.Trainer(
        default_root_dir=str(run_dir),
        accelerator="auto" if on_gpu else "cpu",
        devices=cfg.SYSTEM.NUM_GPUS if on_gpu else cfg.SYSTEM.DEVICES,
        num_nodes=cfg.SYSTEM.NUM_NODES,
        strategy=cfg.SYSTEM.STRATEGY,
        precision=s.PRECISION,
        max_steps=s.ITERATION_TOTAL if stop_at is None else stop_at,
        max_epochs=-1,
        val_check_interval=s.ITERATION_VAL * s.ITERATION_STEP,  # counted in batches
        check_val_every_n_epoch=None,
        accumulate_grad_batches=s.ITERATION_STEP,
        gradient_clip_val=s.CLIP_GRADIENTS or None,
        log_every_n_steps=m.LOG_EVERY_N_STEPS,
        logger=TensorBoardLogger(str(run_dir), name="tensorboard", version="", default_hp_metric=False),
        callbacks=callbacks,
        enable_progress_bar=m.PROGRESS_BAR,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # the data module shards by rank and resumes by step itself
        sync_batchnorm=on_gpu and cfg.MODEL.NORM_MODE == "sync_bn",  # BatchNorm statistics over the global batch under DDP
    )
