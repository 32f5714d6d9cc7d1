"""``cellmap``: CellMap challenge crops, read and sampled by cellmap-data, in this project's batch schema.

The builder finds the crops (a datasplit CSV, or a scan of ``DATASET.CELLMAP.DATA_ROOT`` keeping the
crops that annotate a class of ``DATASET.CLASSES`` at ``VOXEL_SIZE``, split 85/15 by ``SYSTEM.SEED``;
see :mod:`~emseg_plugins.datasets.cellmap_layout`) and hands them to ``cellmap_data.CellMapDataSplit``,
which opens every crop as a ``CellMapDataset``: it picks the multiscale level nearest ``VOXEL_SIZE``,
resamples, pads past the crop with NaN and returns NaN for classes a crop does not annotate. With
``PAD`` a crop smaller than the patch always gets a patch that covers it (:func:`padded_sampling_box`).

A thin adapter turns its ``{"raw", "labels"}`` dicts into samples of docs/schemas.md: ``image`` float32
(C, [Z,] Y, X) in [0, 1] (2D: C = ``DATASET.INPUT_SLICES`` adjacent slices, 2.5D) and ``label`` float32
(K, [Z,] Y, X) with NaN where unannotated. Composite classes (``mito``, ``nuc``, ...) are read as
themselves and as their members; where a crop lacks the composite's own array the channel is the union
of the members (1 where any member is 1, 0 where every member is annotated 0, NaN elsewhere).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import zarr
from torch.utils.data import Dataset
from yacs.config import CfgNode as CN

from emseg_plugins.config.keys import require
from emseg_plugins.datasets.cellmap_layout import (
    USAGES,
    ClassTable,
    SplitEntry,
    annotation,
    format_size,
    load_class_table,
    read_datasplit_csv,
    read_multiscales,
    scan_root,
    select_crops,
    split_crops,
    split_entries,
    write_datasplit_csv,
)
from emseg_plugins.datasets.patches import Augment, PatchSpec, Volume
from emseg_plugins.errors import ConfigError, DataError
from emseg_plugins.datasets.config_nodes import add_cellmap_config  # noqa: F401  # re-exported: its node lives with the other light ones


def build_cellmap(cfg: CN) -> CellMapData:
    """CellMap challenge crops (OME-NGFF zarr) read by cellmap-data; composite classes, NaN where unannotated.

    Find the crops, open them with cellmap-data; write ``DATASPLIT`` (if set) only once all checks passed."""
    node = cfg.DATASET.CELLMAP
    _check_config(cfg)
    csv_path = Path(node.DATASPLIT) if node.DATASPLIT else None
    if csv_path is not None and csv_path.is_file() and not node.REGENERATE_SPLIT:
        entries = read_datasplit_csv(csv_path)
        _check_classes_listed(entries, cfg.DATASET.CLASSES, csv_path)
        return CellMapData(cfg, entries)
    voxel_size, tolerance = [float(v) for v in node.VOXEL_SIZE], float(node.VOXEL_TOLERANCE)
    if not Path(node.DATA_ROOT).is_dir():
        raise DataError(f"DATASET.CELLMAP.DATA_ROOT {node.DATA_ROOT!r}: directory not found ({Path(node.DATA_ROOT).absolute()}); "
                        f"download the challenge data there with `csc fetch-data --crops all --dest {node.DATA_ROOT}` (pip install "
                        "cellmap-segmentation-challenge), or write the offline stand-in with "
                        f"`python -m emseg_plugins.challenge.standin {node.DATA_ROOT}`")
    crops = scan_root(node.DATA_ROOT, node.RAW_NAME, list(node.DATASETS), [str(c) for c in node.CROPS])
    kept = select_crops(crops, cfg.DATASET.CLASSES, voxel_size, tolerance, node.FORCE_ALL_CLASSES)
    usage = split_crops(kept, node.VAL_FRACTION, cfg.SYSTEM.SEED)
    entries = split_entries(kept, usage, cfg.DATASET.CLASSES, voxel_size, tolerance)
    data = CellMapData(cfg, entries)
    if csv_path is not None:
        write_datasplit_csv(csv_path, entries)
    return data


def _check_config(cfg: CN) -> None:
    node = cfg.DATASET.CELLMAP
    if not node.DATA_ROOT and not (node.DATASPLIT and Path(node.DATASPLIT).is_file() and not node.REGENERATE_SPLIT):
        raise ConfigError("config: DATASET.CELLMAP.DATA_ROOT is empty; set it to the folder holding <dataset>/<dataset>.zarr "
                          "(or DATASET.CELLMAP.DATASPLIT to an existing datasplit CSV)")
    size = list(node.VOXEL_SIZE)
    require(len(size) == 3 and all(isinstance(v, (int, float)) and v > 0 for v in size), "DATASET.CELLMAP.VOXEL_SIZE", size,
            "three positive voxel sizes (z, y, x) in nm")
    require(0 < node.VAL_FRACTION < 1, "DATASET.CELLMAP.VAL_FRACTION", node.VAL_FRACTION, "in (0, 1)")
    require(node.VOXEL_TOLERANCE >= 0, "DATASET.CELLMAP.VOXEL_TOLERANCE", node.VOXEL_TOLERANCE, ">= 0")


def _check_classes_listed(entries: Sequence[SplitEntry], classes: Sequence[str], csv_path: Path) -> None:
    listed = sorted({c for e in entries for c in e.classes})
    for name in classes:
        if not any(annotation(e.classes, name) for e in entries):
            raise DataError(f"{csv_path}: no crop in this datasplit has class {name!r} (it lists {', '.join(listed)}); set "
                            "DATASET.CELLMAP.REGENERATE_SPLIT True to rescan DATASET.CELLMAP.DATA_ROOT for DATASET.CLASSES")


class ComposeClasses:
    """(R, ...) per-class tensors as cellmap-data reads them -> (K, ...) for ``classes`` (NaN = unannotated).

    ``read_classes`` holds every class of ``classes`` and the members of its composites. A composite's
    own array wins where it is annotated; elsewhere the members' union: 1 where any member is 1, 0 where
    every member is annotated and 0, NaN where that is not known.
    """

    def __init__(self, classes: Sequence[str], read_classes: Sequence[str], table: ClassTable):
        self.plan = [(read_classes.index(c), torch.tensor([read_classes.index(m) for m in table.members_of(c)], dtype=torch.long))
                     for c in classes]

    def __call__(self, read: torch.Tensor) -> torch.Tensor:
        channels = []
        for own, members in self.plan:
            value = read[own]
            if len(members):
                parts = read.index_select(0, members)  # (indexing with a Python list is ~100x slower)
                positive = (parts > 0.5).any(0)
                union = positive.float()
                union[~(positive | torch.isfinite(parts).all(0))] = float("nan")
                value = torch.where(torch.isfinite(value), value, union)
            channels.append(value)
        return torch.stack(channels).float()


class SampleAdapter:
    """A cellmap-data sample dict -> ``{"image", "label"}`` of docs/schemas.md for one patch layout."""

    def __init__(self, spec: PatchSpec, n_read: int, compose: ComposeClasses):
        z, y, x = spec.size
        self.image_shape = (spec.input_slices, y, x) if spec.dims == 2 else (1, z, y, x)
        self.label_shape = (n_read, y, x) if spec.dims == 2 else (n_read, z, y, x)
        self.compose = compose

    def __call__(self, item: dict) -> dict[str, torch.Tensor]:
        # cellmap-data squeezes singleton axes and prepends a channel: (1, [S,] Y, X) / (R, Y, X) for 2D patches
        image = item["raw"].reshape(self.image_shape).float().contiguous()
        label = self.compose(item["labels"].reshape(self.label_shape)).contiguous()
        return {"image": image, "label": label}


class UnitRange:
    """Raw value transform: integer EM grey levels -> float32 in [0, 1]; NaN (padding past the raw EM) -> 0."""

    def __init__(self, max_value: float):
        self.max_value = float(max_value)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() / self.max_value).nan_to_num(0.0).clamp(0.0, 1.0)


class CellMapTrainSamples(Dataset):
    """``length`` training samples; sample ``i`` is a pure function of ``(seed, i)``.

    Each index draws a crop with probability ``weights``, a patch centre uniformly among that crop's
    cellmap-data sample indices, then the flips/rotations/intensity of ``AUGMENTOR`` (the project's
    :class:`Augment`, fed the same generator: cellmap-data's own spatial transforms draw from a per-dataset
    stateful generator, which would make a sample depend on the worker and on the order of reads).
    """

    def __init__(self, datasets: list, weights: np.ndarray, adapt: SampleAdapter, length: int, seed: int, augment: Augment | None):
        self.datasets, self.weights, self.adapt = datasets, weights, adapt
        self.length, self.seed, self.augment = length, seed, augment

    def __len__(self) -> int:
        return self.length

    def _draw(self, index: int) -> tuple[np.random.Generator, int]:
        rng = np.random.default_rng((self.seed, index))
        return rng, int(rng.choice(len(self.datasets), p=self.weights))

    def crop_of(self, index: int) -> int:
        """Which training crop (position in ``datasets``) sample ``index`` comes from, without reading it."""
        return self._draw(index)[1]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng, crop = self._draw(index)
        dataset = self.datasets[crop]
        sample = self.adapt(dataset[int(rng.integers(len(dataset)))])
        return self.augment(sample, rng) if self.augment else sample


class AdaptedDataset(Dataset):
    """Any cellmap-data dataset (here: the validation tiles) seen through a :class:`SampleAdapter`."""

    def __init__(self, dataset: Dataset, adapt: SampleAdapter):
        self.dataset, self.adapt = dataset, adapt

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.adapt(self.dataset[index])


class CellMapData:
    """What ``build_cellmap`` returns: ``classes``, ``train_dataset(n)``, ``val_dataset()``, ``volumes(split)``.

    ``split`` is the ``cellmap_data.CellMapDataSplit`` holding one ``CellMapDataset`` per crop.
    """

    def __init__(self, cfg: CN, entries: Sequence[SplitEntry]):
        node = cfg.DATASET.CELLMAP
        self.cfg, self.entries = cfg, list(entries)
        self.classes = list(cfg.DATASET.CLASSES)
        self.table = load_class_table()
        self.read_classes = self.table.expand(self.classes)
        self.compose = ComposeClasses(self.classes, self.read_classes, self.table)
        self.voxel_size = [float(v) for v in node.VOXEL_SIZE]
        self.spec = PatchSpec.from_cfg(cfg)
        self.adapt = SampleAdapter(self.spec, len(self.read_classes), self.compose)
        z, y, x = self.spec.size
        in_shape, out_shape = ((self.spec.input_slices, y, x), (1, y, x)) if self.spec.dims == 2 else ((z, y, x), (z, y, x))
        # imported on use, not at the top: it takes seconds and `emseg config` needs none of it
        from cellmap_data import CellMapDataSplit

        self.split = CellMapDataSplit(
            input_arrays={"raw": {"shape": in_shape, "scale": self.voxel_size}},
            target_arrays={"labels": {"shape": out_shape, "scale": self.voxel_size}},
            classes=self.read_classes,
            pad=bool(node.PAD),
            dataset_dict={u: [{"raw": e.raw, "gt": e.gt} for e in self.entries if e.usage == u] for u in USAGES},
            train_raw_value_transforms=None,
            val_raw_value_transforms=None,
            force_has_data=True,  # we check each crop ourselves below, naming the one at fault
        )
        self.names = {e.gt: e.name for e in self.entries}
        self._check_opened()

    # -- checks ------------------------------------------------------------------------------------
    def _check_opened(self) -> None:
        opened = {ds.target_path for ds in self.split.train_datasets + self.split.validation_datasets}
        for e in self.entries:
            if e.gt not in opened:
                raise DataError(f"cellmap-data could not open crop {e.crop_dir} with raw {e.raw}; check the zarr groups there")
        pad = bool(self.cfg.DATASET.CELLMAP.PAD)
        for ds in self.split.train_datasets + self.split.validation_datasets:
            ds.set_raw_value_transforms(UnitRange(_raw_max(ds.raw_path)))
            if pad:
                ds.__dict__["sampling_box"] = padded_sampling_box(ds)  # replaces cellmap-data's cached property
            if len(ds) == 0:
                fix = ("lower DATASET.PATCH_SIZE or leave the crop out" if pad else
                       "set DATASET.CELLMAP.PAD True, lower DATASET.PATCH_SIZE, or leave the crop out")
                raise DataError(f"crop {self.names[ds.target_path]} ({ds.target_path.split('[')[0]}) holds no whole patch of "
                                f"DATASET.PATCH_SIZE {list(self.spec.size)} at {format_size(self.voxel_size)} nm inside the raw EM; {fix}")

    # -- sampling --------------------------------------------------------------------------------------
    def annotated_matrix(self, datasets: Sequence) -> np.ndarray:
        """(crops, K) bool: crop j annotates class k (its own array or any member of a composite)."""
        read = np.vstack([ds.get_crop_class_matrix() for ds in datasets])  # cellmap-data: (crops, read classes)
        columns = []
        for c in self.classes:
            idx = [self.read_classes.index(n) for n in (c, *self.table.members_of(c))]
            columns.append(read[:, idx].any(axis=1))
        return np.stack(columns, axis=1)

    def crop_weights(self, datasets: Sequence) -> np.ndarray:
        """Probability of drawing each training crop.

        Class-balanced (``CLASS_BALANCED``): a class is picked uniformly among those some crop annotates,
        then a crop uniformly among the crops annotating it, so P(crop) = mean over classes of
        [crop annotates class] / (crops annotating class): inverse class frequency. This is the expected
        behaviour of cellmap-data's ``ClassBalancedSampler`` (which picks the least-seen class each step),
        made stateless: our DataModule samples by index and sample i must depend on (seed, i) only.
        Otherwise crops are drawn in proportion to their number of patch centres (uniform over patches).
        """
        if self.cfg.DATASET.CELLMAP.CLASS_BALANCED:
            matrix = self.annotated_matrix(datasets).astype(np.float64)
            active = matrix[:, matrix.sum(axis=0) > 0]
            weights = (active / active.sum(axis=0)).mean(axis=1)
        else:
            weights = np.array([len(ds) for ds in datasets], dtype=np.float64)
        return weights / weights.sum()

    def train_dataset(self, num_samples: int) -> Dataset:
        """``num_samples`` random patches from the training crops: sample i is fixed by (SYSTEM.SEED, i)."""
        datasets = self.split.train_datasets
        return CellMapTrainSamples(datasets, self.crop_weights(datasets), self.adapt, num_samples, self.cfg.SYSTEM.SEED,
                                   Augment.from_cfg(self.cfg))

    def val_dataset(self) -> Dataset:
        """cellmap-data's validation blocks: non-overlapping patches tiling each validation crop's sampling box."""
        return AdaptedDataset(self.split.validation_blocks, self.adapt)

    # -- whole crops (inference) ---------------------------------------------------------------------
    def volumes(self, split: str) -> list[Volume]:
        """Every crop of ``split`` (``train`` or ``val``) as one :class:`Volume` at ``VOXEL_SIZE``."""
        datasets = {"train": self.split.train_datasets, "val": self.split.validation_datasets}.get(split)
        if datasets is None:
            raise DataError(f"dataset 'cellmap' has no {split!r} split with labels (the challenge's test crops have none); "
                            "set INFERENCE.SPLIT to val or train")
        return [self._whole_crop(ds) for ds in datasets]

    def _whole_crop(self, ds) -> Volume:
        """The crop's bounding box read in one piece by a cellmap-data dataset whose patch is the crop."""
        from cellmap_data import CellMapDataset

        box = ds.bounding_box
        shape = [max(1, round((box[a][1] - box[a][0]) / s)) for a, s in zip("zyx", self.voxel_size)]
        arrays = {"shape": shape, "scale": self.voxel_size}
        whole = CellMapDataset(ds.raw_path, ds.target_path, self.read_classes, {"raw": arrays}, {"labels": arrays}, pad=True,
                               raw_value_transforms=ds.raw_value_transforms, target_value_transforms=ds.target_value_transforms,
                               force_has_data=True)
        item = whole[0]
        image = item["raw"].reshape(shape).numpy()
        labels = self.compose(item["labels"].reshape(len(self.read_classes), *shape)).numpy()
        return Volume(self.names[ds.target_path], image, labels)


