"""The LightningModule: a registry-built model + loss + per-class metrics, AdamW and LR schedules.

The run's config travels inside the module (and so inside every checkpoint) as a YAML string,
which keeps checkpoints loadable with ``weights_only=True``.
"""
from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from yacs.config import CfgNode as CN

from emseg_plugins.engine.rng import rng_state, set_rng_state
from emseg_plugins.errors import TrainingError
from emseg_plugins.evaluation.instance_validation import InstanceValidation, mode_of
from emseg_plugins.evaluation.metrics import SegmentationMetrics, mean_over_classes
from emseg_plugins.losses.multitask import build_terms, check_model_outputs, multitask_loss
from emseg_plugins.models.outputs import embedding_of, logits_of, split_heads
from emseg_plugins.postprocess.decoders import maps_reader
from emseg_plugins.registry import DECODERS, MODELS
from emseg_plugins.targets import heads

OPTIMIZERS = {"AdamW": torch.optim.AdamW, "Adam": torch.optim.Adam, "SGD": torch.optim.SGD}


class SegmentationModule(pl.LightningModule):
    """Trains ``MODEL.ARCHITECTURE`` with ``LOSS.NAME`` (+ ``LOSS.EXTRA``); validation logs per-class metrics.

    A model with an ``update_prototypes(embedding, label)`` method (nearest-prototype classifiers)
    sees every training batch's detached embedding and labels after its forward pass.
    """

    def __init__(self, cfg_yaml: str):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = CN.load_cfg(cfg_yaml)
        self.model = MODELS.build(self.cfg.MODEL.ARCHITECTURE, self.cfg)
        self.heads = heads(self.cfg)  # class logits, then each learned target's channels
        self.terms = build_terms(self.cfg)
        check_model_outputs(self.terms, self.model, self.cfg)
        self.loss = self.terms[0].fn  # the main loss; the extra ones are registered so their buffers follow the device
        self.extra_losses = torch.nn.ModuleList(t.fn for t in self.terms[1:] if isinstance(t.fn, torch.nn.Module))
        self.val_metrics = SegmentationMetrics(self.cfg.DATASET.CLASSES, self.cfg.INFERENCE.THRESHOLD)
        self.last_val_table: dict[str, dict[str, float]] | None = None
        # MONITOR.INSTANCE_METRICS: each validation patch decoded and scored against its instance ids
        self.instance_val = InstanceValidation(DECODERS.build(self.cfg.INFERENCE.DECODER, self.cfg)) if self.cfg.MONITOR.INSTANCE_METRICS else None
        self.skipped_batches = 0  # batches with a non-finite loss skipped (SOLVER.NONFINITE skip)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Besides Lightning's state: RNG state, skipped batches, and whether early stopping ended the run."""
        if self._trainer is not None and self._trainer.logger is not None and self._trainer.is_global_zero:
            self._trainer.logger.save()  # the metrics of every step this checkpoint counts are on disk before it
        checkpoint["rng"] = rng_state()
        checkpoint["skipped_batches"] = self.skipped_batches
        checkpoint["stopped_early"] = self.trainer.should_stop and self.trainer.global_step < self.trainer.max_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng" in checkpoint:
            set_rng_state(checkpoint["rng"])
        self.skipped_batches = checkpoint.get("skipped_batches", 0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, C, [Z,] Y, X) -> logits (B, K, [Z,] Y, X)."""
        return logits_of(self.model(image))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        output = split_heads(self.model(batch["image"]), self.heads)
        if hasattr(self.model, "update_prototypes"):
            self.model.update_prototypes(embedding_of(output).detach(), batch["label"])
        loss, parts = multitask_loss(self.terms, output, batch, self.cfg.LOSS.AUX_WEIGHTS)
        if not torch.isfinite(loss):
            return self.nonfinite(loss, batch_idx)
        self.log("train/loss", loss, prog_bar=True, logger=False)
        parts = {f"train/loss_{name}": value for name, value in parts.items()} if len(parts) > 1 else {}  # each part on its own
        self.log_step_metrics(batch_idx, {"train/loss": loss, **parts})
        return loss

    def log_step_metrics(self, batch_idx: int, metrics: dict[str, torch.Tensor]) -> None:
        """Straight to the logger, every ``MONITOR.LOG_EVERY_N_STEPS`` optimizer steps (last micro-batch).

        Lightning would log them after the step's checkpoint callbacks; a kill in between lost the
        metrics of a step that the checkpoint counts as done, leaving a gap in the resumed history.
        """
        trainer, s = self._trainer, self.cfg.SOLVER
        if trainer is None or trainer.logger is None or not trainer.is_global_zero or (batch_idx + 1) % s.ITERATION_STEP:
            return
        if self.global_step % self.cfg.MONITOR.LOG_EVERY_N_STEPS == 0:
            trainer.logger.log_metrics({name: float(value.detach()) for name, value in metrics.items()}, step=self.global_step)

    def nonfinite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """``SOLVER.NONFINITE``: skip the batch (no optimizer step), or stop with :class:`TrainingError`."""
        if self.cfg.SOLVER.NONFINITE == "skip":
            self.skipped_batches += 1
            print(f"warning: non-finite training loss ({loss.item()}) at step {self.global_step}, batch {batch_idx}: batch skipped", flush=True)
            return
        raise TrainingError(
            f"non-finite training loss ({loss.item()}) at step {self.global_step}, batch {batch_idx} ({self.samples_of(batch_idx)}); the last good checkpoint "
            f"({self.cfg.DATASET.OUTPUT_PATH}/checkpoints/last.ckpt) is kept: lower SOLVER.BASE_LR, set SOLVER.CLIP_GRADIENTS, "
            "or set SOLVER.NONFINITE skip, then start again to resume"
        )

    def samples_of(self, batch_idx: int) -> str:
        """Which training samples batch ``batch_idx`` holds (a sample is a pure function of seed and index)."""
        trainer = self._trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        b = self.cfg.SOLVER.SAMPLES_PER_BATCH
        first, last = rank + world * batch_idx * b, rank + world * ((batch_idx + 1) * b - 1)
        return (f"training samples {first}..{last}{f' (every {world}th)' if world > 1 else ''} of dataset "
                f"{self.cfg.DATASET.NAME!r} with SYSTEM.SEED {self.cfg.SYSTEM.SEED}")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        output = split_heads(self.model(batch["image"]), self.heads)
        loss, _ = multitask_loss(self.terms, output, batch)
        self.log("val/loss", loss, sync_dist=True)
        self.val_metrics.update(logits_of(output), batch["label"], batch.get("valid_mask"))
        if self.instance_val is not None:
            self.score_instances(output, batch["instance"])

    def score_instances(self, output: dict, instances: torch.Tensor) -> None:
        """Decode each patch of the batch from its predicted maps; score it against ``instances`` (B, 1, [Z,] Y, X)."""
        def volumes(t: torch.Tensor):  # (B, C, [Z,] Y, X) logits -> sigmoid (B, C, Z, Y, X): 2D patches are one section
            p = torch.sigmoid(t.float()).cpu().numpy()
            return p if p.ndim == 5 else p[:, :, None]

        arrays = {"probabilities": volumes(logits_of(output)), **{name: volumes(output[name]) for name, _ in self.heads[1:]}}
        truths = instances.cpu().numpy()[:, 0]
        for b, truth in enumerate(truths):
            patch = {name: values[b] for name, values in arrays.items()}
            whole = tuple(slice(0, n) for n in patch["probabilities"].shape[1:])
            maps = maps_reader(patch, self.cfg.DATASET.CLASSES, self.cfg.INFERENCE.INSTANCE_CLASS)(whole)
            self.instance_val.update(maps, truth if truth.ndim == 3 else truth[None])

    def on_validation_epoch_end(self) -> None:
        table = self.val_metrics.compute()
        self.val_metrics.reset()
        for name, row in table.items():
            for metric, value in row.items():
                self.log(f"val/{name}/{metric}", value)
        for metric, value in mean_over_classes(table).items():
            self.log(f"val/{metric}_mean", value, prog_bar=metric == "dice")
        if self.instance_val is not None:
            for name, value in self.instance_val.compute().items():
                self.log(f"val/{name}", value, sync_dist=True)
            self.instance_val.reset()
        if not self.trainer.sanity_checking:
            self.last_val_table = table

    def configure_optimizers(self) -> dict[str, Any]:
        s = self.cfg.SOLVER
        optimizer = OPTIMIZERS[s.NAME](self.parameters(), lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY)
        if s.LR_SCHEDULER_NAME == "plateau":
            metric = self.cfg.MONITOR.CHECKPOINT_METRIC
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode_of(metric), factor=0.5, patience=s.PLATEAU_PATIENCE)
            # stepped right after each validation, which runs every ITERATION_VAL optimizer steps
            config = {"scheduler": scheduler, "interval": "step", "frequency": s.ITERATION_VAL, "monitor": metric}
        else:
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(s.LR_SCHEDULER_NAME, s.WARMUP_ITERS, s.ITERATION_TOTAL))
            config = {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": config}


def lr_factor(name: str, warmup: int, total: int):
    """step -> LR multiplier: linear warm-up, then cosine decay to 0 at ``total`` (or constant)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if name == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor
