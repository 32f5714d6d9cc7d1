"""Read prediction files written by ``pytc-train --inference`` (h5/zarr) or ``emseg predict`` (zarr).

Both hold ``probabilities`` (K, Z, Y, X) (float16 in [0, 1], or uint8 with 255 = 1.0), optionally
``masks`` uint8 (K, Z, Y, X) and ``instances`` (Z, Y, X), and the class names in a ``classes``
attribute (on the file/group or on the ``probabilities`` array). Arrays are read lazily, slice by slice.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import zarr

from emseg_plugins.errors import DataError
from emseg_plugins.visualize.composite import binary

SUFFIXES = (".h5", ".hdf5", ".zarr")


class Predictions:
    """Lazy view of one prediction file; channels reordered to ``classes`` (the config's)."""

    def __init__(self, path: Path, root, classes: Sequence[str] | None, threshold: float):
        self.path, self.threshold = path, threshold
        if "probabilities" not in root and "masks" not in root:
            raise DataError(f"{path}: holds neither 'probabilities' nor 'masks'; pass a file written by "
                            "`pytc-train --inference` or `emseg predict`")
        self.masks = root.get("masks")
        self.probabilities = root.get("probabilities")
        self.instances = root.get("instances")
        first = self.masks if self.masks is not None else self.probabilities
        stored = _classes(root) or _classes(first)
        if classes is None:  # no config: every stored channel, named by the file (or c0, c1, ...)
            classes = stored or [f"c{k}" for k in range(first.shape[0])]
        self.classes = list(classes)
        if stored is None:
            stored = list(classes)
            if first.shape[0] != len(classes):
                raise DataError(f"{path}: {first.shape[0]} channels and no 'classes' attribute, but DATASET.CLASSES "
                                f"has {len(classes)}; pass the prediction of this config")
        missing = [c for c in classes if c not in stored]
        if missing:
            raise DataError(f"{path}: predicts classes {stored}, not {missing} of DATASET.CLASSES; "
                            "pass the prediction of this config")
        self.channels = [stored.index(c) for c in classes]
        self.shape = tuple(int(s) for s in first.shape[1:])

    def masks_at(self, z: int, ys: slice = slice(None), xs: slice = slice(None)) -> np.ndarray:
        """Predicted masks of slice ``z`` (K, Y, X) bool, thresholded at ``INFERENCE.THRESHOLD`` where only probabilities exist."""
        if self.masks is not None:
            return np.stack([np.asarray(self.masks[c, z, ys, xs]) > 0 for c in self.channels])
        return binary(np.stack([np.asarray(self.probabilities[c, z, ys, xs]) for c in self.channels]), self.threshold)

    def mask_volume(self, k: int) -> np.ndarray:
        """The whole predicted mask (Z, Y, X) bool of config class ``k``."""
        c = self.channels[k]
        if self.masks is not None:
            return np.asarray(self.masks[c]) > 0
        return binary(np.asarray(self.probabilities[c])[None], self.threshold)[0]


def _classes(node) -> list[str] | None:
    names = node.attrs.get("classes") if node is not None else None
    if names is None:
        return None
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


@contextlib.contextmanager
def open_predictions(path: str | Path, classes: Sequence[str] | None, threshold: float = 0.5) -> Iterator[Predictions]:
    """:class:`Predictions` of an .h5 file or a .zarr store (``classes`` None: all stored channels); DataError if neither."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such prediction file; check the path")
    if path.suffix == ".zarr":
        try:
            root = zarr.open_group(str(path), mode="r")
        except Exception as exc:  # noqa: BLE001 -- zarr raises several types for a directory that is not a group
            raise DataError(f"{path}: cannot be read as a zarr group ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        yield Predictions(path, root, classes, threshold)
    elif path.suffix in (".h5", ".hdf5"):
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise DataError(f"{path}: cannot be read as HDF5 ({str(exc).splitlines()[0]})") from None
        with f:
            yield Predictions(path, f, classes, threshold)
    else:
        raise DataError(f"{path}: a prediction is an .h5 file or a .zarr store (got {path.suffix or 'no extension'!r})")


def prediction_paths(path: str | Path, volume_names: Sequence[str]) -> dict[str, Path]:
    """Volume name -> its prediction file.

    ``path`` is one prediction file (for the volume of the same name, or for the only volume) or a
    directory of ``<volume>.h5`` / ``<volume>.zarr`` files (a run's ``predictions/``).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such prediction file or directory; check --predictions")
    if path.is_dir() and path.suffix != ".zarr":
        found = {p.name[: -len(p.suffix)]: p for p in sorted(path.iterdir()) if p.suffix in SUFFIXES}
        matched = {name: found[name] for name in volume_names if name in found}
        if not matched:
            raise DataError(f"{path}: holds no prediction named after the volumes {list(volume_names)} "
                            "(expected <volume>.h5 or <volume>.zarr); predict the same split first")
        return matched
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    if stem in volume_names:
        return {stem: path}
    if len(volume_names) == 1:
        return {volume_names[0]: path}
    raise DataError(f"{path}: is one prediction but the split has volumes {list(volume_names)}; "
                    "name the file after one of them or pass the predictions directory")
