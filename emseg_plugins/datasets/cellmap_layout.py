"""CellMap data roots on disk: crops, their classes and voxel sizes, the class table, the datasplit CSV.

A data root is laid out as the CellMap challenge's ``csc fetch-data`` writes it::

    ROOT/<dataset>/<dataset>.zarr/recon-1/em/fibsem-uint8/{s0,s1,...}              raw EM
    ROOT/<dataset>/<dataset>.zarr/recon-1/labels/groundtruth/crop<N>/<class>/{s0,...} one group per class

Every group carries OME-NGFF ``multiscales`` metadata: spatial axes (z, y, x) and per level a ``scale``
(voxel size, nm) and a ``translation`` (offset, nm). :func:`scan_root` reads it (metadata only, no
voxels), :func:`select_crops` keeps the crops annotating a requested class at a voxel size,
:func:`split_crops` draws the train/validation split from a seed and :func:`write_datasplit_csv`
writes the challenge's 5-column CSV that ``cellmap_data.CellMapDataSplit`` reads.

Composite classes (``mito`` = ``mito_mem`` + ``mito_lum`` + ``mito_ribo``, ...) come from the class
table (``cellmap_classes.csv``, a copy of the challenge's ``classes.csv``): a crop annotates a
composite when it holds the composite's own array or any of its members (see :func:`annotation`).
"""
from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import zarr

from emseg_plugins.errors import DataError
from emseg_plugins.utils.atomic import atomic_write_text

RAW_NAME = "recon-1/em/fibsem-uint8"  # raw EM group inside <dataset>.zarr
GT_NAME = "recon-1/labels/groundtruth"  # parent of the crop<N> groups inside <dataset>.zarr
CROP_PATTERN = re.compile(r"crop\d+$")
USAGES = ("train", "validate")  # the datasplit CSV's first column, as cellmap-data reads it

Vec3 = tuple[float, float, float]


# -- class table -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassTable:
    """CellMap class names -> ids, and each composite's member names (empty for atomic classes)."""

    ids: dict[str, int]
    members: dict[str, tuple[str, ...]]

    def members_of(self, name: str) -> tuple[str, ...]:
        return self.members.get(name, ())

    def expand(self, classes: Iterable[str]) -> list[str]:
        """``classes`` followed by the members of its composites, each name once, order kept."""
        out: list[str] = []
        for name in classes:
            for n in (name, *self.members_of(name)):
                if n not in out:
                    out.append(n)
        return out


@lru_cache(maxsize=1)
def load_class_table() -> ClassTable:
    """The packaged class table (``name,id,"member ids"``), read with importlib.resources."""
    text = resources.files("emseg_plugins.datasets").joinpath("cellmap_classes.csv").read_text(encoding="utf-8")
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    ids = {name: int(i) for name, i, *_ in rows}
    by_id = {i: name for name, i in ids.items()}
    members = {name: tuple(by_id[int(m)] for m in rest[0].split(",")) for name, _, *rest in rows if rest and rest[0].strip()}
    return ClassTable(ids, members)


def annotation(present: Iterable[str], name: str, table: ClassTable | None = None) -> str | None:
    """How a crop holding the class arrays ``present`` annotates ``name``.

    ``"full"``: its own array, or every member of a composite (the union is then known everywhere);
    ``"partial"``: some members of a composite (voxels of those members are known positives, the rest
    unknown); ``None``: not annotated.
    """
    present = set(present)
    if name in present:
        return "full"
    members = (table or load_class_table()).members_of(name)
    if members and all(m in present for m in members):
        return "full"
    if members and any(m in present for m in members):
        return "partial"
    return None


# -- OME-NGFF multiscale metadata --------------------------------------------------------------------

@dataclass(frozen=True)
class Level:
    """One scale level of a multiscale group: array path, voxel size and translation (nm, z y x), shape (voxels)."""

    path: str
    voxel_size: Vec3
    translation: Vec3
    shape: tuple[int, int, int]


