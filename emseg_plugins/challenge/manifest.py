"""The challenge's test-crop manifest: one row per (crop, class label) with its voxel size, translation and shape.

Format (``test_crop_manifest.csv`` of cellmap-segmentation-challenge, parsed there by
``utils/crops.py:TestCropRow.from_csv_row``)::

    crop_name,dataset,class_label,voxel_size,translation,shape
    557,jrc_ctl-id8-1,mito,[1.74;2.0;2.0],[23837.13;7599.0;35999.0],[600;600;600]

voxel size and translation in nm, shape in voxels, all (z, y, x); the translation is the world position of
voxel 0. Where the manifest comes from (:func:`load_manifest`): a path or URL given in
``CELLMAP_CHALLENGE.MANIFEST``, else the copy inside an installed ``cellmap_segmentation_challenge``
package (found without importing it: its import downloads the manifest), else the copy packaged here.
A data root with test crops of its own (the synthetic stand-in of
:mod:`emseg_plugins.challenge.standin`) holds their manifest as ``DATA_ROOT/test_crop_manifest.csv``
(:data:`ROOT_MANIFEST`); it is used when given as the location (``--manifest``), never implicitly.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from emseg_plugins.errors import DataError
from emseg_plugins.utils.atomic import atomic_write_text

HEADER = ("crop_name", "dataset", "class_label", "voxel_size", "translation", "shape")
PACKAGED = "test_crop_manifest.csv"
ROOT_MANIFEST = PACKAGED  # a data root's own test crops, in DATA_ROOT (the synthetic stand-in writes one): given with --manifest


@dataclass(frozen=True)
class TestCrop:
    """One manifest row: crop ``id``, dataset, class label, voxel size (nm), translation (nm), shape (voxels), z-y-x."""

    __test__ = False  # not a pytest class, despite the name

    id: int
    dataset: str
    class_label: str
    voxel_size: tuple[float, float, float]
    translation: tuple[float, float, float]
    shape: tuple[int, int, int]

    @property
    def name(self) -> str:
        """``crop<id>``: the crop's group name in a submission and in the ground truth."""
        return f"crop{self.id}"


def _vector(text: str, kind: type) -> tuple:
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(text)
    values = tuple(kind(v) for v in text[1:-1].split(";"))
    if len(values) != 3:
        raise ValueError(text)
    return values


def parse_manifest(text: str, source: str) -> list[TestCrop]:
    """The rows of manifest ``text``; :class:`DataError` naming ``source``, the line and the row that does not parse."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(c.strip() for c in rows[0]) != HEADER:
        raise DataError(f"{source}: not a test-crop manifest; the first line must be {','.join(HEADER)}")
    crops: list[TestCrop] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            crop_id, dataset, label, voxel_size, translation, shape = (c.strip() for c in row)
            crop = TestCrop(int(crop_id), dataset, label, _vector(voxel_size, float), _vector(translation, float), _vector(shape, int))
            if not dataset or not label or min(crop.voxel_size) <= 0 or min(crop.shape) < 1:
                raise ValueError(row)
        except ValueError:
            raise DataError(f"{source} line {line}: cannot parse row {','.join(row)!r}; expected "
                            "<crop id>,<dataset>,<class label>,[vz;vy;vx],[tz;ty;tx],[z;y;x] (nm, nm, voxels)") from None
        crops.append(crop)
    if not crops:
        raise DataError(f"{source}: the manifest has no rows")
    seen: set[tuple[int, str]] = set()
    for c in crops:
        if (c.id, c.class_label) in seen:
            raise DataError(f"{source}: crop {c.id} lists class {c.class_label!r} twice; keep one row per (crop, class)")
        seen.add((c.id, c.class_label))
    return crops


def challenge_package_manifest() -> Path | None:
    """The manifest inside an installed ``cellmap_segmentation_challenge`` (located, not imported), or None."""
    try:
        spec = importlib.util.find_spec("cellmap_segmentation_challenge")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "utils" / PACKAGED
        if path.is_file():
            return path
    return None


def load_manifest(location: str = "") -> list[TestCrop]:
    """The manifest at ``location`` (path or http/https/file URL); "" = the challenge package's, else the packaged copy."""
    if location:
        return parse_manifest(_read(location), location)
    installed = challenge_package_manifest()
    if installed is not None:
        return parse_manifest(installed.read_text(encoding="utf-8"), str(installed))
    text = resources.files("emseg_plugins.challenge").joinpath(PACKAGED).read_text(encoding="utf-8")
    return parse_manifest(text, f"emseg_plugins/challenge/{PACKAGED}")


