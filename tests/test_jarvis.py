"""``jarvis`` on real neuroglancer-precomputed layers written by CloudVolume to file:// paths."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cloudvolume import CloudVolume
from conftest import ROOT, TINY, run_cli

from emseg_plugins.config import load_config
from emseg_plugins.datasets.jarvis import build_jarvis, check_config, to_uint8
from emseg_plugins.errors import ConfigError, DataError

OFFSET = (1000, 2000, 100)  # voxel offset (x, y, z) of every layer at MIP 0
SIZE = (64, 64, 16)  # (x, y, z) voxels at MIP 0
BOX = [1004, 2008, 100, 1060, 2040, 116]  # x0, y0, z0, x1, y1, z1: 56 x 32 x 16 voxels
MARK = (1010, 2020, 103)  # (x, y, z) of the one image voxel set to 255
MITO_IDS = (3, 17, 2**40 + 1)


def make_layer(path: Path, data_xyz: np.ndarray, layer_type: str, resolution=(8, 8, 40), offset=OFFSET, mips: int = 1) -> str:
    """A precomputed layer holding ``data_xyz`` (X, Y, Z) at MIP 0 and 2x2x1 strided copies at MIPs 1.."""
    url = f"file://{path}"
    info = CloudVolume.create_new_info(num_channels=1, layer_type=layer_type, data_type=str(data_xyz.dtype), encoding="raw",
                                       resolution=list(resolution), voxel_offset=list(offset), chunk_size=[32, 32, 8],
                                       volume_size=list(data_xyz.shape))
    volume = CloudVolume(url, info=info, progress=False)
    for _ in range(1, mips):
        volume.add_scale((2, 2, 1))
    volume.commit_info()
    for mip in range(mips):
        CloudVolume(url, mip=mip, progress=False)[:, :, :] = data_xyz[:: 2**mip, :: 2**mip, :, None]
    return url


@pytest.fixture(scope="module")
def layers(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("layers")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, SIZE, dtype=np.uint8)
    image[tuple(m - o for m, o in zip(MARK, OFFSET))] = 255
    nuc = np.zeros(SIZE, np.uint32)
    nuc[20:40, 10:30, 2:12] = 5
    nuc[50:60, 20:40, 0:16] = 9
    mito = np.zeros(SIZE, np.uint64)
    for i, ids in enumerate(MITO_IDS):
        mito[8 + 16 * i : 18 + 16 * i, 12 + 10 * i : 20 + 10 * i, 1 + 4 * i : 6 + 4 * i] = ids
    urls = {
        "img": make_layer(root / "img", image, "image", mips=2),
        "nuc": make_layer(root / "nuc", nuc, "segmentation", mips=2),
        "mito": make_layer(root / "mito", mito, "segmentation", mips=2),
        "img16": make_layer(root / "img16", image.astype(np.uint16) * 20 + 1000, "image"),
        "mito_mask": make_layer(root / "mito_mask", (mito > 0).astype(np.uint8) * 255, "image"),
        "coarse": make_layer(root / "coarse", nuc, "segmentation", resolution=(16, 16, 40)),
        "narrow": make_layer(root / "narrow", nuc[:40], "segmentation"),  # X 1000..1040 only
        "holes": make_layer(root / "holes", nuc, "segmentation"),
        "no_info": f"file://{root / 'empty'}",
    }
    (root / "empty").mkdir()
    next((root / "holes").rglob("1032-1064_2000-2032_100-108*")).unlink()  # one missing chunk
    arrays = {"image": image, "nuc": nuc, "mito": mito}
    return {**urls, **{f"_{k}": v for k, v in arrays.items()}}


def jarvis_cfg(layers, classes=("nuc", "mito"), patch=(1, 16, 16), **keys):
    """A loaded config selecting ``jarvis`` with the test layers; ``keys`` override DATASET.JARVIS."""
    node = {"IMAGE": layers["img"], "LABELS": [f"nuc={layers['nuc']}", f"mito={layers['mito']}"], "BOUNDS": BOX,
            "VAL_Z": [12, 16], "PROGRESS": False, **keys}
    overrides = ["DATASET.NAME", "jarvis", "DATASET.CLASSES", repr(list(classes)), "DATASET.PATCH_SIZE", repr(list(patch))]
    for key, value in node.items():
        overrides += [f"DATASET.JARVIS.{key}", repr(value)]
    return load_config(overrides=overrides)


def zyx(array_xyz: np.ndarray, box=BOX, step: int = 1) -> np.ndarray:
    """The part of a written (X, Y, Z) array inside ``box`` at the MIP whose X/Y step is ``step``, as (Z, Y, X)."""
    offset = (OFFSET[0] // step, OFFSET[1] // step, OFFSET[2])
    (x0, y0, z0), (x1, y1, z1) = [[b - o for b, o in zip(corner, offset)] for corner in (box[:3], box[3:])]
    return array_xyz[::step, ::step][x0:x1, y0:y1, z0:z1].transpose(2, 1, 0)


def whole(data) -> list:
    """Every train and val volume; with VAL_Z at the end of the box, their Z-concatenation is the box."""
    return data.volumes("train") + data.volumes("val")


def test_box_is_read_in_zyx_order_with_binary_labels_and_mito_ids(layers):
    data = build_jarvis(jarvis_cfg(layers))
    train, val = data.volumes("train"), data.volumes("val")
    assert [v.name for v in train + val] == ["jarvis-train-below", "jarvis-val"]  # VAL_Z ends the box: no slices above
    image = np.concatenate([train[0].image, val[0].image])
    labels = np.concatenate([train[0].labels, val[0].labels], axis=1)
    instances = np.concatenate([train[0].instances, val[0].instances])
    assert image.shape == (16, 32, 56) and image.dtype == np.uint8
    x, y, z = (m - b for m, b in zip(MARK, BOX))
    assert image[z, y, x] == 255 and (image == 255).sum() == 1  # (x, y, z) written -> (z, y, x) read
    np.testing.assert_array_equal(image, zyx(layers["_image"]))

    assert labels.shape == (2, 16, 32, 56) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels[0], zyx(layers["_nuc"]) > 0)  # ids 5 and 9 -> 1
    np.testing.assert_array_equal(labels[1], zyx(layers["_mito"]) > 0)
    assert set(np.unique(labels)) == {0, 1}

    mito = zyx(layers["_mito"])
    ids = {int(i) for i in np.unique(mito) if i}
    assert ids == set(MITO_IDS)  # every mitochondrion lies in the box
    renumbered = {i: np.unique(instances[mito == i]) for i in ids}
    assert all(len(v) == 1 for v in renumbered.values())  # one instance id per original id
    assert sorted(int(v[0]) for v in renumbered.values()) == [1, 2, 3]  # renumbered 1..N, distinct
    assert not instances[mito == 0].any() and instances.dtype == np.uint16  # CloudVolume renumber: compact ids, not uint64

    sample = data.train_dataset(4)[0]
    assert sample["image"].shape == (1, 16, 16) and sample["label"].shape == (2, 16, 16)
    assert sample["instance"].dtype == torch.int64


def test_z_split_holds_out_slices_relative_to_the_box(layers):
    data = build_jarvis(jarvis_cfg(layers, VAL_Z=[5, 9]))
    below, above = data.volumes("train")
    (val,) = data.volumes("val")
    assert (below.name, above.name) == ("jarvis-train-below", "jarvis-train-above")
    assert [v.image.shape[0] for v in (below, val, above)] == [5, 4, 7]
    expected = zyx(layers["_image"])
    np.testing.assert_array_equal(val.image, expected[5:9])
    np.testing.assert_array_equal(np.concatenate([below.image, val.image, above.image]), expected)
    with pytest.raises(DataError, match="has no 'test' split"):
        data.volumes("test")


@pytest.mark.parametrize("corner, held", [("x1y1", (slice(16, 32), slice(28, 56))), ("x0y1", (slice(16, 32), slice(0, 28))),
                                          ("x0y0", (slice(0, 16), slice(0, 28)))])
def test_corner_split_holds_out_an_xy_quadrant_and_trains_on_the_rest(layers, corner, held):
    data = build_jarvis(jarvis_cfg(layers, SPLIT="corner", VAL_CORNER=corner))
    (val,) = data.volumes("val")
    expected = zyx(layers["_image"])
    np.testing.assert_array_equal(val.image, expected[:, held[0], held[1]])
    train = data.volumes("train")
    assert sum(v.image.size for v in train) + val.image.size == expected.size  # the rest, no overlap
    mask = np.ones(expected.shape[1:], bool)
    mask[held] = False
    train_values = np.sort(np.concatenate([v.image.ravel() for v in train]))
    np.testing.assert_array_equal(train_values, np.sort(expected[:, mask].ravel()))
    assert val.instances.shape == val.image.shape


def test_test_bounds_are_a_separate_box_read_on_first_use(layers):
    test_box = [1000, 2000, 104, 1032, 2064, 112]
    data = build_jarvis(jarvis_cfg(layers, TEST_BOUNDS=test_box))
    assert callable(data.splits["test"]) and callable(data.splits["train"])  # nothing downloaded yet
    (test,) = data.volumes("test")
    assert test.name == "jarvis-test" and test.image.shape == (8, 64, 32)
    np.testing.assert_array_equal(test.labels[0], zyx(layers["_nuc"], test_box) > 0)
    assert callable(data.splits["train"])  # the training box is still not read


def test_mip_1_reads_the_box_in_mip_1_voxels(layers):
    box = [502, 1004, 100, 530, 1020, 116]  # BOX at MIP 1 (x and y halved)
    data = build_jarvis(jarvis_cfg(layers, MIP=1, BOUNDS=box))
    image = np.concatenate([v.image for v in whole(data)])
    assert image.shape == (16, 16, 28)
    np.testing.assert_array_equal(image, zyx(layers["_image"], box, step=2))


def test_non_uint8_image_is_rescaled_and_mask_layers_give_no_instances(layers):
    data = build_jarvis(jarvis_cfg(layers, IMAGE=layers["img16"], LABELS=[f"nuc={layers['nuc']}", f"mito={layers['mito_mask']}"]))
    image = np.concatenate([v.image for v in whole(data)])
    raw = zyx(layers["_image"]).astype(np.float64) * 20 + 1000
    expected = np.rint((raw - raw.min()) * 255 / (raw.max() - raw.min()))
    np.testing.assert_array_equal(image, expected)  # the box's own min..max -> 0..255
    assert image.dtype == np.uint8 and image.min() == 0 and image.max() == 255
    assert all(v.instances is None for v in whole(data))  # an image-type mask layer carries no ids
    np.testing.assert_array_equal(np.concatenate([v.labels[1] for v in whole(data)]), zyx(layers["_mito"]) > 0)  # 255 -> 1

    fixed = build_jarvis(jarvis_cfg(layers, IMAGE=layers["img16"], IMAGE_RANGE=[1000.0, 6100.0]))
    np.testing.assert_array_equal(fixed.volumes("val")[0].image, np.rint((raw[12:16] - 1000) / 20))


def test_to_uint8_rules():
    assert to_uint8(np.full((2, 2, 2), 7, np.uint8)).max() == 7  # uint8 kept as is
    assert not to_uint8(np.full((1, 2, 2), 3.5, np.float32)).any()  # constant image -> 0
    np.testing.assert_array_equal(to_uint8(np.array([[[-1.0, 0.0, 0.5, 1.0, 2.0]]]), (0.0, 1.0)), [[[0, 0, 128, 255, 255]]])


def test_cache_directory_keeps_downloaded_chunks(layers, tmp_path):
    cache = tmp_path / "cache"
    build_jarvis(jarvis_cfg(layers, CACHE=str(cache))).volumes("val")
    cached = {p.parent.parent.name for p in cache.rglob("8_8_40/*") if p.is_file()}
    assert {"img", "nuc", "mito"} <= cached


def test_missing_chunks_fail_unless_fill_missing(layers):
    cfg = jarvis_cfg(layers, LABELS=[f"nuc={layers['holes']}", f"mito={layers['mito']}"])
    data = build_jarvis(cfg)  # metadata is fine; the hole shows when voxels are read
    with pytest.raises(DataError, match="FILL_MISSING") as err:
        data.volumes("train")
    assert layers["holes"] in str(err.value) and "\n" not in str(err.value)
    filled = build_jarvis(jarvis_cfg(layers, LABELS=[f"nuc={layers['holes']}", f"mito={layers['mito']}"], FILL_MISSING=True))
    nuc = np.concatenate([v.labels[0] for v in whole(filled)])
    expected = zyx(layers["_nuc"]) > 0
    hole = (slice(0, 8), slice(0, 24), slice(28, 56))  # chunk x 1032-1064, y 2000-2032, z 100-108 inside BOX
    assert expected[hole].any() and not nuc[hole].any()
    np.testing.assert_array_equal(nuc[:, 24:], expected[:, 24:])


@pytest.mark.parametrize("keys, error, fragments", [
    ({"IMAGE": "file:///nonexistent/jarvis-img"}, DataError,
     ["DATASET.JARVIS.IMAGE 'file:///nonexistent/jarvis-img' is not a readable neuroglancer-precomputed layer", "No info file"]),
    ({"IMAGE": "no_info"}, DataError, ["is not a readable neuroglancer-precomputed layer", "InfoUnavailableError"]),
    ({"IMAGE": "gs://"}, DataError, ["DATASET.JARVIS.IMAGE 'gs://'", "UnsupportedProtocolError"]),
    ({"BOUNDS": [1004, 2008, 100, 1070, 2040, 116]}, DataError,
     ["DATASET.JARVIS.BOUNDS [1004, 2008, 100, 1070, 2040, 116]", "bounds [1000, 2000, 100, 1064, 2064, 116] of DATASET.JARVIS.IMAGE"]),
    ({"TEST_BOUNDS": [0, 0, 0, 8, 8, 8]}, DataError, ["DATASET.JARVIS.TEST_BOUNDS [0, 0, 0, 8, 8, 8]", "is not inside the bounds"]),
    ({"LABELS": ["nuc=narrow", "mito=mito"]}, DataError,
     ["DATASET.JARVIS.BOUNDS", "bounds [1000, 2000, 100, 1040, 2064, 116] of DATASET.JARVIS.LABELS nuc"]),
    ({"LABELS": ["nuc=coarse", "mito=mito"]}, DataError,
     ["DATASET.JARVIS.LABELS nuc", "resolution [16.0, 16.0, 40.0] nm", "[8.0, 8.0, 40.0] nm"]),
    ({"MIP": 3}, DataError, ["DATASET.JARVIS.MIP = 3 is not available in DATASET.JARVIS.IMAGE", "0: [8, 8, 40] nm, 1: [16, 16, 40] nm"]),
    ({"LABELS": ["mito=mito"]}, ConfigError, ["DATASET.CLASSES ['nuc'] have no layer in DATASET.JARVIS.LABELS", "nuc=<cloudpath>"]),
    ({"LABELS": ["nuclei", "mito=mito"]}, ConfigError, ["DATASET.JARVIS.LABELS entry 'nuclei' must read \"class=cloudpath\""]),
    ({"BOUNDS": [10, 10, 10, 5, 20, 20]}, ConfigError, ["DATASET.JARVIS.BOUNDS = [10, 10, 10, 5, 20, 20] must be x0, y0, z0"]),
    ({"VAL_Z": [0, 16]}, ConfigError, ["DATASET.JARVIS.VAL_Z = [0, 16] must be [start, stop)"]),
    ({"SPLIT": "corner", "VAL_CORNER": "top"}, ConfigError, ["DATASET.JARVIS.VAL_CORNER = 'top' is not one of"]),
    ({"IMAGE": ""}, ConfigError, ["DATASET.JARVIS.IMAGE is empty"]),
])
def test_bad_input_is_one_error_line_naming_the_key_and_value(layers, keys, error, fragments):
    resolved = {k: [_url(layers, e) for e in v] if k == "LABELS" else _url(layers, v) for k, v in keys.items()}
    with pytest.raises(error) as err:
        build_jarvis(jarvis_cfg(layers, **resolved))
    message = str(err.value)
    assert "\n" not in message and "\x1b" not in message
    for fragment in fragments:
        assert fragment in message, message


def _url(layers, value):
    """Test-layer names (``nuc``, ``mito=mito``) -> their file:// urls; anything else unchanged."""
    if isinstance(value, str):
        cls, sep, name = value.rpartition("=")
        if name in layers:
            return f"{cls}{sep}{layers[name]}"
    return value


