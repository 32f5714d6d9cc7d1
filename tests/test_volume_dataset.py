"""The ``volume`` dataset: reading h5/zarr/TIFF/slice directories, label modes, splits, bad input,
training through pytc-train, and the PNG -> h5 converter (scripts/png_to_h5.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from conftest import ROOT, run_cli, run_main, tiny_args
from PIL import Image

from emseg_plugins.config import load_config
from emseg_plugins.datasets.convert import convert_slices, read_label_stack
from emseg_plugins.datasets.volume import build_volume
from emseg_plugins.datasets.volume_io import read_volume, write_volume
from emseg_plugins.errors import ConfigError, DataError

SCRIPT = ROOT / "scripts" / "png_to_h5.py"
SHAPE = (8, 64, 64)


def em_image(shape=SHAPE, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def class_map(shape=SHAPE) -> np.ndarray:
    """0 background, 1 a square (class 1), 2 a bar (class 2)."""
    labels = np.zeros(shape, np.uint8)
    labels[:, 8:24, 8:24] = 1
    labels[:, 40:48, 10:60] = 2
    return labels


def instance_ids(shape=SHAPE) -> np.ndarray:
    ids = np.zeros(shape, np.uint32)
    ids[:, 4:14, 4:14] = 7
    ids[:, 30:40, 30:40] = 300
    ids[:4, 50:60, 5:15] = 70000  # an object present on the first four slices only
    return ids


def save_slices(directory: Path, stack: np.ndarray, pattern: str = "slice{}.png") -> Path:
    directory.mkdir(parents=True)
    for z, plane in enumerate(stack):
        name = directory / pattern.format(z)
        if name.suffix == ".png":
            Image.fromarray(plane).save(name)
        else:
            tifffile.imwrite(name, plane)
    return directory


def config(*overrides: str, classes: str = "['nuc', 'mito']"):
    return load_config(overrides=["DATASET.NAME", "volume", "DATASET.CLASSES", classes, "DATASET.PATCH_SIZE", "[1, 32, 32]",
                                  *overrides])


def volume_cfg(**lists) -> list[str]:
    """Overrides ``DATASET.VOLUME.<KEY> <value>`` from keyword arguments (lists of paths as str)."""
    out = []
    for key, value in lists.items():
        out += [f"DATASET.VOLUME.{key}", repr([str(v) for v in value]) if isinstance(value, list) else str(value)]
    return out


# -- formats ---------------------------------------------------------------------------------------


def test_every_format_reads_back_the_same_array(tmp_path):
    image = em_image()
    uris = [tmp_path / "a.h5", f"{tmp_path / 'b.hdf5'}:/volumes/raw", tmp_path / "c.zarr", f"{tmp_path / 'd.zarr'}:raw/s0",
            tmp_path / "e.tif"]
    for uri in uris:
        write_volume(uri, image)
    save_slices(tmp_path / "png", image)
    save_slices(tmp_path / "tifs", image, "z{}.tif")
    for uri in [*uris, tmp_path / "png", tmp_path / "tifs"]:
        array = read_volume(uri)
        assert array.dtype == np.uint8 and array.shape == SHAPE, uri
        np.testing.assert_array_equal(array, image, err_msg=str(uri))
    with h5py.File(tmp_path / "a.h5") as f:
        assert list(f) == ["main"]  # PyTC's dataset name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left behind


def test_containers_pick_named_datasets_pyramid_levels_and_keep_other_datasets(tmp_path):
    image, labels = em_image(), class_map()
    write_volume(f"{tmp_path / 'both.h5'}:image", image)
    write_volume(f"{tmp_path / 'both.h5'}:/label", labels)  # added to the same file, image kept
    np.testing.assert_array_equal(read_volume(f"{tmp_path / 'both.h5'}:/image"), image)
    np.testing.assert_array_equal(read_volume(f"{tmp_path / 'both.h5'}:label"), labels)
    pyramid = zarr.open_group(str(tmp_path / "p.zarr"), mode="w")
    pyramid.create_dataset("s0", data=image)
    pyramid.create_dataset("s1", data=image[:, ::2, ::2])
    np.testing.assert_array_equal(read_volume(tmp_path / "p.zarr"), image)  # full resolution by default
    assert read_volume(f"{tmp_path / 'p.zarr'}:s1").shape == (8, 32, 32)


def test_channels_2d_images_and_natural_slice_order(tmp_path):
    stack = np.stack([np.full((4, 5), 10 * z, np.uint8) for z in range(12)])
    save_slices(tmp_path / "s", stack, "img_{}.png")  # img_10 sorts after img_9
    assert [int(p[0, 0]) for p in read_volume(tmp_path / "s")] == [10 * z for z in range(12)]
    multi = np.random.default_rng(0).random((2, 3, 4, 5)).astype(np.float32)
    for uri in (tmp_path / "m.h5", tmp_path / "m.zarr", tmp_path / "m.tif"):
        write_volume(uri, multi)
        np.testing.assert_array_equal(read_volume(uri), multi)
    rgb = np.zeros((3, 4, 5, 3), np.uint8)
    rgb[..., 1] = 9
    save_slices(tmp_path / "rgb", rgb)
    assert read_volume(tmp_path / "rgb").shape == (3, 3, 4, 5)  # (C, Z, Y, X)
    tifffile.imwrite(tmp_path / "single.tif", stack[3])
    assert read_volume(tmp_path / "single.tif").shape == (1, 4, 5)


@pytest.mark.parametrize("make, uri, fragment", [
    (None, "missing.h5", "missing.h5: no such file"),
    ("h5", "two.h5", "two.h5: holds 2 datasets (a, b); name one as"),
    ("h5", "two.h5:/c", "two.h5: no dataset 'c'; available: a, b"),
    ("zarr", "two.zarr", "two.zarr: holds 2 arrays (a, b)"),
    ("text", "notes.nii", "unsupported volume format '.nii'"),
    ("text", "broken.h5", "broken.h5: cannot be read as HDF5"),
    ("slices", "mixed", "slice is 6x6 uint8 but s0.png is 5x5 uint8"),
    (None, "no_dir", "no_dir: no such file or directory"),
    ("n5", "x.n5", "N5 stores are not supported"),
])
def test_read_errors_name_the_path_and_problem(tmp_path, make, uri, fragment):
    if make == "h5":
        with h5py.File(tmp_path / "two.h5", "w") as f:
            f["a"], f["b"] = np.zeros((2, 2, 2)), np.zeros((2, 2, 2))
    elif make == "zarr":
        group = zarr.open_group(str(tmp_path / "two.zarr"), mode="w")
        group.create_dataset("a", data=np.zeros((2, 2, 2)))
        group.create_dataset("b", data=np.zeros((2, 2, 2)))
    elif make == "text":
        (tmp_path / uri).write_text("not a volume")
    elif make == "slices":
        (tmp_path / "mixed").mkdir()
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "mixed" / "s0.png")
        Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / "mixed" / "s1.png")
    elif make == "n5":
        (tmp_path / "x.n5").mkdir()
    with pytest.raises(DataError) as info:
        read_volume(f"{tmp_path}/{uri}")
    message = str(info.value)
    assert fragment in message and "\n" not in message, message


# -- label modes, masks, splits ------------------------------------------------------------------------


def test_classmap_labels_become_one_channel_per_class_with_valid_mask_and_instances(tmp_path):
    write_volume(tmp_path / "image.h5", em_image())
    write_volume(tmp_path / "label.zarr", class_map())
    mask = np.full(SHAPE, 255, np.uint8)
    mask[:, :, :16] = 0
    write_volume(tmp_path / "mask.tif", mask)
    write_volume(tmp_path / "ids.h5", instance_ids())
    cfg = config(*volume_cfg(TRAIN_IMAGE=[tmp_path / "image.h5"], TRAIN_LABEL=[tmp_path / "label.zarr"],
                             TRAIN_VALID_MASK=[tmp_path / "mask.tif"], TRAIN_INSTANCE=[tmp_path / "ids.h5"], VAL_Z="[6, 8]"))
    data = build_volume(cfg)
    (below,), (val,) = data.volumes("train"), data.volumes("val")
    assert (below.name, val.name) == ("image-train-below", "image-val")  # [6, 8) held out, nothing above
    assert below.labels.shape == (2, 6, 64, 64) and val.labels.shape == (2, 2, 64, 64)
    np.testing.assert_array_equal(below.labels[0], class_map()[:6] == 1)  # nuc = value 1
    np.testing.assert_array_equal(val.labels[1], class_map()[6:] == 2)  # mito = value 2
    np.testing.assert_array_equal(below.valid_mask, (mask[:6] > 0).astype(np.uint8))
    np.testing.assert_array_equal(val.instances, instance_ids()[6:])
    sample = data.train_dataset(3)[0]
    assert set(sample) == {"image", "label", "instance", "valid_mask"}
    assert sample["label"].shape == (2, 32, 32) and sample["instance"].shape == sample["valid_mask"].shape == (1, 32, 32)


def test_instance_binary_and_channel_modes(tmp_path):
    write_volume(tmp_path / "image.h5", em_image())
    write_volume(tmp_path / "ids.h5", instance_ids())
    lists = volume_cfg(TRAIN_IMAGE=[tmp_path / "image.h5"], TRAIN_LABEL=[tmp_path / "ids.h5"], VAL_Z="[0, 2]")
    (vol,) = build_volume(config(*lists, "DATASET.VOLUME.LABEL_MODE", "instance", classes="['mito']")).volumes("val")
    np.testing.assert_array_equal(vol.instances, instance_ids()[:2])
    np.testing.assert_array_equal(vol.labels, (instance_ids()[None, :2] > 0).astype(np.uint8))

    write_volume(tmp_path / "mask255.h5", (class_map() > 0).astype(np.uint8) * 255)
    lists = volume_cfg(TRAIN_IMAGE=[tmp_path / "image.h5"], TRAIN_LABEL=[tmp_path / "mask255.h5"], VAL_Z="[0, 2]")
    (vol,) = build_volume(config(*lists, "DATASET.VOLUME.LABEL_MODE", "binary", classes="['mito']")).volumes("train")
    assert vol.instances is None and vol.labels.dtype == np.uint8
    np.testing.assert_array_equal(vol.labels[0], class_map()[2:] > 0)

    channels = np.stack([class_map() == 1, class_map() == 2]).astype(np.float32)
    channels[1, :, :, :8] = np.nan  # not annotated
    write_volume(tmp_path / "channels.h5", channels)
    lists = volume_cfg(TRAIN_IMAGE=[tmp_path / "image.h5"], TRAIN_LABEL=[tmp_path / "channels.h5"],
                       VAL_IMAGE=[tmp_path / "image.h5"], VAL_LABEL=[tmp_path / "channels.h5"])
    (vol,) = build_volume(config(*lists, "DATASET.VOLUME.LABEL_MODE", "channels")).volumes("val")
    np.testing.assert_array_equal(vol.labels, channels)  # NaN kept where not annotated


def test_several_volumes_per_split_relative_paths_images_and_unlabelled_test(tmp_path):
    (tmp_path / "data").mkdir()
    write_volume(tmp_path / "data" / "image.h5", em_image())
    write_volume(tmp_path / "data" / "label.h5", class_map())
    u16 = (em_image(seed=1).astype(np.uint16) * 100 + 500)
    write_volume(tmp_path / "data" / "u16.tif", u16)
    save_slices(tmp_path / "data" / "slices", em_image(seed=2))
    lists = volume_cfg(ROOT=tmp_path, TRAIN_IMAGE=["data/image.h5", "data/u16.tif", "data/slices"],
                       TRAIN_LABEL=["data/label.h5"] * 3, VAL_IMAGE=["data/image.h5", "data/image.h5"],
                       VAL_LABEL=["data/label.h5:main"] * 2, TEST_IMAGE=["data/u16.tif"])
    data = build_volume(config(*lists))
    train, val, (test,) = data.volumes("train"), data.volumes("val"), data.volumes("test")
    assert [v.name for v in train] == ["image", "u16", "slices"] and [v.name for v in val] == ["image", "image-2"]
    assert train[0].image.dtype == np.uint8  # used as is (/255 when sampled)
    scaled = train[1].image  # uint16: min/max of the volume -> [0, 1]
    assert scaled.dtype == np.float32 and scaled.min() == 0 and scaled.max() == 1
    np.testing.assert_allclose(scaled, (u16 - u16.min()) / float(u16.max() - u16.min()), rtol=1e-6)
    assert test.labels.shape == (2, *SHAPE) and np.isnan(test.labels).all()  # no TEST_LABEL: not annotated
    fixed = build_volume(config(*lists, "DATASET.VOLUME.INTENSITY_RANGE", "[500, 1000]")).volumes("train")[1].image
    np.testing.assert_allclose(fixed, np.clip((u16 - 500) / 500.0, 0, 1))


def bad_case(tmp_path: Path, case: str) -> tuple[list[str], str, str]:
    """(overrides, error type, message fragment) for one kind of bad input."""
    write_volume(tmp_path / "image.h5", em_image())
    write_volume(tmp_path / "label.h5", class_map())
    image, label = tmp_path / "image.h5", tmp_path / "label.h5"
    split = {"TRAIN_IMAGE": [image], "TRAIN_LABEL": [label], "VAL_Z": "[6, 8]"}
    if case == "missing file":
        split["TRAIN_IMAGE"] = [tmp_path / "nope.h5"]
        return volume_cfg(**split), "DataError", "DATASET.VOLUME.TRAIN_IMAGE[0]: " + str(tmp_path / "nope.h5") + ": no such file"
    if case == "missing dataset":
        split["TRAIN_LABEL"] = [f"{label}:/seg"]
        return volume_cfg(**split), "DataError", "DATASET.VOLUME.TRAIN_LABEL[0]: " + str(label) + ": no dataset 'seg'; available: main"
    if case == "shape mismatch":
        write_volume(tmp_path / "small.h5", class_map((8, 64, 60)))
        split["TRAIN_LABEL"] = [tmp_path / "small.h5"]
        return volume_cfg(**split), "DataError", "small.h5 has shape (8, 64, 60) (Z, Y, X) but its image"
    if case == "empty label":
        write_volume(tmp_path / "zeros.h5", np.zeros(SHAPE, np.uint8))
        split["TRAIN_LABEL"] = [tmp_path / "zeros.h5"]
        return volume_cfg(**split), "DataError", "zeros.h5 has no foreground voxel"
    if case == "fractional":
        write_volume(tmp_path / "soft.h5", class_map().astype(np.float32) * 0.5)
        split["TRAIN_LABEL"] = [tmp_path / "soft.h5"]
        return volume_cfg(**split), "DataError", "soft.h5 holds non-integer values (e.g. 0.5)"
    if case == "negative":
        write_volume(tmp_path / "neg.h5", class_map().astype(np.int16) - 1)
        split["TRAIN_LABEL"] = [tmp_path / "neg.h5"]
        return volume_cfg(**split), "DataError", "neg.h5 holds negative values (min -1)"
    if case == "too many classes":
        write_volume(tmp_path / "ids.h5", instance_ids())
        split["TRAIN_LABEL"] = [tmp_path / "ids.h5"]
        return volume_cfg(**split), "DataError", "ids.h5 holds value 70000 but DATASET.CLASSES has 2 classes"
    if case == "list lengths":
        split["TRAIN_LABEL"] = [label, label]
        return volume_cfg(**split), "ConfigError", "DATASET.VOLUME.TRAIN_LABEL has 2 items but DATASET.VOLUME.TRAIN_IMAGE has 1"
    if case == "unsupported extension":
        split["TRAIN_IMAGE"] = [tmp_path / "image.nrrd"]
        return volume_cfg(**split), "DataError", "image.nrrd: unsupported volume format '.nrrd'"
    if case == "no validation":
        del split["VAL_Z"]
        return volume_cfg(**split), "ConfigError", "no validation data"
    if case == "val_z too deep":
        split["VAL_Z"] = "[6, 9]"
        return volume_cfg(**split), "DataError", "VAL_Z [6, 9] must be a proper sub-range of Z in volume 'image' with 8 slices"
    raise AssertionError(case)


BAD_CASES = ["missing file", "missing dataset", "shape mismatch", "empty label", "fractional", "negative",
             "too many classes", "list lengths", "unsupported extension", "no validation", "val_z too deep"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_naming_path_and_problem(tmp_path, case):
    overrides, error, fragment = bad_case(tmp_path, case)
    with pytest.raises((ConfigError, DataError)) as info:
        data = build_volume(config(*overrides))
        data.volumes("train"), data.volumes("val")
    assert type(info.value).__name__ == error
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_mode_and_class_count_checks(tmp_path):
    lists = volume_cfg(TRAIN_IMAGE=["a.h5"], TRAIN_LABEL=["b.h5"], VAL_Z="[0, 1]")
    with pytest.raises(ConfigError, match="LABEL_MODE instance labels one class but DATASET.CLASSES is"):
        build_volume(config(*lists, "DATASET.VOLUME.LABEL_MODE", "instance"))
    with pytest.raises(ConfigError, match="DATASET.VOLUME.LABEL_MODE = 'semantic' is not one of 'classmap'"):
        build_volume(config(*lists, "DATASET.VOLUME.LABEL_MODE", "semantic"))
    with pytest.raises(ConfigError, match=r"VAL_Z = \[1, 3\] holds out 2 slices, fewer than DATASET.PATCH_SIZE Z = 4"):
        build_volume(config(*lists, "DATASET.DIMS", "3", "DATASET.PATCH_SIZE", "[4, 32, 32]", "DATASET.VOLUME.VAL_Z", "[1, 3]"))
    with pytest.raises(ConfigError, match="DATASET.VOLUME lists no volumes"):
        build_volume(config())


# -- through pytc-train ----------------------------------------------------------------------------


def assert_one_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_pytc_train_on_h5_volumes_with_relative_paths(tmp_path):
    write_volume(tmp_path / "image.h5", em_image((8, 64, 64)))
    write_volume(tmp_path / "label.h5", class_map((8, 64, 64)))
    mask = np.ones(SHAPE, np.uint8)
    mask[:, :, 60:] = 0
    write_volume(tmp_path / "mask.h5", mask)
    run_dir = tmp_path / "run"
    result = run_cli("pytc-train", *tiny_args(run_dir, "DATASET.NAME", "volume", *volume_cfg(
        TRAIN_IMAGE=["image.h5"], TRAIN_LABEL=["label.h5:/main"], TRAIN_VALID_MASK=["mask.h5"], VAL_Z="[6, 8]"),
        "SOLVER.ITERATION_TOTAL", "3", "SOLVER.ITERATION_VAL", "3"), cwd=tmp_path)  # relative to the working directory
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 3 and set(metrics["classes"]) == {"nuc", "mito"}
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert "NAME: volume" in (run_dir / "config.yaml").read_text()


@pytest.mark.parametrize("case", ["shape mismatch", "missing dataset"])
def test_pytc_train_bad_volume_exits_2_and_writes_nothing(tmp_path, case):
    overrides, _, fragment = bad_case(tmp_path, case)
    run_dir = tmp_path / "run"
    result = run_main("pytc-train", *tiny_args(run_dir, "DATASET.NAME", "volume", *overrides))
    assert_one_error(result, fragment)
    assert not run_dir.exists()


# -- the converter -----------------------------------------------------------------------------------


def test_converter_round_trip_binary_masks_feeds_the_example_config(tmp_path):
    image, mito = em_image(), (class_map() == 2)
    save_slices(tmp_path / "em", image, "em_{}.png")
    save_slices(tmp_path / "mito", mito.astype(np.uint8) * 255, "mito_{}.png")
    out = tmp_path / "data" / "mito"
    written = convert_slices(tmp_path / "em", tmp_path / "mito", out)
    assert set(written) == {out / "image.h5", out / "label.h5"}
    np.testing.assert_array_equal(read_volume(f"{out / 'image.h5'}:/main"), image)
    label = read_volume(out / "label.h5")
    assert label.dtype == np.uint8
    np.testing.assert_array_equal(label, mito.astype(np.uint8))
    # configs/volume_example.yaml lists data/mito/{image,label}.h5, relative to DATASET.VOLUME.ROOT
    cfg = load_config(ROOT / "configs" / "volume_example.yaml",
                      overrides=[*volume_cfg(ROOT=tmp_path, VAL_Z="[6, 8]"), "DATASET.PATCH_SIZE", "[1, 32, 32]"])
    data = build_volume(cfg)
    (train,), (val,) = data.volumes("train"), data.volumes("val")
    np.testing.assert_array_equal(train.labels[0], mito[:6])
    np.testing.assert_array_equal(val.image, image[6:])


def test_converter_rgb_instances_keep_one_id_per_colour_across_slices(tmp_path):
    ids = instance_ids()
    palette = {7: (255, 0, 0), 300: (0, 128, 255), 70000: (12, 200, 3)}
    rgb = np.zeros((*SHAPE, 3), np.uint8)
    for object_id, colour in palette.items():
        rgb[ids == object_id] = colour
    save_slices(tmp_path / "em", em_image())
    save_slices(tmp_path / "vast", rgb)
    result = subprocess.run([sys.executable, str(SCRIPT), "--images", str(tmp_path / "em"), "--labels", str(tmp_path / "vast"),
                             "--label-kind", "rgb-instance", "--out-dir", str(tmp_path / "out")], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "3 instances" in result.stdout
    label = read_volume(tmp_path / "out" / "label.h5")
    assert label.dtype == np.uint32 and set(np.unique(label)) == {0, 1, 2, 3}
    for object_id in palette:  # each object is exactly one new id, the same on every slice
        (new_id,) = np.unique(label[ids == object_id])
        np.testing.assert_array_equal(label == new_id, ids == object_id)
    # the converted files train as-is: LABEL_MODE instance
    lists = volume_cfg(TRAIN_IMAGE=[tmp_path / "out" / "image.h5"], TRAIN_LABEL=[tmp_path / "out" / "label.h5"], VAL_Z="[6, 8]")
    (vol,) = build_volume(config(*lists, "DATASET.VOLUME.LABEL_MODE", "instance", classes="['mito']")).volumes("train")
    np.testing.assert_array_equal(vol.instances, label[:6])


def test_converter_reads_palette_and_grey_labels(tmp_path):
    ids = instance_ids()[:, :, :]
    grey = np.where(ids > 0, (ids % 251).astype(np.uint8) + 1, 0).astype(np.uint8)
    save_slices(tmp_path / "grey", grey)
    (tmp_path / "pal").mkdir()
    for z, plane in enumerate(grey):
        Image.fromarray(plane, "L").convert("P").save(tmp_path / "pal" / f"{z}.png")
    for directory in ("grey", "pal"):
        label = read_label_stack(tmp_path / directory, "rgb-instance")
        assert len(np.unique(label)) == 4
        np.testing.assert_array_equal(label > 0, ids > 0)


def test_converter_cli_errors_write_nothing_and_help(tmp_path):
    save_slices(tmp_path / "em", em_image())
    save_slices(tmp_path / "mito", (class_map()[:7] > 0).astype(np.uint8))  # one slice short
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(SCRIPT), "--images", str(tmp_path / "em"), "--labels", str(tmp_path / "mito"),
                             "--out-dir", str(out)], check=False, capture_output=True, text=True)
    assert_one_error(result, "labels stack to (7, 64, 64) (Z, Y, X) but the images in", "to (8, 64, 64)")
    assert not out.exists()
    result = subprocess.run([sys.executable, str(SCRIPT), "--images", str(tmp_path / "nothing"), "--out-dir", str(out)],
                            check=False, capture_output=True, text=True)
    assert_one_error(result, "nothing: no such directory")
    assert not out.exists()
    help_text = subprocess.run([sys.executable, str(SCRIPT), "--help"], check=False, capture_output=True, text=True).stdout
    assert "--label-kind {binary,rgb-instance}" in help_text and "label.h5" in help_text