def _read(location: str) -> str:
    scheme = urllib.parse.urlparse(location).scheme
    fix = "set CELLMAP_CHALLENGE.MANIFEST (or --manifest) to a readable CSV, or leave it empty for the packaged copy"
    try:
        if scheme in ("http", "https", "file"):
            with urllib.request.urlopen(location, timeout=30) as response:
                return response.read().decode("utf-8")
        return Path(location).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{location}: cannot read the test-crop manifest ({type(exc).__name__}: {exc}); {fix}") from None


def write_manifest(path: str | Path, crops: Iterable[TestCrop]) -> Path:
    """Write ``crops`` in the official format (atomically)."""
    def vec(values: Sequence) -> str:
        return "[" + ";".join(str(v) for v in values) + "]"

    lines = [",".join(HEADER)]
    lines += [f"{c.id},{c.dataset},{c.class_label},{vec(c.voxel_size)},{vec(c.translation)},{vec(c.shape)}" for c in crops]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)


def by_crop(crops: Iterable[TestCrop]) -> dict[int, list[TestCrop]]:
    """Rows grouped by crop id (ids in ascending order, labels in manifest order)."""
    out: dict[int, list[TestCrop]] = {}
    for c in crops:
        out.setdefault(c.id, []).append(c)
    return dict(sorted(out.items()))


def select(crops: Sequence[TestCrop], ids: Sequence[int | str]) -> list[TestCrop]:
    """The rows of crops ``ids`` (ints or ``crop<id>``); empty = all. :class:`DataError` for an id not in the manifest."""
    if not ids:
        return list(crops)
    wanted = {int(str(i).removeprefix("crop")) for i in ids}
    missing = sorted(wanted - {c.id for c in crops})
    if missing:
        raise DataError(f"crops {missing} are not in the test-crop manifest; check CELLMAP_CHALLENGE.CROPS / --crops")
    return [c for c in crops if c.id in wanted]


def load_tested_classes() -> list[str]:
    """The challenge's ``tested_classes.csv`` (one class name per line), packaged here."""
    text = resources.files("emseg_plugins.challenge").joinpath("tested_classes.csv").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def manifest_from_root(data_root: str | Path, crops: Sequence[int | str], labels: Sequence[str], voxel_size: Sequence[float],
                       tolerance: float = 0.15) -> list[TestCrop]:
    """Manifest rows for annotated crops of a data root (e.g. held-out validation crops used as a local test set).

    One row per crop of ``crops`` and label of ``labels`` the crop annotates at ``voxel_size`` (its own array,
    or every member of a composite); geometry from the label's multiscale level at that voxel size.
    """
    from emseg_plugins.datasets.cellmap_layout import (
        level_at,
        load_class_table,
        scan_root,
    )

    table = load_class_table()
    rows: list[TestCrop] = []
    found = scan_root(data_root, crops=[str(c) for c in crops])
    for crop in found:
        for label in labels:
            have = crop.classes_at(voxel_size, tolerance)
            sources = [label] if label in have else list(table.members_of(label))
            if not sources or not all(s in have for s in sources):
                continue
            level = level_at(crop.classes[sources[0]], voxel_size, tolerance)
            rows.append(TestCrop(int(crop.name[4:]), crop.dataset, label, level.voxel_size, level.translation, level.shape))
    if not rows:
        raise DataError(f"{data_root}: crops {list(crops)} annotate none of {list(labels)} at {list(voxel_size)} nm")
    return rows
