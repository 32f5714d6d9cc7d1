"""Per-class voxel metrics (Dice, IoU, precision, recall, accuracy) pooled over a whole split.

Counts come from torchmetrics' ``MultilabelStatScores`` (``BinaryStatScores`` for one class; summed over every voxel seen, synchronised
across DDP processes); unannotated voxels (NaN target or zero valid-mask) are ignored.
"""
from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import BinaryStatScores, MultilabelStatScores

from emseg_plugins.losses.masking import annotated

METRIC_NAMES = ("dice", "iou", "precision", "recall", "accuracy")
IGNORE = -1


class SegmentationMetrics(nn.Module):
    """Accumulate with ``update(logits, target)``; ``compute()`` -> ``{class: {metric: value}}``."""

    def __init__(self, classes: list[str], threshold: float = 0.5):
        super().__init__()
        self.classes = list(classes)
        common = {"threshold": threshold, "multidim_average": "global", "ignore_index": IGNORE}
        self.stats = (MultilabelStatScores(num_labels=len(classes), average=None, **common) if len(classes) > 1
                      else BinaryStatScores(**common))  # torchmetrics' multilabel needs at least 2 labels

    def update(self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> None:
        """logits and target (B, K, *spatial); target in {0, 1} or NaN."""
        self.update_probabilities(torch.sigmoid(logits.float()), target, valid_mask)

    def update_probabilities(self, probs: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> None:
        """Like :meth:`update` with probabilities in [0, 1] instead of logits."""
        target, mask = annotated(target.float(), valid_mask)
        labels = torch.where(mask > 0, target.round().long(), torch.full_like(target, IGNORE, dtype=torch.long))
        self.stats.update(probs.float(), labels)

    def compute(self) -> dict[str, dict[str, float]]:
        tp, fp, tn, fn, _ = self.stats.compute().double().reshape(len(self.classes), 5).unbind(-1)
        values = {
            "dice": _ratio(2 * tp, 2 * tp + fp + fn),
            "iou": _ratio(tp, tp + fp + fn),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        }
        return {c: {m: float(values[m][i]) for m in METRIC_NAMES} for i, c in enumerate(self.classes)}

    def reset(self) -> None:
        self.stats.reset()


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, and 1.0 where both are 0 (nothing to find and nothing found is perfect)."""
    return torch.where(den > 0, num / den.clamp_min(1e-12), torch.ones_like(num))


def mean_over_classes(table: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{metric: mean over classes}``."""
    return {m: sum(row[m] for row in table.values()) / len(table) for m in METRIC_NAMES}


def format_table(table: dict[str, dict[str, float]]) -> str:
    """A fixed-width text table: one row per class plus the mean."""
    rows = [*table.items(), ("mean", mean_over_classes(table))]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'class':<{width}}  " + "  ".join(f"{m:>9}" for m in METRIC_NAMES)]
    lines += [f"{name:<{width}}  " + "  ".join(f"{row[m]:>9.4f}" for m in METRIC_NAMES) for name, row in rows]
    return "\n".join(lines)
