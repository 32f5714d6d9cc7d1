"""The cellmap dataset plugin on a small real zarr root in the CellMap layout (cellmap-data underneath)."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cc3d
import numpy as np
import pytest
import torch
import zarr
from conftest import ROOT, run_cli

from emseg_plugins.config import load_config
from emseg_plugins.datasets.cellmap import ComposeClasses, build_cellmap
from emseg_plugins.datasets.cellmap_layout import (
    Crop,
    load_class_table,
    read_datasplit_csv,
    scan_root,
    select_crops,
    split_crops,
)
from emseg_plugins.challenge.standin import (
    TEST_LABELS,
    class_arrays,
    membrane,
    write_cellmap_root,
)
from emseg_plugins.datasets.synthetic_em import make_em_volume
from emseg_plugins.errors import DataError

CONFIG = ROOT / "tests" / "configs" / "cellmap_tiny.yaml"
GT = "recon-1/labels/groundtruth"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """2 datasets (EM 32x128x128 at 8 nm + s1 at 16 nm), crops 1-6 of 16x48x48 at 8+16 nm, crop7 at 16 nm only;
    held out: test crops 8, 9 (one per dataset; manifest and ground truth only)."""
    path = tmp_path_factory.mktemp("cellmap") / "root"
    written = write_cellmap_root(path)
    assert [c.name for c in written if not c.held_out] == [f"crop{i}" for i in range(1, 8)]
    assert [(c.dataset, c.name) for c in written if c.held_out] == [("jrc_synth-1", "crop8"), ("jrc_synth-2", "crop9")]
    return path


def config(root: Path, *overrides: str):
    return load_config(CONFIG, overrides=["DATASET.CELLMAP.DATA_ROOT", str(root), *overrides])


def crop_array(root: Path, dataset: str, crop: str, cls: str, level: str = "s0") -> np.ndarray:
    return zarr.open_array(str(root / dataset / f"{dataset}.zarr" / GT / crop / cls / level), mode="r")[:]


def write_split(path: Path, root: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """A datasplit CSV in the challenge's 5-column format: (usage, dataset, crop, classes)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL)
        for usage, dataset, crop, classes in rows:
            container = str(root / dataset / f"{dataset}.zarr")
            writer.writerow([usage, container, "recon-1/em/fibsem-uint8", container, f"{GT}/{crop}/[{classes}]"])
    return path


# -- scanning, selection, split, CSV -------------------------------------------------------------------

def test_scan_reads_classes_voxel_sizes_and_translations(root):
    crops = {c.key: c for c in scan_root(root)}
    assert list(crops) == [f"jrc_synth-{1 + (i > 3)}/crop{i}" for i in range(1, 8)]
    c1 = crops["jrc_synth-1/crop1"]
    assert sorted(c1.classes) == ["mito_lum", "mito_mem", "mito_ribo", "nuc"]
    assert [lv.voxel_size for lv in c1.raw] == [(8.0, 8.0, 8.0), (16.0, 16.0, 16.0)]
    assert c1.raw[0].shape == (32, 128, 128) and c1.raw[1].translation == (4.0, 4.0, 4.0)
    nuc = c1.classes["nuc"]
    assert nuc[0].shape == (16, 48, 48) and nuc[1].shape == (8, 24, 24)
    assert all(t % 16 == 0 for t in nuc[0].translation)  # even s0 voxel offsets, in nm
    assert tuple(t + 4 for t in nuc[0].translation) == nuc[1].translation
    assert sorted(crops["jrc_synth-1/crop2"].classes) == ["nuc"]
    assert crops["jrc_synth-2/crop7"].classes_at((8, 8, 8), 0.15) == []
    assert crops["jrc_synth-2/crop7"].classes_at((16, 16, 16), 0.15) == ["mito", "nuc"]


def keys(crops: list[Crop]) -> list[str]:
    return [c.name for c in crops]


