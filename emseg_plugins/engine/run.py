"""One training run end to end, and whole-volume inference from a checkpoint.

Everything that can fail on bad input (config, plugins, data, checkpoints) is built and checked
before anything is written to the run directory.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from yacs.config import CfgNode as CN

from emseg_plugins.engine.checkpoint import check_compatible, checkpoint_config, discard_after, load_checkpoint, load_weights
from emseg_plugins.engine.data import SegmentationDataModule
from emseg_plugins.engine.module import SegmentationModule
from emseg_plugins.engine.trainer import build_trainer, check_hardware, checkpoint_dir
from emseg_plugins.errors import CheckpointError, TrainingError
from emseg_plugins.evaluation.metrics import METRIC_NAMES, SegmentationMetrics, format_table, mean_over_classes
from emseg_plugins.inference.sliding_window import predict_outputs
from emseg_plugins.inference.writers import write_predictions
from emseg_plugins.losses.multitask import check_batch_keys
from emseg_plugins.postprocess.embedding_clusters import cluster_embedding, cluster_embedding_by_slice
from emseg_plugins.registry import DATASETS
from emseg_plugins.utils.atomic import atomic_write_text

Table = dict[str, dict[str, float]]


def train(cfg: CN, init_checkpoint: str | None = None) -> Table:
    """Train (resuming from ``<run>/checkpoints/last.ckpt`` if present); returns the best model's metrics."""
    run_dir = Path(cfg.DATASET.OUTPUT_PATH)
    check_hardware(cfg)
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


def infer(cfg: CN, checkpoint: str | None = None, data=None) -> tuple[Path, Table | None]:
    """Predict ``INFERENCE.SPLIT`` volumes with a checkpoint (default: the run's best, else last).

    ``data``: the dataset plugin's object when the caller has built it already.
    """
    run_dir = Path(cfg.DATASET.OUTPUT_PATH)
    path = Path(checkpoint) if checkpoint else best_checkpoint(run_dir)
    ckpt = load_checkpoint(path)
    check_compatible(ckpt, cfg, path)
    data = data or DATASETS.build(cfg.DATASET.NAME, cfg)
    volumes = data.volumes(cfg.INFERENCE.SPLIT)
    model, _ = restore_model(path, ckpt, gpu=cfg.SYSTEM.NUM_GPUS > 0)
    metrics = SegmentationMetrics(cfg.DATASET.CLASSES, cfg.INFERENCE.THRESHOLD)
    out_dir = run_dir / cfg.INFERENCE.OUTPUT_NAME
    labelled = 0
    for volume in volumes:
        outputs = predict_outputs(model, volume.image, cfg)
        probs = outputs["probabilities"]
        suffix = ".zarr" if cfg.INFERENCE.OUTPUT_FORMAT == "zarr" else ".h5"
        write_predictions(out_dir / f"{volume.name}{suffix}", probs, cfg.DATASET.CLASSES, cfg.INFERENCE.THRESHOLD,
                          instances=decode_instances(outputs, cfg))
        if not np.isnan(volume.labels).all():  # an unlabelled volume (all NaN) is predicted but not scored
            metrics.update_probabilities(torch.from_numpy(probs)[None], torch.as_tensor(volume.labels, dtype=torch.float32)[None])
            labelled += 1
    if not labelled:
        print(f"\npredictions: {out_dir}\n(no labels in the {cfg.INFERENCE.SPLIT!r} split: no metrics)\n")
        return out_dir, None
    table = metrics.compute()
    write_metrics(out_dir, table, {"checkpoint": str(path), "split": cfg.INFERENCE.SPLIT})
    print(f"\n{cfg.INFERENCE.SPLIT} metrics (sliding window, {path.name}):\n{format_table(table)}\npredictions: {out_dir}\n")
    return out_dir, table


def restore_model(path: str | Path, ckpt: dict | None = None, gpu: bool = False) -> tuple[torch.nn.Module, CN]:
    """(the checkpoint's model with its weights, in eval mode on CPU or GPU, the checkpoint's config)."""
    ckpt = ckpt or load_checkpoint(path)
    module = SegmentationModule(checkpoint_config(ckpt).dump())
    load_weights(module, ckpt, path)
    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    return module.model.to(device).eval(), module.cfg


def decode_instances(outputs: dict, cfg: CN):
    """Instance ids (Z, Y, X) from an embedding model's outputs, or None (no embedding / INSTANCE_CLASS off)."""
    if "embedding" not in outputs or not cfg.INFERENCE.INSTANCE_CLASS:
        return None
    channel = list(cfg.DATASET.CLASSES).index(cfg.INFERENCE.INSTANCE_CLASS)
    foreground = outputs["probabilities"][channel] >= cfg.INFERENCE.THRESHOLD
    cluster = cluster_embedding if cfg.DATASET.DIMS == 3 else cluster_embedding_by_slice
    return cluster(outputs["embedding"], foreground, cfg.INFERENCE.EMBEDDING_BANDWIDTH, seed=cfg.SYSTEM.SEED)


def best_checkpoint(run_dir: Path) -> Path:
    """The top-scoring checkpoint of a run (by the score in its file name), else ``last.ckpt``."""
    scored = sorted(checkpoint_dir(run_dir).glob("step*-dice*.ckpt"), key=lambda p: float(p.stem.rsplit("dice", 1)[1]))
    last = checkpoint_dir(run_dir) / "last.ckpt"
    if not scored and not last.exists():
        raise CheckpointError(f"{run_dir}: the run has no checkpoints yet; train it first or pass --checkpoint")
    return scored[-1] if scored else last


def write_metrics(directory: Path, table: Table, meta: dict[str, Any]) -> None:
    """``metrics.json`` (classes, mean, meta) and ``metrics.csv`` (one row per class + mean)."""
    mean = mean_over_classes(table)
    atomic_write_text(directory / "metrics.json", json.dumps({"classes": table, "mean": mean, **meta}, indent=2))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["class", *METRIC_NAMES])
    for name, row in [*table.items(), ("mean", mean)]:
        writer.writerow([name, *(f"{row[m]:.6f}" for m in METRIC_NAMES)])
    atomic_write_text(directory / "metrics.csv", buffer.getvalue())


def _is_rank_zero() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0
