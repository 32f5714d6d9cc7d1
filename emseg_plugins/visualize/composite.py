"""Grayscale EM slices with class labels tinted on top (Joe Net's viewer: nuclei red, mito cyan).

A slice is (Y, X); labels and predictions are (K, Y, X), one channel per class of
``DATASET.CLASSES``. Arithmetic is float32 in [0, 1], so uint8 inputs never wrap around; the result
is RGB uint8 (Y, X, 3).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

Colour = tuple[int, int, int]

NAMED_COLOURS: dict[str, Colour] = {"nuc": (255, 0, 0), "mito": (0, 255, 255)}  # the Joe Net notes' tints
# Other classes, in order of appearance: a fixed palette (Okabe-Ito / tab10 hues that are neither red nor cyan).
PALETTE: tuple[Colour, ...] = (
    (255, 200, 0), (0, 200, 0), (180, 80, 255), (255, 120, 0), (0, 110, 255), (255, 0, 200),
    (140, 90, 40), (160, 255, 100), (255, 160, 200), (120, 120, 255), (200, 200, 200), (0, 160, 120),
)
FILL_ALPHA = 0.45  # weight of a class colour over the gray value inside a label


def class_colours(classes: Sequence[str]) -> list[Colour]:
    """One RGB colour per class: ``nuc`` red, ``mito`` cyan, the rest from :data:`PALETTE` in order."""
    colours, spare = [], iter(PALETTE * (1 + len(classes) // len(PALETTE)))
    for name in classes:
        colours.append(NAMED_COLOURS.get(name) or next(spare))
    return colours


def to_unit_gray(image: np.ndarray) -> np.ndarray:
    """An EM slice of any dtype -> float32 in [0, 1].

    uint8 / other unsigned ints are divided by their dtype's maximum; floats already in [0, 1] are
    kept; any other range (signed ints, raw floats) is stretched between its 0.5 and 99.5 percentiles.
    """
    image = np.asarray(image)
    if image.dtype == np.bool_:
        return image.astype(np.float32)
    if np.issubdtype(image.dtype, np.unsignedinteger):
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    values = image.astype(np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, np.float32)
    if finite.min() >= 0 and finite.max() <= 1:
        return np.nan_to_num(values, nan=0.0)
    low, high = np.percentile(finite, (0.5, 99.5))
    scaled = (values - low) / max(float(high - low), 1e-12)
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0, 1).astype(np.float32)


def binary(masks: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Labels or probabilities (K, Y, X) -> bool; NaN (unannotated) is False. uint8 255-scaled maps use 255 * threshold."""
    masks = np.asarray(masks)
    if masks.dtype == np.bool_:
        return masks
    if masks.dtype == np.uint8 and masks.max(initial=0) > 1:
        return masks >= round(255 * threshold)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(masks.astype(np.float32), nan=0.0) >= threshold


def outline(mask: np.ndarray) -> np.ndarray:
    """The inner boundary (one pixel wide, 4-connected) of a binary mask (Y, X)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def composite(
    image: np.ndarray,
    labels: np.ndarray | None,
    colours: Sequence[Colour],
    predictions: np.ndarray | None = None,
    alpha: float = FILL_ALPHA,
) -> np.ndarray:
    """RGB uint8 (Y, X, 3): gray ``image`` (Y, X), ``labels`` (K, Y, X) filled with their colours at
    ``alpha``, ``predictions`` (K, Y, X) drawn as one-pixel outlines in full colour.

    Overlapping classes are blended in class order. A label pixel of gray ``g`` in class colour ``c``
    becomes ``(1 - alpha) * g + alpha * c``.
    """
    gray = to_unit_gray(image)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    table = np.asarray(colours, np.float32) / 255.0
    if labels is not None:
        for k, mask in enumerate(binary(labels)):
            rgb[mask] = (1 - alpha) * rgb[mask] + alpha * table[k]
    if predictions is not None:
        for k, mask in enumerate(binary(predictions)):
            rgb[outline(mask)] = table[k]
    return to_uint8(rgb)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8, rounded and clipped (never wraps)."""
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def gray_rgb(image: np.ndarray) -> np.ndarray:
    """The slice alone as RGB uint8 (Y, X, 3)."""
    return to_uint8(np.repeat(to_unit_gray(image)[..., None], 3, axis=-1))


def id_colours(ids: np.ndarray) -> np.ndarray:
    """(N, 3) float RGB in [0, 1] for instance ids (N,): a bright colour fixed by the id alone (golden-ratio
    hues), so one object keeps its colour on every slice and in every picture."""
    from matplotlib.colors import hsv_to_rgb  # matplotlib is already loaded by the plots; kept lazy for the CLI

    ids = np.asarray(ids, np.uint64)
    hue = (ids.astype(np.float64) * 0.6180339887) % 1.0
    saturation = 0.65 + 0.35 * ((ids * np.uint64(7919)) % np.uint64(3)).astype(np.float64) / 2
    return hsv_to_rgb(np.stack([hue, saturation, np.ones_like(hue)], -1)).astype(np.float32)


def instance_overlay(image: np.ndarray, ids: np.ndarray, alpha: float = FILL_ALPHA) -> np.ndarray:
    """RGB uint8 (Y, X, 3): gray ``image`` (Y, X) with every instance of ``ids`` (Y, X, 0 = none) filled
    in its own colour (:func:`id_colours`) and the borders between ids drawn in white."""
    rgb = np.repeat(to_unit_gray(image)[..., None], 3, axis=-1)
    inside = ids > 0
    if inside.any():
        present, index = np.unique(ids[inside], return_inverse=True)
        rgb[inside] = (1 - alpha) * rgb[inside] + alpha * id_colours(present)[index]
        rgb[find_boundaries(ids, mode="inner") & inside] = 1.0
    return to_uint8(rgb)
