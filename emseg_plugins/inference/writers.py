"""Write predictions (probabilities + thresholded masks) as HDF5 or zarr, atomically.

Layout (both formats): ``probabilities`` float16 (K, Z, Y, X) in [0, 1], ``masks`` uint8 (K, Z, Y, X),
optional ``instances`` uint32 (Z, Y, X) (0 = background), attribute ``classes`` (K names). A zarr store is a directory, written beside the target and renamed.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import zarr

from emseg_plugins.utils.atomic import atomic_path


def write_predictions(
    path: str | Path, probabilities: np.ndarray, classes: list[str], threshold: float, instances: np.ndarray | None = None
) -> Path:
    """Write to ``path`` (suffix .h5 or .zarr picks the format); returns the path."""
    path = Path(path)
    arrays = {"probabilities": probabilities.astype(np.float16), "masks": (probabilities >= threshold).astype(np.uint8)}
    if instances is not None:
        arrays["instances"] = instances.astype(np.uint32)
    if path.suffix == ".zarr":
        _write_zarr(path, arrays, classes)
    else:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            for name, data in arrays.items():
                f.create_dataset(name, data=data, chunks=True, compression="gzip")
            f.attrs["classes"] = classes
    return path


def _write_zarr(path: Path, arrays: dict[str, np.ndarray], classes: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    root = zarr.open_group(str(tmp), mode="w")
    for name, data in arrays.items():
        root.create_dataset(name, data=data, chunks=True)
    root.attrs["classes"] = classes
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
