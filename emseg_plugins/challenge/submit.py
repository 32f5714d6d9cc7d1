"""Package per-crop predictions into the challenge's ``submission.zarr``, validate it, zip it (and unzip safely).

Layout (cellmap-segmentation-challenge ``utils/submission.py:package_crop`` / ``package_submission``)::

    submission.zarr/            zarr v2 group
      crop<id>/                 one group per test crop
        <label>                 (Z, Y, X) array of the manifest row's shape, at its voxel size
                                attrs: voxel_size, translation (nm, z-y-x), shape

Semantic labels are uint8 0/1, instance labels uint32 (uint64 when an id exceeds 2**32 - 1). A prediction
at another voxel size or offset is brought into the crop's space by :func:`align_to_crop`, which follows
the official ``utils/matched_crop.py:MatchedCrop.load_aligned`` step for step (skimage ``rescale``:
nearest for instances, linear then ``> 0.5`` for semantic labels; translation snapped to the crop's
voxel grid; crop/pad into place), so the evaluator sees the same voxels whether it or we resample.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr
from skimage.transform import rescale
from tqdm import tqdm

from emseg_plugins.challenge.config import INSTANCE_CLASSES
from emseg_plugins.challenge.manifest import TestCrop, by_crop
from emseg_plugins.errors import DataError
from emseg_plugins.utils.atomic import atomic_path

MAX_VOLUME_SIZE_RATIO = 16**3  # matched_crop.py: a source more than 4096x the crop's voxels is refused
MAX_UNCOMPRESSED_SIZE = 50 * 1024**3  # zip_utils.py: zip-bomb guard (50 GiB)
CHUNKS = 64  # utils/submission.py writes chunks of 64 voxels per axis


# -- reading a label array with its geometry ---------------------------------------------------------------

@dataclass
class LabelArray:
    """A label volume (Z, Y, X) with its voxel size and translation (nm, z-y-x; None where not recorded)."""

    data: np.ndarray
    voxel_size: tuple[float, ...] | None
    translation: tuple[float, ...] | None


def _attr(attrs, keys: Sequence[str]) -> tuple[float, ...] | None:
    """matched_crop.py ``_parse_voxel_size`` / ``_parse_translation``: the first of ``keys`` present, as floats."""
    for key in keys:
        if key in attrs:
            return tuple(float(v) for v in attrs[key])
    return None


def read_label(path: str | Path, target_voxel_size: Sequence[float]) -> LabelArray:
    """The array at ``path`` (a zarr array, or a group of levels ``s0, s1, ...``) with its geometry.

    For a group, the level chosen is the one matched_crop.py ``_select_non_ome_level`` picks: the closest
    voxel size not coarser than ``target_voxel_size``, else the closest overall. OME-NGFF ``multiscales``
    transforms are used where the levels carry no ``voxel_size`` attributes.
    """
    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return LabelArray(node[:], _attr(node.attrs, ("voxel_size", "resolution", "scale")), _attr(node.attrs, ("translation", "offset")))
    levels = _levels(node)
    if not levels:
        raise DataError(f"{path}: zarr group holds no arrays; write one (Z, Y, X) array per label")
    target = np.asarray(target_voxel_size, float)

    def score(level) -> float:
        vs = level[1]
        if vs is None:
            return 1e18
        v = np.asarray(vs, float)[-target.size:]
        return float(np.linalg.norm(v - target)) + (0.0 if np.all(v <= target) else 1e6)

    key, vs, tr = min(levels, key=score)
    return LabelArray(node[key][:], vs, tr)


def _levels(group: zarr.Group) -> list[tuple[str, tuple[float, ...] | None, tuple[float, ...] | None]]:
    ome = {}
    for ms in group.attrs.get("multiscales", [])[:1]:
        for ds in ms.get("datasets", []):
            tx = {t.get("type"): t for t in ds.get("coordinateTransformations", [])}
            ome[ds.get("path")] = (tuple(tx["scale"]["scale"]) if "scale" in tx else None,
                                   tuple(tx["translation"]["translation"]) if "translation" in tx else None)
    out = []
    for key in group.array_keys():
        attrs = group[key].attrs
        vs = _attr(attrs, ("voxel_size", "resolution", "scale")) or (ome.get(key, (None, None))[0])
        tr = _attr(attrs, ("translation", "offset")) or (ome.get(key, (None, None))[1])
        out.append((key, vs, tr))
    return out


# -- resampling into a crop's space ------------------------------------------------------------------------

def align_to_crop(label: LabelArray, voxel_size: Sequence[float], shape: Sequence[int], translation: Sequence[float],
                  instance: bool, where: str = "") -> np.ndarray:
    """``label`` resampled onto the crop grid (``shape`` voxels of ``voxel_size`` nm starting at ``translation`` nm).

    The official ``MatchedCrop.load_aligned`` (utils/matched_crop.py), for arrays that fit in memory:
    rescale by (source voxel size / crop voxel size) with skimage (order 0 for instances keeping the dtype,
    order 1 then ``> 0.5`` for semantic labels); without a voxel size, centre pad/crop to ``shape``; the
    source translation is snapped down to the crop's voxel grid and the whole-voxel offset
    ``floor(|snapped - crop| / voxel) * sign`` places it (outside: 0).
    """
    tgt_vs = np.asarray(voxel_size, float)
    tgt_shape = tuple(int(s) for s in shape)
    tgt_tr = np.asarray(translation, float)
    image = label.data
    ratio = np.prod(image.shape, dtype=np.float64) / max(1, np.prod(tgt_shape, dtype=np.float64))
    if ratio > MAX_VOLUME_SIZE_RATIO:
        raise DataError(f"{where}: array {list(image.shape)} is {ratio:.0f}x larger than the crop {list(tgt_shape)} "
                        f"(the challenge refuses > {MAX_VOLUME_SIZE_RATIO}x); predict at a voxel size closer to {list(tgt_vs)} nm")
    if label.voxel_size is not None:
        in_vs = np.asarray(label.voxel_size, float)[-tgt_vs.size:]
        if not np.allclose(in_vs, tgt_vs):
            factors = in_vs / tgt_vs
            if instance:
                image = rescale(image, factors, order=0, mode="constant", preserve_range=True).astype(image.dtype)
            else:
                image = rescale(image.astype(np.float32) if image.dtype == bool else image, factors, order=1,
                                mode="constant", preserve_range=True) > 0.5
    elif image.shape != tgt_shape:
        image = _centre_pad_crop(image, tgt_shape)
    if label.translation is not None:
        in_tr = np.asarray(label.translation, float)[-tgt_tr.size:]
        snapped = (in_tr // tgt_vs) * tgt_vs
        rel = ((np.abs(snapped - tgt_tr) // tgt_vs) * np.sign(snapped - tgt_tr)).astype(int)
    else:
        rel = np.zeros(len(tgt_shape), dtype=int)
    if not rel.any() and image.shape == tgt_shape:
        return image
    out = np.zeros(tgt_shape, dtype=image.dtype)
    src, dst = [], []
    for r, n_in, n_out in zip(rel, image.shape, tgt_shape):
        a, b = (-r, 0) if r < 0 else (0, r)  # first source voxel, first destination voxel
        length = min(n_in - a, n_out - b)
        if length <= 0:
            return out
        src.append(slice(a, a + length))
        dst.append(slice(b, b + length))
    out[tuple(dst)] = image[tuple(src)]
    return out


def _centre_pad_crop(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """matched_crop.py ``_resize_pad_crop``: centred zero padding, then a centred crop, to ``shape``."""
    pad = [((t - s) // 2, t - s - (t - s) // 2) if s < t else (0, 0) for s, t in zip(image.shape, shape)]
    if any(p for pair in pad for p in pair):
        image = np.pad(image, pad)
    return image[tuple(slice((s - t) // 2, (s - t) // 2 + t) if s > t else slice(None) for s, t in zip(image.shape, shape))]


def label_dtype(data: np.ndarray, instance: bool) -> np.dtype:
    """uint8 for semantic labels; uint32 for instance ids, uint64 when an id does not fit."""
    if not instance:
        return np.dtype(np.uint8)
    top = int(data.max()) if data.size else 0
    return np.dtype(np.uint32 if top <= np.iinfo(np.uint32).max else np.uint64)


# -- packaging ---------------------------------------------------------------------------------------------

@dataclass
class PackageReport:
    """What :func:`package_submission` did: ``(crop, label)`` pairs written and those without a prediction."""

    written: list[tuple[int, str]] = field(default_factory=list)
    missing: list[tuple[int, str]] = field(default_factory=list)


def prediction_path(processed: str | Path, crop: TestCrop) -> Path:
    """Where ``emseg cellmap predict`` writes a crop's label: ``PROCESSED/<dataset>.zarr/crop<id>/<label>``
    (the challenge's ``PROCESSED_PATH``/label layout)."""
    return Path(processed) / f"{crop.dataset}.zarr" / crop.name / crop.class_label


def package_submission(processed: str | Path, crops: Sequence[TestCrop], output: str | Path,
                       instance_classes: Sequence[str] = INSTANCE_CLASSES, overwrite: bool = False,
                       progress: bool = True) -> PackageReport:
    """Write ``output`` (``submission.zarr``) from the predictions under ``processed`` for every manifest row.

    The store is built beside ``output`` and renamed into place once complete. Rows without a prediction
    are listed in the report (and a warning); they will be scored as missing. :class:`DataError` when no
    row has a prediction, when ``output`` exists without ``overwrite``, or when a prediction is malformed.
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise DataError(f"{output}: already exists; pass --overwrite or choose another --output")
    report = PackageReport()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        root = zarr.open_group(str(tmp), mode="w")
        rows = [c for group in by_crop(crops).values() for c in group]
        for crop in tqdm(rows, desc="package", unit="label", disable=not progress, leave=False):
            group = root.require_group(crop.name)
            source = prediction_path(processed, crop)
            if not source.exists():
                report.missing.append((crop.id, crop.class_label))
                continue
            instance = crop.class_label in instance_classes
            where = f"{source}"
            try:
                label = read_label(source, crop.voxel_size)
            except (ValueError, KeyError, zarr.errors.ZarrError) as exc:
                raise DataError(f"{source}: not a readable zarr label array ({exc}); run `emseg cellmap predict` again") from None
            if label.voxel_size is None or label.translation is None:
                field_name = "voxel_size" if label.voxel_size is None else "translation"
                raise DataError(f"{source}: attribute {field_name!r} missing (crop {crop.id}, label {crop.class_label}); "
                                "predictions need voxel_size and translation (nm, z-y-x) to be placed in the crop")
            data = align_to_crop(label, crop.voxel_size, crop.shape, crop.translation, instance, where)
            data = np.asarray(data) if instance else np.asarray(data) > 0  # the evaluator binarises semantic labels with > 0
            array = group.create_dataset(crop.class_label, data=data.astype(label_dtype(data, instance)), chunks=CHUNKS, overwrite=True)
            array.attrs.update(voxel_size=list(crop.voxel_size), translation=list(crop.translation), shape=list(crop.shape))
            report.written.append((crop.id, crop.class_label))
        if not report.written:
            raise DataError(f"{processed}: no prediction found for any of the {len(rows)} manifest rows (expected "
                            "<dataset>.zarr/crop<id>/<label> arrays); run `emseg cellmap predict` first")
        if output.exists():
            shutil.rmtree(output)
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if report.missing:
        warnings.warn(f"no prediction for {len(report.missing)} crop/label pairs (scored as missing): "
                      f"{format_pairs(report.missing)}", UserWarning, stacklevel=2)
    return report


def format_pairs(pairs: Sequence[tuple[int, str]], limit: int = 20) -> str:
    """``crop557/mito, crop557/nuc, ...`` (the first ``limit``, then a count)."""
    names = [f"crop{c}/{label}" for c, label in pairs]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


# -- validation --------------------------------------------------------------------------------------------

def validate_submission(path: str | Path, crops: Sequence[TestCrop], instance_classes: Sequence[str] = INSTANCE_CLASSES,
                        require_all: bool = False) -> list[tuple[int, str]]:
    """Check a submission zarr against the manifest; returns the (crop, label) pairs it lacks.

    :class:`DataError` naming crop, label and field for a wrong shape, dtype (semantic: uint8 or bool;
    instance: an unsigned integer type), a missing or wrong ``voxel_size``/``translation`` attribute, or
    (with ``require_all``) any manifest row without its array.
    """
    path = Path(path)
    try:
        root = zarr.open_group(str(path), mode="r")
    except (zarr.errors.GroupNotFoundError, zarr.errors.ZarrError, ValueError):
        raise DataError(f"{path}: not a zarr v2 group (no .zgroup); package it with `emseg cellmap submit`") from None
    missing = []
    for crop in crops:
        where = f"{path}: crop{crop.id}/{crop.class_label}"
        if crop.name not in root or crop.class_label not in root[crop.name]:
            missing.append((crop.id, crop.class_label))
            continue
        array = root[crop.name][crop.class_label]
        if not isinstance(array, zarr.Array):
            raise DataError(f"{where}: is a group, expected a (Z, Y, X) array")
        if tuple(array.shape) != tuple(crop.shape):
            raise DataError(f"{where}: field shape is {list(array.shape)}, expected {list(crop.shape)} (the crop's shape at "
                            f"{list(crop.voxel_size)} nm)")
        instance = crop.class_label in instance_classes
        ok = (array.dtype.kind == "u" and array.dtype.itemsize in (1, 2, 4, 8)) if instance else array.dtype in (np.uint8, np.bool_)
        if not ok:
            want = "uint32 or uint64 instance ids" if instance else "uint8 (0/1)"
            raise DataError(f"{where}: field dtype is {array.dtype}, expected {want}")
        for key, want in (("voxel_size", crop.voxel_size), ("translation", crop.translation)):
            have = array.attrs.get(key)
            if have is None:
                raise DataError(f"{where}: field attrs.{key} is missing; set it to {list(want)} (nm, z-y-x)")
            try:
                close = len(have) == 3 and np.allclose(np.asarray(have, float), want, rtol=1e-6, atol=1e-6)
            except (TypeError, ValueError):
                close = False
            if not close:
                raise DataError(f"{where}: field attrs.{key} is {have!r}, expected {list(want)} (nm, z-y-x)")
    if missing and require_all:
        raise DataError(f"{path}: {len(missing)} manifest crop/label pairs missing: {format_pairs(missing)}")
    return missing


# -- zip ---------------------------------------------------------------------------------------------------

def zip_submission(zarr_path: str | Path, zip_path: str | Path | None = None) -> Path:
    """Zip the submission directory (entries relative to it, as ``utils/submission.py:zip_submission``), atomically.

    Links are refused rather than followed: the archive holds exactly the files of the store.
    """
    zarr_path = Path(zarr_path)
    zip_path = Path(zip_path) if zip_path else zarr_path.with_suffix(".zip")
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for directory, dirs, files in os.walk(zarr_path):
            dirs.sort()
            for name in sorted(files):
                file = Path(directory, name)
                if file.is_symlink():
                    raise DataError(f"{file}: is a symbolic link; a submission must hold plain files")
                archive.write(file, file.relative_to(zarr_path).as_posix())
    return zip_path


def safe_extract(zip_path: str | Path, target: str | Path, max_size: int = MAX_UNCOMPRESSED_SIZE) -> Path:
    """Extract ``zip_path`` into ``target``, refusing what ``eval_utils/zip_utils.py:unzip_file`` refuses.

    :class:`DataError` for a member that is a symbolic link or would land outside ``target`` (absolute
    paths, ``..``), and for archives larger than ``max_size`` bytes uncompressed. Nothing is extracted
    unless every member passes.
    """
    zip_path, target = Path(zip_path), Path(target)
    if not zipfile.is_zipfile(zip_path):
        raise DataError(f"{zip_path}: not a zip file; pass submission.zip or the submission.zarr directory")
    base = os.path.realpath(target)
    with zipfile.ZipFile(zip_path) as archive:
        members = archive.infolist()
        total = sum(m.file_size for m in members)
        if total > max_size:
            raise DataError(f"{zip_path}: refused: {total / 1024**3:.1f} GiB uncompressed exceeds the {max_size / 1024**3:.1f} GiB limit")
        for m in members:
            if (m.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(f"{zip_path}: refused: member {m.filename!r} is a symbolic link")
            dest = os.path.realpath(os.path.join(base, m.filename))
            if os.path.commonpath([base, dest]) != base or dest == base:
                raise DataError(f"{zip_path}: refused: member {m.filename!r} would extract outside the target directory")
        target.mkdir(parents=True, exist_ok=True)
        archive.extractall(target)
    return target


def submission_root(directory: str | Path) -> Path:
    """The zarr root of an unpacked submission: the directory itself, or the one ``*.zarr`` folder inside it
    (``eval_utils/submission.py:ensure_valid_submission`` accepts a store zipped inside a folder)."""
    directory = Path(directory)
    nested = [p for p in directory.glob("**/*.zarr") if p.is_dir()]
    if len(nested) > 1:
        raise DataError(f"{directory}: holds {len(nested)} .zarr folders; a submission must hold exactly one store")
    root = nested[0] if nested else directory
    if not (root / ".zgroup").is_file():
        if not root.is_dir():
            raise DataError(f"{root}: not a directory; pass submission.zip or a submission.zarr directory")
        warnings.warn(f"{root}: no .zgroup; read as a zarr v2 group anyway (as the challenge does)", UserWarning, stacklevel=2)
    return root
