"""Partition metrics of connectomics: adapted Rand error and variation of information.

Both compare a predicted label map with a true one (same shape, e.g. (Z, Y, X), integer ids) as
two partitions of the voxels, so they count splits and merges of instances and do not depend on
which number an instance carries. They are computed by scikit-image
(:func:`skimage.metrics.adapted_rand_error`, :func:`skimage.metrics.variation_of_information`);
this module fixes the conventions:

* **Background** (``ignore_background=True``, the default, as in SNEMI3D and CREMI): voxels whose
  *true* label is 0 are left out of both scores, whatever the prediction says there. Predicted 0
  is *not* special: inside true objects it is one more predicted segment (so predicting
  background over two objects merges them). With ``ignore_background=False`` every voxel counts
  and true 0 is one more true segment.
* **Adapted Rand error** (SNEMI3D, Arganda-Carreras et al. 2015, scikit-image's form): with n_ij
  the voxels in true segment i and predicted segment j, a_i and b_j the true and predicted
  segment sizes, and pairs counted as ordered pairs of distinct voxels (n (n - 1)):
  ``are_precision = sum n_ij (n_ij - 1) / sum b_j (b_j - 1)`` (of the voxel pairs the
  prediction puts together, the fraction the truth puts together: false merges lower it),
  ``are_recall = sum n_ij (n_ij - 1) / sum a_i (a_i - 1)`` (false splits lower it) and
  ``are = 1 - F1(are_precision, are_recall)``. 0 is perfect, 1 the worst. (scikit-image 0.26
  returns these two in the opposite order of its own docstring, scikit-image issue #6485; they
  are told apart here by what a pure split gives.) Unlike the CREMI script, predicted 0 is not
  cut into single-voxel segments, and a voxel is not paired with itself.
* **Variation of information** (CREMI, Meila 2007), in **bits** (log base 2):
  ``voi_split = H(pred | truth)`` (over-segmentation), ``voi_merge = H(truth | pred)``
  (under-segmentation), ``voi = voi_split + voi_merge``. 0 is perfect; cutting one object
  into two equal halves costs exactly 1 bit of split.

When no voxel counts (the truth is all background and it is ignored) the comparison is empty and
scores as perfect (``are`` 0, precision and recall 1, VOI 0); a precision or recall without any
voxel pair to count (only single-voxel segments) is 1.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
from skimage.metrics import adapted_rand_error, variation_of_information

__all__ = ["partition_scores"]


def partition_scores(pred: np.ndarray, truth: np.ndarray, ignore_background: bool = True) -> dict[str, float]:
    """``are``, ``are_precision``, ``are_recall``, ``voi_split``, ``voi_merge`` and ``voi`` (bits)
    of the predicted label map `pred` against the true one `truth` (same shape, integer ids);
    conventions in the module docstring."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {truth.shape} differ in shape")
    pred, truth = _ids(pred, "prediction"), _ids(truth, "ground truth")
    ignore = (0,) if ignore_background else ()
    if truth.size == 0 or (ignore_background and not np.any(truth != 0)):
        return {"are": 0.0, "are_precision": 1.0, "are_recall": 1.0, "voi_split": 0.0, "voi_merge": 0.0, "voi": 0.0}
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        are, first, second = (float(x) for x in adapted_rand_error(truth, pred, ignore_labels=ignore))
        split, merge = (float(x) for x in variation_of_information(truth, pred, ignore_labels=ignore))
    precision, recall = (second, first) if _skimage_swaps_precision_recall() else (first, second)
    precision = 1.0 if np.isnan(precision) else precision
    recall = 1.0 if np.isnan(recall) else recall
    if np.isnan(are):  # no voxel pair on either side: 0/0
        are = 1.0 - (2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    split, merge = max(split, 0.0) + 0.0, max(merge, 0.0) + 0.0  # no -0.0, no rounding below zero
    return {"are": are, "are_precision": precision, "are_recall": recall,
            "voi_split": split, "voi_merge": merge, "voi": split + merge}


def _ids(labels: np.ndarray, what: str) -> np.ndarray:
    """Integer ids as small non-negative intp codes (0 stays 0, the partition is kept), so that
    scikit-image's contingency table (indexed by label value) stays small."""
    if labels.dtype == bool:
        return labels.astype(np.intp)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what} must hold integer ids, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > labels.size):
        values, codes = np.unique(labels, return_inverse=True)
        new = np.arange(1, len(values) + 1, dtype=np.intp)
        new[values == 0] = 0
        return new[codes.reshape(labels.shape)]
    return labels.astype(np.intp, copy=False)


@functools.cache
def _skimage_swaps_precision_recall() -> bool:
    """True if :func:`adapted_rand_error` returns (are, recall, precision) in the sense of the
    module docstring (scikit-image issue #6485): a true object cut in two halves has precision 1
    (the prediction never pairs voxels the truth separates) and recall < 1."""
    truth = np.array([1, 1, 1, 1])
    split = np.array([1, 1, 2, 2])
    _, first, _ = adapted_rand_error(truth, split, ignore_labels=())
    return bool(first < 1.0)
