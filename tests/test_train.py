"""pytc-train end to end on the tiny config: outputs, inference, resume after SIGKILL, DDP, plugins."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import BIN, ROOT, TINY, run_cli, run_main, tiny_args
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from emseg_plugins.config import load_config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    result = run_cli("pytc-train", *tiny_args(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def test_run_leaves_checkpoints_config_logs_and_metrics(tiny_run):
    run_dir, result = tiny_run
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts
    assert any(name.startswith("step000006-dice") for name in ckpts), ckpts  # top-k named by step and score
    saved = load_config(run_dir / "config.yaml")
    assert saved.dump() == load_config(TINY, overrides=["DATASET.OUTPUT_PATH", str(run_dir)]).dump()

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["classes"]) == {"nuc", "mito"}
    for row in metrics["classes"].values():
        assert set(row) == {"dice", "iou", "precision", "recall", "accuracy"}
        assert all(0.0 <= v <= 1.0 for v in row.values())
    assert metrics["global_step"] == 6
    csv_rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert csv_rows[0] == "class,dice,iou,precision,recall,accuracy"
    assert [r.split(",")[0] for r in csv_rows[1:]] == ["nuc", "mito", "mean"]
    assert "mito" in result.stdout and "dice" in result.stdout  # the printed table

    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/dice_mean", "val/mito/dice", "val/nuc/recall", "lr-AdamW"} <= scalars
    assert [e.step for e in events.Scalars("val/dice_mean")][:2] == [2, 5]  # every 3 steps (0-based)


def test_checkpoint_holds_config_and_loads_weights_only(tiny_run):
    run_dir, _ = tiny_run
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 6
    assert "joenet" in ckpt["hyper_parameters"]["cfg_yaml"]


def test_inference_writes_probabilities_masks_and_metrics(tiny_run):
    run_dir, _ = tiny_run
    result = run_cli("pytc-train", *tiny_args(run_dir), "--inference")
    assert result.returncode == 0, result.stderr[-3000:]
    with h5py.File(run_dir / "predictions" / "synthetic-val.h5") as f:
        probs, masks = f["probabilities"][:], f["masks"][:]
        assert list(f.attrs["classes"]) == ["nuc", "mito"]
    assert probs.shape == masks.shape == (2, 4, 64, 64)
    assert probs.dtype == np.float16 and 0 <= probs.min() and probs.max() <= 1
    np.testing.assert_array_equal(masks, (probs >= 0.5).astype(np.uint8))
    assert json.loads((run_dir / "predictions" / "metrics.json").read_text())["split"] == "val"


def test_killed_run_resumes_from_last_with_the_step_counter_continuing(tmp_path):
    run_dir = tmp_path / "run"
    total = 200
    args = tiny_args(run_dir, "SOLVER.ITERATION_TOTAL", str(total), "SOLVER.ITERATION_VAL", "10")
    proc = subprocess.Popen([str(BIN / "pytc-train"), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert 0 < killed_at < total

    result = run_cli("pytc-train", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {last} at step {killed_at}" in result.stdout
    assert torch.load(last, weights_only=True)["global_step"] == total
    assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == total
    per_file = [EventAccumulator(str(p)).Reload() for p in (run_dir / "tensorboard").glob("events.out.tfevents.*")]
    histories = [[e.step for e in ea.Scalars("train/loss")] for ea in per_file if "train/loss" in ea.Tags()["scalars"]]
    resumed = [steps for steps in histories if steps[-1] == total - 1]
    assert resumed == [list(range(killed_at, total))]  # the resumed process continues the count


def test_ddp_two_processes_equal_one_process_on_the_same_global_batch_and_resume(tmp_path):
    """2 gloo processes x 2 samples vs 1 process x 4 samples: the same samples per step, a voxel-mean loss
    and per-sample (instance) normalisation make the weights agree to float rounding, after training and
    after a DDP resume. (SyncBatchNorm, MODEL.NORM_MODE sync_bn, runs on GPUs only.)"""
    common = ("LOSS.NAME", "bce", "MODEL.ARCHITECTURE", "monai_basic_unet", "MODEL.MONAI_BASIC_UNET.FEATURES", "[4, 4, 8, 8, 8, 4]",
              "SOLVER.NAME", "SGD", "SOLVER.BASE_LR", "0.05",  # Adam would blow float-noise gradients (biases under norms) up to full steps
              "SOLVER.ITERATION_VAL", "2", "MONITOR.IMAGES", "0")
    runs = {"one": ("SOLVER.SAMPLES_PER_BATCH", "4"),
            "ddp": ("SOLVER.SAMPLES_PER_BATCH", "2", "SYSTEM.DEVICES", "2", "SYSTEM.STRATEGY", "ddp")}
    weights = {}
    for total in ("4", "6"):  # the second round resumes each run from its last.ckpt at step 4
        for name, own in runs.items():
            result = run_cli("pytc-train", *tiny_args(tmp_path / name, *common, *own, "SOLVER.ITERATION_TOTAL", total))
            assert result.returncode == 0, result.stderr[-3000:]
            if name == "ddp":
                assert "GLOBAL_RANK: 1, MEMBER: 2/2" in result.stdout + result.stderr
            ckpt = torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)
            assert ckpt["global_step"] == int(total)
            weights[name, total] = ckpt["state_dict"]
        for key, value in weights["one", total].items():
            if value.is_floating_point():
                torch.testing.assert_close(weights["ddp", total][key], value, rtol=1e-4, atol=1e-5, msg=f"{key} at step {total}")
    moved = max((weights["one", "6"][k] - weights["one", "4"][k]).abs().max().item() for k in weights["one", "6"] if weights["one", "6"][k].is_floating_point())
    assert moved > 1e-4  # the resumed steps trained: equality is not trivial


def test_example_plugin_model_is_selected_from_yaml(plugin_sites, tmp_path):
    run_dir = tmp_path / "run"
    config = ROOT / "examples" / "emseg-plugin-example" / "tiny.yaml"
    result = run_cli("pytc-train", "--config-file", str(config), "DATASET.OUTPUT_PATH", str(run_dir),
                     "SOLVER.ITERATION_TOTAL", "2", "SOLVER.ITERATION_VAL", "2", "DATASET.BLOBS.SHAPE", "[8, 64, 64]",
                     "DATASET.BLOBS.VAL_Z", "[6, 8]", "MONITOR.PROGRESS_BAR", "False",
                     pythonpath=[plugin_sites["example"]])
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert any(k.startswith("model.enc.") for k in ckpt["state_dict"])  # TinyUNet's layers
    resolved = (run_dir / "config.yaml").read_text()
    assert "ARCHITECTURE: tiny_unet" in resolved and "NAME: blobs" in resolved and "NAME: soft_l1" in resolved


def test_solver_options_accumulation_clipping_plateau_bf16_and_early_stop(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("pytc-train", *tiny_args(
        run_dir, "SOLVER.ITERATION_TOTAL", "30", "SOLVER.ITERATION_STEP", "2", "SOLVER.CLIP_GRADIENTS", "1.0",
        "SOLVER.LR_SCHEDULER_NAME", "plateau", "SOLVER.PRECISION", "bf16-mixed", "MONITOR.EARLY_STOP_PATIENCE", "1",
        "SOLVER.BASE_LR", "1e-6",  # too small to improve: early stopping must end the run
    ))
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] < 30  # stopped early
    assert ckpt["global_step"] % 3 == 0  # at a validation
    plateau = ckpt["lr_schedulers"][0]
    assert plateau["mode"] == "max" and plateau["best"] > 0  # ReduceLROnPlateau tracked val/dice_mean
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    assert len(events.Scalars("train/loss")) == ckpt["global_step"]  # one logged loss per optimizer step
    assert ckpt["stopped_early"]

    again = run_main("pytc-train", *tiny_args(run_dir, "SOLVER.ITERATION_TOTAL", "30", "SOLVER.ITERATION_STEP", "2",
                                              "SOLVER.LR_SCHEDULER_NAME", "plateau", "MONITOR.EARLY_STOP_PATIENCE", "1"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "early stopping ended this run" in again.stdout  # the same command again does not train on
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == ckpt["global_step"]


def test_3d_monai_unet_trains_and_predicts_by_name(tmp_path):
    run_dir = tmp_path / "run"
    args = tiny_args(run_dir, "MODEL.ARCHITECTURE", "monai_unet", "DATASET.DIMS", "3", "DATASET.PATCH_SIZE", "[4, 32, 32]",
                     "INFERENCE.INPUT_SIZE", "[4, 32, 32]", "MODEL.MONAI_UNET.CHANNELS", "[4, 8, 16]", "MODEL.MONAI_UNET.STRIDES", "[2, 2]")
    for extra in ([], ["--inference"]):
        result = run_cli("pytc-train", *args, *extra)
        assert result.returncode == 0, result.stderr[-3000:]
    with h5py.File(run_dir / "predictions" / "synthetic-val.h5") as f:
        assert f["probabilities"].shape == (2, 4, 64, 64)


def test_mednext_deep_supervision_logs_each_head(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("pytc-train", *tiny_args(run_dir, "MODEL.ARCHITECTURE", "mednext", "MODEL.MEDNEXT.INIT_FILTERS", "4"))
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = set(EventAccumulator(str(run_dir / "tensorboard")).Reload().Tags()["scalars"])
    assert {"train/loss_main", "train/loss_aux1", "train/loss_aux4"} <= scalars


def test_checkpoints_survive_plugins_installed_or_removed(tiny_run, plugin_sites, tmp_path):
    """A plugin's config node (MODEL.TINY_UNET, DATASET.BLOBS) appearing or disappearing after training
    does not touch the keys this model uses: resume, --inference and emseg predict still accept the run."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run[0], run_dir)
    with_plugin = {"pythonpath": [plugin_sites["example"]]}
    resumed = run_cli("pytc-train", *tiny_args(run_dir, "SOLVER.ITERATION_TOTAL", "8"), **with_plugin)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout and "at step 6" in resumed.stdout
    last = run_dir / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 8 and "TINY_UNET" in saved["hyper_parameters"]["cfg_yaml"]  # trained with the node

    volume = tmp_path / "em.h5"
    with h5py.File(volume, "w") as f:
        f["main"] = np.random.default_rng(0).integers(0, 255, (2, 48, 48), dtype=np.uint8)
    predicted = run_cli("emseg", "predict", "--config-file", str(TINY), "--checkpoint", str(last), "--input", f"{volume}:/main",
                        "--output", str(tmp_path / "pred.zarr"), "--block", "2", "32", "32", "--no-progress", **with_plugin)
    assert predicted.returncode == 0, predicted.stderr[-3000:]

    # and the plugin removed again: the checkpoint that carries its node still predicts
    inferred = run_cli("pytc-train", *tiny_args(run_dir, "SOLVER.ITERATION_TOTAL", "8"), "--inference", "--checkpoint", str(last))
    assert inferred.returncode == 0, inferred.stderr[-3000:]
    assert (run_dir / "predictions" / "synthetic-val.h5").is_file()

    changed = run_main("pytc-train", *tiny_args(run_dir, "MODEL.FILTERS", "[4, 16]"), "--inference", "--checkpoint", str(last))
    assert changed.returncode == 2 and "MODEL.FILTERS = [4, 8] but the config has [4, 16]" in changed.stderr
