"""Read and write image/label volumes: HDF5, zarr, multi-page TIFF and directories of 2D slices.

A volume URI is a path, with a dataset path after a colon for container formats:

    image.h5 / image.hdf5   the single dataset in the file (an error lists them when there are several)
    image.h5:/main          dataset ``main`` (groups allowed: ``file.h5:/volumes/raw``)
    store.zarr              the single array, else ``s0`` or ``0`` (full resolution of a pyramid)
    store.zarr:raw/s0       array ``raw/s0``
    stack.tif / stack.tiff  multi-page TIFF (via tifffile)
    slices/                 directory of .png/.tif/.tiff slices in natural order (2 before 10), one per Z

:func:`read_volume` returns numpy (Z, Y, X), or (C, Z, Y, X) when the file holds channels (4D
datasets, RGB slices, TIFF sample/channel axes); a single 2D image is (1, Y, X). Voxel units only;
no voxel size is read. :func:`open_volume` yields the stored array without loading it (h5py / zarr
arrays slice lazily), for readers of large volumes. :func:`write_volume` writes h5, zarr or TIFF
atomically (temporary beside the target, then rename). Every problem is a one-line :class:`DataError`
naming the path.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tifffile
import zarr
from PIL import Image

from emseg_plugins.errors import DataError
from emseg_plugins.utils.atomic import atomic_path

H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
ZARR_SUFFIXES = (".zarr",)
TIFF_SUFFIXES = (".tif", ".tiff")
SLICE_SUFFIXES = (".png", ".tif", ".tiff")
DEFAULT_KEY = "main"  # dataset written by write_volume when the URI names none (PyTC's h5 convention)
PYRAMID_LEVELS = ("s0", "0")  # a zarr store with several arrays defaults to its full-resolution level
FORMATS_HINT = "use .h5/.hdf5, .zarr, .tif/.tiff or a directory of .png/.tif slices"

_CONTAINER = re.compile(r"^(?P<path>.*?\.(?:h5|hdf5|hdf|zarr|n5))(?::(?P<key>.*))?$", re.IGNORECASE)

ArrayLike = Any  # numpy.ndarray, h5py.Dataset or zarr.Array: .shape, .dtype, .ndim and slicing


def split_uri(uri: str | Path) -> tuple[Path, str]:
    """``"a.h5:/raw"`` -> ``(Path("a.h5"), "raw")``; the key is ``""`` when none is given."""
    text = str(uri)
    match = _CONTAINER.match(text)
    if match is None:
        return Path(text), ""
    return Path(match["path"]), (match["key"] or "").strip("/")


def volume_format(path: Path) -> str:
    """``"h5"``, ``"zarr"``, ``"tiff"`` or ``"slices"`` (a directory); DataError for anything else."""
    suffix = path.suffix.lower()
    if suffix in H5_SUFFIXES:
        return "h5"
    if suffix in ZARR_SUFFIXES:
        return "zarr"
    if suffix == ".n5":
        raise DataError(f"{path}: N5 stores are not supported; convert it to zarr (or h5) first")
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if path.is_dir():
        return "slices"
    if not path.exists() and not suffix:
        raise DataError(f"{path}: no such file or directory; check the path")
    raise DataError(f"{path}: unsupported volume format {suffix or '(no extension)'!r}; {FORMATS_HINT}")


# -- reading -------------------------------------------------------------------------------------


@contextlib.contextmanager
def open_volume(uri: str | Path) -> Iterator[ArrayLike]:
    """The stored array of ``uri`` as-is: h5py Dataset / zarr Array (lazy) or numpy (TIFF, slices).

    Unlike :func:`read_volume` no axes are normalised. The h5 file closes when the block ends.
    """
    path, key = split_uri(uri)
    kind = volume_format(path)
    if kind != "slices" and not path.exists():
        raise DataError(f"{path}: no such file or directory; check the path")
    if kind == "h5":
        with _open_h5(path) as f:
            yield f[_pick_key(path, key, _h5_datasets(f), "dataset")]
    elif kind == "zarr":
        yield _open_zarr(path, key)
    elif kind == "tiff":
        yield _read_tiff(path)
    else:
        yield read_slices(path)


def read_volume(uri: str | Path) -> np.ndarray:
    """The volume at ``uri`` as numpy: (Z, Y, X), or (C, Z, Y, X) when it holds channels."""
    with open_volume(uri) as stored:
        array = np.asarray(stored[...])
    if array.ndim == 2:
        array = array[None]
    if array.ndim not in (3, 4):
        raise DataError(f"{uri}: has {array.ndim} axes {array.shape}; a volume is (Z, Y, X) or (C, Z, Y, X)")
    if array.size == 0:
        raise DataError(f"{uri}: is empty (shape {array.shape})")
    return array


@contextlib.contextmanager
def _open_h5(path: Path) -> Iterator[h5py.File]:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: cannot be read as HDF5 ({_first_line(exc)})") from None
    with f:
        yield f


def _h5_datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _open_zarr(path: Path, key: str) -> zarr.Array:
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 -- zarr raises several types for a directory that is not a store
        raise DataError(f"{path}: cannot be read as zarr ({_first_line(exc)})") from None
    if isinstance(node, zarr.Array):
        if key:
            raise DataError(f"{path}: is a single zarr array; drop ':{key}' from the path")
        return node
    arrays: list[str] = []
    node.visititems(lambda name, obj: arrays.append(name) if isinstance(obj, zarr.Array) else None)
    return node[_pick_key(path, key, arrays, "array")]


def _pick_key(path: Path, key: str, available: list[str], what: str) -> str:
    """``key`` if present; without a key the only one, else a pyramid's full resolution."""
    listing = ", ".join(available[:20]) + (" ..." if len(available) > 20 else "") if available else "none"
    if key:
        if key not in available:
            raise DataError(f"{path}: no {what} {key!r}; available: {listing}")
        return key
    if len(available) == 1:
        return available[0]
    for level in PYRAMID_LEVELS:
        if what == "array" and level in available:
            return level
    if not available:
        raise DataError(f"{path}: holds no {what}s")
    raise DataError(f"{path}: holds {len(available)} {what}s ({listing}); name one as {path}:{available[0]}")


