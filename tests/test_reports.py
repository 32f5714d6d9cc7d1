"""Comparison reports, evaluation tables and pictures: real tiny runs, numbers recomputed from saved files."""
from __future__ import annotations

import csv
import json
import re

import h5py
import numpy as np
import pytest
from scipy import ndimage
from conftest import TINY, run_cli
from PIL import Image

from emseg_plugins.visualize.composite import FILL_ALPHA, class_colours, composite, to_unit_gray
from emseg_plugins.visualize.panels import GAP, TITLE_HEIGHT, slice_panels

GRID = ["--grid", "LOSS.NAME=dice_bce,per_class_combo"]


def _expected(gray: float, colour) -> np.ndarray:
    return (np.clip((1 - FILL_ALPHA) * gray + FILL_ALPHA * np.asarray(colour) / 255, 0, 1) * 255 + 0.5).astype(np.uint8)


def test_composite_colours_at_label_pixels():
    classes = ["nuc", "mito", "er_mem"]
    colours = class_colours(classes)
    assert colours[:2] == [(255, 0, 0), (0, 255, 255)] and colours[2] not in colours[:2]
    image = np.full((8, 8), 200, np.uint8)
    image[0, 0] = 255  # brightest pixel under a label: must not wrap around
    labels = np.zeros((3, 8, 8), np.float32)
    labels[0, 0, 0] = labels[0, 2, 3] = 1
    labels[1, 5, 5] = 1
    labels[2, 7, 0] = 1
    labels[1, 6, 6] = np.nan  # unannotated: not tinted
    rgb = composite(image, labels, colours)
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    np.testing.assert_array_equal(rgb[0, 0], _expected(1.0, (255, 0, 0)))  # (255, 140, 140)
    np.testing.assert_array_equal(rgb[2, 3], _expected(200 / 255, (255, 0, 0)))
    np.testing.assert_array_equal(rgb[5, 5], _expected(200 / 255, (0, 255, 255)))
    np.testing.assert_array_equal(rgb[7, 0], _expected(200 / 255, colours[2]))
    np.testing.assert_array_equal(rgb[6, 6], [200, 200, 200])
    np.testing.assert_array_equal(rgb[4, 4], [200, 200, 200])
    # the same picture from a float image in [0, 1]
    np.testing.assert_array_equal(composite(image / np.float32(255), labels, colours), rgb)
    # predictions: one-pixel outlines in full colour, interiors untouched
    pred = np.zeros((3, 8, 8), bool)
    pred[1, 2:6, 2:6] = True
    outlined = composite(image, None, colours, pred)
    np.testing.assert_array_equal(outlined[2, 2], [0, 255, 255])
    np.testing.assert_array_equal(outlined[3, 3], [200, 200, 200])
    # raw floats far outside [0, 1] are stretched, never overflow
    gray = to_unit_gray(np.linspace(-1e4, 1e6, 64, dtype=np.float32).reshape(8, 8))
    assert 0 <= gray.min() and gray.max() <= 1
    panel = slice_panels(image, labels, colours, pred)
    assert panel.shape == (TITLE_HEIGHT + 8, 3 * 8 + 2 * GAP, 3)
    np.testing.assert_array_equal(panel[TITLE_HEIGHT + 5, 8 + GAP + 5], _expected(200 / 255, (0, 255, 255)))


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """Two tiny runs: the first trained in this process, the second by `emseg compare`, which skips the first."""
    from emseg_plugins.engine.run import train
    from emseg_plugins.reports.compare import plan_runs

    out = tmp_path_factory.mktemp("compare")
    runs = plan_runs(str(TINY), None, [], GRID[1:], out, budget_steps=2)
    train(runs[0].cfg)
    result = run_cli("emseg", "compare", "--config-file", str(TINY), "--budget-steps", "2", "--output", str(out), *GRID)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, runs, result.stdout


def test_compare_report_rows_recomputed_from_saved_metrics(compared):
    out, runs, stdout = compared
    assert f"{runs[0].name}: finished before, skipped" in stdout and f"{runs[1].name}: done" in stdout
    assert [r.run_dir.name for r in runs] == ["loss.name=dice_bce", "loss.name=per_class_combo"]
    saved = [json.loads((r.run_dir / "metrics.json").read_text()) for r in runs]
    assert all(s["global_step"] == 2 for s in saved)
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert [(row["run"], row["class"]) for row in rows] == [(r.name, c) for r in runs for c in ("nuc", "mito", "mean")]
    for row in rows:
        metrics = saved[[r.name for r in runs].index(row["run"])]
        table = metrics["mean"] if row["class"] == "mean" else metrics["classes"][row["class"]]
        for metric in ("dice", "iou", "precision", "recall", "accuracy"):
            assert float(row[metric]) == pytest.approx(table[metric], abs=1e-6)
        base = saved[0]["mean"] if row["class"] == "mean" else saved[0]["classes"][row["class"]]
        assert float(row["dice_change"]) == pytest.approx(table["dice"] - base["dice"], abs=1e-6)
        if base["dice"] > 0:
            assert float(row["dice_improvement_pct"]) == pytest.approx((table["dice"] - base["dice"]) / base["dice"] * 100, abs=1e-3)
        else:
            assert row["dice_improvement_pct"] == ""
    md = (out / "report.md").read_text()
    nuc = [saved[i]["classes"]["nuc"]["dice"] for i in range(2)]
    assert f"| nuc | {nuc[0]:.3f} | {nuc[1]:.3f} |" in md
    for png in ("dice_per_class.png", "val_dice_curves.png"):
        with Image.open(out / png) as picture:
            assert picture.format == "PNG" and picture.size[0] > 300
    # curves: the validation after step 2 of each run, read back from TensorBoard
    from emseg_plugins.reports.plots import read_val_curves

    curve = read_val_curves(runs[0].run_dir, ["nuc", "mito"])
    assert [step for step, _ in curve["mean"]] == [2]