def padded_sampling_box(ds) -> dict[str, tuple[float, float]] | None:
    """Where patch centres may lie (world nm per axis) in a crop read with ``PAD``: cellmap-data's box, made never empty.

    cellmap-data intersects per source the centres that keep a patch inside it; a source smaller than the
    patch (with ``pad``) allows only its own middle. A crop smaller than the patch and a raw EM not much
    larger than it (the synthetic stand-in: 32 slices for 32-slice patches) then allow two different single
    centres, the intersection is empty and the crop has no sample although it could be padded. Here, per
    axis, where the crop's centres and the raw's do not meet, the centre is the raw's allowed one nearest
    to the crop's: the patch stays inside the raw EM as far as it can and covers as much of the crop as
    it can, the rest of its labels NaN (padding).
    """
    def intersect(sources) -> dict[str, tuple[float, float]] | None:
        box = None
        for src in sources:
            if src.bounding_box is None:  # EmptyImage: a class the crop does not annotate
                continue
            sb = src.sampling_box
            if sb is None:
                return None
            box = dict(sb) if box is None else {ax: (max(box[ax][0], lo), min(box[ax][1], hi)) for ax, (lo, hi) in sb.items()}
        return box

    raw, crop = intersect(ds.input_sources.values()), intersect(ds.target_sources.values())
    if raw is None or crop is None or any(hi < lo for lo, hi in [*raw.values(), *crop.values()]):
        return ds.sampling_box
    scale = ds._target_scale
    box = {}
    for ax in crop:
        lo, hi = max(crop[ax][0], raw[ax][0]), min(crop[ax][1], raw[ax][1])
        if lo < hi:
            box[ax] = (lo, hi)
        else:  # one centre: the raw's lowest when the crop's centres lie below the raw's, else its highest
            centre = raw[ax][0] if crop[ax][1] <= raw[ax][0] else raw[ax][1]
            if raw[ax][1] - raw[ax][0] <= scale[ax]:  # the raw allows one centre only (cellmap-data's box around it)
                centre = (raw[ax][0] + raw[ax][1]) / 2
            box[ax] = (centre - scale[ax] / 2, centre + scale[ax] / 2)  # cellmap-data draws lo + (i + 0.5) * scale
    return box


def _raw_max(raw_path: str) -> float:
    """Largest grey level of the raw EM's dtype (255 for fibsem-uint8); 1 for float data."""
    dtype = zarr.open_array(f"{raw_path}/{read_multiscales(Path(raw_path))[0].path}", mode="r").dtype
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
