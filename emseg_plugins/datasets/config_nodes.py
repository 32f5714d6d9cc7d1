"""The built-in datasets' config nodes (``emseg_plugins.configs`` entry points), in a module that imports no torch.

Every config load applies every node, so a node lives here, beside nothing heavier than yacs, and not in its
dataset's module: ``emseg config --keys`` and a config error answer without importing torch or a reader
(cellmap-data, CloudVolume). The builders (``synthetic.py``, ``volume.py``, ``jarvis.py``, ``cellmap.py``)
read these keys; all but ``cellmap.py`` re-export their node's function.
"""
from __future__ import annotations

from yacs.config import CfgNode as CN

# = datasets.cellmap_layout.RAW_NAME, written out: that module imports numpy and zarr (tests/test_fast_cli.py compares them)
RAW_NAME = "recon-1/em/fibsem-uint8"


def add_synthetic_config(cfg: CN) -> None:
    """DATASET.SYNTHETIC: volume shape (Z, Y, X voxels), seed, held-out Z range [start, stop) and
    the class whose instance ids the volumes carry (``mito`` or ``nuc``)."""
    cfg.DATASET.SYNTHETIC = CN()
    cfg.DATASET.SYNTHETIC.SHAPE = [100, 256, 256]
    cfg.DATASET.SYNTHETIC.SEED = 0
    cfg.DATASET.SYNTHETIC.VAL_Z = [80, 100]
    cfg.DATASET.SYNTHETIC.INSTANCE_CLASS = "mito"


def add_volume_config(cfg: CN) -> None:
    """DATASET.VOLUME: lists of volume URIs per split, label mode, held-out Z range, intensity range."""
    v = cfg.DATASET.VOLUME = CN()
    v.ROOT = ""  # base directory of relative URIs; "" = the current working directory
    v.TRAIN_IMAGE = []  # image URIs: "a.h5", "a.h5:/main", "s.zarr:raw/s0", "stack.tif", "slices_dir/"
    v.TRAIN_LABEL = []  # one label URI per image (format by LABEL_MODE)
    v.TRAIN_VALID_MASK = []  # optional, one per image: 0 = ignore the voxel (loss and metrics)
    v.TRAIN_INSTANCE = []  # optional, one per image: instance ids (0 = background); not with LABEL_MODE instance
    v.VAL_IMAGE = []  # validation volumes; leave empty and set VAL_Z to hold out part of each training volume
    v.VAL_LABEL = []
    v.VAL_VALID_MASK = []
    v.VAL_INSTANCE = []
    v.TEST_IMAGE = []  # test volumes (inference with INFERENCE.SPLIT test)
    v.TEST_LABEL = []  # may be empty: unlabelled test volumes (labels all "not annotated")
    v.TEST_VALID_MASK = []
    v.TEST_INSTANCE = []
    v.LABEL_MODE = "classmap"  # classmap | binary | channels | instance (see docs/datasets_volume.md)
    v.VAL_Z = []  # [start, stop) slices of every training volume held out for validation; [] = use VAL_IMAGE
    v.INTENSITY_RANGE = []  # [lo, hi]: image -> clip((x - lo) / (hi - lo), 0, 1); [] = uint8 /255, else min/max


def add_jarvis_config(cfg: CN) -> None:
    """DATASET.JARVIS: layer cloudpaths, box and MIP, split, and CloudVolume download options."""
    J = cfg.DATASET.JARVIS = CN()
    J.IMAGE = ""  # cloudpath of the EM image layer: gs://bucket/path, s3://bucket/path or file:///abs/path
    J.LABELS = []  # "class=cloudpath" per class of DATASET.CLASSES, e.g. ["nuc=gs://b/nuclei", "mito=gs://b/mito"]
    J.INSTANCE_CLASS = "mito"  # class whose segmentation ids become the volume's instances ("" = none)
    J.MIP = 0  # resolution level read from every layer (0 = full resolution)
    # Box as CloudVolume's Bbox orders it: x0, y0, z0, x1, y1, z1 in voxels at MIP, [start, stop) on each axis.
    J.BOUNDS = []
    J.TEST_BOUNDS = []  # optional second box (same order) read as the test split; [] = no test split
    J.SPLIT = "z"  # validation hold-out: "z" (VAL_Z slices) or "corner" (an XY corner, all slices)
    J.VAL_Z = []  # SPLIT z: held-out slices [start, stop), relative to BOUNDS' z0
    J.VAL_CORNER = "x1y1"  # SPLIT corner: x0/x1 = low/high X end of BOUNDS, y0/y1 = low/high Y end
    J.VAL_FRACTION = 0.5  # SPLIT corner: held-out fraction of the X and of the Y extent (0.5 = a quadrant)
    J.IMAGE_RANGE = []  # non-uint8 image: [low, high] intensities mapped to 0..255; [] = the box's own min..max
    J.FILL_MISSING = False  # read missing chunks as 0 (CloudVolume fill_missing) instead of failing
    J.PARALLEL = 1  # CloudVolume download processes
    J.PROGRESS = True  # CloudVolume progress bars while downloading
    J.CACHE = ""  # CloudVolume chunk cache directory kept between runs (e.g. ~/.cloudvolume/cache); "" = off


# Also still defined in datasets/cellmap.py until that module re-exports this one; tests/test_fast_cli.py checks
# that both add the same node.
def add_cellmap_config(cfg: CN) -> None:
    """DATASET.CELLMAP: where the CellMap data is, how crops are chosen, split and sampled."""
    cfg.DATASET.CELLMAP = CN()
    node = cfg.DATASET.CELLMAP
    node.DATA_ROOT = ""  # folder holding <dataset>/<dataset>.zarr, as `csc fetch-data` writes it
    node.DATASPLIT = ""  # datasplit CSV: read when it exists, else written from a scan of DATA_ROOT; "" = keep the split in memory
    node.REGENERATE_SPLIT = False  # rescan DATA_ROOT and rewrite DATASPLIT even when it exists
    node.VOXEL_SIZE = [8.0, 8.0, 8.0]  # training voxel size (z, y, x) in nm
    node.VOXEL_TOLERANCE = 0.15  # relative difference per axis up to which a stored level counts as VOXEL_SIZE
    node.VAL_FRACTION = 0.15  # fraction of the crops held out for validation (drawn with SYSTEM.SEED)
    node.CLASS_BALANCED = True  # draw training crops by inverse class frequency; False = by crop size
    node.FORCE_ALL_CLASSES = False  # keep only crops annotating every class of DATASET.CLASSES
    node.PAD = True  # patches may reach past a crop (labels NaN there); False drops crops smaller than a patch
    node.DATASETS = []  # dataset names to use, e.g. [jrc_cos7-1a]; empty = all under DATA_ROOT
    node.CROPS = []  # crop names or numbers to use, e.g. [234, 236]; empty = all
    node.RAW_NAME = RAW_NAME  # raw EM group inside <dataset>.zarr
