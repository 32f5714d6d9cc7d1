"""The bad-input matrix (issue F8): every CLI on a table of bad inputs from every area.

For each case ``pytc-train`` / ``emseg <subcommand>`` runs in this process (``main(argv)``, its
``SystemExit`` caught, stderr captured at the file-descriptor level) with a fresh working directory
holding the case's own inputs, and the test asserts:

* exit status 2;
* exactly one stderr line starting with ``error:``, containing a case-specific fragment (the key,
  path or value at fault);
* no ``Traceback`` (unless ``--debug``: a few cases are run again with it and must show one);
* nothing created or changed: the case's directory and the shared inputs are snapshotted (paths,
  sizes, mtimes, a hash of small files) before and after, and the output directory (``out/``) does
  not come into existence (cases whose output already exists must leave it as it was).

A few cases also go through the real console scripts (``run_cli``) to show that the in-process
harness sees what a user sees. A case that exposes a defect stays in the table, marked
``xfail(strict=True)`` with the observed behaviour as its reason.
"""
from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from conftest import ROOT, TINY, call_main, run_cli

CELLMAP_TINY = ROOT / "tests" / "configs" / "cellmap_tiny.yaml"
SHAPE = (8, 64, 64)  # (Z, Y, X) voxels of the volume-dataset inputs
EM_SHAPE = (10, 64, 64)  # (Z, Y, X) voxels of the shared volume to predict
SMALL_FILE = 1 << 20  # files up to this size are hashed by the snapshot


# -- shared inputs, built once -------------------------------------------------------------------------------

@dataclass(frozen=True)
class World:
    """Inputs every case may read but none may change."""

    root: Path
    ckpt: Path  # a tiny trained checkpoint of tests/configs/tiny.yaml (MODEL.FILTERS [4, 8], classes nuc, mito)
    em: str  # h5 volume EM_SHAPE, as "path:/main"
    probs: Path  # probabilities.h5: dataset "probabilities" (2, *EM_SHAPE) float32, attribute classes [nuc, mito]
    cellmap: Path  # a small CellMap-layout data root
    manifest: Path  # a valid test-crop manifest CSV for crop1 of that root (nuc, mito at 8 nm)
    truth: Path  # the ground-truth zarr of those manifest rows


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    import h5py

    from emseg_plugins.challenge.evaluate import write_truth_from_root
    from emseg_plugins.challenge.manifest import manifest_from_root, write_manifest
    from emseg_plugins.config import load_config
    from emseg_plugins.challenge.standin import write_cellmap_root
    from emseg_plugins.datasets.synthetic_em import make_em_volume
    from emseg_plugins.datasets.volume_io import write_volume
    from emseg_plugins.engine.run import train

    root = tmp_path_factory.mktemp("world")
    cfg = load_config(TINY, overrides=["DATASET.OUTPUT_PATH", str(root / "run"), "SOLVER.ITERATION_TOTAL", "2",
                                       "SOLVER.ITERATION_VAL", "2", "MONITOR.IMAGES", "0"])
    train(cfg)
    write_volume(root / "em.h5:/main", make_em_volume(EM_SHAPE, seed=3).image)
    rng = np.random.default_rng(0)
    with h5py.File(root / "probabilities.h5", "w") as f:
        f["probabilities"] = rng.random((2, *EM_SHAPE), dtype=np.float32)
        f["probabilities"].attrs["classes"] = ["nuc", "mito"]
    cellmap = root / "cellmap"
    write_cellmap_root(cellmap, shape=(16, 64, 64), crop_size=(8, 32, 32), crops_per_dataset=2, n_datasets=1)
    rows = manifest_from_root(cellmap, [1], ["nuc", "mito"], (8, 8, 8))
    manifest = write_manifest(root / "manifest.csv", rows)
    truth = write_truth_from_root(cellmap, rows, root / "truth.zarr")
    return World(root, root / "run" / "checkpoints" / "last.ckpt", f"{root / 'em.h5'}:/main", root / "probabilities.h5",
                 cellmap, manifest, truth)


# -- helpers that write a case's own inputs -------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def tiny(tmp: Path, *overrides: str) -> list[str]:
    """``--config-file tiny.yaml`` with its outputs under ``tmp/out/run``, then ``overrides``."""
    return ["--config-file", str(TINY), "DATASET.OUTPUT_PATH", str(tmp / "out" / "run"), *overrides]


def volume_inputs(tmp: Path, **replace: str) -> list[str]:
    """Overrides selecting the ``volume`` dataset on a good image.h5/label.h5 pair in ``tmp`` (keys replaced by ``replace``)."""
    from emseg_plugins.datasets.volume_io import write_volume

    rng = np.random.default_rng(0)
    write_volume(tmp / "image.h5", rng.integers(0, 256, SHAPE, dtype=np.uint8))
    labels = np.zeros(SHAPE, np.uint8)
    labels[:, 8:24, 8:24], labels[:, 40:48, 10:60] = 1, 2
    write_volume(tmp / "label.h5", labels)
    keys = {"TRAIN_IMAGE": f"['{tmp / 'image.h5'}']", "TRAIN_LABEL": f"['{tmp / 'label.h5'}']", "VAL_Z": "[6, 8]", **replace}
    return ["DATASET.NAME", "volume", *[x for key, value in keys.items() for x in (f"DATASET.VOLUME.{key}", value)]]


def predict_args(w: World, tmp: Path, *extra: str, checkpoint: Path | None = None, inp: str | None = None) -> list[str]:
    return ["emseg", "predict", "--config-file", str(TINY), "--checkpoint", str(checkpoint or w.ckpt), "--input", inp or w.em,
            "--output", str(tmp / "out" / "pred.zarr"), "--no-progress", *extra]


def slurm_args(w: World, tmp: Path, *extra: str, checkpoint: Path | None = None, inp: str | None = None) -> list[str]:
    return ["emseg", "slurm", "--config-file", str(TINY), "--checkpoint", str(checkpoint or w.ckpt), "--input", inp or w.em,
            "--output", str(tmp / "out" / "pred.zarr"), "--blocks-per-task", "1", "--scripts-dir", str(tmp / "out" / "slurm"), *extra]


def cellmap_args(w: World, tmp: Path) -> list[str]:
    """tests/configs/cellmap_tiny.yaml on the shared CellMap root, its datasplit and run under tmp/out."""
    return ["--config-file", str(CELLMAP_TINY), "DATASET.CELLMAP.DATA_ROOT", str(w.cellmap),
            "DATASET.CELLMAP.DATASPLIT", str(tmp / "out" / "datasplit.csv"), "DATASET.OUTPUT_PATH", str(tmp / "out" / "run")]


