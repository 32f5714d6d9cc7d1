"""Adapted Rand error and variation of information against independent references: closed forms on
hand-made partitions, a brute-force count over voxel pairs and entropies from their definition."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from emseg_plugins.evaluation.partition_metrics import partition_scores

KEYS = ("are", "are_precision", "are_recall", "voi_split", "voi_merge", "voi")


def reference(pred: np.ndarray, truth: np.ndarray, ignore_background: bool = True) -> dict[str, float]:
    """From the definitions, without scikit-image: every pair of distinct voxels is enumerated, and
    the conditional entropies (bits) are summed over the joint label counts."""
    p, t = pred.ravel(), truth.ravel()
    if ignore_background:
        p, t = p[t != 0], t[t != 0]
    n = len(p)
    i, j = np.triu_indices(n, 1)
    same_p, same_t = p[i] == p[j], t[i] == t[j]
    both = int((same_p & same_t).sum())
    precision = both / same_p.sum() if same_p.any() else 1.0
    recall = both / same_t.sum() if same_t.any() else 1.0
    joint, count_t, count_p = Counter(zip(t.tolist(), p.tolist())), Counter(t.tolist()), Counter(p.tolist())
    split = -sum(c / n * math.log2(c / count_t[a]) for (a, _), c in joint.items())  # H(pred | truth)
    merge = -sum(c / n * math.log2(c / count_p[b]) for (_, b), c in joint.items())  # H(truth | pred)
    return {"are": 1 - 2 * precision * recall / (precision + recall), "are_precision": precision, "are_recall": recall,
            "voi_split": split, "voi_merge": merge, "voi": split + merge}


def assert_scores(got: dict, expected: dict, tol: float = 1e-12):
    assert set(got) == set(KEYS)
    for key in KEYS:
        assert isinstance(got[key], float), key
        assert got[key] == pytest.approx(expected[key], abs=tol), key


def block(shape=(2, 4, 6)) -> np.ndarray:
    """One true object filling a (Z, Y, X) block, inside a background frame one voxel wide."""
    truth = np.zeros(tuple(s + 2 for s in shape), np.uint32)
    truth[1:-1, 1:-1, 1:-1] = 7
    return truth


def halves(truth: np.ndarray, a: int = 3, b: int = 9) -> np.ndarray:
    """The object of `truth` cut in two equal halves along X, ids a and b; background 0."""
    out = np.zeros_like(truth)
    inside = truth != 0
    xs = np.nonzero(inside.any(axis=(0, 1)))[0]
    left = np.zeros_like(inside)
    left[..., xs[: len(xs) // 2]] = True
    out[inside & left] = a
    out[inside & ~left] = b
    return out


def test_identical_partitions_score_perfect():
    truth = halves(block())
    assert_scores(partition_scores(truth, truth), {"are": 0.0, "are_precision": 1.0, "are_recall": 1.0,
                                                   "voi_split": 0.0, "voi_merge": 0.0, "voi": 0.0})


def test_object_split_in_two_halves_is_one_bit_of_split():
    truth = block()
    pred = halves(truth)
    n = int((truth != 0).sum())
    h = n // 2
    recall = (h - 1) / (2 * h - 1)  # 2 h (h - 1) pairs kept together of n (n - 1)
    expected = {"voi_split": 1.0, "voi_merge": 0.0, "voi": 1.0, "are_precision": 1.0, "are_recall": recall,
                "are": 1 - 2 * recall / (1 + recall)}
    assert_scores(partition_scores(pred, truth), expected)
    assert partition_scores(pred, truth)["voi_split"] == pytest.approx(1.0, abs=1e-12)  # one bit: log base 2


def test_two_objects_merged_is_one_bit_of_merge():
    truth = halves(block())
    pred = (truth != 0).astype(np.uint32) * 5
    h = int((truth == 3).sum())
    precision = (h - 1) / (2 * h - 1)
    expected = {"voi_split": 0.0, "voi_merge": 1.0, "voi": 1.0, "are_precision": precision, "are_recall": 1.0,
                "are": 1 - 2 * precision / (1 + precision)}
    assert_scores(partition_scores(pred, truth), expected)
    assert partition_scores(pred, truth)["voi_merge"] == pytest.approx(1.0, abs=1e-12)


def test_split_and_merge_are_mirror_images():
    a, b = block(), halves(block())
    split, merge = partition_scores(b, a), partition_scores(a, b)
    assert split["voi_split"] == pytest.approx(merge["voi_merge"])
    assert split["are_recall"] == pytest.approx(merge["are_precision"])
    assert split["are"] == pytest.approx(merge["are"])


def test_relabelling_changes_nothing():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, (3, 6, 7))
    pred = rng.integers(0, 4, (3, 6, 7))
    base = partition_scores(pred, truth)
    # any bijection of the predicted ids (0 included: predicted 0 is an ordinary segment), huge or negative ids
    pred_map = np.array([-4, 10**12, 17, 0])
    # any bijection of the true ids that keeps 0 as the background
    truth_map = np.array([0, 2**40, 1, 99, 3], dtype=np.uint64)
    assert_scores(partition_scores(pred_map[pred], truth_map[truth]), base)
    assert_scores(partition_scores(pred.astype(np.uint16), truth.astype(np.int8)), base)


def test_background_of_the_truth_is_ignored_by_hand():
    """truth [0 0 | 1 1 2 2], pred [5 6 | 1 1 1 1]: only the last four voxels count, where the
    prediction merges the two true objects: 1 bit of merge, nothing split; of the 4*3 = 12 ordered
    pairs the prediction puts together, 2*(2*1) = 4 are together in the truth."""
    truth = np.array([0, 0, 1, 1, 2, 2]).reshape(1, 2, 3)
    pred = np.array([5, 6, 1, 1, 1, 1]).reshape(1, 2, 3)
    got = partition_scores(pred, truth)
    assert_scores(got, {"voi_split": 0.0, "voi_merge": 1.0, "voi": 1.0, "are_precision": 1 / 3, "are_recall": 1.0,
                        "are": 1 - 2 * (1 / 3) / (1 + 1 / 3)})
    # whatever the prediction says on the true background does not matter
    assert_scores(partition_scores(np.array([1, 1, 1, 1, 1, 1]).reshape(1, 2, 3), truth), got)
    assert_scores(partition_scores(np.array([0, 7, 1, 1, 1, 1]).reshape(1, 2, 3), truth), got)


def test_background_counted_when_not_ignored_by_hand():
    """The same example with every voxel counted: joint counts (0,5) 1, (0,6) 1, (1,1) 2, (2,1) 2.
    H(pred | truth) = 2/6 * 1 bit (true 0 is cut in two), H(truth | pred) = 4/6 * 1 bit (predicted 1
    holds two true halves). Ordered pairs: together in both 2 + 2 = 4, in the truth 3 * 2 = 6, in the
    prediction 4 * 3 = 12."""
    truth = np.array([0, 0, 1, 1, 2, 2]).reshape(1, 2, 3)
    pred = np.array([5, 6, 1, 1, 1, 1]).reshape(1, 2, 3)
    precision, recall = 4 / 12, 4 / 6
    assert_scores(partition_scores(pred, truth, ignore_background=False),
                  {"voi_split": 1 / 3, "voi_merge": 2 / 3, "voi": 1.0, "are_precision": precision, "are_recall": recall,
                   "are": 1 - 2 * precision * recall / (precision + recall)})


def test_predicted_background_inside_objects_is_a_segment():
    """Predicting 0 over two true objects merges them (predicted 0 is not ignored)."""
    truth = np.array([1, 1, 2, 2]).reshape(1, 1, 4)
    got = partition_scores(np.zeros_like(truth), truth)
    assert got["voi_merge"] == pytest.approx(1.0, abs=1e-12) and got["voi_split"] == 0.0 and got["are_recall"] == 1.0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ignore_background", [True, False])
def test_matches_the_brute_force_reference(seed, ignore_background):
    rng = np.random.default_rng(seed)
    shape = (2, 5, 6)
    truth = rng.integers(0, 1 + seed % 4 + 2, shape)
    pred = rng.integers(0, 1 + seed % 3 + 2, shape)
    if seed % 2:  # blocky labels, closer to real segmentations
        pred = np.repeat(pred[:, :, ::2], 2, axis=2)
    assert_scores(partition_scores(pred, truth, ignore_background), reference(pred, truth, ignore_background), 1e-9)


def test_touching_instances_merged_by_connected_components():
    """The use in the benchmark: cc of a thresholded mask merges two touching true instances."""
    truth = np.zeros((1, 4, 8), np.uint32)
    truth[0, :, :4], truth[0, :, 4:] = 1, 2  # two instances sharing a face
    merged = (truth > 0).astype(np.uint32)
    assert partition_scores(merged, truth)["voi_merge"] == pytest.approx(1.0, abs=1e-12)
    assert partition_scores(truth, truth)["voi"] == 0.0


def test_empty_truth_scores_perfect_and_bad_inputs_are_rejected():
    zeros = np.zeros((2, 3, 4), np.uint8)
    assert partition_scores(np.ones_like(zeros), zeros) == {"are": 0.0, "are_precision": 1.0, "are_recall": 1.0,
                                                            "voi_split": 0.0, "voi_merge": 0.0, "voi": 0.0}
    with pytest.raises(ValueError, match="shape"):
        partition_scores(np.zeros((2, 3, 4), int), np.zeros((2, 3, 5), int))
    with pytest.raises(ValueError, match="integer"):
        partition_scores(np.zeros((2, 3, 4), float), np.zeros((2, 3, 4), int))


def test_single_voxel_segments_have_no_pairs_to_count():
    truth = np.array([1, 2, 3, 4]).reshape(1, 1, 4)
    got = partition_scores(truth, truth)
    assert got["are"] == 0.0 and got["are_precision"] == 1.0 and got["are_recall"] == 1.0 and got["voi"] == 0.0
