"""A small CellMap data root drawn procedurally: the real challenge layout, no download.

``write_cellmap_root(root)`` writes, for each of ``n_datasets`` procedural EM volumes
(:func:`~emseg_plugins.datasets.synthetic_em.make_em_volume`, one seed each)::

    root/jrc_synth-<d>/jrc_synth-<d>.zarr/recon-1/em/fibsem-uint8/{s0, s1}       uint8, voxel v and 2v nm
    root/jrc_synth-<d>/jrc_synth-<d>.zarr/recon-1/labels/groundtruth/crop<N>/<class>/{s0, s1}   uint8 0/1

as zarr v2 groups with OME-NGFF ``multiscales`` metadata (axes z, y, x in nanometer; per level a
``scale`` and a ``translation`` in nm; level s1 is shifted by half an s0 voxel, the convention of
CellMap's own pyramids). Crops cycle through :data:`PATTERNS`, so some classes are missing from some
crops and ``mito`` is sometimes stored only through its members (``mito_mem`` = the outer voxel shell,
``mito_lum`` = the rest, ``mito_ribo`` = annotated but empty). With ``lowres_crop`` one more crop holds
``nuc`` and ``mito`` at 2v nm only. The volumes have touching mitochondria and nuclei
(``make_em_volume``'s ``clustered_fraction``): ``mito_mem`` is the shell of each mitochondrion id
(:func:`membrane`), so two touching ones are parted by two membranes, as in real annotations.

``test_crops`` more crops per dataset (numbered after the training crops, placed away from them where
the volume allows) are held out: they get no ``groundtruth`` group; instead ``test_crop_manifest.csv``
lists one row per (crop, label of :data:`TEST_LABELS`) in the official format
(:mod:`emseg_plugins.challenge.manifest`), and ``test_ground_truth.zarr`` holds their labels as
``emseg cellmap evaluate --truth`` reads them: instance labels (``nuc``, ``mito``) as the generator's
instance ids (touching objects keep their own ids), the others as uint8 masks; attrs ``voxel_size``,
``translation`` (nm, z-y-x). Used by the tests, the benchmarks and as the offline stand-in for the
CellMap challenge configs::

    python -m emseg_plugins.challenge.standin data/cellmap
    emseg cellmap predict ... --manifest data/cellmap/test_crop_manifest.csv
    emseg cellmap evaluate ... --truth data/cellmap/test_ground_truth.zarr
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from emseg_plugins.challenge.config import INSTANCE_CLASSES
from emseg_plugins.challenge.manifest import ROOT_MANIFEST, TestCrop, write_manifest
from emseg_plugins.datasets.cellmap_layout import GT_NAME, RAW_NAME
from emseg_plugins.datasets.synthetic_em import SyntheticVolume, make_em_volume
from emseg_plugins.errors import DataError
from emseg_plugins.utils.commandline import ArgumentParser, run_command

# Which class arrays the i-th crop of the root holds (cycled over the crops of all datasets).
PATTERNS: tuple[tuple[str, ...], ...] = (
    ("nuc", "mito_mem", "mito_lum", "mito_ribo"),  # mito only through its members (composite = their union)
    ("nuc",),  # mito unannotated (NaN)
    ("nuc", "mito", "mito_mem", "mito_lum", "mito_ribo"),  # the composite stored too, as challenge crops do
)
LOWRES_CLASSES = ("nuc", "mito")
TEST_LABELS = ("nuc", "mito", "mito_mem", "mito_lum")  # the labels of every held-out test crop (manifest rows, truth arrays)
MANIFEST_NAME = ROOT_MANIFEST  # written into the root: pass it to `emseg cellmap ...` as --manifest
TRUTH_NAME = "test_ground_truth.zarr"  # written into the root: pass it to `emseg cellmap evaluate` as --truth


@dataclass(frozen=True)
class WrittenCrop:
    """One crop written: dataset, ``crop<N>``, class arrays, corner and size in s0 raw voxels (z, y, x), label voxel sizes (nm);
    ``held_out``: a test crop (manifest rows and ground truth, no ``groundtruth`` group)."""

    dataset: str
    name: str
    classes: tuple[str, ...]
    offset: tuple[int, int, int]
    size: tuple[int, int, int]
    voxel_sizes: tuple[float, ...]
    held_out: bool = False


def membrane(ids: np.ndarray) -> np.ndarray:
    """bool (Z, Y, X): voxels of an instance with a 6-neighbour outside that instance (background, another id or
    past the volume): each object's own outer shell, also where two objects touch."""
    padded = np.pad(ids, 1)
    core = padded[1:-1, 1:-1, 1:-1]
    inner = core > 0
    for axis in range(3):
        for shift in (0, 2):
            index = [slice(1, -1)] * 3
            index[axis] = slice(shift, shift + core.shape[axis])
            inner &= padded[tuple(index)] == core
    return (core > 0) & ~inner


