"""Local scoring of a submission with the CellMap challenge's metric.

Every definition follows cellmap-segmentation-challenge ``src/cellmap_segmentation_challenge/utils/eval_utils``
(``EVALUATION.md`` describes it; where the two disagree the code is followed, since it produces the official
numbers):

* **Alignment** (``scoring.py:match_crop_space``): each submitted array is brought into the crop's space
  by :func:`load_aligned` (:func:`~emseg_plugins.challenge.submit.align_to_crop`, with the official
  chunk-by-chunk rescaling of sources over 500 MiB); a ``<label>_mask`` array beside the truth zeroes both
  volumes outside it, and is itself a label of the crop (``submission.py:get_evaluation_args`` scores every
  truth array), scored as missing unless submitted.
* **Semantic labels** (``scoring.py:score_semantic``): prediction and truth binarised with ``> 0``;
  voxel TP/FP/FN per crop.
* **Instance labels** (``scoring.py:score_instance``): the prediction relabelled with
  ``cc3d.connected_components`` (26-connected); instances matched one-to-one by
  ``instance_matching.py:match_instances`` (a min-cost flow with costs ``int((1 - IoU) * 1e6)`` and an
  unmatched cost of ``1e6 + 1``, i.e. the matching maximising the sum of ``1e6 + 1 - cost``; solved here by
  ``scipy.optimize.linear_sum_assignment`` on each connected component of the overlap graph);
  TP = matched truth ids, FP = unmatched predictions, FN = unmatched truth ids. Matching is skipped
  (the crop then adds nothing to its class) when predictions outnumber truth instances by more than
  ``10 + 50 exp(-nG / 5)`` or the overlap graph has over 5e6 edges (``config.py:ratio_cutoff``).
  Predictions are renumbered to their matched truth ids (unmatched ones keep their id), then one
  Hausdorff distance per truth id (``distance.py:compute_hausdorff_distance_roi``: the larger directed
  maximum of the Euclidean distances in nm, capped at ``min(voxel * shape) / 2``; the cap when the id is
  not predicted) and one cap per unmatched prediction, each normalised to ``1.01 ** (-d / |voxel|)``
  (``distance.py:normalize_distance``).
* **Missing labels** (``scoring.py:empty_label_score``): instance: every truth instance a FN with a
  normalised distance of 0; semantic: every voxel of the crop a FN.
* **Aggregation** (``aggregation.py:combine_scores``): per label, TP/FP/FN and the normalised distances
  pooled over crops; instance: F1 = 2TP / (2TP + FP + FN), normalised Hausdorff = mean over the pool,
  combined = sqrt(F1 x normalised Hausdorff) (1 for all three when a label has nothing anywhere);
  semantic: IoU = TP / (TP + FP + FN) (1 when empty). Overall instance / semantic scores are plain means
  over labels, the overall score their geometric mean.

Dice of semantic labels (2TP / (2TP + FP + FN), pooled) is reported beside IoU; it is not part of the
overall score. The speed comes from computing each Hausdorff distance on the union of the two objects'
bounding boxes (exact: every voxel of either set lies inside it) instead of a box padded by the cap.
"""
from __future__ import annotations

import itertools
import json
import math
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cc3d
import fastremap
import numpy as np
import zarr
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.transform import rescale
from tqdm import tqdm

from emseg_plugins.challenge.config import INSTANCE_CLASSES
from emseg_plugins.challenge.manifest import TestCrop
from emseg_plugins.challenge.submit import (
    MAX_VOLUME_SIZE_RATIO,
    LabelArray,
    align_to_crop,
    format_pairs,
    read_label,
    safe_extract,
    submission_root,
)
from emseg_plugins.errors import DataError
from emseg_plugins.utils.atomic import atomic_write_text

# eval_utils/config.py defaults
COST_SCALE = 1_000_000  # mcmf_cost_scale
FINAL_INSTANCE_RATIO_CUTOFF = 10.0
INITIAL_INSTANCE_RATIO_CUTOFF = 50.0
INSTANCE_RATIO_FACTOR = 5.0
MAX_OVERLAP_EDGES = 5_000_000
# utils/matched_crop.py: a source above CHUNKED_LOADING_MB (as float32) is rescaled chunk by chunk
CHUNKED_LOADING_MB = 500
CHUNK_MB = 100