def test_selection_by_class_and_voxel_size_and_the_85_15_split(root):
    crops = scan_root(root)
    assert keys(select_crops(crops, ["nuc", "mito"], (8, 8, 8), 0.15)) == [f"crop{i}" for i in range(1, 7)]
    assert keys(select_crops(crops, ["nuc", "mito"], (16, 16, 16), 0.15)) == [f"crop{i}" for i in range(1, 8)]
    # every class: the composite mito must be there, itself or through all of its members
    assert keys(select_crops(crops, ["nuc", "mito"], (8, 8, 8), 0.15, force_all_classes=True)) == ["crop1", "crop3", "crop4", "crop6"]
    assert keys(select_crops(crops, ["mito_mem"], (8, 8, 8), 0.15)) == ["crop1", "crop3", "crop4", "crop6"]
    assert keys(scan_root(root, datasets=["jrc_synth-2"])) == ["crop4", "crop5", "crop6", "crop7"]  # DATASETS, CROPS
    assert keys(scan_root(root, crops=["3", "crop1"])) == ["crop1", "crop3"]

    many = [Crop(f"ds{i % 3}", f"crop{i}", Path("/x"), (), {}) for i in range(20)]
    usage = split_crops(many, 0.15, seed=0)
    assert sorted(usage.values()).count("validate") == 3 and len(usage) == 20  # 17/3 = 85/15
    assert split_crops(many, 0.15, seed=0) == usage  # deterministic by seed
    assert len({tuple(sorted(k for k, u in split_crops(many, 0.15, seed=s).items() if u == "validate")) for s in range(5)}) > 1


def test_datasplit_csv_written_in_the_challenge_format_and_reused(root, tmp_path):
    split_path = tmp_path / "split" / "datasplit.csv"
    data = build_cellmap(config(root, "DATASET.CELLMAP.DATASPLIT", str(split_path)))
    rows = list(csv.reader(split_path.open()))
    assert len(rows) == 6 and all(len(r) == 5 for r in rows)
    assert sorted(r[0] for r in rows) == ["train"] * 5 + ["validate"]
    by_crop = {r[4].split("/")[-2]: r for r in rows}
    assert by_crop["crop1"][4] == f"{GT}/crop1/[nuc,mito_mem,mito_lum,mito_ribo]"  # the composite's members are listed
    assert by_crop["crop2"][4] == f"{GT}/crop2/[nuc]"
    assert by_crop["crop3"][4] == f"{GT}/crop3/[nuc,mito,mito_mem,mito_lum,mito_ribo]"
    assert by_crop["crop1"][1] == str(root.resolve() / "jrc_synth-1" / "jrc_synth-1.zarr") and by_crop["crop1"][2] == "recon-1/em/fibsem-uint8"
    assert len(data.split.train_datasets) == 5 and len(data.split.validation_datasets) == 1
    assert not list(split_path.parent.glob(".*.tmp"))  # written atomically, no temporary left

    # an existing CSV is the split: hand-edit it, the builder follows it; REGENERATE_SPLIT rescans
    write_split(split_path, root, [("train", "jrc_synth-1", "crop1", "nuc,mito_mem,mito_lum,mito_ribo"),
                                   ("validate", "jrc_synth-1", "crop2", "nuc")])
    data = build_cellmap(config(root, "DATASET.CELLMAP.DATASPLIT", str(split_path)))
    assert [e.name for e in data.entries] == ["jrc_synth-1_crop1", "jrc_synth-1_crop2"]
    build_cellmap(config(root, "DATASET.CELLMAP.DATASPLIT", str(split_path), "DATASET.CELLMAP.REGENERATE_SPLIT", "True"))
    assert len(read_datasplit_csv(split_path)) == 6


# -- samples -------------------------------------------------------------------------------------------