def _read_tiff(path: Path) -> np.ndarray:
    """Multi-page TIFF as (Z, Y, X) or (C, Z, Y, X): TIFF channel/sample axes move first."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            array, axes = series.asarray(), series.axes
    except Exception as exc:  # noqa: BLE001 -- tifffile raises TiffFileError, ValueError, OSError... for bad files
        raise DataError(f"{path}: cannot be read as TIFF ({_first_line(exc)})") from None
    return _to_czyx(path, array, axes)


def _to_czyx(path: Path, array: np.ndarray, axes: str) -> np.ndarray:
    """Reorder tifffile's axes (``YX``, ``QYX``, ``ZCYX``, ``YXS`` ...) to [C,] Z, Y, X."""
    channel = [i for i, a in enumerate(axes) if a in "CS"]
    stack = [i for i, a in enumerate(axes) if a not in "CSYX"]
    if len(channel) > 1 or len(stack) > 1 or "Y" not in axes or "X" not in axes:
        raise DataError(f"{path}: TIFF axes {axes!r} {array.shape} are not a (Z, Y, X) stack with at most one channel axis")
    y, x = axes.index("Y"), axes.index("X")
    out = array.transpose([*channel, *stack, y, x])
    return out if stack else (out[:, None] if channel else out[None])


def list_slices(directory: Path) -> list[Path]:
    """The .png/.tif/.tiff files in ``directory`` in natural order; other files are ignored."""
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory; check the path")
    files = [p for p in directory.iterdir() if p.suffix.lower() in SLICE_SUFFIXES and not p.name.startswith(".") and p.is_file()]
    if not files:
        raise DataError(f"{directory}: holds no .png/.tif/.tiff slices")
    return sorted(files, key=natural_key)


def natural_key(path: Path) -> list[Any]:
    """Sort key putting ``slice2.png`` before ``slice10.png``.

    Written here (two lines) rather than adding the natsort dependency for it.
    """
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def read_slice(path: Path) -> np.ndarray:
    """One 2D slice as stored: (Y, X), or (C, Y, X) for RGB/RGBA or multi-sample images."""
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            array = _read_tiff(path)
            if array.ndim == 4 and array.shape[1] == 1:
                return array[:, 0]
            if array.shape[-3] == 1:
                return array.reshape(array.shape[-2:])
            raise DataError(f"{path}: a slice must be one 2D image, got shape {array.shape}")
        with Image.open(path) as image:
            array = np.asarray(image)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 -- Pillow raises UnidentifiedImageError, OSError, SyntaxError... for bad files
        raise DataError(f"{path}: cannot be read as an image ({_first_line(exc)})") from None
    return np.moveaxis(array, -1, 0) if array.ndim == 3 else array