def read_multiscales(group: Path) -> tuple[Level, ...]:
    """The levels of the OME-NGFF multiscale zarr group ``group``; :class:`DataError` naming it when malformed."""
    group = Path(group)
    if not (group / ".zgroup").is_file():
        raise DataError(f"{group}: not a zarr group (no .zgroup); expected an OME-NGFF multiscale group with s0, s1, ... arrays")
    attrs = zarr.open_group(str(group), mode="r").attrs.asdict()
    multiscales = attrs.get("multiscales")
    if not multiscales or not isinstance(multiscales, list) or not multiscales[0].get("datasets"):
        raise DataError(f"{group}: zarr group has no OME-NGFF 'multiscales' metadata in .zattrs; add it (axes z, y, x and a "
                        "scale + translation in nm per level) or fetch the crop again")
    meta = multiscales[0]
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in meta.get("axes", [])
            if not isinstance(a, dict) or a.get("type", "space") == "space"] or ["z", "y", "x"]
    if sorted(axes) != ["x", "y", "z"]:
        raise DataError(f"{group}: multiscale axes {axes} are not the three spatial axes z, y, x")
    order = [axes.index(a) for a in "zyx"]
    levels = []
    for ds in meta["datasets"]:
        scale = translation = None
        for tx in ds.get("coordinateTransformations", []):
            if tx.get("type") == "scale":
                scale = tx["scale"][-3:]
            elif tx.get("type") == "translation":
                translation = tx["translation"][-3:]
        if scale is None or "path" not in ds:
            raise DataError(f"{group}: multiscale level {ds.get('path', '?')!r} has no path or no 'scale' transformation")
        array_path = group / ds["path"]
        if not (array_path / ".zarray").is_file():
            raise DataError(f"{group}: multiscale level {ds['path']!r} names a missing array {array_path}")
        shape = zarr.open_array(str(array_path), mode="r").shape[-3:]
        translation = translation or [0.0, 0.0, 0.0]
        levels.append(Level(ds["path"], tuple(float(scale[i]) for i in order), tuple(float(translation[i]) for i in order),
                            tuple(int(shape[i]) for i in order)))
    return tuple(levels)


def level_at(levels: Sequence[Level], voxel_size: Sequence[float], tolerance: float) -> Level | None:
    """The level whose voxel size matches ``voxel_size`` (nm) within ``tolerance`` (relative, per axis)."""
    for level in levels:
        if all(abs(have - want) <= tolerance * want for have, want in zip(level.voxel_size, voxel_size)):
            return level
    return None


def format_size(size: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in size) + "]"


# -- scanning a data root -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Crop:
    """One annotated crop: its dataset, raw EM levels and, per class array it holds, that array's levels."""

    dataset: str
    name: str  # "crop234"
    zarr_path: Path  # ROOT/<dataset>/<dataset>.zarr
    raw: tuple[Level, ...]
    classes: dict[str, tuple[Level, ...]] = field(hash=False)
    raw_name: str = RAW_NAME

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.name}"

    @property
    def gt_name(self) -> str:
        return f"{GT_NAME}/{self.name}"

    def classes_at(self, voxel_size: Sequence[float], tolerance: float) -> list[str]:
        """Class arrays of this crop that have a level at ``voxel_size`` (sorted)."""
        return sorted(c for c, levels in self.classes.items() if level_at(levels, voxel_size, tolerance))