def test_composite_is_the_union_of_members_and_unannotated_classes_are_nan(root, tmp_path):
    split_path = write_split(tmp_path / "split.csv", root, [
        ("train", "jrc_synth-2", "crop5", "nuc"),
        ("validate", "jrc_synth-1", "crop1", "nuc,mito_mem,mito_lum,mito_ribo"),  # mito through members only
        ("validate", "jrc_synth-1", "crop2", "nuc"),  # no mito at all
        ("validate", "jrc_synth-1", "crop3", "nuc,mito"),  # mito itself
    ])
    data = build_cellmap(config(root, "DATASET.CELLMAP.DATASPLIT", str(split_path)))
    volumes = {v.name: v for v in data.volumes("val")}
    assert list(volumes) == ["jrc_synth-1_crop1", "jrc_synth-1_crop2", "jrc_synth-1_crop3"]

    def arr(crop, cls):
        return crop_array(root, "jrc_synth-1", crop, cls)

    c1 = volumes["jrc_synth-1_crop1"]
    assert c1.labels.shape == (2, 16, 48, 48) and c1.image.shape == (16, 48, 48)
    union = arr("crop1", "mito_mem") | arr("crop1", "mito_lum") | arr("crop1", "mito_ribo")
    assert union.sum() > 0
    np.testing.assert_array_equal(c1.labels[1], union)
    np.testing.assert_array_equal(c1.labels[0], arr("crop1", "nuc"))
    c2 = volumes["jrc_synth-1_crop2"]
    assert np.isnan(c2.labels[1]).all() and not np.isnan(c2.labels[0]).any()
    np.testing.assert_array_equal(volumes["jrc_synth-1_crop3"].labels[1], arr("crop3", "mito"))
    # the image is the raw EM under the crop, scaled to [0, 1]
    translation = zarr.open_group(str(root / "jrc_synth-1/jrc_synth-1.zarr" / GT / "crop1/nuc"), mode="r").attrs["multiscales"][0]
    z, y, x = (int(t / 8) for t in translation["datasets"][0]["coordinateTransformations"][1]["translation"])
    raw = zarr.open_array(str(root / "jrc_synth-1/jrc_synth-1.zarr/recon-1/em/fibsem-uint8/s0"), mode="r")
    np.testing.assert_allclose(c1.image, raw[z:z + 16, y:y + 48, x:x + 48] / 255.0, atol=1e-6)

    # partial annotation: some members only -> known positives, unknown elsewhere
    table = load_class_table()
    compose = ComposeClasses(["mito"], table.expand(["mito"]), table)
    nan = float("nan")
    read = torch.tensor([[nan, nan, nan], [1.0, 0.0, 0.0], [nan, nan, nan], [0.0, 0.0, 0.0]])  # mito, mem, lum, ribo
    out = compose(read)[0]
    assert out[0] == 1 and torch.isnan(out[1:]).all()


@pytest.mark.parametrize("dims, slices, patch", [(2, 1, [1, 32, 32]), (2, 5, [1, 32, 32]), (3, 1, [8, 32, 32])])
def test_sample_shapes_values_and_determinism(root, dims, slices, patch):
    cfg = config(root, "DATASET.DIMS", str(dims), "DATASET.INPUT_SLICES", str(slices), "DATASET.PATCH_SIZE", str(patch))
    data = build_cellmap(cfg)
    spatial = patch[1:] if dims == 2 else patch
    train = data.train_dataset(8)
    assert len(train) == 8
    for sample in (train[0], train[5], data.val_dataset()[0]):
        assert set(sample) == {"image", "label"}
        assert sample["image"].dtype == sample["label"].dtype == torch.float32
        assert list(sample["image"].shape) == [slices if dims == 2 else 1, *spatial]
        assert list(sample["label"].shape) == [2, *spatial]
        assert 0 <= sample["image"].min() and sample["image"].max() <= 1 and sample["image"].std() > 0.01
        values = sample["label"][~torch.isnan(sample["label"])]
        assert set(values.unique().tolist()) <= {0.0, 1.0}
    again = build_cellmap(cfg).train_dataset(8)[5]  # sample i depends on (seed, i) only
    assert torch.equal(again["image"], train[5]["image"])
    assert torch.equal(again["label"].nan_to_num(-1), train[5]["label"].nan_to_num(-1))