def test_evaluate_and_view_cli(compared, tmp_path):
    from emseg_plugins.config import load_config
    from emseg_plugins.registry import DATASETS

    _, runs, _ = compared
    checkpoint = runs[0].run_dir / "checkpoints" / "last.ckpt"
    evaluation = tmp_path / "eval"
    result = run_cli("emseg", "evaluate", "--config-file", str(TINY), "--checkpoint", str(checkpoint), "--output", str(evaluation),
                     "--instance-class", "mito", "INFERENCE.THRESHOLD", "0.3")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert set(metrics["classes"]) == {"nuc", "mito"} and metrics["split"] == "val"
    with (evaluation / "metrics.csv").open() as f:
        assert [row["class"] for row in csv.DictReader(f)] == ["nuc", "mito", "mean"]
    cfg = load_config(TINY, None, ["INFERENCE.THRESHOLD", "0.3"])
    volume = DATASETS.build(cfg.DATASET.NAME, cfg).volumes("val")[0]
    scores = metrics["instances"]["volumes"][volume.name]
    assert scores["true"] == len(np.setdiff1d(np.unique(volume.instances), [0]))
    with h5py.File(evaluation / f"{volume.name}.h5") as f:
        masks = f["masks"][:]
    import cc3d

    assert scores["predicted"] == cc3d.connected_components(masks[1].astype(bool), connectivity=26).max()
    rows = list(csv.DictReader((evaluation / "instance_metrics.csv").open()))
    assert [r["volume"] for r in rows] == [volume.name, "pooled"]
    assert 0 <= float(rows[0]["are"]) <= 1 and float(rows[0]["voi_merge"]) >= 0 and rows[1]["are"] == ""  # per volume only

    # pictures with these predictions: each PNG is exactly the composite of its slice
    views = tmp_path / "views"
    result = run_cli("emseg", "view", "--config-file", str(TINY), "--n", "3", "--crop", "40", "--predictions", str(evaluation),
                     "--output", str(views), "INFERENCE.THRESHOLD", "0.3")
    assert result.returncode == 0, result.stderr[-3000:]
    files = sorted((views / "composites").glob("*.png"))
    assert len(files) == 3 and (views / "composites.png").exists() and (views / "panels.png").exists()
    colours = class_colours(["nuc", "mito"])
    for path in files:
        z, y, x = (int(v) for v in re.search(r"_z(\d+)_y(\d+)_x(\d+)", path.name).groups())
        window = (z, slice(y, y + 40), slice(x, x + 40))
        expected = composite(volume.image[window], volume.labels[(slice(None), *window)], colours, masks[(slice(None), *window)])
        np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), expected)
        with Image.open(views / "panels" / path.name) as panel:
            assert panel.size == (3 * 40 + 2 * GAP, TITLE_HEIGHT + 40)
        with Image.open(views / "instances" / path.name) as instances:  # the volume's mito ids (no predicted ones here)
            assert instances.size == (40, TITLE_HEIGHT + 40)


def test_cli_errors_write_nothing(tmp_path, capsys):
    from emseg_plugins.cli.main import main

    out = tmp_path / "never"
    result = run_cli("emseg", "compare", "--config-file", str(TINY), "--output", str(out), "--grid", "LOSS.NAME")
    assert result.returncode == 2 and result.stderr.count("error:") == 1 and "Traceback" not in result.stderr
    assert "KEY=VALUE" in result.stderr and not out.exists()
    for argv, needle in ((["view", "--config-file", str(TINY), "--output", str(out), "--predictions", str(tmp_path / "nope.h5")], "nope.h5"),
                         (["evaluate", "--config-file", str(TINY), "--checkpoint", str(tmp_path / "x.ckpt"), "--output", str(out)], "x.ckpt"),
                         (["compare", "--config-file", str(TINY), "--output", str(out), "--grid", "LOSS.NAME=dice_bce,nope"], "nope")):
        with pytest.raises(SystemExit) as exit_status:  # in this process: the same code path, without another interpreter start
            main(argv)
        err = capsys.readouterr().err
        assert exit_status.value.code == 2 and err.count("error:") == 1 and needle in err and not out.exists(), err


def test_instance_overlay_gives_each_object_one_colour_of_its_own_and_white_borders():
    from emseg_plugins.visualize.composite import instance_overlay

    image = np.full((20, 30), 100, np.uint8)
    ids = np.zeros((20, 30), np.uint32)
    ids[2:10, 2:14], ids[2:10, 14:26], ids[12:18, 5:20] = 7, 8, 300  # 7 and 8 touch
    rgb = instance_overlay(image, ids)
    interior = {i: rgb[ndimage.binary_erosion(ids == i, iterations=2)] for i in (7, 8, 300)}
    colours = {i: {tuple(c) for c in px} for i, px in interior.items()}
    assert all(len(c) == 1 for c in colours.values())  # one colour inside each object
    assert len({next(iter(c)) for c in colours.values()}) == 3  # and a different one for each
    assert (rgb[2:10, 13:15] == 255).all()  # the border between 7 and 8 is white
    assert (rgb[ids == 0] == 100).all()  # background stays the gray image
    again = instance_overlay(image, np.where(ids == 7, 7, 0))
    assert tuple(again[5, 5]) == tuple(rgb[5, 5])  # an id's colour does not depend on the other ids
