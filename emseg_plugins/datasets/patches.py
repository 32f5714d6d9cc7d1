"""Patch datasets over in-memory volumes, shared by every dataset plugin that loads volumes.

A dataset plugin's builder returns a :class:`VolumeData`; the engine asks it for a training and a
validation ``torch`` dataset and, for inference, for whole volumes. Samples follow the batch schema
(docs/schemas.md): ``image`` float32 (C, [Z,] Y, X) in [0, 1], ``label`` float32 (K, [Z,] Y, X) in
{0, 1} (NaN = unannotated), and where the volume has them ``instance`` int64 (1, [Z,] Y, X) and
``valid_mask`` float32 (1, [Z,] Y, X). 2D samples carry ``INPUT_SLICES`` adjacent slices as channels
and the targets of the centre slice (2.5D); 3D samples are (1, Z, Y, X) patches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from yacs.config import CfgNode as CN

from emseg_plugins.config.loader import require, require_choice
from emseg_plugins.datasets.augment import Augment
from emseg_plugins.errors import DataError
from emseg_plugins.targets import TargetMaker, build_targets

SAMPLERS = ("uniform", "foreground", "class_balanced")
_MAX_SCANNED = 1 << 22  # voxels scanned per volume for foreground coordinates (larger volumes: a YX-strided grid)
_MAX_KEPT = 1 << 20  # foreground coordinates kept per class (a fixed random subset beyond that)


@dataclass(frozen=True)
class Volume:
    """One image volume with its targets, all voxel-aligned.

    image (Z, Y, X) uint8 or float in [0, 1]; labels (K, Z, Y, X) uint8 or float (NaN = unannotated);
    optional instances (Z, Y, X) integer ids (0 = background); optional valid_mask (Z, Y, X), 0 = ignore.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    instances: np.ndarray | None = None
    valid_mask: np.ndarray | None = None

    def __post_init__(self):
        if self.image.ndim != 3 or self.labels.ndim != 4 or self.labels.shape[1:] != self.image.shape:
            raise DataError(
                f"volume {self.name!r}: image {self.image.shape} and labels {self.labels.shape} must be "
                "(Z, Y, X) and (K, Z, Y, X) with the same Z, Y, X"
            )
        for field in ("instances", "valid_mask"):
            array = getattr(self, field)
            if array is not None and array.shape != self.image.shape:
                raise DataError(f"volume {self.name!r}: {field} {array.shape} must have the image's shape {self.image.shape}")

    def crop_z(self, suffix: str, start: int, stop: int) -> "Volume":
        """Slices [start, stop) of every array, named ``<name>-<suffix>``."""
        def cut(a):
            return None if a is None else a[..., start:stop, :, :]
        return Volume(f"{self.name}-{suffix}", cut(self.image), cut(self.labels), cut(self.instances), cut(self.valid_mask))


@dataclass(frozen=True)
class PatchSpec:
    """What one sample looks like: patch (Z, Y, X) voxels, 2D or 3D, adjacent slices for 2.5D."""

    size: tuple[int, int, int]
    dims: int
    input_slices: int

    @classmethod
    def from_cfg(cls, cfg: CN) -> "PatchSpec":
        return cls(tuple(cfg.DATASET.PATCH_SIZE), cfg.DATASET.DIMS, cfg.DATASET.INPUT_SLICES)

    def check_fits(self, volume: Volume) -> None:
        if any(p > s for p, s in zip(self.size, volume.image.shape)):
            raise DataError(
                f"volume {volume.name!r} of shape {volume.image.shape} is smaller than "
                f"DATASET.PATCH_SIZE {list(self.size)}; lower the patch size or use a larger volume"
            )

    def sample(self, volume: Volume, corner: Sequence[int]) -> dict[str, torch.Tensor]:
        """The sample whose patch starts at ``corner`` (z, y, x) voxels."""
        z, y, x = corner
        pz, py, px = self.size
        if self.dims == 2:
            half = self.input_slices // 2
            zs = np.clip(np.arange(z - half, z + half + 1), 0, volume.image.shape[0] - 1)  # edge-repeat
            image = volume.image[zs, y : y + py, x : x + px]
            window = (slice(z, z + 1), slice(y, y + py), slice(x, x + px))
        else:
            image = volume.image[None, z : z + pz, y : y + py, x : x + px]
            window = (slice(z, z + pz), slice(y, y + py), slice(x, x + px))
        label = volume.labels[(slice(None), *window)]
        if self.dims == 2:
            label = label[:, 0]  # the centre slice's targets, (K, Y, X)
        sample = {"image": _to_unit_float(image), "label": torch.from_numpy(np.ascontiguousarray(label, np.float32))}
        if volume.instances is not None:
            sample["instance"] = torch.from_numpy(np.ascontiguousarray(volume.instances[window], np.int64).reshape(1, *label.shape[1:]))
        if volume.valid_mask is not None:
            sample["valid_mask"] = torch.from_numpy(np.ascontiguousarray(volume.valid_mask[window], np.float32).reshape(1, *label.shape[1:]))
        return sample