def test_pad_gives_crops_smaller_than_the_patch_a_sample(root):
    """configs/cellmap_quick.yaml's 3D patch (32x64x64) is larger than every crop (16x48x48) and as deep as the raw EM
    (32 slices): cellmap-data alone allows one centre per source (the raw's middle, the crop's middle), which differ,
    so no sample. With PAD the patch keeps inside the raw and covers the whole crop, NaN around it."""
    cfg = config(root, "DATASET.DIMS", "3", "DATASET.PATCH_SIZE", "[32, 64, 64]", "AUGMENTOR.ENABLED", "False")
    data = build_cellmap(cfg)
    crops = data.split.train_datasets + data.split.validation_datasets
    assert len(crops) == 6 and all(len(ds) == 1 for ds in crops)
    train = data.train_dataset(12)
    for i in range(len(train)):
        sample = train[i]
        assert list(sample["image"].shape) == [1, 32, 64, 64] and list(sample["label"].shape) == [2, 32, 64, 64]
        assert int(torch.isfinite(sample["label"][0]).sum()) == 16 * 48 * 48  # nuc: the whole crop, NaN past it
        assert (sample["image"] > 0).all()  # every voxel read from the raw EM: nothing padded there
    assert int(torch.isfinite(data.val_dataset()[0]["label"][0]).sum()) == 16 * 48 * 48
    with pytest.raises(DataError, match="holds no whole patch .* set DATASET.CELLMAP.PAD True"):
        build_cellmap(config(root, "DATASET.DIMS", "3", "DATASET.PATCH_SIZE", "[32, 64, 64]", "DATASET.CELLMAP.PAD", "False"))


def test_2_5d_sample_is_the_2d_sample_with_its_neighbour_slices(root):
    flat = build_cellmap(config(root, "AUGMENTOR.ENABLED", "False")).train_dataset(40)
    stacked = build_cellmap(config(root, "AUGMENTOR.ENABLED", "False", "DATASET.INPUT_SLICES", "5")).train_dataset(40)
    lengths = [(len(a), len(b)) for a, b in zip(flat.datasets, stacked.datasets)]
    # crop3 starts at the raw EM's first slice: its first two slices lack the 2 neighbours below them in 2.5D
    assert ("crop3" in stacked.datasets[2].target_path) and lengths[2][1] < lengths[2][0]
    same = [i for i in range(40) if lengths[flat.crop_of(i)][0] == lengths[flat.crop_of(i)][1]][:3]
    assert len(same) == 3
    for i in same:
        a, b = flat[i], stacked[i]
        assert torch.equal(b["image"][2:3], a["image"]) and not torch.equal(b["image"][0], b["image"][2])
        assert torch.equal(b["label"].nan_to_num(-1), a["label"].nan_to_num(-1))


def test_class_balanced_draws_favour_the_rare_class_crops(root):
    balanced = build_cellmap(config(root))
    plain = build_cellmap(config(root, "DATASET.CELLMAP.CLASS_BALANCED", "False"))
    crops = balanced.split.train_datasets
    has_mito = balanced.annotated_matrix(crops)[:, 1]
    assert 0 < has_mito.sum() < len(crops)  # mito is the rarer class, nuc is everywhere

    def mito_share(data):
        draws = data.train_dataset(4000)
        return np.mean([has_mito[draws.crop_of(i)] for i in range(len(draws))])

    n_mito = has_mito.sum()
    expected = 0.5 * n_mito / len(crops) + 0.5  # half the draws pick nuc (any crop), half mito (a mito crop)
    assert abs(mito_share(balanced) - expected) < 0.03
    assert mito_share(balanced) > mito_share(plain) + 0.15  # crops are equal-sized: plain draws ~ n_mito / n
    draws = balanced.train_dataset(6)
    for i in range(6):  # the draw really reads that crop: a crop without mito gives an all-NaN mito channel
        assert torch.isnan(draws[i]["label"][1]).all() == (not has_mito[draws.crop_of(i)])


