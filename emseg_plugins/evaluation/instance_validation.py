"""Instance quality during validation: decode each validation patch and score it against its true ids.

Each patch's predicted maps (class probability of ``INFERENCE.INSTANCE_CLASS`` and the learned
targets) go through the run's decoder (``INFERENCE.DECODER``); the ids are compared with the patch's
``instance`` ids by adapted Rand error, variation of information (split/merge, bits) and instance F1
at IoU 0.5. Scores are averaged over patches (a patch cuts objects at its border, so these track
progress and rank checkpoints; `emseg evaluate` scores whole volumes).
"""
from __future__ import annotations

import numpy as np

from emseg_plugins.evaluation.instance_metrics import instance_scores
from emseg_plugins.evaluation.partition_metrics import partition_scores

NAMES = ("are", "voi_split", "voi_merge", "f1")  # logged as val/<name>; are and voi are errors (lower is better)
LOWER_IS_BETTER = {"are", "voi_split", "voi_merge", "voi", "loss"}


class InstanceValidation:
    """Running means of :data:`NAMES` over validation patches."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.reset()

    def reset(self) -> None:
        self.sums, self.count = dict.fromkeys(NAMES, 0.0), 0

    def update(self, maps: dict[str, np.ndarray], truth: np.ndarray) -> None:
        """``maps``: decoder maps of one patch, each ([C,] Z, Y, X) in [0, 1]; ``truth``: its ids (Z, Y, X)."""
        predicted = self.decoder.decode(maps)
        partition = partition_scores(predicted, truth)
        scores = {**partition, "f1": instance_scores(predicted, truth, thresholds=(0.5,))["f1@0.5"]}
        for name in NAMES:
            self.sums[name] += scores[name]
        self.count += 1

    def compute(self) -> dict[str, float]:
        return {name: total / max(self.count, 1) for name, total in self.sums.items()}


def mode_of(metric: str) -> str:
    """``min`` for a logged error (``val/loss``, ``val/are``, ``val/voi_split``, ...), else ``max``."""
    return "min" if metric.rsplit("/", 1)[-1] in LOWER_IS_BETTER else "max"
