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

from emseg_plugins.errors import ConfigError
from emseg_plugins.evaluation.metrics import SegmentationMetrics, mean_over_classes
from emseg_plugins.losses.deep_supervision import supervised_loss
from emseg_plugins.registry import LOSSES, MODELS

SEGMENTATION_INPUTS = ("logits", "label")  # what a loss consumes unless it declares `inputs`
OPTIMIZERS = {"AdamW": torch.optim.AdamW, "Adam": torch.optim.Adam, "SGD": torch.optim.SGD}


def logits_of(output: Any) -> torch.Tensor:
    """The main logits of a model output: a tensor, or a dict with ``"logits"`` (docs/schemas.md)."""
    return output["logits"] if isinstance(output, dict) else output


class SegmentationModule(pl.LightningModule):
    """Trains ``MODEL.ARCHITECTURE`` with ``LOSS.NAME``; validation logs per-class metrics."""

    def __init__(self, cfg_yaml: str):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = CN.load_cfg(cfg_yaml)
        self.model = MODELS.build(self.cfg.MODEL.ARCHITECTURE, self.cfg)
        self.loss = LOSSES.build(self.cfg.LOSS.NAME, self.cfg)
        inputs = getattr(self.loss, "inputs", SEGMENTATION_INPUTS)
        if tuple(inputs) != SEGMENTATION_INPUTS:
            raise ConfigError(
                f"config: LOSS.NAME {self.cfg.LOSS.NAME!r} trains on the model's {inputs[0]!r} against the batch's "
                f"{inputs[1]!r}; the engine trains segmentation logits against labels only, so choose a segmentation loss"
            )
        self.val_metrics = SegmentationMetrics(self.cfg.DATASET.CLASSES, self.cfg.INFERENCE.THRESHOLD)
        self.last_val_table: dict[str, dict[str, float]] | None = None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, C, [Z,] Y, X) -> logits (B, K, [Z,] Y, X)."""
        return logits_of(self.model(image))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        output = self.model(batch["image"])
        loss, parts = supervised_loss(self.loss, output, batch["label"], batch.get("valid_mask"), self.cfg.LOSS.AUX_WEIGHTS)
        self.log("train/loss", loss, prog_bar=True)
        if len(parts) > 1:  # deep supervision: each head's own loss
            self.log_dict({f"train/loss_{name}": value for name, value in parts.items()})
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["image"])
        self.log("val/loss", self.loss(logits, batch["label"], batch.get("valid_mask")), sync_dist=True)
        self.val_metrics.update(logits, batch["label"], batch.get("valid_mask"))

    def on_validation_epoch_end(self) -> None:
        table = self.val_metrics.compute()
        self.val_metrics.reset()
        for name, row in table.items():
            for metric, value in row.items():
                self.log(f"val/{name}/{metric}", value)
        for metric, value in mean_over_classes(table).items():
            self.log(f"val/{metric}_mean", value, prog_bar=metric == "dice")
        if not self.trainer.sanity_checking:
            self.last_val_table = table

    def configure_optimizers(self) -> dict[str, Any]:
        s = self.cfg.SOLVER
        optimizer = OPTIMIZERS[s.NAME](self.parameters(), lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY)
        if s.LR_SCHEDULER_NAME == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=s.PLATEAU_PATIENCE)
            # stepped right after each validation, which runs every ITERATION_VAL optimizer steps
            config = {"scheduler": scheduler, "interval": "step", "frequency": s.ITERATION_VAL, "monitor": "val/dice_mean"}
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