# -- the stand-in's labels and held-out test crops ---------------------------------------------------------

def test_membrane_is_each_instance_s_own_shell():
    """Two touching boxes: each keeps its own shell on the shared face (erosion of the union would not)."""
    ids = np.zeros((5, 6, 10), np.uint32)
    ids[1:4, 1:5, 1:5], ids[1:4, 1:5, 5:9] = 1, 2
    shell = membrane(ids)
    assert shell[2, 2, 4] and shell[2, 2, 5]  # the contact face, on both sides
    assert not shell[2, 2, 2] and not shell[2, 2, 7] and not shell[0].any()  # interiors, background
    union = ids > 0
    from scipy import ndimage as ndi

    assert not (union & ~ndi.binary_erosion(union))[2, 2, 4]


def test_held_out_test_crops_manifest_and_ground_truth_from_instance_ids(root):
    from emseg_plugins.challenge.manifest import load_manifest

    rows = load_manifest(str(root / "test_crop_manifest.csv"))
    assert [(r.id, r.dataset, r.class_label) for r in rows] == [(n, f"jrc_synth-{n - 7}", label) for n in (8, 9) for label in TEST_LABELS]
    assert all(r.voxel_size == (8.0, 8.0, 8.0) and r.shape == (16, 48, 48) for r in rows)
    assert [c.name for c in scan_root(root)] == [f"crop{i}" for i in range(1, 8)]  # held out: no groundtruth group
    truth = zarr.open_group(str(root / "test_ground_truth.zarr"), mode="r")
    volume = make_em_volume((32, 128, 128), 0)  # jrc_synth-1: seed 0
    labels = class_arrays(volume)
    row = rows[0]
    window = tuple(slice(int(t / 8), int(t / 8) + n) for t, n in zip(row.translation, row.shape))
    for label in TEST_LABELS:
        array = truth["crop8"][label]
        assert array.attrs["voxel_size"] == [8.0] * 3 and array.attrs["translation"] == list(row.translation)
        if label in ("nuc", "mito"):  # ids: the generator's, renumbered 1..n, one per instance
            ids = volume.nuc_ids if label == "nuc" else volume.mito_ids
            assert array.dtype == np.uint32
            pairs = set(zip(array[:].ravel().tolist(), ids[window].ravel().tolist()))
            assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})  # a one-to-one relabelling
        else:
            np.testing.assert_array_equal(array[:], labels[label][window])
    # touching mitochondria: connected components of the mask merge ids that the truth keeps apart
    merged = cc3d.connected_components(volume.mito_ids > 0, connectivity=26).max()
    assert merged < len(np.unique(volume.mito_ids)) - 1
    shell = membrane(volume.mito_ids)
    np.testing.assert_array_equal(labels["mito_mem"], shell)
    np.testing.assert_array_equal(labels["mito_lum"], (volume.mito_ids > 0) & ~shell)


# -- training through the real CLI -----------------------------------------------------------------------

