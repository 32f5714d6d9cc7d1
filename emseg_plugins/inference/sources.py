"""Input volumes for prediction, read block by block without loading the whole volume.

A source URI is a file volume (``image.h5:/main``, ``store.zarr:raw/s0``, ``stack.tif``, a slice
directory; see ``emseg_plugins.datasets.volume_io``) or a neuroglancer-precomputed layer read through
CloudVolume (``precomputed://file:///data/em``, ``file:///data/em``, ``gs://bucket/em``,
``s3://bucket/em``; mip 0, channel 0). Every source is (Z, Y, X) and slices like numpy.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from emseg_plugins.datasets.volume_io import open_volume
from emseg_plugins.errors import DataError

CLOUD_PREFIXES = ("precomputed://", "file://", "gs://", "s3://", "http://", "https://")


class CloudSource:
    """A precomputed layer as (Z, Y, X): CloudVolume stores (X, Y, Z, C)."""

    def __init__(self, uri: str):
        from cloudvolume import CloudVolume  # imported here: slow, and only cloud inputs need it
        from cloudvolume.exceptions import InfoUnavailableError

        try:
            self.volume = CloudVolume(uri, mip=0, fill_missing=False, progress=False, bounded=True)
        except (InfoUnavailableError, ValueError, OSError) as exc:
            raise DataError(f"{uri}: cannot open as a precomputed layer ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); check the path") from None
        x, y, z = (int(v) for v in self.volume.shape[:3])
        self.offset = tuple(int(v) for v in self.volume.voxel_offset)  # (x, y, z) of voxel 0
        self.shape, self.dtype, self.ndim = (z, y, x), np.dtype(self.volume.dtype), 3

    def __getitem__(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        zs, ys, xs = box
        ox, oy, oz = self.offset
        data = self.volume[xs.start + ox : xs.stop + ox, ys.start + oy : ys.stop + oy, zs.start + oz : zs.stop + oz][..., 0]
        return np.ascontiguousarray(np.transpose(data, (2, 1, 0)))


class FirstChannel:
    """(Z, Y, X) view of a stored (1, Z, Y, X) array that reads only the requested box."""

    def __init__(self, stored):
        self.stored, self.shape, self.dtype, self.ndim = stored, tuple(stored.shape[1:]), np.dtype(stored.dtype), 3

    def __getitem__(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        return np.asarray(self.stored[(0, *box)])


@contextlib.contextmanager
def open_source(uri: str) -> Iterator[object]:
    """A (Z, Y, X) array-like for ``uri`` (see the module docstring); DataError if it is not one."""
    if uri.startswith(CLOUD_PREFIXES):
        yield CloudSource(uri)
        return
    with open_volume(uri) as stored:
        if stored.ndim == 4 and stored.shape[0] == 1:
            stored = FirstChannel(stored)
        if stored.ndim != 3:
            raise DataError(f"{uri}: has shape {tuple(stored.shape)}; prediction needs a single-channel (Z, Y, X) volume")
        yield stored
