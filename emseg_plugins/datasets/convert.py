"""Directories of 2D slices -> HDF5 volumes (the EM mitochondria pipeline's ``get_dataset.py`` step).

EM image slices (PNG/TIF) become ``image.h5`` (dataset ``main``, uint8 (Z, Y, X)); proofreading label
PNGs become ``label.h5`` (dataset ``main``, (Z, Y, X)), either

    binary        any nonzero pixel (any colour channel) is foreground -> uint8 0/1
    rgb-instance  each distinct colour (or grey value / palette colour) is one instance, black is
                  background; the same colour on several slices is the same object -> uint32 ids
                  1..N numbered in sorted colour order

Slices pair up in natural file-name order. Colour EM slices become grayscale (ITU-R 601 luma);
images that are not 8-bit (16-bit, float) are scaled linearly from the stack's min/max to 0..255.
``scripts/png_to_h5.py`` is the command line over :func:`convert_slices`.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from emseg_plugins.datasets.volume_io import (
    DEFAULT_KEY,
    TIFF_SUFFIXES,
    list_slices,
    read_slice,
    read_slices,
)
from emseg_plugins.errors import DataError
from emseg_plugins.utils.atomic import atomic_path

LABEL_KINDS = ("binary", "rgb-instance")
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as Pillow's convert("L")

Progress = Callable[[Sequence[Path]], Sequence[Path]]


def read_image_stack(directory: Path, progress: Progress | None = None) -> np.ndarray:
    """EM slices of ``directory`` as uint8 (Z, Y, X)."""
    stack = read_slices(Path(directory), _gray_slice, progress)
    if stack.dtype == np.uint8:
        return stack
    lo, hi = float(stack.min()), float(stack.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.round((stack.astype(np.float64) - lo) * scale).astype(np.uint8)


def read_label_stack(directory: Path, kind: str = "binary", progress: Progress | None = None) -> np.ndarray:
    """Label slices of ``directory``: uint8 0/1 (``binary``) or uint32 instance ids (``rgb-instance``), (Z, Y, X)."""
    if kind not in LABEL_KINDS:
        raise DataError(f"label kind {kind!r} is not one of {', '.join(LABEL_KINDS)}")
    if kind == "binary":
        return read_slices(Path(directory), _binary_slice, progress)
    colours = read_slices(Path(directory), _colour_slice, progress)
    values, ids = np.unique(colours, return_inverse=True)  # sorted colours -> 0..n-1
    ids = ids.reshape(colours.shape).astype(np.uint32)
    return ids if values[0] == 0 else ids + 1  # black (0) is background; without black every colour is an object


def convert_slices(image_dir: Path | None, label_dir: Path | None, out_dir: Path, label_kind: str = "binary",
                   image_name: str = "image.h5", label_name: str = "label.h5", dataset: str = DEFAULT_KEY,
                   overwrite: bool = False, progress: Callable[[str], Progress] | None = None) -> dict[Path, np.ndarray]:
    """Read every slice, check that images and labels match, then write the h5 files together.

    Nothing is written when anything fails (both files appear only after both are complete).
    ``progress(description)`` may return a wrapper for the file list (e.g. a tqdm factory).
    Returns ``{written path: array}``.
    """
    if image_dir is None and label_dir is None:
        raise DataError("nothing to convert; give an image directory, a label directory or both")
    out_dir = Path(out_dir)
    targets = {"images": (image_dir, out_dir / image_name), "labels": (label_dir, out_dir / label_name)}
    for what, (source, target) in targets.items():
        if source is not None and target.exists() and not overwrite:
            raise DataError(f"{target}: exists; pass --overwrite to replace it, or pick another output")
        if source is not None and target.suffix.lower() not in (".h5", ".hdf5"):
            raise DataError(f"{target}: output {what} file must end in .h5 or .hdf5")
    if image_dir is not None and label_dir is not None and image_name == label_name:
        raise DataError(f"{out_dir / image_name}: images and labels would be written to the same file; give different names")
    arrays: dict[Path, np.ndarray] = {}
    if image_dir is not None:
        arrays[targets["images"][1]] = read_image_stack(image_dir, progress and progress("images"))
    if label_dir is not None:
        labels = read_label_stack(label_dir, label_kind, progress and progress("labels"))
        if image_dir is not None:
            image = arrays[targets["images"][1]]
            if labels.shape != image.shape:
                raise DataError(f"{label_dir}: labels stack to {labels.shape} (Z, Y, X) but the images in {image_dir} to "
                                f"{image.shape}; give one label slice per image slice, of the same size")
        arrays[targets["labels"][1]] = labels
    created = not out_dir.exists()
    try:
        with contextlib.ExitStack() as stack:
            for path, array in arrays.items():
                with h5py.File(stack.enter_context(atomic_path(path)), "w") as f:
                    f.create_dataset(dataset, data=array, chunks=True, compression="gzip")
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only if still empty
        raise
    return arrays


# -- one slice each -------------------------------------------------------------------------------


def _pil_or_tiff(path: Path) -> tuple[np.ndarray, str]:
    """(array, Pillow mode) for PNG; (array as (C, Y, X) or (Y, X), "") for TIFF."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        return read_slice(path), ""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "PA"):
                image = image.convert("RGB")  # palette indices -> their colours
            elif mode in ("RGBA", "LA"):
                image = image.convert(mode[:-1])  # alpha is not data
            elif mode == "1":
                image = image.convert("L")
            return np.asarray(image), mode
    except Exception as exc:  # noqa: BLE001 -- Pillow raises UnidentifiedImageError, OSError, SyntaxError... for bad files
        raise DataError(f"{path}: cannot be read as an image ({exc})") from None


def _gray_slice(path: Path) -> np.ndarray:
    array, mode = _pil_or_tiff(path)
    channel_axis = -1 if mode else 0
    if array.ndim == 3:
        if array.shape[channel_axis] < 3:
            raise DataError(f"{path}: image slice has {array.shape[channel_axis]} channels; expected gray or RGB")
        rgb = np.moveaxis(array, channel_axis, -1)[..., :3].astype(np.float64)
        gray = rgb @ LUMA
        return np.round(gray).astype(np.uint8) if array.dtype == np.uint8 else gray
    return array


def _binary_slice(path: Path) -> np.ndarray:
    array, mode = _pil_or_tiff(path)
    if array.ndim == 3:
        array = array.any(axis=-1 if mode else 0)
    return (array != 0).astype(np.uint8)


def _colour_slice(path: Path) -> np.ndarray:
    """One value per distinct colour: RGB packed as 0xRRGGBB; gray values as they are."""
    array, mode = _pil_or_tiff(path)
    if array.ndim == 3:
        rgb = np.moveaxis(array, -1 if mode else 0, -1)
        if rgb.shape[-1] < 3 or rgb.dtype != np.uint8:
            raise DataError(f"{path}: colour label slice must be 8-bit RGB, got {rgb.shape[-1]} channels of {rgb.dtype}")
        rgb = rgb[..., :3].astype(np.uint32)
        return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    if array.dtype.kind not in "biu":
        raise DataError(f"{path}: label slice has dtype {array.dtype}; expected integer colours or grey values")
    return array.astype(np.uint32)


__all__ = ["LABEL_KINDS", "convert_slices", "list_slices", "read_image_stack", "read_label_stack"]