class SkipMatching(Exception):
    """Instance matching refused (too many predictions or overlap edges): the crop adds nothing to its class."""


# -- distances -----------------------------------------------------------------------------------------------

def max_distance(voxel_size: Sequence[float], shape: Sequence[int]) -> float:
    """The Hausdorff cap (nm): half the crop's smallest physical extent (``distance.py:compute_max_distance``)."""
    return float(min(v * s / 2 for v, s in zip(np.asarray(voxel_size, np.float64), np.asarray(shape, np.int64))))


def normalize_distance(distance, voxel_size: Sequence[float]) -> np.ndarray:
    """``1.01 ** (-d / |voxel_size|)``, inf -> 0 (``distance.py:normalize_distance``)."""
    d = np.asarray(distance, dtype=np.float64)
    return np.where(np.isinf(d), 0.0, 1.01 ** (-d / np.linalg.norm(voxel_size)))


def ratio_cutoff(n_truth: int) -> float:
    """Largest accepted predicted/true instance ratio (``config.py:ratio_cutoff``)."""
    return float(FINAL_INSTANCE_RATIO_CUTOFF + INITIAL_INSTANCE_RATIO_CUTOFF * np.exp(-n_truth / INSTANCE_RATIO_FACTOR))


def hausdorff_distances(truth: np.ndarray, pred: np.ndarray, truth_ids: np.ndarray, voxel_size: Sequence[float],
                        cap: float) -> np.ndarray:
    """One distance (nm, float32) per id of ``truth_ids``: Hausdorff between ``truth == id`` and ``pred == id``.

    ``min(max(directed maxima), cap)``, and ``cap`` where ``pred`` lacks the id. Computed on the union of the
    two bounding boxes (``scipy.ndimage.find_objects``), which holds both sets, so the distances are those
    of the whole volume.
    """
    out = np.empty(len(truth_ids), dtype=np.float32)
    if not len(truth_ids):
        return out
    vs = np.asarray(voxel_size, dtype=np.float64)[-truth.ndim:]
    t_boxes = ndimage.find_objects(truth)
    p_boxes = ndimage.find_objects(pred, max_label=int(truth_ids.max()))
    for i, tid in enumerate(truth_ids.tolist()):
        tb = t_boxes[tid - 1]
        pb = p_boxes[tid - 1] if tid - 1 < len(p_boxes) else None
        if pb is None:
            out[i] = cap
            continue
        roi = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(tb, pb))
        a, b = truth[roi] == tid, pred[roi] == tid
        forward = ndimage.distance_transform_edt(~b, sampling=vs)[a]
        backward = ndimage.distance_transform_edt(~a, sampling=vs)[b]
        out[i] = min(max(forward.max(initial=0.0), backward.max(initial=0.0)), cap)
    return out


# -- instance matching ----------------------------------------------------------------------------------------