class RandomPatches(Dataset):
    """``length`` random patches; sample ``i`` is a pure function of ``(seed, i)`` (any worker count).

    ``sampler``: ``uniform`` (volume by size, then a uniform corner), ``foreground`` (with probability
    ``foreground_fraction`` the patch is centred on a random labelled voxel of any class) or
    ``class_balanced`` (with that probability a class is drawn uniformly first, then one of its voxels).
    Labelled voxels (label == 1) are listed once, at construction, on a YX-strided grid for large volumes.
    """

    def __init__(self, volumes: list[Volume], spec: PatchSpec, length: int, seed: int, augment: Augment | None,
                 sampler: str = "uniform", foreground_fraction: float = 0.5, targets: TargetMaker | None = None):
        for v in volumes:
            spec.check_fits(v)
        require_choice("DATASET.SAMPLER", sampler, SAMPLERS)
        require(0 <= foreground_fraction <= 1, "DATASET.FOREGROUND_FRACTION", foreground_fraction, "in [0, 1]")
        self.volumes, self.spec, self.length, self.seed, self.augment = volumes, spec, length, seed, augment
        self.sampler, self.foreground_fraction = sampler, foreground_fraction
        self.targets = targets or TargetMaker([])
        sizes = np.array([v.image.size for v in volumes], dtype=np.float64)
        self.volume_weights = sizes / sizes.sum()
        self.foreground = foreground_voxels(volumes) if sampler != "uniform" and foreground_fraction > 0 else []
        if sampler == "foreground" and self.foreground:
            self.foreground = [np.concatenate(self.foreground)]  # one pool: any labelled voxel
        self.foreground = [c for c in self.foreground if len(c)]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, index))
        if self.foreground and rng.random() < self.foreground_fraction:
            pool = self.foreground[int(rng.integers(len(self.foreground)))]  # class_balanced: a class, uniformly
            v, *centre = pool[int(rng.integers(len(pool)))]
            volume = self.volumes[v]
            corner = [int(np.clip(c - p // 2, 0, s - p)) for c, s, p in zip(centre, volume.image.shape, self.spec.size)]
        else:
            volume = self.volumes[rng.choice(len(self.volumes), p=self.volume_weights)]
            corner = [int(rng.integers(0, s - p + 1)) for s, p in zip(volume.image.shape, self.spec.size)]
        sample = self.spec.sample(volume, corner)
        return self.targets(self.augment(sample, rng) if self.augment else sample)


def foreground_voxels(volumes: list[Volume]) -> list[np.ndarray]:
    """Per class, (N, 4) int32 rows (volume, z, y, x) of voxels with label 1.

    A volume over ``_MAX_SCANNED`` voxels is scanned on a YX grid of stride s (every s-th row and
    column); a class over ``_MAX_KEPT`` voxels keeps a fixed random subset (seed 0).
    """
    per_class: list[list[np.ndarray]] = [[] for _ in range(volumes[0].labels.shape[0])]
    for v, volume in enumerate(volumes):
        stride = max(1, int(np.ceil(np.sqrt(volume.image.size / _MAX_SCANNED))))
        for k, channel in enumerate(volume.labels):
            z, y, x = np.nonzero(channel[:, ::stride, ::stride] == 1)
            per_class[k].append(np.stack([np.full_like(z, v), z, y * stride, x * stride], 1).astype(np.int32))
    pools = [np.concatenate(parts) for parts in per_class]
    rng = np.random.default_rng(0)
    return [p[np.sort(rng.choice(len(p), _MAX_KEPT, replace=False))] if len(p) > _MAX_KEPT else p for p in pools]


class GridPatches(Dataset):
    """Patches tiling every volume without gaps (the last tile on an axis is shifted inwards)."""

    def __init__(self, volumes: list[Volume], spec: PatchSpec, targets: TargetMaker | None = None):
        for v in volumes:
            spec.check_fits(v)
        self.volumes, self.spec, self.targets = volumes, spec, targets or TargetMaker([])
        self.index = [(i, corner) for i, v in enumerate(volumes) for corner in tile_corners(v.image.shape, spec.size)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        volume_index, corner = self.index[index]
        return self.targets(self.spec.sample(self.volumes[volume_index], corner))


def tile_corners(shape: Sequence[int], size: Sequence[int]) -> list[tuple[int, ...]]:
    """Corners of tiles of ``size`` covering ``shape`` exactly (overlap only at the far edges)."""
    axes = [sorted({*range(0, s - p + 1, p), s - p}) for s, p in zip(shape, size)]
    return [tuple(c) for c in np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(shape))]


def _to_unit_float(image: np.ndarray) -> torch.Tensor:
    """uint8 -> float32 in [0, 1]; float volumes are taken as already normalised."""
    array = np.ascontiguousarray(image)
    tensor = torch.from_numpy(array)
    return tensor.float() / 255.0 if array.dtype == np.uint8 else tensor.float()


class VolumeData:
    """What a volume-based dataset plugin returns: classes and volumes per split (train/val/test)."""

    def __init__(self, cfg: CN, splits: dict[str, "list[Volume] | Callable[[], list[Volume]]"]):
        self.cfg = cfg
        self.classes = list(cfg.DATASET.CLASSES)
        self.splits = splits
        self.spec = PatchSpec.from_cfg(cfg)
        self.targets = TargetMaker(build_targets(cfg))  # TARGET.NAMES, computed from instance ids after augmentation

    def volumes(self, split: str) -> list[Volume]:
        """The split's volumes; a split given as a function is loaded on first use."""
        if callable(self.splits.get(split)):
            self.splits[split] = self.splits[split]()
        if not self.splits.get(split):
            raise DataError(f"dataset {self.cfg.DATASET.NAME!r} has no {split!r} split; available: {', '.join(s for s, v in self.splits.items() if v)}")
        return self.splits[split]

    def train_dataset(self, num_samples: int) -> Dataset:
        """``num_samples`` random patches (DATASET.SAMPLER, AUGMENTOR): sample i is fixed by (SYSTEM.SEED, i)."""
        d = self.cfg.DATASET
        return RandomPatches(self.volumes("train"), self.spec, num_samples, self.cfg.SYSTEM.SEED, Augment.from_cfg(self.cfg),
                             sampler=d.SAMPLER, foreground_fraction=d.FOREGROUND_FRACTION, targets=self.targets)

    def val_dataset(self) -> Dataset:
        return GridPatches(self.volumes("val"), self.spec, self.targets)
