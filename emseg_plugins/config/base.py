"""The core config keys: PyTorch Connectomics' top-level vocabulary, before any plugin node is added.

Keys follow PyTC v1 names where PyTC has them (``SOLVER.BASE_LR``, ``SOLVER.ITERATION_TOTAL``,
``MODEL.ARCHITECTURE``, ``INFERENCE.STRIDE`` ...).
"""
from __future__ import annotations

from yacs.config import CfgNode as CN


def base_defaults() -> CN:
    """The core keys only, before any plugin node (a fresh, mutable config)."""
    C = CN()

    C.SYSTEM = CN()
    C.SYSTEM.NUM_GPUS = 0  # 0 = CPU; >0 = that many accelerators (Lightning "auto")
    C.SYSTEM.NUM_CPUS = 1  # DataLoader worker processes (0 = load in the training process)
    C.SYSTEM.DEVICES = 1  # processes on CPU (2 with STRATEGY "ddp" = two-process gloo DDP)
    C.SYSTEM.STRATEGY = "auto"  # Lightning strategy: auto | ddp | ddp_spawn ...
    C.SYSTEM.NUM_NODES = 1
    C.SYSTEM.SEED = 0

    C.MODEL = CN()
    C.MODEL.ARCHITECTURE = "joenet"
    C.MODEL.IN_PLANES = 1  # image channels; 2.5D multiplies by DATASET.INPUT_SLICES
    C.MODEL.FILTERS = [32, 64, 128, 256]
    C.MODEL.NORM_MODE = "bn"  # bn | sync_bn (batch statistics over all DDP processes) | in | gn (unetv3); Joe Net uses bn
    C.MODEL.ACT_MODE = "gelu"  # gelu | leaky_relu | relu

    C.LOSS = CN()
    C.LOSS.NAME = "dice_bce"
    C.LOSS.EXTRA = []  # more terms as "name" or "name:weight", e.g. ["discriminative:1.0"] (multi-task)
    C.LOSS.AUX_WEIGHTS = []  # deep-supervision heads' weights; empty = 0.5, 0.25, ... (main head: 1)

    C.DATASET = CN()
    C.DATASET.NAME = "synthetic"
    C.DATASET.CLASSES = ["nuc", "mito"]  # CellMap class names; one output channel each
    C.DATASET.DIMS = 2  # 2 = slices (2D/2.5D models), 3 = patches (3D models)
    C.DATASET.PATCH_SIZE = [1, 128, 128]  # (Z, Y, X) voxels; Z must be 1 when DIMS is 2
    C.DATASET.INPUT_SLICES = 1  # 2.5D: odd number of adjacent slices as channels
    C.DATASET.SAMPLER = "uniform"  # training patches: uniform | foreground | class_balanced (class first, then a voxel)
    C.DATASET.FOREGROUND_FRACTION = 0.5  # foreground / class_balanced: fraction of patches centred on a labelled voxel
    C.DATASET.OUTPUT_PATH = "outputs/run"  # run directory: checkpoints, logs, config, metrics

    C.AUGMENTOR = CN()  # training-sample augmentation (emseg_plugins/datasets/augment.py); every P = 0 is off
    C.AUGMENTOR.ENABLED = True  # False = no augmentation at all
    C.AUGMENTOR.FLIP = True  # flips along Y and X (and Z in 3D, slice order in 2.5D), each with p 0.5
    C.AUGMENTOR.ROTATE90 = True  # 90-degree rotations in the YX plane (with FLIP: every transpose); all planes if ISOTROPIC
    C.AUGMENTOR.ISOTROPIC = False  # 3D: voxels isotropic, so rotations and elastic may cross Z (False = YX plane only)
    C.AUGMENTOR.INTENSITY = 0.1  # max relative brightness/contrast change (0 = off)
    C.AUGMENTOR.ROTATE = CN()  # arbitrary-angle rotation (outside the image: label NaN, valid_mask 0)
    C.AUGMENTOR.ROTATE.P = 0.0
    C.AUGMENTOR.ROTATE.MAX_ANGLE = 45.0  # degrees; angle uniform in [-MAX_ANGLE, MAX_ANGLE]
    C.AUGMENTOR.ELASTIC = CN()  # smooth random deformation (3D without ISOTROPIC: the same YX field on every slice)
    C.AUGMENTOR.ELASTIC.P = 0.0
    C.AUGMENTOR.ELASTIC.SPACING = 32  # voxels between the random control points
    C.AUGMENTOR.ELASTIC.MAGNITUDE = [1.0, 3.0]  # displacement std range of the control points, voxels
    C.AUGMENTOR.GAMMA = CN()  # gamma correction (MONAI RandAdjustContrastd)
    C.AUGMENTOR.GAMMA.P = 0.3
    C.AUGMENTOR.GAMMA.RANGE = [0.7, 1.5]  # gamma drawn uniformly in [low, high]
    C.AUGMENTOR.NOISE = CN()  # additive Gaussian noise
    C.AUGMENTOR.NOISE.P = 0.3
    C.AUGMENTOR.NOISE.STD = 0.03  # max standard deviation (intensities in [0, 1]); drawn in [0, STD]
    C.AUGMENTOR.BLUR = CN()  # Gaussian blur (in 3D without ISOTROPIC: in YX only)
    C.AUGMENTOR.BLUR.P = 0.2
    C.AUGMENTOR.BLUR.SIGMA = [0.5, 1.5]  # sigma range, voxels
    C.AUGMENTOR.MISSINGSECTION = CN()  # EM: blank sections (3D slices or 2.5D non-centre slices); labels kept
    C.AUGMENTOR.MISSINGSECTION.P = 0.0
    C.AUGMENTOR.MISSINGSECTION.NUM_SECTIONS = 1  # sections blanked per augmented sample
    C.AUGMENTOR.MISSINGSECTION.FILL = "zero"  # zero | mean (the sample's mean intensity)
    C.AUGMENTOR.MISALIGNMENT = CN()  # EM: YX shift of the sections above a random Z (image and targets)
    C.AUGMENTOR.MISALIGNMENT.P = 0.0
    C.AUGMENTOR.MISALIGNMENT.DISPLACEMENT = 8  # max shift along Y and X, voxels
    C.AUGMENTOR.MISALIGNMENT.SLIP_RATIO = 0.5  # fraction of misalignments that shift one section only (slip)
    C.AUGMENTOR.MOTIONBLUR = CN()  # EM: directional (line-kernel) blur of some sections, image only
    C.AUGMENTOR.MOTIONBLUR.P = 0.0
    C.AUGMENTOR.MOTIONBLUR.SECTIONS = 2  # max sections blurred (2D: the slice itself)
    C.AUGMENTOR.MOTIONBLUR.KERNEL_SIZE = 9  # line length, voxels (odd)

    C.SOLVER = CN()
    C.SOLVER.NAME = "AdamW"
    C.SOLVER.BASE_LR = 1e-3
    C.SOLVER.WEIGHT_DECAY = 1e-4
    C.SOLVER.LR_SCHEDULER_NAME = "cosine"  # cosine | plateau | constant
    C.SOLVER.WARMUP_ITERS = 0
    C.SOLVER.PLATEAU_PATIENCE = 3  # validations without improvement before the LR drops (plateau)
    C.SOLVER.ITERATION_TOTAL = 1000  # optimizer steps
    C.SOLVER.ITERATION_VAL = 200  # validate every N optimizer steps (combined train/val run)
    C.SOLVER.ITERATION_SAVE = 0  # rewrite last.ckpt every N optimizer steps; 0 = at every validation
    C.SOLVER.ITERATION_STEP = 1  # gradient accumulation: batches per optimizer step
    C.SOLVER.SAMPLES_PER_BATCH = 8
    C.SOLVER.CLIP_GRADIENTS = 0.0  # max gradient norm; 0 = off
    C.SOLVER.PRECISION = "32"  # 32 | 16-mixed | bf16-mixed
    C.SOLVER.NONFINITE = "stop"  # a NaN/inf training loss: stop (keeping the last good checkpoint) | skip the batch

    C.MONITOR = CN()
    C.MONITOR.LOG_EVERY_N_STEPS = 10
    C.MONITOR.CHECKPOINT_METRIC = "val/dice_mean"  # any validation value: val/loss, val/<metric>_mean, val/<class>/<metric>, val/are ...; errors (loss, are, voi_*) are minimised
    C.MONITOR.INSTANCE_METRICS = False  # validation also decodes each patch (INFERENCE.DECODER) and logs val/are, val/voi_split, val/voi_merge, val/f1
    C.MONITOR.CHECKPOINT_TOP_K = 2
    C.MONITOR.EARLY_STOP_PATIENCE = 0  # validations without improvement before stopping; 0 = off
    C.MONITOR.PROGRESS_BAR = True
    C.MONITOR.IMAGES = 4  # TensorBoard: input | ground truth | prediction panels of this many validation slices (0 = off)

    C.INFERENCE = CN()
    C.INFERENCE.INPUT_SIZE = [1, 128, 128]  # sliding-window size (Z, Y, X)
    C.INFERENCE.OVERLAP = 0.25  # fraction of the window shared by neighbours
    C.INFERENCE.BLENDING = "gaussian"  # gaussian | constant
    C.INFERENCE.SAMPLES_PER_BATCH = 4  # windows per forward pass
    C.INFERENCE.AUG_MODE = ""  # test-time augmentation: "" = off | "mean" = average over flips/transposes (inference/tta.py)
    C.INFERENCE.AUG_NUM = 8  # TTA variants used: 4 = YX flips, 8 = + Y/X transposes (2D max), 16 = + Z flip (3D only)
    C.INFERENCE.THRESHOLD = 0.5
    C.INFERENCE.INSTANCE_CLASS = ""  # embedding models: cluster this class's mask into instances ("" = off)
    C.INFERENCE.EMBEDDING_BANDWIDTH = 0.5  # mean-shift bandwidth in embedding units (the loss's DELTA_V)
    C.INFERENCE.OUTPUT_FORMAT = "h5"  # h5 | zarr
    C.INFERENCE.OUTPUT_NAME = "predictions"
    C.INFERENCE.SPLIT = "val"
    C.INFERENCE.DECODER = "cc"  # instance decoder (emseg plugins lists them): cc | watershed | bc_watershed | bcd_watershed | mutex_watershed
    C.INFERENCE.DECODE = CN()  # the decoders' parameters (PyTC's bc/bcd_watershed thresholds)
    C.INFERENCE.DECODE.THRESHOLD = 0.5  # foreground where p >= this (flooding never leaves it)
    C.INFERENCE.DECODE.SEED_THRESHOLD = 0.9  # bc/bcd: seeds need foreground p above this ...
    C.INFERENCE.DECODE.CONTOUR_THRESHOLD = 0.3  # ... and contour below this ...
    C.INFERENCE.DECODE.DISTANCE_THRESHOLD = 0.5  # ... and (bcd) normalised distance above this
    C.INFERENCE.DECODE.SEED_DISTANCE = 2.0  # watershed: seeds this far (smallest voxel sides) inside the foreground
    C.INFERENCE.DECODE.VOXEL_SIZE = [1.0, 1.0, 1.0]  # nm (z, y, x): watershed's distance transform
    C.INFERENCE.DECODE.MIN_SIZE = 0  # voxels; smaller instances are dropped
    C.INFERENCE.DECODE.CONNECTIVITY = 26  # cc: 6 | 18 | 26 (faces, + edges, + corners)
    C.INFERENCE.DECODE.MIN_SEED_SIZE = 0  # voxels; smaller seeds are dropped (bc/bcd)
    C.INFERENCE.DECODE.AFFINITY_BIAS = 0.5  # mutex: edge weight = affinity - bias (short range)
    C.INFERENCE.DECODE.LONG_RANGE_BIAS = 0.7  # mutex: bias of long-range offsets (more repulsive: fewer merges)

    C.TARGET = CN()  # learned instance targets (PyTC v1's MODEL.TARGET_OPT, LOSS_OPTION, LOSS_WEIGHT); emseg_plugins/targets
    C.TARGET.NAMES = []  # binary | contour | distance | affinity (PyTC codes 0 | 4 | 5 | 2); own channels after the classes'
    C.TARGET.LOSSES = []  # one LOSSES name per target; empty = each target's default (dice_bce; bce for distance)
    C.TARGET.WEIGHTS = []  # one weight per target; empty = 1 each
    C.TARGET.PER_SLICE = False  # contours and distances within each Z section (anisotropic stacks); 2D models always
    C.TARGET.CONTOUR_WIDTH = 1  # voxels of each instance's border marked as contour
    C.TARGET.VOXEL_SIZE = [1.0, 1.0, 1.0]  # nm (z, y, x): the distance transform's anisotropy
    C.TARGET.AFFINITY_OFFSETS = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]  # (z, y, x) voxels per channel; long-range allowed
    return C