class CodeCarrier:
    """An object pickled by reference to this module: unpickling it would import and run this module's code,
    and ``__setstate__`` would leave a marker file (which the snapshot would see)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __setstate__(self, state):
        Path(state["marker"]).write_text("code from a checkpoint ran")
        self.__dict__.update(state)


def checkpoint_with_code(w: World, path: Path) -> Path:
    ckpt = torch.load(w.ckpt, map_location="cpu", weights_only=True)
    ckpt["payload"] = CodeCarrier(path.parent / "code-ran.txt")
    torch.save(ckpt, path)
    return path


def doctored_checkpoint(w: World, path: Path, cfg_yaml: str | None = None, weights: bool = False, empty_state: bool = False) -> Path:
    """The shared checkpoint with its config text replaced, every weight replaced by a (3,) tensor, or no weights at all."""
    ckpt = torch.load(w.ckpt, map_location="cpu", weights_only=True)
    if cfg_yaml is not None:
        ckpt["hyper_parameters"]["cfg_yaml"] = cfg_yaml
    if weights:
        ckpt["state_dict"] = {key: torch.zeros(3) for key in ckpt["state_dict"]}
    if empty_state:
        ckpt["state_dict"] = {}
    torch.save(ckpt, path)
    return path


def evil_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(".zgroup", '{"zarr_format": 2}')
        z.writestr("../escaped.txt", "outside")
    return path


def submission_without_voxel_size(w: World, tmp: Path) -> Path:
    """A submission.zarr holding the manifest's crop/labels with the right shapes and dtypes, mito lacking voxel_size."""
    from emseg_plugins.challenge.manifest import load_manifest

    group = zarr.open_group(str(tmp / "submission.zarr"), mode="w")
    for row in load_manifest(str(w.manifest)):
        array = group.require_group(row.name).create_dataset(row.class_label, data=np.zeros(row.shape, np.uint32))
        array.attrs.update(voxel_size=list(row.voxel_size), translation=list(row.translation))
        if row.class_label == "mito":
            del array.attrs["voxel_size"]
    return tmp / "submission.zarr"


def small_volume(tmp: Path) -> str:
    """A (2, 32, 32) uint8 EM-like volume at tmp/small.h5 (quick to predict); returns its URI."""
    from emseg_plugins.datasets.volume_io import write_volume

    write_volume(tmp / "small.h5:/main", np.random.default_rng(1).integers(0, 256, (2, 32, 32), dtype=np.uint8))
    return f"{tmp / 'small.h5'}:/main"


def started_deploy(w: World, tmp: Path) -> str:
    """A finished `emseg predict` store at tmp/out/pred.zarr of a (2, 32, 32) volume made with --block 1 32 32; returns the input URI."""
    import argparse

    from emseg_plugins.cli.predict import add_arguments, build_plan
    from emseg_plugins.inference.deploy import deploy

    uri = small_volume(tmp)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    plan, cfg = build_plan(parser.parse_intermixed_args(predict_args(w, tmp, "--block", "1", "32", "32", inp=uri)[2:]))
    deploy(plan, cfg, progress=False)
    return uri


# -- the table ---------------------------------------------------------------------------------------------------

Build = Callable[[World, Path], tuple[list[str], str]]  # (argv with the program first, fragment of the error line)
CASES: list = []


def case(case_id: str, defect: str | None = None) -> Callable[[Build], Build]:
    """Register a case; ``defect``: the observed misbehaviour (the case is then a strict xfail)."""
    def register(build: Build) -> Build:
        marks = [pytest.mark.xfail(strict=True, reason=defect)] if defect else []
        CASES.append(pytest.param(build, id=case_id, marks=marks))
        return build
    return register


# configs ---------------------------------------------------------------------------------------------------------

@case("config-unknown-key-in-file")
def _(w, tmp):
    bad = write(tmp / "bad.yaml", f"_BASE_: {TINY}\nSOLVER:\n  ITERATON_TOTAL: 5\n")
    return ["pytc-train", "--config-file", str(bad), "DATASET.OUTPUT_PATH", str(tmp / "out")], \
        f"{bad}: unknown key SOLVER.ITERATON_TOTAL; did you mean SOLVER.ITERATION_TOTAL?"


@case("config-unknown-override")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "SOLVER.BASE_LRR", "1")], "command line: unknown key SOLVER.BASE_LRR; did you mean SOLVER.BASE_LR?"


@case("config-wrong-type")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "SOLVER.BASE_LR", "fast")], "SOLVER.BASE_LR expects a float (default"


@case("config-bad-enum")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "SOLVER.LR_SCHEDULER_NAME", "step")], "SOLVER.LR_SCHEDULER_NAME = 'step' is not one of"


@case("config-base-cycle")
def _(w, tmp):
    write(tmp / "b.yaml", "_BASE_: a.yaml\n")
    a = write(tmp / "a.yaml", "_BASE_: b.yaml\n")
    return ["pytc-train", "--config-file", str(a), "DATASET.OUTPUT_PATH", str(tmp / "out")], f"{a}: _BASE_ cycle ({a} -> {tmp / 'b.yaml'}"


@case("config-missing-file")
def _(w, tmp):
    return ["pytc-train", "--config-file", str(tmp / "missing.yaml")], f"{tmp / 'missing.yaml'}: config file not found"


@case("config-override-without-value")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "SOLVER.BASE_LR")], "'SOLVER.BASE_LR' has no value"


@case("config-not-utf8-text")
def _(w, tmp):
    bad = tmp / "latin1.yaml"
    bad.write_bytes(f"_BASE_: {TINY}\nDATASET:\n  CLASSES: [nuc, mito]  # caf\xe9\n".encode("latin-1"))
    return ["pytc-train", "--config-file", str(bad), "DATASET.OUTPUT_PATH", str(tmp / "out")], f"{bad}: not UTF-8 text"


@case("config-negative-count")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "SYSTEM.NUM_CPUS", "-1")], "config: SYSTEM.NUM_CPUS = -1 must be >= 0"


@case("config-negative-count-in-a-plugin-node")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "DATASET.SYNTHETIC.SEED", "-3")], "config: DATASET.SYNTHETIC.SEED = -3 must be >= 0"