def class_arrays(volume: SyntheticVolume) -> dict[str, np.ndarray]:
    """uint8 0/1 (Z, Y, X) arrays of the classes the synthetic volumes carry (CellMap names).

    ``mito_mem`` is the shell of each mitochondrion id (:func:`membrane`), ``mito_lum`` the rest of it."""
    mito = volume.mito_ids > 0
    shell = membrane(volume.mito_ids)
    return {
        "nuc": (volume.nuc_ids > 0).astype(np.uint8),
        "mito": mito.astype(np.uint8),
        "mito_mem": shell.astype(np.uint8),
        "mito_lum": (mito & ~shell).astype(np.uint8),
        "mito_ribo": np.zeros_like(volume.mito, dtype=np.uint8),
    }


def instance_arrays(volume: SyntheticVolume) -> dict[str, np.ndarray]:
    """uint32 (Z, Y, X) instance ids of the instance classes (the generator's ids: touching objects stay apart)."""
    return {"nuc": volume.nuc_ids.astype(np.uint32), "mito": volume.mito_ids.astype(np.uint32)}


def write_cellmap_root(root: str | Path, shape: Sequence[int] = (32, 128, 128), crop_size: Sequence[int] = (16, 48, 48),
                       crops_per_dataset: int = 3, n_datasets: int = 2, voxel_size: float = 8.0, seed: int = 0,
                       lowres_crop: bool = True, overwrite: bool = False, test_crops: int = 1) -> list[WrittenCrop]:
    """Write a CellMap-layout data root at ``root`` (atomically: built beside it, then renamed).

    ``shape``: each EM volume (Z, Y, X) in s0 voxels of ``voxel_size`` nm (isotropic); ``crop_size``: each
    crop (Z, Y, X) in s0 voxels (even sizes, so that s1 is exact); ``test_crops``: held-out test crops per
    dataset (0: none, and no manifest or test ground truth). Returns what was written, training crops
    first, then the held-out ones.
    """
    root = Path(root)
    shape, crop_size = tuple(int(s) for s in shape), tuple(int(s) for s in crop_size)
    if len(shape) != 3 or len(crop_size) != 3 or any(c < 2 or c % 2 or c > s for c, s in zip(crop_size, shape)):
        raise DataError(f"crop size {list(crop_size)} must be three even sizes >= 2 that fit in the volume shape {list(shape)}")
    if test_crops < 0:
        raise DataError(f"test crops per dataset: {test_crops} must be >= 0")
    if root.exists() and not overwrite:
        raise DataError(f"{root}: already exists; choose another directory or pass overwrite=True (--overwrite)")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        written = _write(tmp, shape, crop_size, crops_per_dataset, n_datasets, float(voxel_size), seed, lowres_crop, test_crops)
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written


