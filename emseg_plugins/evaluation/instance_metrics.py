"""Instance metrics: one-to-one matching of predicted and true instances by IoU.

Pairs are matched to maximise the total IoU (``scipy.optimize.linear_sum_assignment``); a matched
pair with IoU >= t is a true positive at threshold t. Precision = TP / predicted instances,
recall = TP / true instances, F1 their harmonic mean. The semantic Dice and IoU of the union of
instances (foreground vs foreground) come with them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(IoU (P, T), predicted ids (P,), true ids (T,)) over the nonzero ids of two label maps."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {truth.shape} differ in shape")
    p_ids, p_inv, p_sizes = np.unique(pred, return_inverse=True, return_counts=True)
    t_ids, t_inv, t_sizes = np.unique(truth, return_inverse=True, return_counts=True)
    both = (pred.ravel() != 0) & (truth.ravel() != 0)
    pairs, overlap = np.unique(np.stack([p_inv.ravel()[both], t_inv.ravel()[both]]), axis=1, return_counts=True)
    intersection = np.zeros((len(p_ids), len(t_ids)))
    intersection[pairs[0], pairs[1]] = overlap
    union = p_sizes[:, None] + t_sizes[None, :] - intersection
    iou = intersection / np.maximum(union, 1)
    keep_p, keep_t = p_ids != 0, t_ids != 0
    return iou[keep_p][:, keep_t], p_ids[keep_p], t_ids[keep_t]


def instance_scores(pred: np.ndarray, truth: np.ndarray, thresholds: Sequence[float] = (0.5, 0.75)) -> dict[str, float]:
    """``matched@t`` (true positives), ``precision@t``, ``recall@t``, ``f1@t`` per threshold, the counts
    ``predicted`` and ``true``, and ``dice`` and ``iou`` of the union."""
    iou, p_ids, t_ids = iou_matrix(pred, truth)
    rows, cols = linear_sum_assignment(iou, maximize=True) if iou.size else (np.array([], int), np.array([], int))
    matched = iou[rows, cols]
    scores: dict[str, float] = {"predicted": float(len(p_ids)), "true": float(len(t_ids))}
    for t in thresholds:
        tp = float((matched >= t).sum())
        scores[f"matched@{t:g}"] = tp
        precision = tp / len(p_ids) if len(p_ids) else float(not len(t_ids))
        recall = tp / len(t_ids) if len(t_ids) else float(not len(p_ids))
        scores[f"precision@{t:g}"], scores[f"recall@{t:g}"] = precision, recall
        scores[f"f1@{t:g}"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fg_p, fg_t = pred != 0, truth != 0
    inter, total = float((fg_p & fg_t).sum()), float(fg_p.sum() + fg_t.sum())
    scores["dice"] = 2 * inter / total if total else 1.0
    scores["iou"] = inter / (total - inter) if total else 1.0
    return scores