@case("config-below-sentinel")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "MODEL.UNETV3.AUX_HEADS", "-2")], "MODEL.UNETV3.AUX_HEADS = -2 must be >= -1 (-1 = automatic)"


@case("config-duplicate-class")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "DATASET.CLASSES", "['nuc', 'mito', 'nuc']")], "DATASET.CLASSES = ['nuc', 'mito', 'nuc'] names 'nuc' more than once"


@case("config-duplicate-target")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "TARGET.NAMES", "['contour', 'contour']")], "TARGET.NAMES = ['contour', 'contour'] names 'contour' more than once"


@case("config-target-without-instances")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "TARGET.NAMES", "['contour']", *volume_inputs(tmp))], \
        "TARGET.NAMES ['contour'] are computed from instance ids"


@case("predict-decoder-without-its-maps")
def _(w, tmp):
    return predict_args(w, tmp, "--instances", "bcd_watershed"), "--instances bcd_watershed needs the contour, distance map(s)"


@case("instances-decoder-without-its-maps")
def _(w, tmp):
    return ["emseg", "instances", "--input", f"{w.probs}:probabilities", "--channel", "mito", "--method", "bc_watershed",
            "--output", str(tmp / "out" / "ids.h5")], "the decoder needs the 'contour' map, but"


@case("instances-unknown-decoder")
def _(w, tmp):
    return ["emseg", "instances", "--input", f"{w.probs}:probabilities", "--channel", "mito", "--method", "agglomerate",
            "--output", str(tmp / "out" / "ids.h5")], "--method 'agglomerate' is not a decoder"


@case("config-even-input-slices")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "DATASET.INPUT_SLICES", "4")], "DATASET.INPUT_SLICES = 4 must be a positive odd number"


@case("config-2.5d-slices-on-3d-model")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "DATASET.DIMS", "3", "DATASET.INPUT_SLICES", "3")], \
        "DATASET.INPUT_SLICES = 3 (2.5D slices) needs a 2D model"


@case("config-instance-class-not-a-class")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "INFERENCE.INSTANCE_CLASS", "er")], "INFERENCE.INSTANCE_CLASS 'er' is not one of DATASET.CLASSES"


@case("config-extra-loss-bad-weight")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "LOSS.EXTRA", "['dice:heavy']")], "LOSS.EXTRA entry 'dice:heavy' must be"


@case("config-embedding-loss-without-embedding-head")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "LOSS.EXTRA", "['discriminative']")], \
        "LOSS.EXTRA 'discriminative' trains the model's 'embedding' output, but MODEL.ARCHITECTURE 'joenet' outputs only logits"


@case("config-class-weight-for-unknown-class")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "LOSS.NAME", "per_class_combo", "LOSS.PER_CLASS_COMBO.CLASS_WEIGHTS", "['mitoo:2']")], \
        "LOSS.PER_CLASS_COMBO.CLASS_WEIGHTS weighs class 'mitoo', which is not in DATASET.CLASSES; did you mean 'mito'?"


@case("config-python-file-is-not-executed")
def _(w, tmp):
    conf = write(tmp / "conf.py", "import pathlib\npathlib.Path('pwned.txt').write_text('executed')\n")
    return ["pytc-train", "--config-file", str(conf)], f"{conf}: a config must be a mapping"


@case("config-invalid-yaml")
def _(w, tmp):
    conf = write(tmp / "c.yaml", "SOLVER: {BASE_LR: [\n")
    return ["emseg", "config", "--config-file", str(conf)], f"{conf}: not valid YAML at line"


@case("config-section-given-a-value")
def _(w, tmp):
    conf = write(tmp / "c.yaml", f"_BASE_: {TINY}\nMODEL: joenet\n")
    return ["emseg", "view", "--config-file", str(conf), "--output", str(tmp / "out")], f"{conf}: MODEL is a section"


@case("config-yaml-python-tag-is-not-constructed")
def _(w, tmp):
    conf = write(tmp / "c.yaml", "!!python/object/apply:os.system ['touch pwned.txt']\n")
    return ["pytc-train", "--config-file", str(conf)], f"{conf}: not valid YAML at line 1"


@case("config-base-file-missing")
def _(w, tmp):
    conf = write(tmp / "c.yaml", "_BASE_: nothere.yaml\n")
    return ["pytc-train", "--config-file", str(conf)], f"{tmp / 'nothere.yaml'}: config file not found"


@case("config-config-base-missing")
def _(w, tmp):
    return ["emseg", "config", "--config-base", str(tmp / "nob.yaml"), "--config-file", str(TINY)], f"{tmp / 'nob.yaml'}: config file not found"


@case("config-classes-empty")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "DATASET.CLASSES", "[]")], "DATASET.CLASSES is empty"


@case("config-more-gpus-than-visible")
def _(w, tmp):
    if torch.cuda.device_count() >= 64:
        pytest.skip("64 GPUs are visible")
    return ["pytc-train", *tiny(tmp, "SYSTEM.NUM_GPUS", "64")], "SYSTEM.NUM_GPUS = 64 but"


@case("config-tta-mode-not-a-choice")
def _(w, tmp):
    return predict_args(w, tmp, "INFERENCE.AUG_MODE", "median"), "INFERENCE.AUG_MODE = 'median' is not one of"


# paths and volumes -----------------------------------------------------------------------------------------------

@case("volume-missing-file")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, *volume_inputs(tmp, TRAIN_IMAGE=f"['{tmp / 'nope.h5'}']"))], \
        f"DATASET.VOLUME.TRAIN_IMAGE[0]: {tmp / 'nope.h5'}: no such file"


@case("volume-shape-mismatch")
def _(w, tmp):
    from emseg_plugins.datasets.volume_io import write_volume

    overrides = volume_inputs(tmp, TRAIN_LABEL=f"['{tmp / 'small.h5'}']")
    write_volume(tmp / "small.h5", np.zeros((8, 64, 60), np.uint8))
    return ["pytc-train", *tiny(tmp, *overrides)], "small.h5 has shape (8, 64, 60) (Z, Y, X) but its image"


@case("volume-float-labels-not-integer")
def _(w, tmp):
    from emseg_plugins.datasets.volume_io import write_volume

    overrides = volume_inputs(tmp, TRAIN_LABEL=f"['{tmp / 'soft.h5'}']")
    write_volume(tmp / "soft.h5", np.full(SHAPE, 0.5, np.float32))
    return ["pytc-train", *tiny(tmp, *overrides)], "soft.h5 holds non-integer values (e.g. 0.5)"