def read_slices(directory: Path, reader: Callable[[Path], np.ndarray] = read_slice,
                progress: Callable[[Sequence[Path]], Sequence[Path]] | None = None) -> np.ndarray:
    """Stack the slices of ``directory`` along Z: (Z, Y, X), or (C, Z, Y, X) for multi-channel slices.

    ``reader`` loads one slice; ``progress`` may wrap the file list (e.g. ``tqdm``).
    """
    files = list_slices(directory)
    first = None
    out: np.ndarray | None = None
    for z, path in enumerate(progress(files) if progress else files):
        array = reader(path)
        if out is None:
            first = path
            out = np.empty((len(files), *array.shape), array.dtype)
        elif array.shape != out.shape[1:] or array.dtype != out.dtype:
            raise DataError(f"{path}: slice is {_describe(array)} but {first.name} is {_describe(out[0])}; "
                            "all slices of a volume must share shape and type")
        out[z] = array
    return np.moveaxis(out, 1, 0) if out.ndim == 4 else out


def _describe(array: np.ndarray) -> str:
    return f"{'x'.join(map(str, array.shape))} {array.dtype}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- writing -------------------------------------------------------------------------------------


def write_volume(uri: str | Path, array: np.ndarray, chunks: bool | tuple[int, ...] = True) -> Path:
    """Write ``array`` ((Z, Y, X) or (C, Z, Y, X)) to an h5 dataset, zarr array or TIFF stack, atomically.

    h5/zarr keep the file's other datasets; without a key the dataset is ``main``. Returns the path.
    """
    path, key = split_uri(uri)
    kind = volume_format(path) if path.suffix else "slices"
    array = np.asarray(array)
    if kind == "h5":
        _write_h5(path, key or DEFAULT_KEY, array, chunks)
    elif kind == "zarr":
        _write_zarr(path, key or DEFAULT_KEY, array, chunks)
    elif kind == "tiff":
        if key:
            raise DataError(f"{uri}: a TIFF file holds one volume; drop ':{key}'")
        with atomic_path(path) as tmp:
            axes = "CZYX" if array.ndim == 4 else "ZYX"[-array.ndim:]
            tifffile.imwrite(tmp, array, photometric="minisblack", metadata={"axes": axes})
    else:
        raise DataError(f"{path}: write_volume writes .h5/.hdf5, .zarr or .tif/.tiff, not {path.suffix or 'a directory'!r}")
    return path


def _write_h5(path: Path, key: str, array: np.ndarray, chunks: bool | tuple[int, ...]) -> None:
    with atomic_path(path) as tmp:
        if path.exists():
            shutil.copy2(path, tmp)  # keep the file's other datasets
        with h5py.File(tmp, "a" if path.exists() else "w") as f:
            if key in f:
                del f[key]
            f.create_dataset(key, data=array, chunks=chunks if array.size else None, compression="gzip")


def _write_zarr(path: Path, key: str, array: np.ndarray, chunks: bool | tuple[int, ...]) -> None:
    """A new store is written beside ``path`` and renamed; into an existing store (a directory of
    the zarr v2 layout) the array is written under a temporary name in its group and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            zarr.open_group(str(tmp), mode="w").create_dataset(key, data=array, chunks=chunks)
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        root = zarr.open_group(str(path), mode="a")
    except Exception as exc:  # noqa: BLE001 -- zarr raises several types for a path that is not a group
        raise DataError(f"{path}: exists and is not a zarr group ({_first_line(exc)}); remove it or pick another path") from None
    parent, _, leaf = key.rpartition("/")
    group = root.require_group(parent) if parent else root
    tmp_name = f".{leaf}.{os.getpid()}.tmp"
    try:
        group.create_dataset(tmp_name, data=array, chunks=chunks, overwrite=True)
        target, staged = path / key, path / parent / tmp_name
        old = path / parent / f".{leaf}.{os.getpid()}.old"
        if target.exists():
            os.replace(target, old)
        os.replace(staged, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(path / parent / tmp_name, ignore_errors=True)
