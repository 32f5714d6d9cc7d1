"""Training that cannot go on: a non-finite loss (stop or skip, SOLVER.NONFINITE) or a dead DataLoader worker."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import BIN, TINY, run_cli, run_main, tiny_args

from emseg_plugins.config.loader import load_config
from emseg_plugins.engine.checkpoint import load_checkpoint
from emseg_plugins.engine.module import SegmentationModule
from emseg_plugins.engine.run import train
from emseg_plugins.errors import TrainingError
from emseg_plugins.losses.dice_bce import DiceBCELoss
from emseg_plugins.registry import LOSSES

BAD_FROM_CALL = 4  # the 4th training-mode call (step index 3) returns NaN, and every later one


@LOSSES.register("nan_from_fourth_step_for_tests", source="tests")
def build_nan_loss(cfg):
    """dice_bce that turns NaN from the 4th training call on (validation calls are not counted)."""
    base = DiceBCELoss()
    calls = {"train": 0}

    def loss(logits, label, valid_mask=None):
        value = base(logits, label, valid_mask)
        if logits.requires_grad:
            calls["train"] += 1
            if calls["train"] >= BAD_FROM_CALL:
                return value * math.nan
        return value

    return loss


def tiny_cfg(run_dir, *overrides):
    return load_config(TINY, overrides=["DATASET.OUTPUT_PATH", str(run_dir), "LOSS.NAME", "nan_from_fourth_step_for_tests",
                                        "SOLVER.ITERATION_TOTAL", "6", "SOLVER.ITERATION_VAL", "3", "MONITOR.IMAGES", "0", *overrides])


def test_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingError, match=r"non-finite training loss \(nan\) at step 3, batch 3 \(training samples 6\.\.7 of dataset 'synthetic' with SYSTEM\.SEED 0\); the last good checkpoint .* is kept"):
        train(tiny_cfg(tmp_path / "run"))
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 3  # written by the validation at step 3, before the bad batch
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_skip_mode_returns_no_loss_for_bad_batches_so_no_step_is_made(tmp_path):
    module = SegmentationModule(tiny_cfg(tmp_path / "unused", "SOLVER.NONFINITE", "skip").dump())
    batch = {"image": torch.rand(2, 1, 32, 32), "label": torch.zeros(2, 2, 32, 32)}
    for index in range(BAD_FROM_CALL - 1):
        assert torch.isfinite(module.training_step(batch, index))
    assert module.training_step(batch, 3) is None  # Lightning makes no optimizer step for None
    assert module.skipped_batches == 1


def test_nan_in_the_input_is_caught_too(tmp_path):
    module = SegmentationModule(load_config(TINY, overrides=["DATASET.OUTPUT_PATH", str(tmp_path)]).dump())
    batch = {"image": torch.full((2, 1, 32, 32), math.nan), "label": torch.zeros(2, 2, 32, 32)}
    with pytest.raises(TrainingError, match=r"non-finite training loss \(nan\) at step 0, batch 7"):
        module.training_step(batch, 7)


def _children(pid: int) -> list[int]:
    """Child process ids of ``pid`` (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to find the worker processes")
def test_a_killed_dataloader_worker_is_one_error_and_the_run_resumes(tmp_path):
    """SIGKILL one DataLoader worker of a real pytc-train: exit 2 with one line, last.ckpt intact, then resume."""
    run_dir = tmp_path / "run"
    args = [str(BIN / "pytc-train"), *tiny_args(run_dir, "SYSTEM.NUM_CPUS", "1", "SOLVER.ITERATION_TOTAL", "400",
                                                 "SOLVER.ITERATION_VAL", "3", "MONITOR.IMAGES", "0")]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while time.time() < deadline and not (last.exists() and _children(process.pid)):
        time.sleep(0.1)
    workers = _children(process.pid)
    assert workers, "no DataLoader worker appeared"
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=240)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert process.returncode == 2 and len(errors) == 1 and "a data-loading worker process died" in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr
    step = load_checkpoint(last)["global_step"]
    assert 3 <= step < 400
    resumed = run_cli("pytc-train", *tiny_args(run_dir, "SYSTEM.NUM_CPUS", "0", "SOLVER.ITERATION_TOTAL", str(step + 3),
                                               "SOLVER.ITERATION_VAL", "3", "MONITOR.IMAGES", "0"))
    assert resumed.returncode == 0 and f"resuming from {last} at step {step}" in resumed.stdout, resumed.stderr[-2000:]
    assert load_checkpoint(last)["global_step"] == step + 3


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (needs root); the test is skipped, saying why, where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_error_keeps_the_last_checkpoint_and_the_run_resumes(small_disk):
    run_dir = small_disk / "run"
    short = ["SOLVER.ITERATION_VAL", "3", "MONITOR.IMAGES", "0", "MONITOR.CHECKPOINT_TOP_K", "1"]
    first = run_main("pytc-train", *tiny_args(run_dir, "SOLVER.ITERATION_TOTAL", "3", *short))
    assert first.returncode == 0, first.stderr[-2000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    saved = last.read_bytes()
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # fill the disk to the last byte
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    full = run_main("pytc-train", *tiny_args(run_dir, "SOLVER.ITERATION_TOTAL", "6", *short))
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert full.returncode == 2 and len(errors) == 1 and errors[0].startswith("error: no space left on the device"), full.stderr[-2000:]
    assert last.read_bytes() == saved  # the old checkpoint is untouched, not truncated
    filler.unlink()
    again = run_main("pytc-train", *tiny_args(run_dir, "SOLVER.ITERATION_TOTAL", "6", *short))
    assert again.returncode == 0 and "resuming from" in again.stdout and load_checkpoint(last)["global_step"] == 6, again.stderr[-2000:]