@case("volume-unsupported-extension")
def _(w, tmp):
    write(tmp / "image.nrrd", "NRRD0004\n")
    return ["pytc-train", *tiny(tmp, *volume_inputs(tmp, TRAIN_IMAGE=f"['{tmp / 'image.nrrd'}']"))], \
        "image.nrrd: unsupported volume format '.nrrd'"


@case("volume-label-not-hdf5")
def _(w, tmp):
    broken = write(tmp / "broken.h5", "not hdf5")
    return ["pytc-train", *tiny(tmp, *volume_inputs(tmp, TRAIN_LABEL=f"['{broken}']"))], \
        f"DATASET.VOLUME.TRAIN_LABEL[0]: {broken}: cannot be read as HDF5"


@case("volume-test-image-missing-at-inference")
def _(w, tmp):
    missing = tmp / "test.h5"
    return ["pytc-train", "--inference", "--checkpoint", str(w.ckpt),
            *tiny(tmp, *volume_inputs(tmp, TEST_IMAGE=f"['{missing}']"), "INFERENCE.SPLIT", "test")], \
        f"DATASET.VOLUME.TEST_IMAGE[0]: {missing}: no such file"


@case("predict-missing-input")
def _(w, tmp):
    return predict_args(w, tmp, inp=str(tmp / "missing.h5")), f"{tmp / 'missing.h5'}: no such file"


@case("predict-block-smaller-than-halo")
def _(w, tmp):
    return predict_args(w, tmp, "--block", "4", "8", "8", "--halo", "4", "2", "2"), \
        "--block [4, 8, 8] must be larger than --halo [4, 2, 2] on every axis"


@case("predict-bad-block-range")
def _(w, tmp):
    return predict_args(w, tmp, "--blocks", "7:3"), "--blocks '7:3' must satisfy 0 <= START < STOP"


@case("predict-output-exists-and-is-not-a-deploy-output")
def _(w, tmp):
    write(tmp / "out" / "pred.zarr" / "keep.txt", "precious")
    return predict_args(w, tmp), "exists and is not an emseg deploy output"


@case("predict-restart-with-other-settings")
def _(w, tmp):
    uri = started_deploy(w, tmp)
    return predict_args(w, tmp, "--block", "2", "32", "32", inp=uri), \
        f"{tmp / 'out' / 'pred.zarr'}: was started with another block ((1, 32, 32) vs now (2, 32, 32)); pass --overwrite"


@case("predict-input-dataset-missing")
def _(w, tmp):
    return predict_args(w, tmp, inp=f"{w.root / 'em.h5'}:/nokey"), f"{w.root / 'em.h5'}: no dataset 'nokey'; available: main"


@case("predict-input-has-channels")
def _(w, tmp):
    return predict_args(w, tmp, inp=f"{w.probs}:probabilities"), \
        f"{w.probs}:probabilities: has shape (2, 10, 64, 64); prediction needs a single-channel (Z, Y, X) volume"


@case("predict-output-is-a-file")
def _(w, tmp):
    write(tmp / "out" / "pred.zarr", "a file, not a store")
    return predict_args(w, tmp), f"{tmp / 'out' / 'pred.zarr'}: exists and is not an emseg deploy output"


@case("predict-negative-halo")
def _(w, tmp):
    return predict_args(w, tmp, "--halo", "-1", "0", "0"), "--halo [-1, 0, 0]"


@case("predict-zero-block")
def _(w, tmp):
    return predict_args(w, tmp, "--block", "0", "32", "32"), "--block [0, 32, 32]"


@case("predict-unknown-scheduler")
def _(w, tmp):
    return predict_args(w, tmp, "--scheduler", "bogus"), "--scheduler 'bogus'"


@case("predict-negative-min-size")
def _(w, tmp):
    return predict_args(w, tmp, "--instances", "cc", "--min-size", "-5", inp=small_volume(tmp)), "--min-size -5"


# checkpoints -----------------------------------------------------------------------------------------------------

@case("checkpoint-missing")
def _(w, tmp):
    return ["pytc-train", "--inference", "--checkpoint", str(tmp / "missing.ckpt"), *tiny(tmp)], \
        f"{tmp / 'missing.ckpt'}: checkpoint not found"


@case("checkpoint-not-a-checkpoint")
def _(w, tmp):
    path = write(tmp / "notes.ckpt", "not a checkpoint at all\n")
    return predict_args(w, tmp, checkpoint=path), f"{path}: not a PyTorch checkpoint"


@case("checkpoint-truncated")
def _(w, tmp):
    path = tmp / "cut.ckpt"
    path.write_bytes(w.ckpt.read_bytes()[:4096])
    return slurm_args(w, tmp, checkpoint=path), f"{path}: not a PyTorch checkpoint"


@case("checkpoint-carrying-pickled-code")
def _(w, tmp):
    path = checkpoint_with_code(w, tmp / "code.ckpt")
    return ["emseg", "evaluate", "--checkpoint", str(path), "--output", str(tmp / "out"), *tiny(tmp)], \
        f"{path}: refused: the checkpoint carries pickled code"


@case("checkpoint-foreign-dict")
def _(w, tmp):
    path = tmp / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, path)
    return ["emseg", "cellmap", "predict", *cellmap_args(w, tmp), "--checkpoint", str(path), "--manifest", str(w.manifest),
            "--output", str(tmp / "out" / "processed")], f"{path}: not an emseg-plugins checkpoint"


@case("checkpoint-incompatible-with-config")
def _(w, tmp):
    return ["pytc-train", "--checkpoint", str(w.ckpt), *tiny(tmp, "MODEL.FILTERS", "[8, 16]")], \
        f"{w.ckpt}: checkpoint was trained with MODEL.FILTERS = [4, 8] but the config has [8, 16]"


@case("checkpoint-run-dir-of-another-config-is-left-alone")
def _(w, tmp):
    run = tmp / "out" / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(w.ckpt.read_bytes())
    write(run / "config.yaml", "# the first run's config\n")
    return ["pytc-train", *tiny(tmp, "DATASET.CLASSES", "['nuc']")], \
        f"{run / 'checkpoints' / 'last.ckpt'}: checkpoint was trained with DATASET.CLASSES = ['nuc', 'mito'] but the config has ['nuc']"


@case("checkpoint-empty-file")
def _(w, tmp):
    path = write(tmp / "empty.ckpt", "")
    return ["pytc-train", "--inference", "--checkpoint", str(path), *tiny(tmp)], f"{path}: not a PyTorch checkpoint"


