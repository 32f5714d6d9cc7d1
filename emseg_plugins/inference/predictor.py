"""From a checkpoint to predictions: the trained network as a plain ``nn.Module``, and whole-split inference.

No LightningModule is built here: the network comes from the ``MODELS`` registry with the config
saved in the checkpoint, and gets the checkpoint's ``model.``-prefixed weights.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from yacs.config import CfgNode as CN

from emseg_plugins.engine.checkpoint import best_checkpoint, check_compatible, checkpoint_config, load_checkpoint, load_weights
from emseg_plugins.evaluation.metrics import SegmentationMetrics, format_table
from emseg_plugins.inference.sliding_window import predict_outputs
from emseg_plugins.inference.writers import write_metrics, write_predictions
from emseg_plugins.postprocess.embedding_clusters import cluster_embedding, cluster_embedding_by_slice
from emseg_plugins.postprocess.decoders import maps_reader
from emseg_plugins.registry import DATASETS, DECODERS, MODELS
from emseg_plugins.targets import target_names

Table = dict[str, dict[str, float]]
MODEL_PREFIX = "model."  # the network's weights inside a training checkpoint's state_dict


def restore_model(path: str | Path, ckpt: dict | None = None, gpu: bool = False) -> tuple[torch.nn.Module, CN]:
    """(the checkpoint's network with its weights, in eval mode on CPU or GPU, the checkpoint's config).

    :class:`CheckpointError` (one line) when the file is unusable or its weights do not fit the network.
    """
    ckpt = ckpt or load_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    model = MODELS.build(cfg.MODEL.ARCHITECTURE, cfg)
    weights = {k[len(MODEL_PREFIX):]: v for k, v in ckpt["state_dict"].items() if k.startswith(MODEL_PREFIX)}
    load_weights(model, {"state_dict": weights}, path)
    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), cfg


def decode_instances(outputs: dict, cfg: CN) -> np.ndarray | None:
    """Instance ids (Z, Y, X) or None: an embedding model's clusters (INFERENCE.INSTANCE_CLASS), else, for a
    model with learned targets (TARGET.NAMES), the INFERENCE.DECODER decode of its maps."""
    if "embedding" in outputs and cfg.INFERENCE.INSTANCE_CLASS:
        channel = list(cfg.DATASET.CLASSES).index(cfg.INFERENCE.INSTANCE_CLASS)
        foreground = outputs["probabilities"][channel] >= cfg.INFERENCE.THRESHOLD
        cluster = cluster_embedding if cfg.DATASET.DIMS == 3 else cluster_embedding_by_slice
        return cluster(outputs["embedding"], foreground, cfg.INFERENCE.EMBEDDING_BANDWIDTH, seed=cfg.SYSTEM.SEED)
    if not target_names(cfg):
        return None
    whole = tuple(slice(0, n) for n in outputs["probabilities"].shape[1:])
    maps = maps_reader(outputs, cfg.DATASET.CLASSES, cfg.INFERENCE.INSTANCE_CLASS)(whole)
    return DECODERS.build(cfg.INFERENCE.DECODER, cfg).decode(maps)


def infer(cfg: CN, checkpoint: str | None = None, data=None) -> tuple[Path, Table | None]:
    """Predict ``INFERENCE.SPLIT`` volumes with a checkpoint (default: the run's best, else last).

    Writes ``<DATASET.OUTPUT_PATH>/<INFERENCE.OUTPUT_NAME>/<volume>.h5|.zarr`` and, where the split has
    labels, ``metrics.json``/``metrics.csv``; returns (that directory, the per-class table or None).
    ``data``: the dataset plugin's object when the caller has built it already.
    """
    run_dir = Path(cfg.DATASET.OUTPUT_PATH)
    path = Path(checkpoint) if checkpoint else best_checkpoint(run_dir, cfg.MONITOR.CHECKPOINT_METRIC)
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
                          instances=decode_instances(outputs, cfg), maps={n: outputs[n] for n in target_names(cfg)})
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
