"""The CellMap challenge workflow: manifest, test-crop prediction, submission packaging and validation, scoring.

A synthetic CellMap world (a data root in the real layout, a 3-crop manifest, a ground-truth zarr) and a
model trained for a few steps run the whole chain; hand-made volumes check scores known in closed form.
The scoring definitions are those of cellmap-segmentation-challenge's eval_utils (see the module doc of
emseg_plugins.challenge.evaluate).
"""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import ROOT, run_main

from emseg_plugins.challenge.evaluate import (
    combine_scores,
    match_instances,
    max_distance,
    normalize_distance,
    score_instance,
    score_submission,
    write_truth_from_root,
)
from emseg_plugins.challenge.manifest import (
    TestCrop,
    load_manifest,
    manifest_from_root,
    parse_manifest,
    write_manifest,
)
from emseg_plugins.challenge.predict import predict_test_crops
from emseg_plugins.challenge.submit import (
    LabelArray,
    align_to_crop,
    package_submission,
    safe_extract,
    validate_submission,
    zip_submission,
)
from emseg_plugins.config import load_config
from emseg_plugins.challenge.standin import write_cellmap_root
from emseg_plugins.errors import DataError

CONFIG = ROOT / "tests" / "configs" / "cellmap_challenge_tiny.yaml"
INSTANCE = ("nuc", "mito")