@case("checkpoint-config-not-a-mapping")
def _(w, tmp):
    path = doctored_checkpoint(w, tmp / "doctored.ckpt", cfg_yaml="just some text")
    return ["pytc-train", "--inference", "--checkpoint", str(path), *tiny(tmp)], str(path)


@case("checkpoint-weights-do-not-fit-its-config")
def _(w, tmp):
    path = doctored_checkpoint(w, tmp / "doctored.ckpt", weights=True)
    return ["pytc-train", "--inference", "--checkpoint", str(path), *tiny(tmp)], str(path)


@case("checkpoint-weights-do-not-fit-predict")
def _(w, tmp):
    return predict_args(w, tmp, checkpoint=doctored_checkpoint(w, tmp / "doctored.ckpt", weights=True)), str(tmp / "doctored.ckpt")


@case("checkpoint-initial-weights-missing-keys")
def _(w, tmp):
    path = doctored_checkpoint(w, tmp / "doctored.ckpt", empty_state=True)
    return ["pytc-train", "--checkpoint", str(path), *tiny(tmp)], str(path)


@case("checkpoint-inference-on-a-run-without-checkpoints")
def _(w, tmp):
    return ["pytc-train", "--inference", *tiny(tmp)], f"{tmp / 'out' / 'run'}: the run has no checkpoints yet"


# plugins ---------------------------------------------------------------------------------------------------------

@case("plugin-unknown-model")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "MODEL.ARCHITECTURE", "joenett")], "unknown model 'joenett'; did you mean 'joenet'?"


@case("plugin-unknown-loss")
def _(w, tmp):
    return ["pytc-train", *tiny(tmp, "LOSS.NAME", "dice_bc")], "unknown loss 'dice_bc'; did you mean 'dice_bce'?"


@case("plugin-unknown-dataset")
def _(w, tmp):
    return ["emseg", "view", *tiny(tmp, "DATASET.NAME", "synthetc"), "--output", str(tmp / "out")], \
        "unknown dataset 'synthetc'; did you mean 'synthetic'?"


@case("plugin-check-with-unknown-key")
def _(w, tmp):
    return ["emseg", "plugins", "--check", "SOLVER.ITERATON_TOTAL", "3"], \
        "unknown key SOLVER.ITERATON_TOTAL; did you mean SOLVER.ITERATION_TOTAL?"


@case("plugin-pytc-not-installed")
def _(w, tmp):
    if importlib.util.find_spec("connectomics") is not None:
        pytest.skip("PyTorch Connectomics is installed here")
    return ["emseg", "pytc", "--", "--config-file", str(TINY)], "PyTorch Connectomics is not installed"


@case("plugin-new-plugin-invalid-name")
def _(w, tmp):
    return ["emseg", "new-plugin", "9lives", "--output", str(tmp / "out")], "'9lives' is not a valid plugin name"


@case("plugin-new-plugin-name-taken")
def _(w, tmp):
    return ["emseg", "new-plugin", "joenet", "--output", str(tmp / "out")], "model 'joenet' is already installed"


@case("plugin-unknown-loss-in-compare-grid")
def _(w, tmp):
    return ["emseg", "compare", *tiny(tmp), "--grid", "LOSS.NAME=dice_bce,dice_bc", "--output", str(tmp / "out")], \
        "unknown loss 'dice_bc'; did you mean 'dice_bce'?"


@case("plugin-new-plugin-output-exists")
def _(w, tmp):
    write(tmp / "out", "a file")
    return ["emseg", "new-plugin", "mito_thing", "--output", str(tmp / "out")], f"new-plugin: {tmp / 'out'} already exists"


# datasets --------------------------------------------------------------------------------------------------------

@case("dataset-cellmap-data-root-missing")
def _(w, tmp):
    return ["pytc-train", *cellmap_args(w, tmp), "DATASET.CELLMAP.DATA_ROOT", str(tmp / "nowhere")], \
        f"DATASET.CELLMAP.DATA_ROOT '{tmp / 'nowhere'}': directory not found"


@case("dataset-cellmap-class-no-crop-has")
def _(w, tmp):
    return ["pytc-train", *cellmap_args(w, tmp), "DATASET.CLASSES", "['nuc', 'er']"], "DATASET.CLASSES: no crop has class 'er'"


@case("dataset-jarvis-missing-layer")
def _(w, tmp):
    image = f"file://{tmp / 'missing-img'}"
    conf = write(tmp / "jarvis.yaml", f"""_BASE_: {TINY}
DATASET:
  NAME: jarvis
  JARVIS:
    IMAGE: {image}
    LABELS: ["nuc=file://{tmp / 'missing-nuc'}", "mito=file://{tmp / 'missing-mito'}"]
    BOUNDS: [0, 0, 0, 64, 64, 16]
    VAL_Z: [12, 16]
    PROGRESS: False
""")
    return ["pytc-train", "--config-file", str(conf), "DATASET.OUTPUT_PATH", str(tmp / "out")], \
        f"DATASET.JARVIS.IMAGE '{image}' is not a readable neuroglancer-precomputed layer"


@case("dataset-cellmap-datasplit-without-train-rows")
def _(w, tmp):
    split = write(tmp / "split.csv", "garbage,row\n")
    return ["pytc-train", *cellmap_args(w, tmp), "DATASET.CELLMAP.DATASPLIT", str(split)], f"{split}: no 'train' rows"


@case("dataset-jarvis-bounds-inverted")
def _(w, tmp):
    conf = write(tmp / "jarvis.yaml", f"""_BASE_: {TINY}
DATASET:
  NAME: jarvis
  JARVIS:
    IMAGE: file://{tmp / 'img'}
    LABELS: ["nuc=file://{tmp / 'nuc'}", "mito=file://{tmp / 'mito'}"]
    BOUNDS: [10, 10, 10, 5, 20, 20]
""")
    return ["pytc-train", "--config-file", str(conf), "DATASET.OUTPUT_PATH", str(tmp / "out")], \
        "DATASET.JARVIS.BOUNDS = [10, 10, 10, 5, 20, 20] must be x0, y0, z0, x1, y1, z1"


# manifests and submissions ---------------------------------------------------------------------------------------