def test_trains_three_steps_through_pytc_train(root, tmp_path):
    run_dir, split_path = tmp_path / "run", tmp_path / "datasplit.csv"
    result = run_cli("pytc-train", "--config-file", str(CONFIG), "DATASET.CELLMAP.DATA_ROOT", str(root),
                     "DATASET.CELLMAP.DATASPLIT", str(split_path), "DATASET.OUTPUT_PATH", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 3 and set(metrics["classes"]) == {"nuc", "mito"}
    assert all(0 <= v <= 1 for row in metrics["classes"].values() for v in row.values())
    assert len(read_datasplit_csv(split_path)) == 6
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


# -- bad input -------------------------------------------------------------------------------------------

def _no_multiscales(root: Path, tmp: Path) -> tuple[list[str], str]:
    broken = tmp / "broken"
    shutil.copytree(root, broken)
    (broken / "jrc_synth-1/jrc_synth-1.zarr" / GT / "crop2/nuc/.zattrs").write_text("{}")
    return ["DATASET.CELLMAP.DATA_ROOT", str(broken)], "crop2/nuc: zarr group has no OME-NGFF 'multiscales' metadata"


def _missing_crop(root: Path, tmp: Path) -> tuple[list[str], str]:
    path = write_split(tmp / "split.csv", root, [("train", "jrc_synth-1", "crop1", "nuc"), ("validate", "jrc_synth-1", "crop99", "nuc")])
    return ["DATASET.CELLMAP.DATASPLIT", str(path)], "crop99 (validate) does not exist"


@pytest.mark.parametrize("case", [
    lambda root, tmp: (["DATASET.CELLMAP.DATA_ROOT", str(tmp / "nowhere")], "nowhere': directory not found"),
    _no_multiscales,
    _missing_crop,
    lambda root, tmp: (["DATASET.CLASSES", "['nuc', 'er']"], "no crop has class 'er'; classes present in the data: mito, mito_lum"),
    lambda root, tmp: (["DATASET.CELLMAP.VOXEL_SIZE", "[4, 4, 4]"],
                       "VOXEL_SIZE [4, 4, 4] nm: no crop has any of ['nuc', 'mito'] at this voxel size"),
    lambda root, tmp: (["DATASET.CELLMAP.PAD", "False", "DATASET.PATCH_SIZE", "[1, 64, 64]"], "holds no whole patch"),
], ids=["no-root", "no-multiscales", "csv-missing-crop", "unknown-class", "voxel-size", "crop-smaller-than-patch"])
def test_bad_input_is_one_line_data_error(root, tmp_path, case):
    overrides, fragment = case(root, tmp_path)
    split_path = tmp_path / "out" / "datasplit.csv"
    if "DATASET.CELLMAP.DATASPLIT" not in overrides:
        overrides += ["DATASET.CELLMAP.DATASPLIT", str(split_path)]
    with pytest.raises(DataError) as info:
        build_cellmap(config(root, *overrides))
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert not split_path.exists()  # nothing written
    if "VOXEL_SIZE" in fragment:
        assert "voxel sizes with those classes: [8, 8, 8], [16, 16, 16]" in str(info.value)


def test_bad_input_through_the_cli(root, tmp_path):
    run_dir, split_path = tmp_path / "run", tmp_path / "datasplit.csv"
    result = run_cli("pytc-train", "--config-file", str(CONFIG), "DATASET.CELLMAP.DATA_ROOT", str(root),
                     "DATASET.CELLMAP.DATASPLIT", str(split_path), "DATASET.OUTPUT_PATH", str(run_dir), "DATASET.CLASSES", "['nuc', 'er']")
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no crop has class 'er'; classes present in the data: mito, mito_lum" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dir.exists() and not split_path.exists()


def test_synthetic_writer_command_line(tmp_path, root):
    module = [sys.executable, "-m", "emseg_plugins.challenge.standin"]
    help_text = subprocess.run([*module, "--help"], capture_output=True, text=True, check=False)
    assert help_text.returncode == 0 and "ROOT" in help_text.stdout and "--crop-size" in help_text.stdout
    assert "--test-crops" in help_text.stdout and "--manifest" in help_text.stdout
    exists = subprocess.run([*module, str(root)], capture_output=True, text=True, check=False)
    assert exists.returncode == 2 and exists.stderr.startswith("error:") and "already exists" in exists.stderr
