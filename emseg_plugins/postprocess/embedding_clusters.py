"""Instances from a pixel/voxel embedding: mean-shift clustering of the foreground's embedding.

A model trained with the discriminative loss pulls each instance's embeddings to within
``delta_v`` of its mean and pushes means ``2 delta_d`` apart, so mean-shift with a bandwidth near
``delta_v`` recovers one mode per instance (De Brabandere et al. 2017, section 3.2). scikit-learn's
``MeanShift`` finds the modes on a random subsample of the foreground (its cost grows with points x
seeds), then every foreground voxel takes the label of its nearest mode.
"""
from __future__ import annotations

import numpy as np
from sklearn.cluster import MeanShift


def cluster_embedding(
    embedding: np.ndarray, foreground: np.ndarray, bandwidth: float,
    max_fit_points: int = 5000, min_size: int = 0, seed: int = 0,
) -> np.ndarray:
    """embedding (E, *spatial) float, foreground (*spatial) bool -> instance ids (*spatial) uint32.

    0 is background; instances are numbered 1..N by decreasing size. Clusters smaller than
    ``min_size`` voxels become background.
    """
    if embedding.shape[1:] != foreground.shape:
        raise ValueError(f"embedding {embedding.shape} and foreground {foreground.shape} disagree on the spatial shape")
    labels = np.zeros(foreground.shape, np.uint32)
    points = embedding[:, foreground].T.astype(np.float32)  # (N, E)
    if len(points) == 0:
        return labels
    rng = np.random.default_rng(seed)
    fit = points if len(points) <= max_fit_points else points[rng.choice(len(points), max_fit_points, replace=False)]
    clusters = MeanShift(bandwidth=bandwidth, bin_seeding=True).fit(fit).predict(points)
    sizes = np.bincount(clusters)
    order = np.argsort(-sizes, kind="stable")  # cluster index by decreasing size
    new_id = np.zeros(len(sizes), np.uint32)
    kept = order[sizes[order] >= max(min_size, 1)]
    new_id[kept] = np.arange(1, len(kept) + 1, dtype=np.uint32)
    labels[foreground] = new_id[clusters]
    return labels


def cluster_embedding_by_slice(embedding: np.ndarray, foreground: np.ndarray, bandwidth: float, **options) -> np.ndarray:
    """2D models' embeddings (E, Z, Y, X): each slice clustered on its own (a 2D embedding is only
    comparable within its image), ids made unique over the volume -> (Z, Y, X) uint32."""
    labels = np.zeros(foreground.shape, np.uint32)
    for z in range(foreground.shape[0]):
        ids = cluster_embedding(embedding[:, z], foreground[z], bandwidth, **options)
        labels[z] = np.where(ids > 0, ids + labels.max(), 0)
    return labels