@case("manifest-row-that-does-not-parse")
def _(w, tmp):
    bad = write(tmp / "bad.csv", w.manifest.read_text() + "9,ds,mito,[1;1;1],[0;0],[4;4;4]\n")
    line = len(bad.read_text().splitlines())
    (tmp / "processed").mkdir()
    return ["emseg", "cellmap", "submit", "--predictions", str(tmp / "processed"), "--output", str(tmp / "out" / "submission.zarr"),
            "--manifest", str(bad)], f"{bad} line {line}: cannot parse row '9,ds,mito"


@case("manifest-missing")
def _(w, tmp):
    return ["emseg", "cellmap", "predict", *cellmap_args(w, tmp), "--checkpoint", str(w.ckpt), "--manifest",
            str(tmp / "missing.csv"), "--output", str(tmp / "out")], f"{tmp / 'missing.csv'}: cannot read the test-crop manifest"


@case("manifest-crop-not-listed")
def _(w, tmp):
    return ["emseg", "cellmap", "predict", *cellmap_args(w, tmp), "--checkpoint", str(w.ckpt), "--manifest", str(w.manifest),
            "--crops", "99", "--output", str(tmp / "out")], "crops [99] are not in the test-crop manifest"


@case("manifest-without-rows")
def _(w, tmp):
    manifest = write(tmp / "m.csv", w.manifest.read_text().splitlines()[0] + "\n")
    return ["emseg", "cellmap", "submit", "--validate", str(tmp), "--manifest", str(manifest)], f"{manifest}: the manifest has no rows"


@case("submission-zip-escaping-its-target")
def _(w, tmp):
    evil = evil_zip(tmp / "evil.zip")
    return ["emseg", "cellmap", "evaluate", "--submission", str(evil), "--truth", str(w.truth), "--manifest", str(w.manifest),
            "--json", str(tmp / "out" / "scores.json"), "--no-progress"], \
        f"{evil}: refused: member '../escaped.txt' would extract outside the target directory"


@case("submission-missing-attribute")
def _(w, tmp):
    sub = submission_without_voxel_size(w, tmp)
    return ["emseg", "cellmap", "submit", "--validate", str(sub), "--manifest", str(w.manifest)], \
        f"{sub}: crop1/mito: field attrs.voxel_size is missing"


@case("submission-output-not-zarr")
def _(w, tmp):
    (tmp / "processed").mkdir()
    return ["emseg", "cellmap", "submit", "--predictions", str(tmp / "processed"), "--output", str(tmp / "out" / "submission.zip"),
            "--manifest", str(w.manifest)], f"--output '{tmp / 'out' / 'submission.zip'}' must end in .zarr"


@case("cellmap-flag-of-another-action")
def _(w, tmp):
    return ["emseg", "cellmap", "predict", *cellmap_args(w, tmp), "--checkpoint", str(w.ckpt), "--output", str(tmp / "out"),
            "--truth", str(w.truth)], "--truth is not an option of `emseg cellmap predict`"


@case("submission-validate-missing")
def _(w, tmp):
    return ["emseg", "cellmap", "submit", "--validate", str(tmp / "none.zip"), "--manifest", str(w.manifest)], \
        f"--validate '{tmp / 'none.zip'}': not found"


@case("submission-not-a-zip")
def _(w, tmp):
    fake = write(tmp / "submission.zip", "not a zip")
    return ["emseg", "cellmap", "submit", "--validate", str(fake), "--manifest", str(w.manifest)], f"{fake}: not a zip file"


@case("submission-predictions-missing")
def _(w, tmp):
    return ["emseg", "cellmap", "submit", "--predictions", str(tmp / "processed"), "--output", str(tmp / "out" / "submission.zarr"),
            "--manifest", str(w.manifest)], f"--predictions '{tmp / 'processed'}': directory not found"


@case("submission-evaluate-truth-missing")
def _(w, tmp):
    sub = submission_without_voxel_size(w, tmp)
    return ["emseg", "cellmap", "evaluate", "--submission", str(sub), "--truth", str(tmp / "truth.zarr"), "--manifest", str(w.manifest),
            "--json", str(tmp / "out" / "scores.json"), "--no-progress"], f"{tmp / 'truth.zarr'}: ground-truth zarr not found"


@case("submission-evaluate-not-a-submission")
def _(w, tmp):
    (tmp / "plain").mkdir()
    return ["emseg", "cellmap", "evaluate", "--submission", str(tmp / "plain"), "--truth", str(w.truth), "--manifest", str(w.manifest),
            "--json", str(tmp / "out" / "scores.json"), "--no-progress"], f"{tmp / 'plain'}: none of its groups"


# compare, evaluate, view -----------------------------------------------------------------------------------------

@case("compare-parallel-zero")
def _(w, tmp):
    return ["emseg", "compare", *tiny(tmp), "--grid", "LOSS.NAME=dice_bce,dice", "--parallel", "0", "--output", str(tmp / "out")], \
        "--parallel 0 must be at least 1"


@case("compare-grid-unknown-key")
def _(w, tmp):
    return ["emseg", "compare", *tiny(tmp), "--grid", "LOSS.NAM=dice_bce,dice", "--output", str(tmp / "out")], \
        "unknown key LOSS.NAM; did you mean LOSS.NAME?"


@case("compare-budget-zero")
def _(w, tmp):
    return ["emseg", "compare", *tiny(tmp), "--grid", "LOSS.NAME=dice_bce,dice", "--budget-steps", "0", "--output", str(tmp / "out")], \
        "--budget-steps 0 must be at least 1"


@case("compare-grid-without-values")
def _(w, tmp):
    return ["emseg", "compare", *tiny(tmp), "--grid", "LOSS.NAME", "--output", str(tmp / "out")], "--grid 'LOSS.NAME' must be KEY=VALUE"


@case("compare-grid-value-of-wrong-type")
def _(w, tmp):
    return ["emseg", "compare", *tiny(tmp), "--grid", "SOLVER.BASE_LR=fast,0.1", "--output", str(tmp / "out")], \
        "SOLVER.BASE_LR expects a float (default 0.002), got 'fast'"


@case("evaluate-instance-class-not-a-class")
def _(w, tmp):
    return ["emseg", "evaluate", "--checkpoint", str(w.ckpt), "--instance-class", "er", "--output", str(tmp / "out"), *tiny(tmp)], \
        "--instance-class 'er' is not one of DATASET.CLASSES"


@case("evaluate-missing-checkpoint")
def _(w, tmp):
    return ["emseg", "evaluate", "--checkpoint", str(tmp / "gone.ckpt"), "--output", str(tmp / "out"), *tiny(tmp)], \
        f"--checkpoint {tmp / 'gone.ckpt'}: no such file"