def test_joenet_jarvis_config_loads_with_the_notes_layers():
    cfg = load_config(ROOT / "configs" / "joenet_jarvis.yaml")
    node = cfg.DATASET.JARVIS
    assert cfg.DATASET.NAME == "jarvis" and cfg.MODEL.ARCHITECTURE == "joenet" and list(cfg.DATASET.CLASSES) == ["nuc", "mito"]
    assert node.IMAGE == "gs://joe_exp/jarvis/jarvis-1-img/"
    assert check_config(cfg) == {"nuc": "gs://joe_exp/jarvis/jarvis-1-nuclei/", "mito": "gs://joe_exp/jarvis/jarvis-1-mito/"}
    assert list(node.BOUNDS) == [5852, 4020, 800, 7900, 6068, 900] and list(node.VAL_Z) == [80, 100]  # Z 880-900 held out


def write_run_config(path: Path, layers, **jarvis) -> Path:
    node = {"IMAGE": layers["img"], "LABELS": [f"nuc={layers['nuc']}", f"mito={layers['mito']}"], "BOUNDS": BOX,
            "VAL_Z": [12, 16], "PROGRESS": False, **jarvis}
    config = {"_BASE_": str(TINY), "DATASET": {"NAME": "jarvis", "JARVIS": node},
              "SOLVER": {"ITERATION_TOTAL": 3, "ITERATION_VAL": 3}}
    path.write_text(yaml.safe_dump(config))
    return path


def test_pytc_train_trains_three_steps_on_precomputed_layers(layers, tmp_path):
    config, run_dir = write_run_config(tmp_path / "jarvis.yaml", layers), tmp_path / "run"
    result = run_cli("pytc-train", "--config-file", str(config), "DATASET.OUTPUT_PATH", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["classes"]) == {"nuc", "mito"} and metrics["global_step"] == 3
    saved = load_config(run_dir / "config.yaml").DATASET
    assert saved.NAME == "jarvis" and list(saved.JARVIS.BOUNDS) == BOX


def test_cli_missing_layer_exits_2_with_one_error_line_and_writes_nothing(layers, tmp_path):
    config = write_run_config(tmp_path / "jarvis.yaml", layers, IMAGE="file:///nonexistent/jarvis-img")
    run_dir = tmp_path / "run"
    result = run_cli("pytc-train", "--config-file", str(config), "DATASET.OUTPUT_PATH", str(run_dir))
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "DATASET.JARVIS.IMAGE 'file:///nonexistent/jarvis-img' is not a readable neuroglancer-precomputed layer" in errors[0]
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()
