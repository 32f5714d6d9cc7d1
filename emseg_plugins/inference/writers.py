"""Write predictions (probabilities + thresholded masks) as HDF5 or zarr, and metric tables, atomically.

Layout (both formats): ``probabilities`` float16 (K, Z, Y, X) in [0, 1], ``masks`` uint8 (K, Z, Y, X),
optional ``instances`` uint32 (Z, Y, X) (0 = background), learned-target maps float16 (C, Z, Y, X) by
target name (``contour``, ``distance``, ...), attribute ``classes`` (K names). A zarr store is a directory, written beside the target and renamed.
Metric tables: ``metrics.json`` and ``metrics.csv`` (training runs and inference share them).
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import zarr

from emseg_plugins.evaluation.metrics import METRIC_NAMES, mean_over_classes
from emseg_plugins.utils.atomic import atomic_path, atomic_write_text


def write_predictions(
    path: str | Path, probabilities: np.ndarray, classes: list[str], threshold: float, instances: np.ndarray | None = None,
    maps: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write to ``path`` (suffix .h5 or .zarr picks the format); returns the path.

    ``maps``: learned-target maps (C, Z, Y, X) in [0, 1] by target name, stored as float16 under that name.
    """
    path = Path(path)
    arrays = {"probabilities": probabilities.astype(np.float16), "masks": (probabilities >= threshold).astype(np.uint8)}
    arrays.update({name: values.astype(np.float16) for name, values in (maps or {}).items()})
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


def write_metrics(directory: Path, table: dict[str, dict[str, float]], meta: dict[str, Any]) -> None:
    """``metrics.json`` (classes, mean, meta) and ``metrics.csv`` (one row per class + mean)."""
    mean = mean_over_classes(table)
    atomic_write_text(directory / "metrics.json", json.dumps({"classes": table, "mean": mean, **meta}, indent=2))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["class", *METRIC_NAMES])
    for name, row in [*table.items(), ("mean", mean)]:
        writer.writerow([name, *(f"{row[m]:.6f}" for m in METRIC_NAMES)])
    atomic_write_text(directory / "metrics.csv", buffer.getvalue())