@case("evaluate-negative-min-size")
def _(w, tmp):
    return ["emseg", "evaluate", "--checkpoint", str(w.ckpt), "--min-size", "-1", "--output", str(tmp / "out"), *tiny(tmp)], \
        "--min-size -1 must be >= 0"


@case("evaluate-split-not-a-choice")
def _(w, tmp):
    return ["emseg", "evaluate", "--checkpoint", str(w.ckpt), "--split", "tset", "--output", str(tmp / "out"), *tiny(tmp)], "tset"


@case("view-zero-slices")
def _(w, tmp):
    return ["emseg", "view", *tiny(tmp), "--n", "0", "--output", str(tmp / "out")], "--n 0 must be >= 1"


@case("view-neuroglancer-missing-image")
def _(w, tmp):
    return ["emseg", "view", "--neuroglancer", "--image", f"{tmp / 'missing.h5'}:/main", "--serve-seconds", "0.1"], \
        f"{tmp / 'missing.h5'}: no such file"


@case("view-negative-crop")
def _(w, tmp):
    return ["emseg", "view", *tiny(tmp), "--crop", "-1", "--output", str(tmp / "out")], "--crop -1 >= 0"


@case("view-predictions-missing")
def _(w, tmp):
    return ["emseg", "view", *tiny(tmp), "--predictions", str(tmp / "pred.h5"), "--output", str(tmp / "out")], \
        f"{tmp / 'pred.h5'}: no such prediction file or directory"


@case("view-predictions-of-another-shape")
def _(w, tmp):
    return ["emseg", "view", *tiny(tmp), "--predictions", str(w.probs), "--output", str(tmp / "out")], \
        f"view: {w.probs} has shape (10, 64, 64) but volume 'synthetic-val'"


@case("view-neuroglancer-unknown-volume")
def _(w, tmp):
    return ["emseg", "view", "--neuroglancer", *tiny(tmp), "--volume", "zzz", "--serve-seconds", "0.1"], \
        "view: --volume 'zzz' is not in the 'val' split"


@case("view-neuroglancer-missing-labels")
def _(w, tmp):
    return ["emseg", "view", "--neuroglancer", "--image", w.em, "--labels", f"nuc={tmp / 'nuc.h5'}", "--serve-seconds", "0.1"], \
        f"{tmp / 'nuc.h5'}: no such file"


# instances, resample, slurm --------------------------------------------------------------------------------------

@case("instances-unknown-channel")
def _(w, tmp):
    return ["emseg", "instances", "--input", f"{w.probs}:probabilities", "--channel", "er", "--output", str(tmp / "out" / "ids.h5")], \
        "--channel 'er' is not a class name or an index below 2"


@case("instances-output-already-holds-instances")
def _(w, tmp):
    import h5py

    out = tmp / "out" / "ids.h5"
    out.parent.mkdir()
    with h5py.File(out, "w") as f:
        f["instances"] = np.arange(8, dtype=np.uint32).reshape(2, 2, 2)
    return ["emseg", "instances", "--input", f"{w.probs}:probabilities", "--channel", "mito", "--method", "cc", "--output", str(out)], \
        f"{out}: already holds 'instances'; pass --overwrite"


@case("instances-channel-index-out-of-range")
def _(w, tmp):
    return ["emseg", "instances", "--input", f"{w.probs}:probabilities", "--channel", "7", "--output", str(tmp / "out" / "ids.h5")], \
        "--channel '7' is not a class name or an index below 2"


@case("instances-channel-of-a-one-channel-volume")
def _(w, tmp):
    return ["emseg", "instances", "--input", w.em, "--channel", "1", "--output", str(tmp / "out" / "ids.h5")], \
        f"--channel 1: {w.em} has one channel"


@case("instances-threshold-above-one")
def _(w, tmp):
    return ["emseg", "instances", "--input", f"{w.probs}:probabilities", "--channel", "mito", "--threshold", "2",
            "--output", str(tmp / "out" / "ids.h5")], "--threshold 2.0 must be a probability in [0, 1]"


@case("instances-zero-voxel-size")
def _(w, tmp):
    return ["emseg", "instances", "--input", f"{w.probs}:probabilities", "--channel", "mito", "--voxel-size", "0", "1", "1",
            "--output", str(tmp / "out" / "ids.h5")], "--voxel-size [0.0, 1.0, 1.0] must be three positive sizes"


@case("instances-missing-input")
def _(w, tmp):
    return ["emseg", "instances", "--input", str(tmp / "pred.h5"), "--output", str(tmp / "out" / "ids.h5")], f"{tmp / 'pred.h5'}: no such file"


@case("instances-negative-seed-distance")
def _(w, tmp):
    return ["emseg", "instances", "--input", f"{w.probs}:probabilities", "--channel", "mito", "--seed-distance", "-1",
            "--output", str(tmp / "out" / "ids.h5")], "--seed-distance -1"


@case("resample-voxel-size-without-target")
def _(w, tmp):
    return ["emseg", "resample", "--input", w.em, "--voxel-size", "40", "8", "8", "--output", str(tmp / "out" / "r.h5")], \
        "--voxel-size needs --target-voxel-size"


@case("resample-unknown-output-format")
def _(w, tmp):
    out = tmp / "out" / "r.nrrd"
    return ["emseg", "resample", "--input", w.em, "--factor", "0.5", "--output", str(out)], f"{out}: --output must end in .h5, .zarr or .tif"


@case("resample-zero-factor")
def _(w, tmp):
    return ["emseg", "resample", "--input", w.em, "--factor", "0", "--output", str(tmp / "out" / "r.h5")], \
        "--factor [0.0, 0.0, 0.0] must be one positive factor or three"


@case("resample-two-factors")
def _(w, tmp):
    return ["emseg", "resample", "--input", w.em, "--factor", "1", "2", "--output", str(tmp / "out" / "r.h5")], \
        "--factor [1.0, 2.0] must be one positive factor or three"


@case("resample-missing-input")
def _(w, tmp):
    return ["emseg", "resample", "--input", str(tmp / "seg.h5"), "--factor", "2", "--output", str(tmp / "out" / "r.h5")], \
        f"{tmp / 'seg.h5'}: no such file"