def _write(base: Path, shape, crop_size, crops_per_dataset, n_datasets, v, seed, lowres_crop, test_crops) -> list[WrittenCrop]:
    written: list[WrittenCrop] = []
    held_out: list[WrittenCrop] = []
    rows: list[TestCrop] = []
    n_train = n_datasets * crops_per_dataset + (1 if lowres_crop and n_datasets else 0)
    truth = zarr.open_group(str(base / TRUTH_NAME), mode="w") if test_crops else None
    for d in range(n_datasets):
        name = f"jrc_synth-{d + 1}"
        volume = make_em_volume(shape, seed + d)
        labels = class_arrays(volume)
        container = zarr.open_group(str(base / name / f"{name}.zarr"), mode="w")
        _write_multiscale(container.require_group(RAW_NAME), [volume.image, _block_mean(volume.image)], v, (0.0, 0.0, 0.0), (16, 64, 64))
        rng = np.random.default_rng((seed, d))
        n_crops = crops_per_dataset + (1 if lowres_crop and d == n_datasets - 1 else 0)
        boxes = []
        for c in range(n_crops):
            number = len(written) + 1
            offset = tuple(2 * int(rng.integers(0, (s - k) // 2 + 1)) for s, k in zip(shape, crop_size))
            boxes.append(offset)
            window = tuple(slice(o, o + k) for o, k in zip(offset, crop_size))
            translation = tuple(o * v for o in offset)
            group = container.require_group(f"{GT_NAME}/crop{number}")
            lowres = c == crops_per_dataset
            classes = LOWRES_CLASSES if lowres else PATTERNS[(number - 1) % len(PATTERNS)]
            for cls in classes:
                full = labels[cls][window]
                if lowres:  # annotated at 2v only: s0 is the strided 2v grid, shifted by half a voxel
                    _write_multiscale(group.require_group(cls), [full[::2, ::2, ::2]], 2 * v, tuple(t + v / 2 for t in translation), crop_size)
                else:
                    _write_multiscale(group.require_group(cls), [full, full[::2, ::2, ::2]], v, translation, crop_size)
            sizes = (2 * v,) if lowres else (v, 2 * v)
            written.append(WrittenCrop(name, f"crop{number}", tuple(classes), offset, crop_size, sizes))
        # held-out test crops: their own generator (the training crops above stay as they were), away from those crops
        test_rng = np.random.default_rng((seed, d, 1))
        instances = instance_arrays(volume)
        for _ in range(test_crops):
            number = n_train + len(held_out) + 1
            offset = _free_offset(test_rng, shape, crop_size, boxes)
            boxes.append(offset)
            window = tuple(slice(o, o + k) for o, k in zip(offset, crop_size))
            translation = tuple(float(o * v) for o in offset)
            group = truth.require_group(f"crop{number}")
            for label in TEST_LABELS:
                rows.append(TestCrop(number, name, label, (v, v, v), translation, crop_size))
                if label in INSTANCE_CLASSES:
                    data = _renumber(instances[label][window])
                else:
                    data = labels[label][window]
                array = group.create_dataset(label, data=data, chunks=tuple(min(64, k) for k in crop_size))
                array.attrs.update(voxel_size=[v, v, v], translation=list(translation))
            held_out.append(WrittenCrop(name, f"crop{number}", TEST_LABELS, offset, crop_size, (v,), held_out=True))
    if rows:
        write_manifest(base / MANIFEST_NAME, rows)
    return written + held_out


def _free_offset(rng: np.random.Generator, shape, crop_size, boxes, tries: int = 200) -> tuple[int, int, int]:
    """An even crop corner whose box overlaps the ``boxes`` (corners of ``crop_size`` boxes) least (none, if the volume allows)."""
    best, best_overlap = None, None
    for _ in range(tries):
        offset = tuple(2 * int(rng.integers(0, (s - k) // 2 + 1)) for s, k in zip(shape, crop_size))
        overlap = sum(int(np.prod([max(0, min(o, b) + k - max(o, b)) for o, b, k in zip(offset, other, crop_size)])) for other in boxes)
        if best_overlap is None or overlap < best_overlap:
            best, best_overlap = offset, overlap
        if overlap == 0:
            break
    return best


def _renumber(ids: np.ndarray) -> np.ndarray:
    """Instance ids of a crop renumbered 1..n (0 stays background), uint32."""
    values, inverse = np.unique(ids, return_inverse=True)
    start = 0 if values[0] == 0 else 1
    return (inverse.reshape(ids.shape) + start).astype(np.uint32)


def _block_mean(image: np.ndarray) -> np.ndarray:
    """2x2x2 block mean of a uint8 (Z, Y, X) volume (odd edges dropped), rounded to uint8."""
    z, y, x = (s // 2 * 2 for s in image.shape)
    blocks = image[:z, :y, :x].reshape(z // 2, 2, y // 2, 2, x // 2, 2).astype(np.float32)
    return np.round(blocks.mean(axis=(1, 3, 5))).astype(np.uint8)


def _write_multiscale(group: zarr.Group, levels: list[np.ndarray], voxel_size: float, translation: Sequence[float], chunks) -> None:
    """Arrays s0, s1, ... (each level twice the previous voxel size) and their OME-NGFF 0.4 metadata."""
    datasets = []
    for i, array in enumerate(levels):
        group.create_dataset(f"s{i}", data=array, chunks=tuple(min(c, s) for c, s in zip(chunks, array.shape)), overwrite=True)
        factor = 2**i
        datasets.append({
            "path": f"s{i}",
            "coordinateTransformations": [
                {"type": "scale", "scale": [voxel_size * factor] * 3},
                {"type": "translation", "translation": [t + voxel_size * (factor - 1) / 2 for t in translation]},
            ],
        })
    group.attrs["multiscales"] = [{
        "version": "0.4",
        "name": group.basename,
        "axes": [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"],
        "datasets": datasets,
        "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}],
    }]


def main(argv: list[str] | None = None) -> int:
    """``python -m emseg_plugins.challenge.standin ROOT``: exit status 0, or 2 with one error line."""
    parser = ArgumentParser(prog="python -m emseg_plugins.challenge.standin", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", metavar="ROOT", help="directory to create (the data root: ROOT/<dataset>/<dataset>.zarr)")
    parser.add_argument("--shape", type=int, nargs=3, default=[32, 128, 128], metavar=("Z", "Y", "X"), help="EM volume per dataset, s0 voxels")
    parser.add_argument("--crop-size", type=int, nargs=3, default=[16, 48, 48], metavar=("Z", "Y", "X"), help="crop size, s0 voxels (even)")
    parser.add_argument("--crops-per-dataset", type=int, default=3, help="crops per dataset at both voxel sizes")
    parser.add_argument("--datasets", type=int, default=2, help="number of datasets (EM volumes)")
    parser.add_argument("--voxel-size", type=float, default=8.0, help="s0 voxel size in nm (s1 is twice that)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-lowres-crop", action="store_true", help="omit the extra crop annotated at the coarse voxel size only")
    parser.add_argument("--test-crops", type=int, default=1, metavar="N",
                        help=f"held-out test crops per dataset, listed in ROOT/{MANIFEST_NAME} (pass it to `emseg cellmap` as "
                             f"--manifest) with their ground truth in ROOT/{TRUTH_NAME} (`emseg cellmap evaluate --truth`); 0 = none")
    parser.add_argument("--overwrite", action="store_true", help="replace ROOT if it exists")
    return run_command(_write_command, parser.parse_args(argv))


def _write_command(args: argparse.Namespace) -> int:
    crops = write_cellmap_root(args.root, args.shape, args.crop_size, args.crops_per_dataset, args.datasets, args.voxel_size,
                               args.seed, not args.no_lowres_crop, args.overwrite, args.test_crops)
    for c in crops:
        what = "held-out test crop, labels" if c.held_out else "training crop"
        print(f"{c.dataset}/{c.name}: {what} {', '.join(c.classes)} at {', '.join(f'{s:g}' for s in c.voxel_sizes)} nm")
    tests = [c for c in crops if c.held_out]
    print(f"wrote {len(crops) - len(tests)} training crops to {args.root}")
    if tests:
        root = Path(args.root)
        print(f"test-crop manifest ({len(tests)} crops): {root / MANIFEST_NAME}  (emseg cellmap predict|submit|evaluate --manifest)")
        print(f"their ground truth: {root / TRUTH_NAME}  (emseg cellmap evaluate --truth)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
