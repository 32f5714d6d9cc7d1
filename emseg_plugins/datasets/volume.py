"""``volume``: image + label volumes from files (HDF5, zarr, TIFF stacks, directories of PNG/TIF slices).

The classic PyTorch Connectomics input: per split, lists of image URIs with one label URI each
(``DATASET.VOLUME.TRAIN_IMAGE`` / ``TRAIN_LABEL`` ...), optional valid-mask and instance volumes.
URI syntax and formats: :mod:`emseg_plugins.datasets.volume_io`. Relative paths resolve against
``DATASET.VOLUME.ROOT``, or the current working directory when ROOT is empty (the builder never sees
the config file's path: ``load_config`` does not record it).

Label modes (``DATASET.VOLUME.LABEL_MODE``), K = ``len(DATASET.CLASSES)``:

    classmap  (Z, Y, X) integers: 0 background, k >= 1 is class ``DATASET.CLASSES[k-1]``
    binary    (Z, Y, X): any nonzero voxel is ``DATASET.CLASSES[0]`` (K must be 1; 0/255 masks)
    channels  (K, Z, Y, X): one 0/1 channel per class (float NaN = not annotated)
    instance  (Z, Y, X) instance ids: nonzero is ``DATASET.CLASSES[0]`` (K must be 1); ids are kept

Image intensities: uint8 is used as is (/255 when sampled); with ``INTENSITY_RANGE`` [lo, hi] every
image becomes float32 ``clip((x - lo) / (hi - lo), 0, 1)``; otherwise float images already in [0, 1]
are kept and any other image (uint16, int, float outside [0, 1]) is min/max-scaled per volume to [0, 1].
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import require_choice
from emseg_plugins.datasets.config_nodes import add_volume_config  # noqa: F401  # re-exported
from emseg_plugins.datasets.patches import Volume, VolumeData
from emseg_plugins.datasets.volume_io import read_volume, split_uri
from emseg_plugins.errors import ConfigError, DataError

LABEL_MODES = ("classmap", "binary", "channels", "instance")
SPLITS = ("train", "val", "test")
ROLES = ("IMAGE", "LABEL", "VALID_MASK", "INSTANCE")


@dataclass(frozen=True)
class Entry:
    """One volume of a split: resolved URIs and the config keys they came from (for messages)."""

    split: str
    index: int
    uris: dict[str, str | None]  # role -> URI (None when not given)

    def key(self, role: str) -> str:
        return f"DATASET.VOLUME.{self.split.upper()}_{role}[{self.index}]"


def build_volume(cfg: CN) -> VolumeData:
    """Image + label volumes from HDF5, zarr, TIFF stacks or PNG slice directories (PyTC's classic input).

    Check the config now; read each split's files when the split is first used."""
    node = cfg.DATASET.VOLUME
    classes = list(cfg.DATASET.CLASSES)
    mode = node.LABEL_MODE
    require_choice("DATASET.VOLUME.LABEL_MODE", mode, LABEL_MODES)
    if mode in ("binary", "instance") and len(classes) != 1:
        raise ConfigError(f"config: DATASET.VOLUME.LABEL_MODE {mode} labels one class but DATASET.CLASSES is {classes}; "
                          "name exactly one class or use LABEL_MODE classmap/channels")
    _check_range(node.INTENSITY_RANGE)
    entries = {split: _entries(node, split) for split in SPLITS}
    if mode == "instance" and any(e.uris["INSTANCE"] for es in entries.values() for e in es):
        raise ConfigError("config: DATASET.VOLUME.*_INSTANCE lists are for classmap/channels labels; "
                          "with LABEL_MODE instance the ids come from the label volume itself, leave them empty")
    val_z = list(node.VAL_Z)
    if val_z and entries["val"]:
        raise ConfigError("config: set either DATASET.VOLUME.VAL_IMAGE or DATASET.VOLUME.VAL_Z, not both")
    if val_z and (len(val_z) != 2 or not all(isinstance(z, int) for z in val_z) or not 0 <= val_z[0] < val_z[1]):
        raise ConfigError(f"config: DATASET.VOLUME.VAL_Z = {val_z} must be [start, stop) slice numbers with 0 <= start < stop")
    if val_z and val_z[1] - val_z[0] < cfg.DATASET.PATCH_SIZE[0]:
        raise ConfigError(f"config: DATASET.VOLUME.VAL_Z = {val_z} holds out {val_z[1] - val_z[0]} slices, fewer than "
                          f"DATASET.PATCH_SIZE Z = {cfg.DATASET.PATCH_SIZE[0]}; widen VAL_Z or lower the patch size")
    if val_z and not entries["train"]:
        raise ConfigError("config: DATASET.VOLUME.VAL_Z holds out slices of the training volumes but TRAIN_IMAGE is empty")
    if entries["train"] and not (entries["val"] or val_z):
        raise ConfigError("config: DATASET.VOLUME has training volumes but no validation data; "
                          "set VAL_IMAGE/VAL_LABEL, or VAL_Z [start, stop) to hold out slices of each training volume")
    if not any(entries.values()):
        raise ConfigError("config: DATASET.VOLUME lists no volumes; set TRAIN_IMAGE and TRAIN_LABEL (see configs/volume_example.yaml)")

    def load(split: str) -> list[Volume]:
        return _unique_names([_load(e, classes, mode, node.INTENSITY_RANGE) for e in entries[split]])

    if val_z:
        patch_z = cfg.DATASET.PATCH_SIZE[0]
        held_out = functools.cache(lambda: _hold_out(load("train"), val_z, patch_z))
        splits = {"train": lambda: held_out()[0], "val": lambda: held_out()[1]}
    else:
        splits = {"train": functools.partial(load, "train"), "val": functools.partial(load, "val")}
    splits["test"] = functools.partial(load, "test")
    return VolumeData(cfg, {s: splits[s] if (entries[s] or (val_z and s == "val")) else [] for s in SPLITS})


def _entries(node: CN, split: str) -> list[Entry]:
    """The split's volumes; ConfigError for lists of different lengths or non-string items."""
    prefix = split.upper()
    lists = {role: list(node[f"{prefix}_{role}"]) for role in ROLES}
    n = len(lists["IMAGE"])
    for role, items in lists.items():
        key = f"DATASET.VOLUME.{prefix}_{role}"
        bad = [item for item in items if not isinstance(item, str) or not item.strip()]
        if bad:
            raise ConfigError(f"config: {key} holds {bad[0]!r}; every item must be a path (URI) string")
        optional = role in ("VALID_MASK", "INSTANCE") or (role == "LABEL" and split == "test")
        if role != "IMAGE" and len(items) != n and not (optional and not items):
            need = f"{n} (one per image)" + (" or none" if optional else "")
            raise ConfigError(f"config: {key} has {len(items)} items but DATASET.VOLUME.{prefix}_IMAGE has {n}; give {need}")
    root = Path(node.ROOT).expanduser() if node.ROOT else Path.cwd()
    return [Entry(split, i, {role: _resolve(root, items[i]) if items else None for role, items in lists.items()}) for i in range(n)]


def _resolve(root: Path, uri: str) -> str:
    path, key = split_uri(uri.strip())
    path = path.expanduser()
    full = path if path.is_absolute() else root / path
    return f"{full}:{key}" if key else str(full)


def _check_range(value: list) -> None:
    if value and (len(value) != 2 or not all(isinstance(v, (int, float)) for v in value) or not value[0] < value[1]):
        raise ConfigError(f"config: DATASET.VOLUME.INTENSITY_RANGE = {list(value)} must be [lo, hi] with lo < hi, or [] (automatic)")


# -- loading one volume ---------------------------------------------------------------------------


def _read(entry: Entry, role: str) -> np.ndarray:
    """read_volume with the config key in front of any error."""
    try:
        return read_volume(entry.uris[role])
    except DataError as exc:
        raise DataError(f"{entry.key(role)}: {exc}") from None


def _load(entry: Entry, classes: list[str], mode: str, intensity_range: list) -> Volume:
    image = _scalar_volume(entry, "IMAGE", _read(entry, "IMAGE"), hint=" (grayscale EM; scripts/png_to_h5.py converts RGB slices)")
    image = normalise_image(image, intensity_range)
    shape = image.shape
    instances = None
    if entry.uris["LABEL"] is None:  # unlabelled test volume: every voxel "not annotated"
        labels = np.broadcast_to(np.float32(np.nan), (len(classes), *shape))
    else:
        raw = _read(entry, "LABEL")
        if mode == "channels":
            labels = _channel_labels(entry, raw, classes)
        else:
            raw = _scalar_volume(entry, "LABEL", raw, hint=" (use LABEL_MODE channels for a (K, Z, Y, X) label)")
            _check_integers(entry, "LABEL", raw)
            if mode == "classmap":
                labels = _classmap_labels(entry, raw, classes)
            else:  # binary, instance
                labels = (raw != 0)[None].astype(np.uint8)
                if mode == "instance":
                    instances = raw.astype(np.int64) if raw.dtype.kind in "fb" else raw
        _check_shape(entry, "LABEL", labels.shape[1:], shape)
        if entry.split == "train" and not np.any(labels == 1):
            raise DataError(f"{entry.key('LABEL')}: {entry.uris['LABEL']} has no foreground voxel (no class present); "
                            "a training label must mark some voxels (check the file, its dataset and LABEL_MODE)")
    if entry.uris["INSTANCE"] is not None:
        instances = _scalar_volume(entry, "INSTANCE", _read(entry, "INSTANCE"))
        _check_integers(entry, "INSTANCE", instances)
        _check_shape(entry, "INSTANCE", instances.shape, shape)
    valid_mask = None
    if entry.uris["VALID_MASK"] is not None:
        mask = _scalar_volume(entry, "VALID_MASK", _read(entry, "VALID_MASK"))
        _check_shape(entry, "VALID_MASK", mask.shape, shape)
        valid_mask = (mask != 0).astype(np.uint8)
    return Volume(_volume_name(entry.uris["IMAGE"]), image, labels, instances=instances, valid_mask=valid_mask)


def normalise_image(image: np.ndarray, intensity_range: list) -> np.ndarray:
    """uint8 as is; else float32 in [0, 1] by ``intensity_range`` or per-volume min/max (module docstring)."""
    if intensity_range:
        lo, hi = map(float, intensity_range)
        return np.clip((image.astype(np.float32) - lo) / (hi - lo), 0, 1)
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind == "f" and np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1:
        return image.astype(np.float32, copy=False)
    lo, hi = float(np.nanmin(image)), float(np.nanmax(image))
    scaled = (image.astype(np.float32) - lo) / (hi - lo) if hi > lo else np.zeros(image.shape, np.float32)
    return np.nan_to_num(scaled, nan=0.0)


def _scalar_volume(entry: Entry, role: str, array: np.ndarray, hint: str = "") -> np.ndarray:
    """(Z, Y, X): a (1, Z, Y, X) volume loses its channel axis; more channels are an error."""
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise DataError(f"{entry.key(role)}: {entry.uris[role]} has {array.shape[0]} channels {array.shape}; "
                            f"expected one (Z, Y, X) volume{hint}")
        array = array[0]
    if array.dtype.kind not in "biuf":
        raise DataError(f"{entry.key(role)}: {entry.uris[role]} has dtype {array.dtype}; expected numbers")
    return array


def _check_shape(entry: Entry, role: str, shape: tuple[int, ...], image_shape: tuple[int, ...]) -> None:
    if tuple(shape) != tuple(image_shape):
        raise DataError(f"{entry.key(role)}: {entry.uris[role]} has shape {tuple(shape)} (Z, Y, X) but its image "
                        f"{entry.uris['IMAGE']} has {tuple(image_shape)}; they must be voxel-aligned")


def _check_integers(entry: Entry, role: str, array: np.ndarray) -> None:
    """Class maps and instance ids: non-negative integers (floats must hold whole numbers)."""
    where = f"{entry.key(role)}: {entry.uris[role]}"
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            raise DataError(f"{where} holds NaN/inf values; a {role.lower()} volume must hold integers")
        fractional = array != np.floor(array)
        if fractional.any():
            raise DataError(f"{where} holds non-integer values (e.g. {array[fractional].flat[0]:g}); "
                            "a class map or id volume must hold whole numbers")
    if array.dtype.kind in "if" and array.size and array.min() < 0:
        raise DataError(f"{where} holds negative values (min {array.min():g}); labels must be >= 0 (0 = background)")


def _classmap_labels(entry: Entry, raw: np.ndarray, classes: list[str]) -> np.ndarray:
    """(Z, Y, X) values 0..K -> (K, Z, Y, X) uint8 one-hot without background."""
    top = raw.max()
    if top > len(classes):
        raise DataError(f"{entry.key('LABEL')}: {entry.uris['LABEL']} holds value {top:g} but DATASET.CLASSES has "
                        f"{len(classes)} classes {classes}; values must be 0 (background) to {len(classes)} "
                        "(0/255 masks: LABEL_MODE binary; instance ids: LABEL_MODE instance)")
    return np.stack([raw == k for k in range(1, len(classes) + 1)]).astype(np.uint8)


def _channel_labels(entry: Entry, raw: np.ndarray, classes: list[str]) -> np.ndarray:
    """(K, Z, Y, X) 0/1 (float NaN = not annotated); a (Z, Y, X) label is accepted for one class."""
    where = f"{entry.key('LABEL')}: {entry.uris['LABEL']}"
    if raw.ndim == 3:
        raw = raw[None]
    if raw.shape[0] != len(classes):
        raise DataError(f"{where} has {raw.shape[0]} channels {raw.shape} but DATASET.CLASSES has {len(classes)} {classes}; "
                        "LABEL_MODE channels needs one channel per class")
    if raw.dtype.kind not in "biuf":
        raise DataError(f"{where} has dtype {raw.dtype}; expected 0/1 numbers")
    values = raw[~np.isnan(raw)] if raw.dtype.kind == "f" else raw
    if values.size and ((values != 0) & (values != 1)).any():
        bad = values[(values != 0) & (values != 1)].flat[0]
        raise DataError(f"{where} holds value {bad:g}; LABEL_MODE channels needs 0/1 per channel (NaN = not annotated)")
    return raw.astype(np.float32) if raw.dtype.kind == "f" and np.isnan(raw).any() else raw.astype(np.uint8)


# -- splits ---------------------------------------------------------------------------------------


def _hold_out(volumes: list[Volume], val_z: list[int], patch_z: int) -> tuple[list[Volume], list[Volume]]:
    """Slices [start, stop) of every training volume validate; the parts below and above train.

    Parts thinner than the patch's Z size cannot give a training patch and are dropped.
    """
    z0, z1 = val_z
    train, val = [], []
    for v in volumes:
        depth = v.image.shape[0]
        if z1 > depth or z1 - z0 >= depth:
            raise DataError(f"config: DATASET.VOLUME.VAL_Z {val_z} must be a proper sub-range of Z in volume {v.name!r} "
                            f"with {depth} slices")
        val.append(v.crop_z("val", z0, z1))
        train += [part for part in (v.crop_z("train-below", 0, z0), v.crop_z("train-above", z1, depth)) if part.image.shape[0] >= patch_z]
    if not train:
        raise DataError(f"config: DATASET.VOLUME.VAL_Z {val_z} leaves no training part of at least DATASET.PATCH_SIZE Z = "
                        f"{patch_z} slices; hold out fewer slices or lower the patch size")
    return train, val


def _volume_name(uri: str) -> str:
    """A file-name-safe name: the file (or directory) stem, plus the dataset path when one is given."""
    path, key = split_uri(uri)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return "-".join(part for part in (stem, key.replace("/", "_")) if part) or "volume"


def _unique_names(volumes: list[Volume]) -> list[Volume]:
    """Number repeated names (``image``, ``image-2``) so predictions do not overwrite each other."""
    seen: dict[str, int] = {}
    out = []
    for v in volumes:
        seen[v.name] = seen.get(v.name, 0) + 1
        out.append(v if seen[v.name] == 1 else Volume(f"{v.name}-{seen[v.name]}", v.image, v.labels, v.instances, v.valid_mask))
    return out