@case("resample-zero-voxel-size")
def _(w, tmp):
    return ["emseg", "resample", "--input", w.em, "--voxel-size", "0", "8", "8", "--target-voxel-size", "8", "8", "8",
            "--output", str(tmp / "out" / "r.h5")], "--voxel-size [0.0, 8.0, 8.0] and --target-voxel-size [8.0, 8.0, 8.0] must be"


@case("slurm-extra-sbatch-not-an-option")
def _(w, tmp):
    return slurm_args(w, tmp, "--extra-sbatch", "account=lab"), "--extra-sbatch 'account=lab' must be an sbatch option"


@case("slurm-scripts-dir-holds-scripts")
def _(w, tmp):
    write(tmp / "out" / "slurm" / "submit.sh", "#!/bin/bash\necho an earlier submission\n")
    return slurm_args(w, tmp), "already holds submit.sh; pass --overwrite"


@case("slurm-zero-cpus")
def _(w, tmp):
    return slurm_args(w, tmp, "--cpus", "0"), "--cpus 0 must be at least 1"


@case("slurm-value-on-two-lines")
def _(w, tmp):
    return slurm_args(w, tmp, "--time", "04:00:00\nrm -rf ~"), "--time '04:00:00\\nrm -rf ~' must be on one line"


@case("slurm-missing-input")
def _(w, tmp):
    return slurm_args(w, tmp, inp=str(tmp / "em.h5")), f"{tmp / 'em.h5'}: no such file"


# -- the harness -------------------------------------------------------------------------------------------------

def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path under ``roots`` (the roots included): kind, size, mtime and, for small files, a SHA-256."""
    state = {}
    for root in roots:
        if not root.exists():
            continue
        for path in [root, *root.rglob("*")]:
            info = path.lstat()
            if path.is_symlink() or not path.is_file():
                state[str(path)] = ("dir" if path.is_dir() else "other", info.st_mtime_ns)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if info.st_size <= SMALL_FILE else ""
                state[str(path)] = ("file", info.st_size, info.st_mtime_ns, digest)
    return state


def invoke(argv: list[str], capfd) -> tuple[int, str]:
    """Run ``pytc-train``/``emseg`` in this process as the console script would: (exit status, stderr)."""
    capfd.readouterr()
    code = call_main(argv[0], argv[1:])
    return code, capfd.readouterr().err


def with_debug(argv: list[str]) -> list[str]:
    """``argv`` with ``--debug`` after the program (pytc-train) or the subcommand (and cellmap's action)."""
    at = 1 if argv[0] == "pytc-train" else 3 if argv[1] == "cellmap" else 2
    return [*argv[:at], "--debug", *argv[at:]]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def problems(code: int, stderr: str, fragment: str, debug: bool, changed: list[str]) -> list[str]:
    """Every way the run broke the contract (empty when it behaved)."""
    errors = error_lines(stderr)
    found = []
    if code != 2:
        found.append(f"exit status {code}")
    if len(errors) != 1:
        found.append(f"{len(errors)} lines start with 'error:'")
    elif fragment not in errors[0]:
        found.append(f"{fragment!r} not in {errors[0]!r}")
    if ("Traceback" in stderr) != debug:
        found.append("a traceback" if not debug else "no traceback despite --debug")
    if changed:
        found.append(f"created or changed: {changed}")
    return found


def label(path: Path, tmp: Path, world: World) -> str:
    """``path`` relative to the case's directory, or as ``<shared>/...`` for the shared inputs."""
    return str(path.relative_to(tmp)) if path.is_relative_to(tmp) else f"<shared>/{path.relative_to(world.root)}"


def run_case(build: Build, world: World, tmp: Path, capfd, monkeypatch, debug: bool = False) -> tuple[list[str], str]:
    """Build the case's inputs, run it in this process, assert the contract; returns (argv, error line)."""
    monkeypatch.chdir(tmp)  # anything written relative to the working directory lands in the snapshot
    argv, fragment = build(world, tmp)
    before = snapshot(tmp, world.root)
    code, stderr = invoke(with_debug(argv) if debug else argv, capfd)
    after = snapshot(tmp, world.root)
    changed = sorted({label(Path(path), tmp, world) for path, _ in set(before.items()) ^ set(after.items())})
    found = problems(code, stderr, fragment, debug, changed)
    assert not found, "; ".join(found) + f"\nstderr:\n{stderr[-3000:]}"
    return argv, error_lines(stderr)[0]


@pytest.mark.parametrize("build", CASES)
def test_bad_input_is_refused_with_one_line_and_nothing_written(build, world, tmp_path, capfd, monkeypatch):
    run_case(build, world, tmp_path, capfd, monkeypatch)


def test_the_matrix_covers_every_cli_and_enough_cases():
    ids = [param.id for param in CASES]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    for area in ("config", "volume", "predict", "checkpoint", "plugin", "dataset", "manifest", "submission", "compare",
                 "evaluate", "view", "instances", "resample", "slurm"):
        assert any(i.startswith(area) for i in ids), area


def by_id(case_id: str) -> Build:
    return next(param.values[0] for param in CASES if param.id == case_id)


def test_the_pickled_code_checkpoint_would_run_code_if_loaded_unsafely(world, tmp_path):
    """What checkpoint-carrying-pickled-code guards against: a plain torch.load runs the carrier's code."""
    path = checkpoint_with_code(world, tmp_path / "code.ckpt")
    assert not (tmp_path / "code-ran.txt").exists()
    torch.load(path, map_location="cpu", weights_only=False)
    assert (tmp_path / "code-ran.txt").read_text() == "code from a checkpoint ran"


@pytest.mark.parametrize("case_id", ["config-unknown-override", "predict-block-smaller-than-halo", "checkpoint-carrying-pickled-code"])
def test_debug_shows_the_traceback_and_still_writes_nothing(case_id, world, tmp_path, capfd, monkeypatch):
    run_case(by_id(case_id), world, tmp_path, capfd, monkeypatch, debug=True)


@pytest.mark.parametrize("case_id", ["config-unknown-key-in-file", "predict-restart-with-other-settings", "manifest-row-that-does-not-parse"])
def test_console_scripts_match_the_in_process_harness(case_id, world, tmp_path, capfd, monkeypatch):
    """The same case through the installed console script: same status, same error line, still nothing written."""
    argv, line = run_case(by_id(case_id), world, tmp_path, capfd, monkeypatch)
    before = snapshot(tmp_path, world.root)
    result = run_cli(*argv, cwd=tmp_path)
    assert (result.returncode, error_lines(result.stderr)) == (2, [line]), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert snapshot(tmp_path, world.root) == before

