"""Learned instance targets against independent references, their data flow, and their config errors."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY, run_main, tiny_args
from scipy import ndimage
from skimage.segmentation import find_boundaries

from emseg_plugins.config import load_config
from emseg_plugins.registry import DATASETS
from emseg_plugins.targets import TargetMaker, build_targets, heads, output_channels
from emseg_plugins.targets.maps import affinity_map, contour_map, distance_map


def touching_ids(seed: int = 0, shape=(6, 24, 28)) -> np.ndarray:
    """Voronoi-like ids (many touching pairs) with some background."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.uint32)
    for i in range(1, 9):
        seeds[tuple(rng.integers(0, s) for s in shape)] = i
    _, (iz, iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    ids = seeds[iz, iy, ix]
    ids[rng.random(shape) < 0.08] = 0
    return ids


def test_contour_equals_scikit_image_inner_boundaries():
    ids = touching_ids()
    reference = find_boundaries(ids, connectivity=3, mode="inner") & (ids > 0)
    np.testing.assert_array_equal(contour_map(ids)[0], reference)
    per_slice = np.stack([find_boundaries(s, connectivity=2, mode="inner") & (s > 0) for s in ids])
    np.testing.assert_array_equal(contour_map(ids, per_slice=True)[0], per_slice)


def test_distance_equals_scipy_edt_per_instance_normalised():
    ids, size = touching_ids(1), (40.0, 8.0, 8.0)
    reference = np.zeros(ids.shape, np.float32)
    for i in np.unique(ids[ids > 0]):
        d = ndimage.distance_transform_edt(ids == i, sampling=size)
        reference[ids == i] = (d / d.max())[ids == i]
    np.testing.assert_allclose(distance_map(ids, size)[0], reference, atol=1e-5)
    assert distance_map(ids, size)[0][ids == 0].max() == 0


def test_affinity_by_brute_force_with_long_range_and_outside_nan():
    ids = touching_ids(2, (3, 7, 8))
    offsets = [(1, 0, 0), (0, 0, 1), (0, -3, 0)]
    aff = affinity_map(ids, offsets)
    for c, o in enumerate(offsets):
        for v in np.ndindex(ids.shape):
            w = tuple(a + b for a, b in zip(v, o))
            if all(0 <= x < n for x, n in zip(w, ids.shape)):
                assert aff[(c, *v)] == float(ids[v] == ids[w] and ids[v] > 0)
            else:
                assert np.isnan(aff[(c, *v)])


def _cfg(*overrides):
    return load_config(TINY, overrides=["DATASET.OUTPUT_PATH", "/tmp/unused", *overrides])


def test_heads_channels_and_pytc_codes():
    cfg = _cfg("TARGET.NAMES", '["0", "4-2-1", "distance", "affinity"]', "TARGET.AFFINITY_OFFSETS", "[[0, 1, 0], [0, 0, 1], [0, 0, 5]]")
    assert [t.name for t in build_targets(cfg)] == ["binary", "contour", "distance", "affinity"]
    assert output_channels(cfg) == 2 + 1 + 1 + 1 + 3
    assert heads(cfg)[-1] == ("affinity", slice(5, 8))


def test_samples_carry_targets_reproducibly_and_nan_where_invalid():
    cfg = _cfg("TARGET.NAMES", '["contour", "affinity"]', "TARGET.AFFINITY_OFFSETS", "[[0, 0, 1], [0, 3, 0]]")
    data = DATASETS.build(cfg.DATASET.NAME, cfg)
    train = data.train_dataset(8)
    a, b = train[5], train[5]
    assert a["contour"].shape == (1, 32, 32) and a["affinity"].shape == (2, 32, 32)
    np.testing.assert_array_equal(a["contour"].numpy(), b["contour"].numpy())
    ids = a["instance"].numpy()[0]
    np.testing.assert_array_equal(a["contour"].numpy()[0], contour_map(ids[None], per_slice=True)[0, 0])  # after augmentation
    sample = {"label": torch.zeros(2, 1, 6, 6), "instance": torch.ones(1, 1, 6, 6, dtype=torch.int64),
              "valid_mask": torch.ones(1, 1, 6, 6)}
    sample["valid_mask"][0, 0, :, 3:] = 0
    out = TargetMaker(build_targets(_cfg("DATASET.DIMS", "3", "DATASET.PATCH_SIZE", "[1, 32, 32]", "TARGET.NAMES", '["affinity"]',
                                         "TARGET.AFFINITY_OFFSETS", "[[0, 0, 1]]")))(sample)["affinity"].numpy()[0, 0]
    assert np.isnan(out[:, 2:]).all() and (out[:, :2] == 1).all()  # x=2 links to the invalid x=3


def test_training_with_targets_widens_the_head_and_predicts_its_maps(tmp_path):
    run = tmp_path / "run"
    args = tiny_args(run, "TARGET.NAMES", '["contour", "distance"]', "INFERENCE.INSTANCE_CLASS", "mito",
                     "INFERENCE.DECODER", "bcd_watershed", "SOLVER.ITERATION_TOTAL", "3")
    assert run_main("pytc-train", *args).returncode == 0
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["state_dict"]["model.head.2.weight"].shape[0] == 4  # Joe Net's last conv: nuc, mito, contour, distance
    result = run_main("pytc-train", *args, "--inference")
    assert result.returncode == 0, result.stderr
    predictions = run / "predictions" / "synthetic-val.h5"
    with h5py.File(predictions) as f:
        assert f["contour"].shape == f["distance"].shape == (1, 4, 64, 64)
        assert f["instances"].shape == (4, 64, 64)
        mito = f["probabilities"][1].astype(np.float32)
    decoded = run_main("emseg", "instances", "--input", f"{predictions}:probabilities", "--channel", "mito", "--method", "bcd_watershed",
                       "--threshold", "0.3", "--output", str(tmp_path / "ids.h5"))
    assert decoded.returncode == 0, decoded.stderr
    with h5py.File(tmp_path / "ids.h5") as f:
        ids = f["instances"][:]
    assert ids.shape == (4, 64, 64) and not (ids[mito < 0.3] > 0).any()  # flooding never leaves the foreground


@pytest.mark.parametrize("overrides, message", [
    (["TARGET.NAMES", '["contour"]', "DATASET.NAME", "volume"], None),
    (["TARGET.NAMES", '["affinity"]', "TARGET.AFFINITY_OFFSETS", "[[0, 0, 40]]"], "reaches past DATASET.PATCH_SIZE"),
    (["TARGET.NAMES", '["skeleton"]'], "unknown target 'skeleton'"),
    (["TARGET.NAMES", '["contour"]', "TARGET.WEIGHTS", "[1.0, 2.0]"], "TARGET.WEIGHTS has 2 entries for 1 TARGET.NAMES"),
    (["TARGET.NAMES", '["affinity"]', "TARGET.AFFINITY_OFFSETS", "[[1, 0, 0]]"], "crosses sections, but DATASET.DIMS is 2"),
])
def test_bad_target_configs_are_one_line_errors_and_write_nothing(tmp_path, overrides, message):
    run = tmp_path / "run"
    result = run_main("pytc-train", *tiny_args(run, *overrides))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert message is None or message in lines[0], lines[0]
    assert not run.exists()


@pytest.mark.parametrize("name", ["mito_bcd", "demo_instances", "mito_affinity"])
def test_instance_configs_build_a_model_whose_heads_fit_their_targets_and_decoder(name):
    from conftest import ROOT

    from emseg_plugins.inference.deploy import check_decoder
    from emseg_plugins.models.outputs import logits_of, split_heads
    from emseg_plugins.registry import MODELS

    cfg = load_config(ROOT / "configs" / f"{name}.yaml", overrides=["DATASET.SYNTHETIC.SHAPE", "[20, 128, 128]",
                                                                    "DATASET.SYNTHETIC.VAL_Z", "[16, 20]"])
    check_decoder(cfg.INFERENCE.DECODER, cfg)
    sample = DATASETS.build(cfg.DATASET.NAME, cfg).train_dataset(1)[0]
    model = MODELS.build(cfg.MODEL.ARCHITECTURE, cfg).eval()
    with torch.no_grad():
        output = split_heads(model(sample["image"][None]), heads(cfg))
    for target in build_targets(cfg):
        assert output[target.name].shape[1:] == sample[target.name].shape
    assert logits_of(output).shape[1] == len(cfg.DATASET.CLASSES)


def test_validation_scores_instances_and_checkpoints_are_chosen_by_the_lowest_error(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from emseg_plugins.engine.checkpoint import best_checkpoint

    run = tmp_path / "run"
    args = tiny_args(run, "TARGET.NAMES", '["contour"]', "INFERENCE.INSTANCE_CLASS", "mito", "INFERENCE.DECODER", "bc_watershed",
                     "MONITOR.INSTANCE_METRICS", "True", "MONITOR.CHECKPOINT_METRIC", "val/are", "SOLVER.ITERATION_TOTAL", "4",
                     "SOLVER.ITERATION_VAL", "2", "MONITOR.CHECKPOINT_TOP_K", "2")
    result = run_main("pytc-train", *args)
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    are = {e.step: e.value for e in events.Scalars("val/are") if e.step < 4}  # while training (logged at steps 1, 3); not the final one
    assert len(are) == 2 and all(0 <= v <= 1 for v in are.values())
    assert {"val/voi_split", "val/voi_merge", "val/f1"} <= set(events.Tags()["scalars"])
    scored = sorted(p.name for p in (run / "checkpoints").glob("step*-are*.ckpt"))
    assert scored == [f"step{s + 1:06d}-are{v:.4f}.ckpt" for s, v in sorted(are.items())]
    assert best_checkpoint(run, "val/are").name.endswith(f"-are{min(are.values()):.4f}.ckpt")


def test_best_checkpoint_minimises_errors_and_maximises_scores(tmp_path):
    from emseg_plugins.engine.checkpoint import best_checkpoint

    (tmp_path / "checkpoints").mkdir()
    for name in ("step000002-are0.4000", "step000004-are0.2500", "step000006-are0.3000", "step000002-dice0.5000", "step000004-dice0.7000"):
        (tmp_path / "checkpoints" / f"{name}.ckpt").write_bytes(b"")
    assert best_checkpoint(tmp_path, "val/are").name == "step000004-are0.2500.ckpt"
    assert best_checkpoint(tmp_path, "val/dice_mean").name == "step000004-dice0.7000.ckpt"


def test_checkpoint_metric_that_validation_does_not_log_is_one_line(tmp_path):
    result = run_main("pytc-train", *tiny_args(tmp_path / "run", "MONITOR.CHECKPOINT_METRIC", "val/are"))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1
    assert "MONITOR.CHECKPOINT_METRIC = 'val/are' is not logged by validation (set MONITOR.INSTANCE_METRICS True" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["neurons_affinity_3d", "neurons_boundary_2d"])
def test_neuron_configs_build_heads_for_their_targets_and_decoder(name):
    """The neuron configs point at a user's volume; without it, the model, heads and decoder still fit."""
    from conftest import ROOT

    from emseg_plugins.inference.deploy import check_decoder
    from emseg_plugins.models.outputs import split_heads
    from emseg_plugins.registry import MODELS

    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    check_decoder(cfg.INFERENCE.DECODER, cfg)
    size = list(cfg.DATASET.PATCH_SIZE) if cfg.DATASET.DIMS == 3 else list(cfg.DATASET.PATCH_SIZE[1:])
    model = MODELS.build(cfg.MODEL.ARCHITECTURE, cfg).eval()
    with torch.no_grad():
        output = split_heads(model(torch.zeros(1, 1, *size)), heads(cfg))
    for target in build_targets(cfg):
        assert output[target.name].shape[1:] == (target.channels, *size)