def scan_root(root: str | Path, raw_name: str = RAW_NAME, datasets: Sequence[str] = (), crops: Sequence[str] = ()) -> list[Crop]:
    """Every crop under a data root (metadata only), sorted by dataset and crop number.

    ``datasets`` / ``crops`` restrict the scan to those dataset names / crop names or numbers (empty = all).
    """
    if not Path(root).is_dir():
        raise DataError(f"DATASET.CELLMAP.DATA_ROOT {str(root)!r}: directory not found; point it at the folder holding "
                        "<dataset>/<dataset>.zarr (where `csc fetch-data` wrote the data), or write a synthetic one with "
                        "`python -m emseg_plugins.challenge.standin ROOT`")
    root = Path(root).resolve()  # the datasplit CSV holds absolute paths, as the challenge's does
    wanted_crops = {c if str(c).startswith("crop") else f"crop{c}" for c in crops}
    found: list[Crop] = []
    for ds_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if datasets and ds_dir.name not in datasets:
            continue
        zarr_path = ds_dir / f"{ds_dir.name}.zarr"
        gt_root = zarr_path / GT_NAME
        if not gt_root.is_dir():
            continue  # no ground truth: a test-only dataset, or not a CellMap dataset at all
        crop_dirs = sorted((p for p in gt_root.iterdir() if p.is_dir() and CROP_PATTERN.match(p.name)
                            and (not wanted_crops or p.name in wanted_crops)), key=lambda p: int(p.name[4:]))
        if not crop_dirs:
            continue
        raw_group = zarr_path / raw_name
        if not raw_group.is_dir():
            raise DataError(f"{raw_group}: raw EM group missing for dataset {ds_dir.name!r} (its crops are under {gt_root}); "
                            "fetch the raw data too or set DATASET.CELLMAP.RAW_NAME")
        raw = read_multiscales(raw_group)
        for crop_dir in crop_dirs:
            groups = sorted(p for p in crop_dir.iterdir() if p.is_dir() and ((p / ".zgroup").is_file() or (p / ".zattrs").is_file()))
            classes = {g.name: read_multiscales(g) for g in groups}
            found.append(Crop(ds_dir.name, crop_dir.name, zarr_path, raw, classes, raw_name))
    if not found:
        what = f" (datasets {list(datasets)}, crops {list(crops)})" if datasets or crops else ""
        raise DataError(f"DATASET.CELLMAP.DATA_ROOT {str(root)!r}: no crops found{what}; expected "
                        f"<dataset>/<dataset>.zarr/{GT_NAME}/crop<N>/<class> groups under it")
    return found