def match_instances(truth: np.ndarray, pred: np.ndarray) -> dict[int, int]:
    """``{pred id: truth id}`` of the optimal one-to-one matching by IoU (``instance_matching.py:match_instances``).

    ``{0: 0}`` when both are empty, ``{}`` when one is empty or nothing overlaps. Ids are counted as the
    largest id (``nG = max(truth)``, ``nP = max(pred)``), as there. :class:`SkipMatching` when the
    prediction/truth ratio or the number of overlapping pairs exceeds the challenge's limits.
    """
    g, p = truth.ravel(), pred.ravel()
    n_g = int(g.max()) if g.size else 0
    n_p = int(p.max()) if p.size else 0
    if n_g == 0 and n_p == 0:
        return {0: 0}
    if n_g == 0 or n_p == 0:
        return {}
    if n_p / n_g > ratio_cutoff(n_g):
        raise SkipMatching(f"{n_p} predicted vs {n_g} true instances")
    both = (g > 0) & (p > 0)
    if not both.any():
        return {}
    key = (g[both].astype(np.uint64) - 1) * np.uint64(n_p) + (p[both].astype(np.uint64) - 1)
    keys, inter = np.unique(key, return_counts=True)
    if keys.size > MAX_OVERLAP_EDGES:
        raise SkipMatching(f"{keys.size} overlapping pairs")
    rows, cols = (keys // np.uint64(n_p)).astype(np.int64), (keys % np.uint64(n_p)).astype(np.int64)
    g_sizes = np.bincount(g[g > 0].astype(np.int64) - 1, minlength=n_g)
    p_sizes = np.bincount(p[p > 0].astype(np.int64) - 1, minlength=n_p)
    iou = (inter / (g_sizes[rows] + p_sizes[cols] - inter)).astype(np.float32)  # float32, as there
    cost = np.trunc((1.0 - iou.astype(np.float64)) * COST_SCALE).astype(np.int64)
    weight = (COST_SCALE + 1) - cost  # what matching the pair saves against leaving the truth id unmatched (> 0)
    return _max_weight_matching(rows, cols, weight, n_g, n_p)


def _max_weight_matching(rows: np.ndarray, cols: np.ndarray, weight: np.ndarray, n_g: int, n_p: int) -> dict[int, int]:
    """Maximum-weight bipartite matching of the sparse edges, solved per connected component of the edge graph."""
    graph = coo_matrix((np.ones(len(rows)), (rows, n_g + cols)), shape=(n_g + n_p, n_g + n_p))
    _, component = connected_components(graph, directed=False)
    edge_comp = component[rows]
    order = np.argsort(edge_comp, kind="stable")
    bounds = np.flatnonzero(np.diff(edge_comp[order])) + 1
    mapping: dict[int, int] = {}
    for edges in np.split(order, bounds):
        if len(edges) == 1:  # one truth id overlapping one prediction only: they match
            e = edges[0]
            mapping[int(cols[e]) + 1] = int(rows[e]) + 1
            continue
        r_ids, r = np.unique(rows[edges], return_inverse=True)
        c_ids, c = np.unique(cols[edges], return_inverse=True)
        dense = np.zeros((len(r_ids), len(c_ids)), dtype=np.float64)
        dense[r, c] = weight[edges]
        for i, j in zip(*linear_sum_assignment(dense, maximize=True)):
            if dense[i, j] > 0:
                mapping[int(c_ids[j]) + 1] = int(r_ids[i]) + 1
    return mapping


# -- alignment ------------------------------------------------------------------------------------------------

def rescale_chunked(image: np.ndarray, factors: Sequence[float], instance: bool) -> np.ndarray:
    """``image`` (Z, Y, X) rescaled by ``factors`` cube by cube (``matched_crop.py:_load_array_chunked``).

    Cubes of ``max(32, int((100 MiB / 4 B) ** (1/3)))`` = 297 voxels a side are rescaled independently
    (instances: nearest, keeping the dtype; masks: linear into float32, ``> 0.5`` at the end) and placed at
    ``int(start * factor)`` in an output of ``max(1, round(shape * factor))`` voxels. A cube's rescaled
    length can fall short of the next cube's start (factor 0.5: 297 -> 148 voxels, the next cube at 148,
    the one after at 297, leaving 296 empty): those planes stay background, splitting the objects that
    cross them, as in the official scores.
    """
    factors = np.asarray(factors, dtype=np.float64)
    out_shape = tuple(max(1, int(np.round(n * f))) for n, f in zip(image.shape, factors))
    out = np.zeros(out_shape, dtype=image.dtype if instance else np.float32)
    step = max(32, int((CHUNK_MB * 1024 * 1024 / 4) ** (1 / 3)))
    for start in itertools.product(*(range(0, n, step) for n in image.shape)):
        chunk = image[tuple(slice(a, a + step) for a in start)]
        if instance:
            small = rescale(chunk, factors, order=0, mode="constant", preserve_range=True).astype(chunk.dtype)
        else:
            small = rescale(chunk.astype(np.float32) if chunk.dtype == bool else chunk, factors, order=1,
                            mode="constant", preserve_range=True)
        at = [int(a * f) for a, f in zip(start, factors)]
        size = [max(0, min(a + n, m) - a) for a, n, m in zip(at, small.shape, out_shape)]
        out[tuple(slice(a, a + n) for a, n in zip(at, size))] = small[tuple(slice(0, n) for n in size)]
    return out if instance else out > 0.5


def load_aligned(label: LabelArray, voxel_size: Sequence[float], shape: Sequence[int], translation: Sequence[float],
                 instance: bool, where: str = "") -> np.ndarray:
    """A submitted array in the crop's grid (``shape`` voxels of ``voxel_size`` nm at ``translation`` nm), exactly
    as the evaluator's ``MatchedCrop.load_aligned`` produces it.

    :func:`~emseg_plugins.challenge.submit.align_to_crop`, except for a source of more than 500 MiB as
    float32 (> 131,072,000 voxels) to be resampled: it is rescaled by :func:`rescale_chunked` (by source /
    crop voxel size, or without a voxel size by the inverse of a shape ratio >= 1), then only translated.
    """
    data = label.data
    big = data.size * 4 / 2**20 > CHUNKED_LOADING_MB and data.size <= MAX_VOLUME_SIZE_RATIO * np.prod(shape, dtype=np.float64)
    if big:
        target = np.asarray(voxel_size, dtype=np.float64)
        factors = None
        if label.voxel_size is not None:
            source = np.asarray(label.voxel_size, dtype=np.float64)[-target.size:]
            factors = None if np.allclose(source, target) else source / target
        else:
            ratios = np.asarray(data.shape[-len(shape):]) / np.asarray(shape)
            factors = 1.0 / ratios if np.all(ratios >= 1.0) and not np.allclose(ratios, 1.0) else None
        if factors is not None:
            label = LabelArray(rescale_chunked(data, factors, instance), tuple(target), label.translation)
    return align_to_crop(label, voxel_size, shape, translation, instance, where=where)


# -- per-crop scores ------------------------------------------------------------------------------------------

def score_instance(pred: np.ndarray, truth: np.ndarray, voxel_size: Sequence[float]) -> dict[str, Any]:
    """TP/FP/FN and the pooled normalised Hausdorff sum/count of one crop (``scoring.py:score_instance``)."""
    cap = max_distance(voxel_size, truth.shape)
    pred, n_pred = cc3d.connected_components(np.ascontiguousarray(pred), return_N=True)
    try:
        mapping = match_instances(truth, pred)
    except SkipMatching as exc:
        warnings.warn(f"instance matching skipped ({exc}); the crop adds nothing to its class, as in the challenge", UserWarning, stacklevel=2)
        return {"tp": 0, "fp": 0, "fn": 0, "hausdorff_norm_sum": 0.0, "n_hausdorff": 0, "status": "skipped_too_many_instances"}
    if mapping and mapping != {0: 0}:
        mapping[0] = 0
        top = max(mapping.values())
        if top > np.iinfo(pred.dtype).max:
            pred = pred.astype(np.uint64)
        pred = fastremap.remap(pred, mapping, preserve_missing_labels=True, in_place=False)
    truth_ids = fastremap.unique(truth)
    truth_ids = truth_ids[truth_ids != 0].astype(np.int64)
    distances = hausdorff_distances(truth, pred, truth_ids, voxel_size, cap)
    matched_pred = len(set(mapping) - {0})
    distances = np.concatenate([distances, np.full(n_pred - matched_pred, cap, dtype=np.float32)])
    tp = len(set(mapping.values()) - {0})
    normalized = normalize_distance(distances, voxel_size)
    return {"tp": tp, "fp": int(n_pred - matched_pred), "fn": int(truth_ids.size - tp),
            "hausdorff_norm_sum": float(np.sum(normalized)), "n_hausdorff": int(normalized.size), "status": "scored"}


def score_semantic(pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Voxel TP/FP/FN of ``pred > 0`` against ``truth > 0`` (``scoring.py:score_semantic``)."""
    p, t = np.asarray(pred) > 0, np.asarray(truth) > 0
    tp = int(np.count_nonzero(p & t))
    return {"tp": tp, "fp": int(np.count_nonzero(p)) - tp, "fn": int(np.count_nonzero(t)) - tp, "status": "scored"}


def missing_score(truth: np.ndarray, instance: bool) -> dict[str, Any]:
    """A label not submitted (``scoring.py:empty_label_score``): instance ids all FN at distance score 0; else all voxels FN."""
    if instance:
        ids = fastremap.unique(truth)
        n = int(np.count_nonzero(ids))
        return {"tp": 0, "fp": 0, "fn": n, "hausdorff_norm_sum": 0.0, "n_hausdorff": n, "status": "missing"}
    return {"tp": 0, "fp": 0, "fn": int(truth.size), "status": "missing"}


# -- aggregation ----------------------------------------------------------------------------------------------

def combine_scores(crops: dict[str, dict[str, dict]], instance_classes: Sequence[str], include_missing: bool = True) -> dict[str, Any]:
    """Per-label pooled scores and the overall scores (``aggregation.py:combine_scores``)."""
    pooled: dict[str, dict[str, float]] = {}
    for labels in crops.values():
        for label, s in labels.items():
            if s["is_missing"] and not include_missing:
                continue
            acc = pooled.setdefault(label, {"tp": 0, "fp": 0, "fn": 0, "sum": 0.0, "count": 0})
            for k in ("tp", "fp", "fn"):
                acc[k] += s[k]
            if label in instance_classes:
                acc["sum"] += s["hausdorff_norm_sum"]
                acc["count"] += s["n_hausdorff"]
    label_scores: dict[str, dict[str, Any]] = {}
    instance_scores, semantic_scores = [], []
    for label in sorted(pooled):
        acc = pooled[label]
        tp, fp, fn = acc["tp"], acc["fp"], acc["fn"]
        if label in instance_classes:
            denom, count = 2 * tp + fp + fn, acc["count"]
            if denom == 0 and count == 0:
                f1 = hausdorff = combined = 1.0
            else:
                f1 = 2 * tp / denom if denom else 0.0
                hausdorff = acc["sum"] / count if count else 0.0
                combined = math.sqrt(f1 * hausdorff)
            entry = {"type": "instance", "f1": f1, "normalized_hausdorff_distance": hausdorff, "combined_score": combined}
            instance_scores.append(combined)
        else:
            denom = tp + fp + fn
            iou = tp / denom if denom else 1.0
            entry = {"type": "semantic", "iou": iou, "dice": 2 * tp / (2 * tp + fp + fn) if denom else 1.0}
            semantic_scores.append(iou)
        label_scores[label] = {**entry, "tp": int(tp), "fp": int(fp), "fn": int(fn)}
    instance = sum(instance_scores) / len(instance_scores) if instance_scores else 0.0
    semantic = sum(semantic_scores) / len(semantic_scores) if semantic_scores else 0.0
    return {"label_scores": label_scores, "overall_instance_score": instance, "overall_semantic_score": semantic,
            "overall_score": math.sqrt(instance * semantic)}


# -- a whole submission ---------------------------------------------------------------------------------------

@dataclass
class Task:
    crop: str  # crop<id>
    label: str
    truth_path: Path
    pred_path: Path | None  # None = not submitted


def _arrays(group: Path) -> list[str]:
    return sorted(p.name for p in group.iterdir() if p.is_dir() and (p / ".zarray").is_file()) if group.is_dir() else []


def _volumes(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def plan_tasks(submission: Path, truth: Path) -> tuple[list[Task], list[str]]:
    """(one task per truth crop/label, the ``crop/label`` names not submitted) (``submission.py:get_evaluation_args``)."""
    truth_volumes = [v for v in _volumes(truth) if _arrays(truth / v)]
    if not truth_volumes:
        raise DataError(f"{truth}: no ground-truth crops (expected crop<id>/<label> zarr arrays); check --truth")
    submitted = _volumes(submission)
    rename = {v: v for v in submitted}
    if not set(submitted) & set(truth_volumes):  # submission.py:_discover_volumes also accepts names without "crop"
        rename = {f"crop{v}": v for v in submitted}
        if not set(rename) & set(truth_volumes):
            raise DataError(f"{submission}: none of its groups ({', '.join(submitted[:5]) or 'none'}) is a ground-truth crop "
                            f"({', '.join(truth_volumes[:5])}, ...); package it with `emseg cellmap submit`")
    tasks, missing = [], []
    for volume in truth_volumes:
        pred_labels = set(_arrays(submission / rename[volume])) if volume in rename else set()
        for label in _arrays(truth / volume):
            # every truth array is a label there, a <label>_mask too (masking <label> in scoring.py:score_label
            # and, not being submitted, scored as a missing semantic label itself)
            found = label in pred_labels
            tasks.append(Task(volume, label, truth / volume / label, submission / rename[volume] / label if found else None))
            if not found:
                missing.append(f"{volume}/{label}")
    return tasks, missing


def score_task(task: Task, geometry: dict[tuple[int, str], TestCrop], instance_classes: Sequence[str]) -> dict[str, Any]:
    """One crop/label scored (``scoring.py:score_label``)."""
    truth_array = zarr.open_array(str(task.truth_path), mode="r")
    truth = truth_array[:]
    crop_id = int(task.crop.removeprefix("crop"))
    row = geometry.get((crop_id, task.label))
    instance = task.label in instance_classes
    if task.pred_path is None:  # scoring.py:empty_label_score: counts and the truth array's voxel_size only
        voxel_size = [float(v) for v in truth_array.attrs.get("voxel_size", row.voxel_size if row else ())]
        return {**missing_score(truth, instance), "num_voxels": int(truth.size), "voxel_size": voxel_size, "is_missing": True}
    voxel_size = tuple(row.voxel_size) if row else tuple(float(v) for v in truth_array.attrs.get("voxel_size", ()))
    translation = tuple(row.translation) if row else tuple(float(v) for v in truth_array.attrs.get("translation", ()))
    if len(voxel_size) != 3 or len(translation) != 3:
        raise DataError(f"{task.truth_path}: crop {crop_id} label {task.label!r} is not in the manifest and the truth array lacks "
                        "voxel_size/translation attributes; pass the manifest of these crops (--manifest)")
    meta = {"num_voxels": int(truth.size), "voxel_size": list(voxel_size)}
    label = read_label(task.pred_path, voxel_size)
    pred = load_aligned(label, voxel_size, truth.shape, translation, instance, where=str(task.pred_path))
    mask_path = task.truth_path.parent / f"{task.label}_mask"
    if (mask_path / ".zarray").is_file():
        mask = zarr.open_array(str(mask_path), mode="r")[:]
        pred, truth = pred * mask, truth * mask
    scores = score_instance(pred, truth, voxel_size) if instance else score_semantic(pred, truth)
    return {**scores, **meta, "is_missing": False}


def score_submission(submission: str | Path, truth: str | Path, crops: Sequence[TestCrop] = (),
                     instance_classes: Sequence[str] = INSTANCE_CLASSES, progress: bool = True) -> dict[str, Any]:
    """Score ``submission`` (a .zip or a submission.zarr directory) against the ground-truth zarr ``truth``.

    ``crops`` (manifest rows) give each crop/label's voxel size and translation; rows absent there fall
    back to the truth array's ``voxel_size``/``translation`` attributes. Labels of the truth not in the
    submission are scored as missing, with one warning listing them. Returns the official structure
    (``crop<id>`` -> label -> counts, ``label_scores``, ``overall_*``) plus ``missing`` and
    ``submitted_only`` (the overall scores of the submitted labels alone).
    """
    submission, truth = Path(submission), Path(truth)
    if not truth.is_dir():
        raise DataError(f"{truth}: ground-truth zarr not found; pass --truth DIR holding crop<id>/<label> arrays")
    if not submission.exists():
        raise DataError(f"{submission}: submission not found; pass the submission.zip or submission.zarr written by `emseg cellmap submit`")
    geometry = {(c.id, c.class_label): c for c in crops}
    with tempfile.TemporaryDirectory(prefix="emseg-cellmap-eval-") as tmp:
        root = submission_root(safe_extract(submission, tmp) if submission.is_file() else submission)
        tasks, missing = plan_tasks(root, truth)
        if missing:
            warnings.warn(f"{len(missing)} ground-truth crop/labels not in the submission, scored as missing: "
                          f"{format_pairs([(m.split('/')[0][4:], m.split('/')[1]) for m in missing])}", UserWarning, stacklevel=2)
        per_crop: dict[str, dict[str, dict]] = {}
        for task in tqdm(tasks, desc="score", unit="label", disable=not progress, leave=False):
            per_crop.setdefault(task.crop, {})[task.label] = score_task(task, geometry, instance_classes)
    result: dict[str, Any] = {**per_crop, **combine_scores(per_crop, instance_classes)}
    found = combine_scores(per_crop, instance_classes, include_missing=False)
    result["submitted_only"] = {k: v for k, v in found.items() if k.startswith("overall")}
    result["missing"] = missing
    return result


# -- reports --------------------------------------------------------------------------------------------------

def format_report(scores: dict[str, Any]) -> str:
    """A readable table: one row per label, then the overall scores."""
    lines = [f"{'label':<14} {'type':<9} {'score':>7} {'f1':>7} {'hd_norm':>7} {'iou':>7} {'dice':>7} {'tp':>10} {'fp':>10} {'fn':>10}"]
    for label, s in scores["label_scores"].items():
        if s["type"] == "instance":
            cells = [s["combined_score"], s["f1"], s["normalized_hausdorff_distance"], None, None]
        else:
            cells = [s["iou"], None, None, s["iou"], s["dice"]]
        text = " ".join(f"{'-':>7}" if c is None else f"{c:7.4f}" for c in cells)
        lines.append(f"{label:<14} {s['type']:<9} {text} {s['tp']:>10} {s['fp']:>10} {s['fn']:>10}")
    lines.append(f"overall instance {scores['overall_instance_score']:.4f}   semantic {scores['overall_semantic_score']:.4f}   "
                 f"overall {scores['overall_score']:.4f}")
    if scores.get("missing"):
        lines.append(f"({len(scores['missing'])} crop/labels missing from the submission were scored as missing)")
    return "\n".join(lines)


def write_scores(path: str | Path, scores: dict[str, Any]) -> Path:
    """The scores as JSON (atomically)."""
    atomic_write_text(path, json.dumps(scores, indent=2, default=_plain))
    return Path(path)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# -- a local ground truth ---------------------------------------------------------------------------------------

def write_truth_from_root(data_root: str | Path, crops: Sequence[TestCrop], output: str | Path,
                          instance_classes: Sequence[str] = INSTANCE_CLASSES, tolerance: float = 0.15) -> Path:
    """Write a ground-truth zarr in the evaluator's layout (``crop<id>/<label>``, attrs voxel_size, translation)
    from the annotated crops of a data root, for the manifest rows ``crops``.

    Each label is read at its row's voxel size (a composite missing its own array: the union of its members);
    instance labels become ids by 26-connected components (annotations there are masks), semantic ones uint8.
    """
    from emseg_plugins.datasets.cellmap_layout import (
        GT_NAME,
        level_at,
        load_class_table,
        read_multiscales,
    )

    table = load_class_table()
    root = zarr.open_group(str(output), mode="w")
    for row in crops:
        crop_dir = Path(data_root) / row.dataset / f"{row.dataset}.zarr" / GT_NAME / row.name
        names = [row.class_label] if (crop_dir / row.class_label).is_dir() else list(table.members_of(row.class_label))
        mask = None
        for name in names:
            group = crop_dir / name
            if not group.is_dir():
                raise DataError(f"{group}: not found; crop {row.id} of {row.dataset} does not annotate {row.class_label!r}")
            level = level_at(read_multiscales(group), row.voxel_size, tolerance)
            if level is None:
                raise DataError(f"{group}: no level at {list(row.voxel_size)} nm for crop {row.id} label {row.class_label!r}")
            part = zarr.open_array(str(group / level.path), mode="r")[:] > 0
            mask = part if mask is None else mask | part
        if mask.shape != tuple(row.shape):
            raise DataError(f"{crop_dir}: {row.class_label} is {list(mask.shape)} voxels, the manifest row says {list(row.shape)}")
        data = cc3d.connected_components(mask, connectivity=26, out_dtype=np.uint32) if row.class_label in instance_classes \
            else mask.astype(np.uint8)
        array = root.require_group(row.name).create_dataset(row.class_label, data=data, chunks=64, overwrite=True)
        array.attrs.update(voxel_size=list(row.voxel_size), translation=list(row.translation))
    return Path(output)