# -- the synthetic world ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """Root (7 crops), manifest (crops 3, 4 at 8 nm with mito_lum, which the model lacks; crop 7 at 16 nm), truth,
    a model trained 12 steps on nuc/mito/mito_mem, its predictions and the packaged submission."""
    from emseg_plugins.engine.run import train

    base = tmp_path_factory.mktemp("challenge")
    root = base / "root"
    write_cellmap_root(root)
    rows = manifest_from_root(root, [3, 4], ["nuc", "mito", "mito_mem", "mito_lum"], (8, 8, 8))
    rows += manifest_from_root(root, [7], ["nuc", "mito"], (16, 16, 16))
    manifest = write_manifest(base / "manifest.csv", rows)
    truth = write_truth_from_root(root, rows, base / "truth.zarr")
    cfg = load_config(CONFIG, overrides=["DATASET.CELLMAP.DATA_ROOT", str(root), "DATASET.OUTPUT_PATH", str(base / "run")])
    train(cfg)
    checkpoint = base / "run" / "checkpoints" / "last.ckpt"
    predicted = predict_test_crops(cfg, checkpoint, base / "processed", rows, progress=False)
    with pytest.warns(UserWarning, match="crop3/mito_lum, crop4/mito_lum"):
        packaged = package_submission(base / "processed", rows, base / "submission.zarr", progress=False)
    return {"base": base, "root": root, "rows": rows, "manifest": manifest, "truth": truth, "cfg": cfg, "checkpoint": checkpoint,
            "predicted": predicted, "packaged": packaged, "zip": zip_submission(base / "submission.zarr")}


def test_manifest_round_trip_and_packaged_copy(world):
    assert load_manifest(str(world["manifest"])) == world["rows"]
    crop7 = [r for r in world["rows"] if r.id == 7]
    assert [r.class_label for r in crop7] == ["nuc", "mito"]
    assert crop7[0].voxel_size == (16.0, 16.0, 16.0) and crop7[0].shape == (8, 24, 24)
    official = load_manifest()  # the packaged copy of the challenge's manifest (or the installed package's)
    assert len(official) == 413 and {r.id for r in official} >= {557, 980, 989}
    row = next(r for r in official if (r.id, r.class_label) == (557, "mito"))
    assert row.voxel_size == (1.74, 2.0, 2.0) and row.translation == (23837.13, 7599.0, 35999.0) and row.shape == (600, 600, 600)


def test_predict_writes_the_processed_layout(world):
    rep = world["predicted"]
    assert rep.written == [3, 4, 7] and sorted(set(rep.not_predicted)) == [(3, "mito_lum"), (4, "mito_lum")]
    mito = zarr.open_array(str(world["base"] / "processed" / "jrc_synth-2.zarr" / "crop7" / "mito"), mode="r")
    sem = zarr.open_array(str(world["base"] / "processed" / "jrc_synth-1.zarr" / "crop3" / "mito_mem"), mode="r")
    assert mito.dtype == np.uint32 and sem.dtype == np.uint8 and set(np.unique(sem[:])) <= {0, 1}
    assert mito.attrs["voxel_size"] == [8.0, 8.0, 8.0]  # the model's voxel size; submit resamples to 16 nm
    assert sem.shape == (16, 48, 48) and sem.attrs["translation"] == [0.0, 0.0, 112.0]  # the crop, at 8 nm
    again = predict_test_crops(world["cfg"], world["checkpoint"], world["base"] / "processed", world["rows"], progress=False)
    assert again.written == [] and again.skipped == [3, 4, 7]  # resumable: finished crops are kept


def test_predict_names_the_data_root_s_own_manifest_when_no_official_crop_is_there(world, tmp_path):
    """The stand-in holds none of the official test crops; it lists its own in DATA_ROOT/test_crop_manifest.csv."""
    with pytest.raises(DataError) as error, pytest.warns(UserWarning, match="have no raw EM under"):
        predict_test_crops(world["cfg"], world["checkpoint"], tmp_path / "processed", load_manifest(), progress=False)
    local = world["root"] / "test_crop_manifest.csv"
    assert f"lists its own test crops: pass --manifest {local}" in str(error.value) and "\n" not in str(error.value)
    assert [r.id for r in load_manifest(str(local))][::4] == [8, 9] and not (tmp_path / "processed").exists()


def test_submission_layout_validation_and_zip(world):
    sub = zarr.open_group(str(world["base"] / "submission.zarr"), mode="r")
    assert sorted(sub.group_keys()) == ["crop3", "crop4", "crop7"]
    nuc7, mem3 = sub["crop7"]["nuc"], sub["crop3"]["mito_mem"]
    assert nuc7.shape == (8, 24, 24) and nuc7.dtype == np.uint32  # resampled into the 16 nm crop
    assert nuc7.attrs["voxel_size"] == [16.0, 16.0, 16.0] and nuc7.attrs["translation"] == [4.0, 36.0, 148.0]
    assert mem3.dtype == np.uint8 and mem3.shape == (16, 48, 48)
    assert "mito_lum" not in sub["crop3"]
    assert validate_submission(world["base"] / "submission.zarr", world["rows"]) == [(3, "mito_lum"), (4, "mito_lum")]
    with pytest.raises(DataError, match="2 manifest crop/label pairs missing: crop3/mito_lum"):
        validate_submission(world["base"] / "submission.zarr", world["rows"], require_all=True)
    names = zipfile.ZipFile(world["zip"]).namelist()
    assert ".zgroup" in names and "crop7/nuc/.zarray" in names and not any(n.startswith(("/", "..")) for n in names)


def test_scores_of_the_trained_model(world):
    with pytest.warns(UserWarning, match="2 ground-truth crop/labels not in the submission, scored as missing: crop3/mito_lum, crop4/mito_lum"):
        scores = score_submission(world["zip"], world["truth"], world["rows"], INSTANCE, progress=False)
    assert sorted(k for k in scores if k.startswith("crop")) == ["crop3", "crop4", "crop7"]
    labels = scores["label_scores"]
    assert {k: v["type"] for k, v in labels.items()} == {"mito": "instance", "mito_lum": "semantic", "mito_mem": "semantic", "nuc": "instance"}
    assert labels["mito_lum"]["iou"] == 0.0 and labels["mito_lum"]["fn"] == 2 * 16 * 48 * 48  # missing: every voxel a FN
    assert scores["crop3"]["mito_lum"]["is_missing"] and not scores["crop3"]["nuc"]["is_missing"]
    for v in labels.values():
        assert 0.0 <= v.get("combined_score", v.get("iou")) <= 1.0
    inst = np.mean([labels[k]["combined_score"] for k in ("mito", "nuc")])
    sem = np.mean([labels[k]["iou"] for k in ("mito_lum", "mito_mem")])
    assert scores["overall_instance_score"] == pytest.approx(inst) and scores["overall_semantic_score"] == pytest.approx(sem)
    assert scores["overall_score"] == pytest.approx(math.sqrt(inst * sem))
    assert scores["missing"] == ["crop3/mito_lum", "crop4/mito_lum"]


def test_ground_truth_submitted_scores_one(world, tmp_path):
    """The truth itself, packaged as predictions at its own geometry, scores 1 everywhere."""
    truth = zarr.open_group(str(world["truth"]), mode="r")
    processed = tmp_path / "processed"
    for row in world["rows"]:
        src = truth[row.name][row.class_label]
        dst = zarr.open_group(str(processed / f"{row.dataset}.zarr"), mode="a").require_group(row.name)
        dst.create_dataset(row.class_label, data=src[:]).attrs.update(src.attrs.asdict())
    package_submission(processed, world["rows"], tmp_path / "perfect.zarr", progress=False)
    scores = score_submission(tmp_path / "perfect.zarr", world["truth"], world["rows"], INSTANCE, progress=False)
    assert scores["overall_score"] == 1.0 and scores["missing"] == []
    assert all(v.get("combined_score", v.get("iou")) == 1.0 for v in scores["label_scores"].values())


# -- hand-made scores -----------------------------------------------------------------------------------------

def combined(pred, truth, voxel=(1.0, 1.0, 1.0)) -> dict:
    return combine_scores({"crop1": {"mito": {**score_instance(pred, truth, voxel), "is_missing": False}}}, ["mito"])["label_scores"]["mito"]


def box(shape, *slices, value=1, out=None):
    out = np.zeros(shape, np.uint32) if out is None else out
    out[slices] = value
    return out


def test_perfect_and_empty():
    truth = box((8, 20, 20), slice(1, 4), slice(2, 8), slice(2, 8))
    truth[5:7, 10:15, 10:15] = 2
    assert combined(truth.copy(), truth) == {"type": "instance", "f1": 1.0, "normalized_hausdorff_distance": 1.0,
                                            "combined_score": 1.0, "tp": 2, "fp": 0, "fn": 0}
    empty = np.zeros((4, 4, 4), np.uint32)
    assert combined(empty, empty)["combined_score"] == 1.0  # nothing anywhere: "nothing here" scores 1
    sem = combine_scores({"c": {"er": {"tp": 0, "fp": 0, "fn": 0, "is_missing": False}}}, [])
    assert sem["label_scores"]["er"]["iou"] == 1.0 and sem["overall_semantic_score"] == 1.0


def test_one_split_instance():
    """Truth: one 4x8x8 box. Prediction: the box cut at x = 5 into 5- and 3-wide parts (IoU 5/8 and 3/8)."""
    truth = box((10, 20, 20), slice(0, 4), slice(0, 8), slice(0, 8))
    pred = box((10, 20, 20), slice(0, 4), slice(0, 8), slice(0, 5))
    pred[0:4, 0:8, 5:8] = 2
    s = combined(pred, truth)
    cap = max_distance((1, 1, 1), (10, 20, 20))  # 5 nm
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 0) and s["f1"] == pytest.approx(2 / 3)
    norm = normalize_distance([3.0, cap], (1, 1, 1))  # matched part: 3 voxels short; the other part: the cap
    assert s["normalized_hausdorff_distance"] == pytest.approx(norm.mean())
    assert s["combined_score"] == pytest.approx(math.sqrt(2 / 3 * norm.mean()))


def test_one_merged_instance():
    """Truth: two boxes (x 0-5 and 8-11); prediction: one object covering both and the gap."""
    truth = box((20, 20, 20), slice(0, 3), slice(0, 4), slice(0, 6))
    truth[0:3, 0:4, 8:12] = 2
    pred = box((20, 20, 20), slice(0, 3), slice(0, 4), slice(0, 12))
    s = combined(pred, truth, voxel=(2.0, 2.0, 2.0))
    assert (s["tp"], s["fp"], s["fn"]) == (1, 0, 1) and s["f1"] == pytest.approx(2 / 3)
    # matched to truth 1 (IoU 6/12 beats 4/12): 6 voxels from x = 11 back to x = 5, at 2 nm; truth 2 unmatched: the cap
    norm = normalize_distance([12.0, max_distance((2, 2, 2), (20, 20, 20))], (2, 2, 2))
    assert s["normalized_hausdorff_distance"] == pytest.approx(norm.mean())


def test_matching_is_optimal_not_greedy():
    """Truth A (x 0-9), B (x 10-12); P1 = x 0-3 (IoU 0.4 with A), P2 = x 4-12 (IoU 6/13 with A, 3/9 with B).
    Taking the best pair first (P2-A) matches one pair; the optimum matches P1-A and P2-B."""
    truth = np.zeros((1, 1, 16), np.uint32)
    truth[0, 0, 0:10], truth[0, 0, 10:13] = 1, 2
    pred = np.zeros_like(truth)
    pred[0, 0, 0:4], pred[0, 0, 4:13] = 1, 2
    assert match_instances(truth, pred) == {1: 1, 2: 2}
    s = score_instance(pred, truth, (1.0, 1.0, 1.0))
    assert (s["tp"], s["fp"], s["fn"]) == (2, 0, 0)
    assert match_instances(np.zeros((2, 2, 2), np.uint32), np.zeros((2, 2, 2), np.uint32)) == {0: 0}


def write_crop(group: zarr.Group, crop: str, label: str, data, voxel, translation):
    array = group.require_group(crop).create_dataset(label, data=data, overwrite=True)
    array.attrs.update(voxel_size=list(voxel), translation=list(translation))


def test_shifted_translation_and_resolution_are_honoured(tmp_path):
    """A prediction stored 2 voxels further along x (its translation says so), or at half the resolution, lands on the truth."""
    crop = TestCrop(1, "ds", "er", (4.0, 4.0, 4.0), (40.0, 80.0, 120.0), (8, 16, 16))
    truth_data = box((8, 16, 16), slice(2, 6), slice(4, 12), slice(6, 14)).astype(np.uint8)
    truth = zarr.open_group(str(tmp_path / "truth.zarr"), mode="w")
    write_crop(truth, "crop1", "er", truth_data, crop.voxel_size, crop.translation)
    sub = zarr.open_group(str(tmp_path / "sub.zarr"), mode="w")
    write_crop(sub, "crop1", "er", truth_data[:, :, 2:], crop.voxel_size, (40.0, 80.0, 128.0))  # starts 2 voxels later
    assert score_submission(tmp_path / "sub.zarr", tmp_path / "truth.zarr", [crop], progress=False)["overall_semantic_score"] == 1.0
    write_crop(sub, "crop1", "er", truth_data[:, :, 2:], crop.voxel_size, crop.translation)  # same data, wrong translation
    s = score_submission(tmp_path / "sub.zarr", tmp_path / "truth.zarr", [crop], progress=False)["label_scores"]["er"]
    assert s["iou"] == pytest.approx(6 / 10)  # box 8 wide shifted by 2: 6 shared columns of 10
    # an 8 nm instance prediction is resampled by nearest neighbour onto the 4 nm crop: the box comes back exactly
    mito = TestCrop(1, "ds", "mito", crop.voxel_size, crop.translation, crop.shape)
    write_crop(truth, "crop1", "mito", truth_data.astype(np.uint32), crop.voxel_size, crop.translation)
    write_crop(sub, "crop1", "mito", truth_data[::2, ::2, ::2].astype(np.uint32), (8.0, 8.0, 8.0), crop.translation)
    s = score_submission(tmp_path / "sub.zarr", tmp_path / "truth.zarr", [crop, mito], INSTANCE, progress=False)["label_scores"]
    assert s["mito"]["combined_score"] == 1.0 and s["er"]["iou"] == pytest.approx(6 / 10)
    aligned = align_to_crop(LabelArray(truth_data[::2, ::2, ::2], (8.0, 8.0, 8.0), (32.0, 72.0, 120.0)), crop.voxel_size,
                            crop.shape, crop.translation, instance=True)  # also 2 voxels (8 nm) earlier along z and y
    expected = np.zeros_like(truth_data)
    expected[:6, :14] = truth_data[2:, 2:]
    assert aligned.dtype == np.uint8 and (aligned == expected).all()


def test_missing_crop_scored_as_missing_with_warning(tmp_path):
    rows = [TestCrop(i, "ds", "mito", (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (4, 4, 4)) for i in (1, 2)]
    truth = zarr.open_group(str(tmp_path / "truth.zarr"), mode="w")
    data = box((4, 4, 4), slice(0, 2), slice(0, 2), slice(0, 2))
    for r in rows:
        write_crop(truth, r.name, "mito", data, r.voxel_size, r.translation)
    sub = zarr.open_group(str(tmp_path / "sub.zarr"), mode="w")
    write_crop(sub, "crop1", "mito", data, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    with pytest.warns(UserWarning, match="scored as missing: crop2/mito"):
        s = score_submission(tmp_path / "sub.zarr", tmp_path / "truth.zarr", rows, INSTANCE, progress=False)
    assert s["crop2"]["mito"] == {"tp": 0, "fp": 0, "fn": 1, "hausdorff_norm_sum": 0.0, "n_hausdorff": 1, "status": "missing",
                                  "num_voxels": 64, "voxel_size": [1.0, 1.0, 1.0], "is_missing": True}
    assert s["label_scores"]["mito"]["f1"] == pytest.approx(2 / 3) and s["label_scores"]["mito"]["normalized_hausdorff_distance"] == 0.5
    assert s["submitted_only"]["overall_instance_score"] == 1.0


# -- bad input ------------------------------------------------------------------------------------------------

def test_manifest_row_that_does_not_parse():
    text = "crop_name,dataset,class_label,voxel_size,translation,shape\n1,ds,mito,[1;1;1],[0;0;0],[4;4;4]\n2,ds,mito,[1;1],[0;0;0],[4;4;4]\n"
    with pytest.raises(DataError, match=r"m.csv line 3: cannot parse row '2,ds,mito,\[1;1\]"):
        parse_manifest(text, "m.csv")
    with pytest.raises(DataError, match="first line must be crop_name,dataset"):
        parse_manifest("id,x\n1,2\n", "m.csv")


@pytest.mark.parametrize("mutate, message", [
    (lambda g: g["crop1"].create_dataset("mito", data=np.zeros((4, 4, 3), np.uint32), overwrite=True), "crop1/mito: field shape is [4, 4, 3]"),
    (lambda g: g["crop1"].create_dataset("er", data=np.zeros((4, 4, 4), np.float32), overwrite=True), "crop1/er: field dtype is float32"),
    (lambda g: g["crop1"]["mito"].attrs.__delitem__("translation"), "crop1/mito: field attrs.translation is missing"),
    (lambda g: g["crop1"]["er"].attrs.__setitem__("voxel_size", [2, 2, 2]), "crop1/er: field attrs.voxel_size is [2, 2, 2]"),
])
def test_validation_names_crop_label_and_field(tmp_path, mutate, message):
    rows = [TestCrop(1, "ds", label, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (4, 4, 4)) for label in ("mito", "er")]
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    write_crop(group, "crop1", "mito", np.zeros((4, 4, 4), np.uint32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    write_crop(group, "crop1", "er", np.zeros((4, 4, 4), np.uint8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    assert validate_submission(tmp_path / "s.zarr", rows) == []
    mutate(group)
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_submission(tmp_path / "s.zarr", rows)


def evil_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(".zgroup", '{"zarr_format": 2}')
        z.writestr("../escaped.txt", "outside")
    return path


def test_zip_escaping_the_target_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"refused: member '\.\./escaped\.txt' would extract outside"):
        safe_extract(evil_zip(tmp_path / "evil.zip"), tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out").exists()


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


def test_cli_refuses_evil_zip_and_bad_manifest(world, tmp_path):
    line = one_error_line(run_main("emseg", "cellmap", "evaluate", "--submission", str(evil_zip(tmp_path / "evil.zip")),
                                  "--truth", str(world["truth"]), "--manifest", str(world["manifest"]), "--json", str(tmp_path / "s.json")))
    assert "would extract outside the target directory" in line and not (tmp_path / "s.json").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text(world["manifest"].read_text() + "9,ds,mito,[1;1;1],[0;0],[4;4;4]\n")
    line = one_error_line(run_main("emseg", "cellmap", "submit", "--validate", str(world["zip"]), "--manifest", str(bad)))
    assert "bad.csv line 12: cannot parse row '9,ds,mito" in line


def test_cli_validate_and_evaluate(world, tmp_path):
    broken = tmp_path / "broken.zarr"
    zarr.convenience.copy_store(zarr.DirectoryStore(str(world["base"] / "submission.zarr")), zarr.DirectoryStore(str(broken)))
    zarr.open_group(str(broken), mode="a")["crop4"]["mito"].attrs.__delitem__("voxel_size")
    line = one_error_line(run_main("emseg", "cellmap", "submit", "--validate", str(broken), "--manifest", str(world["manifest"])))
    assert "crop4/mito: field attrs.voxel_size is missing" in line
    ok = run_main("emseg", "cellmap", "evaluate", "--submission", str(world["zip"]), "--truth", str(world["truth"]),
                 "--manifest", str(world["manifest"]), "--json", str(tmp_path / "scores.json"), "--no-progress")
    assert ok.returncode == 0, ok.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert "overall instance" in ok.stdout and "mito_mem" in ok.stdout
    assert "warning: 2 ground-truth crop/labels not in the submission" in ok.stderr
    with pytest.warns(UserWarning, match="scored as missing"):
        again = score_submission(world["zip"], world["truth"], world["rows"], INSTANCE, progress=False)
    assert scores["overall_score"] == pytest.approx(again["overall_score"])


# -- configs --------------------------------------------------------------------------------------------------

def test_cellmap_configs_load():
    for name in ("cellmap_cos7", "cellmap_mito", "cellmap_quick", "cellmap_loss14_2d", "cellmap_loss14_25d"):
        cfg = load_config(ROOT / "configs" / f"{name}.yaml")
        assert cfg.DATASET.NAME == "cellmap" and cfg.DATASET.CELLMAP.DATA_ROOT == "data/cellmap"
    loss25 = load_config(ROOT / "configs" / "cellmap_loss14_25d.yaml")
    assert len(loss25.DATASET.CLASSES) == 14 and loss25.DATASET.INPUT_SLICES == 5 and "nuc:3.5" in loss25.LOSS.PER_CLASS_COMBO.CLASS_WEIGHTS
    mito = load_config(ROOT / "configs" / "cellmap_mito.yaml")
    assert (mito.MODEL.MEDNEXT.SIZE, list(mito.DATASET.CLASSES), list(mito.DATASET.CELLMAP.VOXEL_SIZE)) == ("L", ["mito"], [4.0] * 3)


def test_headline_config_without_data_says_how_to_get_it(tmp_path, monkeypatch):
    """`pytc-train --config-file configs/cellmap_cos7.yaml` (here in-process, on the CPU) with no data/cellmap."""
    from emseg_plugins.engine.run import train

    monkeypatch.chdir(tmp_path)
    cfg = load_config(ROOT / "configs" / "cellmap_cos7.yaml", overrides=["SYSTEM.NUM_GPUS", "0", "DATASET.OUTPUT_PATH", str(tmp_path / "run")])
    with pytest.raises(DataError) as error:
        train(cfg)
    message = str(error.value)
    assert "DATA_ROOT 'data/cellmap': directory not found" in message and "\n" not in message
    assert "csc fetch-data --crops all --dest data/cellmap" in message and "standin data/cellmap" in message
    assert not (tmp_path / "run").exists()