def select_crops(crops: Sequence[Crop], classes: Sequence[str], voxel_size: Sequence[float], tolerance: float,
                 force_all_classes: bool = False) -> list[Crop]:
    """The crops that annotate a requested class (all of them with ``force_all_classes``) at ``voxel_size``.

    :class:`DataError` when a class is in no crop at all (listing the classes that exist) or when no crop
    has the requested classes at that voxel size (listing the voxel sizes that exist).
    """
    table = load_class_table()
    everywhere = sorted({c for crop in crops for c in crop.classes})
    for name in classes:
        if not any(annotation(crop.classes, name, table) for crop in crops):
            close = difflib.get_close_matches(name, everywhere, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(f"DATASET.CLASSES: no crop has class {name!r}{hint}; classes present in the data: {', '.join(everywhere)}")
    kept, sizes = [], set()
    for crop in crops:
        candidates = [c for c in table.expand(classes) if c in crop.classes]
        sizes |= {lv.voxel_size for c in candidates for lv in crop.classes[c] if level_at(crop.raw, lv.voxel_size, tolerance)}
        if level_at(crop.raw, voxel_size, tolerance) is None:
            continue
        states = [annotation(crop.classes_at(voxel_size, tolerance), name, table) for name in classes]
        if all(s == "full" for s in states) if force_all_classes else any(states):
            kept.append(crop)
    if not kept:
        need = "all of" if force_all_classes else "any of"
        raise DataError(f"DATASET.CELLMAP.VOXEL_SIZE {format_size(voxel_size)} nm: no crop has {need} {list(classes)} at this voxel "
                        f"size (within DATASET.CELLMAP.VOXEL_TOLERANCE {tolerance:g}, raw EM included); voxel sizes with those "
                        f"classes: {', '.join(format_size(s) for s in sorted(sizes)) or 'none'}")
    return kept


def split_crops(crops: Sequence[Crop], val_fraction: float, seed: int) -> dict[str, str]:
    """``{crop key: "train" | "validate"}``: round(val_fraction * n) crops (at least 1, at most n - 1) drawn
    for validation by a generator seeded with ``seed`` (the same crops for the same seed and data)."""
    keys = sorted(c.key for c in crops)
    if len(keys) < 2:
        raise DataError(f"only {len(keys)} usable crop ({', '.join(keys)}); a train/validation split needs at least 2 "
                        "(add crops or datasets, or request classes that more crops annotate)")
    n_val = min(len(keys) - 1, max(1, round(val_fraction * len(keys))))
    chosen = set(np.random.default_rng(seed).permutation(len(keys))[:n_val].tolist())
    return {key: "validate" if i in chosen else "train" for i, key in enumerate(keys)}


# -- the datasplit CSV (the challenge's format, read by cellmap_data.CellMapDataSplit) ------------------

@dataclass(frozen=True)
class SplitEntry:
    """One datasplit row: usage, raw EM group path, ground-truth template ``.../crop<N>/[a,b]``, classes listed."""

    usage: str
    raw: str
    gt: str

    @property
    def crop_dir(self) -> str:
        return self.gt.split("[")[0].rstrip("/")

    @property
    def classes(self) -> list[str]:
        inner = self.gt.split("[", 1)[1].split("]", 1)[0] if "[" in self.gt else Path(self.gt).name
        return [c for c in inner.split(",") if c]

    @property
    def name(self) -> str:
        """``<dataset>_crop<N>`` (the zarr container's stem and the crop group's name)."""
        return f"{Path(self.raw.split('.zarr')[0]).name}_{Path(self.crop_dir).name}"


def split_entries(crops: Sequence[Crop], usage: dict[str, str], classes: Sequence[str], voxel_size: Sequence[float],
                  tolerance: float) -> list[SplitEntry]:
    """Datasplit rows for ``crops``: each lists the requested classes and composite members it has at ``voxel_size``."""
    wanted = load_class_table().expand(classes)
    entries = []
    for crop in crops:
        have = [c for c in wanted if c in crop.classes_at(voxel_size, tolerance)]
        entries.append(SplitEntry(usage[crop.key], str(crop.zarr_path / crop.raw_name), f"{crop.zarr_path / crop.gt_name}/[{','.join(have)}]"))
    return entries


def write_datasplit_csv(path: str | Path, entries: Sequence[SplitEntry]) -> Path:
    """Write the challenge's 5-column CSV (usage, zarr, raw group, zarr, ``gt group/[classes]``), atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for e in entries:
        zarr_path = e.raw.split(".zarr")[0] + ".zarr"
        writer.writerow([e.usage, zarr_path, e.raw[len(zarr_path) + 1:], zarr_path, e.gt[len(zarr_path) + 1:]])
    atomic_write_text(path, buffer.getvalue())
    return Path(path)


def read_datasplit_csv(path: str | Path) -> list[SplitEntry]:
    """The rows of a datasplit CSV, parsed by cellmap-data's own reader, each checked against the disk.

    :class:`DataError` naming the CSV and the row when a crop, class array or raw group it names is missing.
    """
    # imported here, not at the top: cellmap-data takes seconds to import and the config node needs none of it
    from cellmap_data import CellMapDataSplit  # its parser reads 3- and 5-column rows

    path = Path(path)
    fix = "fix the path, or set DATASET.CELLMAP.REGENERATE_SPLIT True to rescan DATASET.CELLMAP.DATA_ROOT"
    try:
        parsed = CellMapDataSplit._parse_csv(str(path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the datasplit CSV ({exc}); {fix}") from None
    entries = [SplitEntry(usage, row["raw"], row["gt"]) for usage, rows in parsed.items() for row in rows]
    for e in entries:
        if e.usage not in USAGES:
            raise DataError(f"{path}: usage {e.usage!r} of {e.crop_dir} is not one of {', '.join(USAGES)}")
        if not Path(e.crop_dir).is_dir():
            raise DataError(f"{path}: crop {e.crop_dir} ({e.usage}) does not exist; {fix}")
        missing = [c for c in e.classes if not Path(e.crop_dir, c).is_dir()]
        if missing:
            raise DataError(f"{path}: crop {e.crop_dir} has no {', '.join(missing)} array; {fix}")
        read_multiscales(Path(e.raw))  # raw group present, with multiscale metadata
        for c in e.classes:
            read_multiscales(Path(e.crop_dir, c))
    for usage in USAGES:
        if not any(e.usage == usage for e in entries):
            raise DataError(f"{path}: no {usage!r} rows; a run needs both train and validate crops ({fix})")
    return entries
