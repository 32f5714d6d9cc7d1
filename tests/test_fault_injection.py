"""Real processes, real signals: pytc-train and emseg predict SIGKILLed at seeded random moments.

Each seed kills a run twice at random moments after it has started working, restarts the same
command, and lets the last launch finish. After every kill nothing on disk may be corrupt; at the
end the result must equal an uninterrupted run's, bit for bit.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from conftest import BIN, run_cli, tiny_args
from faults import run_with_kills
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from emseg_plugins.config import load_config
from emseg_plugins.datasets.synthetic_em import make_em_volume
from emseg_plugins.datasets.volume_io import write_volume
from emseg_plugins.engine.checkpoint import AtomicCheckpointIO, load_checkpoint
from emseg_plugins.engine.trainer import build_trainer
from emseg_plugins.inference.deploy import PLAN_FILE, Plan

SEEDS = (0, 1, 2)
KILLS = 2
MIN_MID_RUN_KILLS = 4  # of the len(SEEDS) * KILLS kills, at least this many must land while work was half done
TOTAL = 120
# A small MONAI UNet with dropout, so the resumed run must also restore the RNG to match bit for bit.
TRAIN = ("SOLVER.ITERATION_TOTAL", str(TOTAL), "SOLVER.ITERATION_VAL", "20", "SOLVER.ITERATION_SAVE", "7",
         "MODEL.ARCHITECTURE", "monai_unet", "MODEL.MONAI_UNET.CHANNELS", "[4, 8]", "MODEL.MONAI_UNET.STRIDES", "[2]",
         "MODEL.MONAI_UNET.NUM_RES_UNITS", "1", "MODEL.MONAI_UNET.DROPOUT", "0.3")


def checkpoints_after_kill(run_dir: Path) -> int:
    """Every checkpoint the killed run left loads; the step of ``last.ckpt`` (0 if none yet)."""
    ckpts = list((run_dir / "checkpoints").glob("*.ckpt")) if (run_dir / "checkpoints").exists() else []
    for path in ckpts:
        load_checkpoint(path)  # raises CheckpointError on a truncated or half-written file
    last = run_dir / "checkpoints" / "last.ckpt"
    return load_checkpoint(last)["global_step"] if last.exists() else 0


def loss_history(run_dir: Path) -> dict[int, list[float]]:
    """``train/loss`` by step over every TensorBoard event file of the run (a resumed step may repeat)."""
    history: dict[int, list[float]] = {}
    for path in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        events = EventAccumulator(str(path)).Reload()
        if "train/loss" in events.Tags()["scalars"]:
            for event in events.Scalars("train/loss"):
                history.setdefault(event.step, []).append(event.value)
    return history


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, float]:
    """An uninterrupted run, and how long it worked after its first checkpoint (s)."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    start = time.time()
    result = run_cli("pytc-train", *tiny_args(run_dir, *TRAIN))
    assert result.returncode == 0, result.stderr[-3000:]
    first_save = min(p.stat().st_mtime for p in (run_dir / "checkpoints").glob("*.ckpt"))
    return run_dir, time.time() - max(first_save - 0.5, start)


def test_training_killed_at_random_moments_ends_equal_to_an_uninterrupted_run(reference, tmp_path):
    ref_dir, window = reference

    def killed_run(seed: int):
        run_dir = tmp_path / f"seed{seed}"
        last = run_dir / "checkpoints" / "last.ckpt"
        started = lambda launched: last.exists() and last.stat().st_mtime > launched
        log = run_with_kills([str(BIN / "pytc-train"), *tiny_args(run_dir, *TRAIN)], seed, KILLS, window,
                             started, lambda: checkpoints_after_kill(run_dir))
        return run_dir, log

    with ThreadPoolExecutor(len(SEEDS)) as pool:
        runs = list(pool.map(killed_run, SEEDS))

    mid_run = sum(0 < s < TOTAL for _, log in runs for s in log.left)
    assert mid_run >= MIN_MID_RUN_KILLS, [log for _, log in runs]  # the kills tested something
    expected = torch.load(ref_dir / "checkpoints" / "last.ckpt", weights_only=True)
    ref_losses = {step: values[0] for step, values in loss_history(ref_dir).items()}
    assert sorted(ref_losses) == list(range(TOTAL))
    for run_dir, log in runs:
        steps = log.left
        assert len(steps) + log.finished_early >= 1 and steps == sorted(steps), log  # progress is never lost
        assert any(0 < s < TOTAL for s in steps) or log.finished_early, log
        final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
        assert final["global_step"] == TOTAL
        for name, tensor in expected["state_dict"].items():
            assert torch.equal(final["state_dict"][name], tensor), (log, name)
        for a, b in zip(expected["optimizer_states"][0]["state"].values(), final["optimizer_states"][0]["state"].values()):
            assert all(torch.equal(a[k], b[k]) for k in a), log
        assert final["lr_schedulers"] == expected["lr_schedulers"]
        # metrics history: every step logged, and each (re)computed loss equals the uninterrupted one
        history = loss_history(run_dir)
        assert sorted(history) == list(range(TOTAL)), log
        assert all(v == ref_losses[step] for step, values in history.items() for v in values), log
        names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
        assert names == sorted(p.name for p in (ref_dir / "checkpoints").iterdir()), (log, names)


def read_store(path: Path) -> dict[str, np.ndarray]:
    root = zarr.open_group(str(path), mode="r")
    return {name: root[name][...] for name in root.array_keys()}


def blocks_after_kill(out: Path, expected: dict[str, np.ndarray]) -> int:
    """Every block marked predicted, decoded or stitched holds the uninterrupted run's bytes; how many are predicted."""
    if not (out / PLAN_FILE).is_file():
        return 0  # killed before the store was set up
    plan, store = Plan.from_json((out / PLAN_FILE).read_text()), zarr.open_group(str(out), mode="r")
    done = sorted(int(p.stem) for p in (out / "blocks").glob("*.json"))
    for index in done:
        box = plan.boxes[index]
        assert np.array_equal(store["probabilities"][(slice(None), *box)], expected["probabilities"][(slice(None), *box)]), index
    for index in (int(p.stem) for p in (out / "decoded").glob("*.json")):
        assert np.array_equal(store["instances_local"][plan.boxes[index]], expected["instances_local"][plan.boxes[index]]), index
    for index in (int(p.stem) for p in (out / "stitched").glob("*.json")):
        assert np.array_equal(store["instances"][plan.boxes[index]], expected["instances"][plan.boxes[index]]), index
    return len(done)


def test_deploy_killed_at_random_moments_ends_byte_identical(reference, tmp_path):
    ref_dir, _ = reference
    write_volume(tmp_path / "em.h5:/main", make_em_volume((12, 96, 80), seed=3).image)

    def predict_argv(out: Path) -> list[str]:
        return [str(BIN / "emseg"), "predict", "--config-file", str(ref_dir / "config.yaml"), "--checkpoint",
                str(ref_dir / "checkpoints" / "last.ckpt"), "--input", f"{tmp_path / 'em.h5'}:/main", "--output", str(out),
                "--block", "2", "32", "32", "--instances", "cc", "--no-progress"]

    start = time.time()
    result = subprocess.run(predict_argv(tmp_path / "uninterrupted.zarr"), check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    first_block = min(p.stat().st_mtime for p in (tmp_path / "uninterrupted.zarr" / "blocks").glob("*.json"))
    window = time.time() - max(first_block - 0.5, start)
    expected = read_store(tmp_path / "uninterrupted.zarr")
    blocks = len(list((tmp_path / "uninterrupted.zarr" / "blocks").glob("*.json")))

    def killed_deploy(seed: int):
        out = tmp_path / f"seed{seed}.zarr"
        started = lambda launched: any(p.stat().st_mtime > launched for p in (out / "blocks").glob("*.json"))
        return out, run_with_kills(predict_argv(out), seed, KILLS, window, started, lambda: blocks_after_kill(out, expected))

    with ThreadPoolExecutor(len(SEEDS)) as pool:
        runs = list(pool.map(killed_deploy, SEEDS))
    mid_run = sum(0 < n < blocks for _, log in runs for n in log.left)
    assert mid_run >= MIN_MID_RUN_KILLS, [log for _, log in runs]  # the kills tested something
    for out, log in runs:
        assert log.left == sorted(log.left) and any(0 < n < blocks for n in log.left) or log.finished_early, log
        found = read_store(out)
        assert found.keys() == expected.keys(), log
        assert all(np.array_equal(found[name], expected[name]) for name in expected), log


def test_resume_removes_what_the_stopped_run_wrote_after_last_ckpt(reference, tmp_path):
    """A run stopped after a scored checkpoint and a torn temporary file but before last.ckpt caught up,
    then copied elsewhere (its top-k bookkeeping must follow it)."""
    ref_dir, _ = reference
    run_dir = tmp_path / "moved"
    shutil.copytree(ref_dir, run_dir)
    ckpts = run_dir / "checkpoints"
    scored = sorted(ckpts.glob("step*.ckpt"))
    shutil.copy(scored[0], ckpts / "last.ckpt")  # last.ckpt at an earlier step than the newest scored one
    (ckpts / ".last.ckpt.x1y2.tmp").write_bytes(b"torn")
    result = run_cli("pytc-train", *tiny_args(run_dir, *TRAIN))  # a fresh process, as the reference ran (same threads)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"removed {scored[-1].name}" in result.stdout and "removed .last.ckpt.x1y2.tmp" in result.stdout
    assert sorted(p.name for p in ckpts.iterdir()) == sorted(p.name for p in (ref_dir / "checkpoints").iterdir())
    assert Path(json.loads((run_dir / "metrics.json").read_text())["checkpoint"]).parent == ckpts  # not the old directory
    final = torch.load(ckpts / "last.ckpt", weights_only=True)
    expected = torch.load(ref_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == TOTAL
    assert all(torch.equal(final["state_dict"][k], v) for k, v in expected["state_dict"].items())


def test_a_moved_run_directory_keeps_its_top_k_bookkeeping(reference, tmp_path):
    """Lightning drops a ModelCheckpoint's top-k state saved under another directory; ours follows the files."""
    ref_dir, _ = reference
    moved = tmp_path / "moved"
    shutil.copytree(ref_dir / "checkpoints", moved / "checkpoints")
    ckpt = AtomicCheckpointIO().load_checkpoint(moved / "checkpoints" / "last.ckpt")
    top_k = build_trainer(load_config(ref_dir / "config.yaml", overrides=["DATASET.OUTPUT_PATH", str(moved)]), moved).checkpoint_callback
    top_k.load_state_dict(ckpt["callbacks"][top_k.state_key])
    assert set(top_k.best_k_models) == {str(p) for p in (moved / "checkpoints").glob("step*.ckpt")} != set()
    assert Path(top_k.best_model_path).parent == moved / "checkpoints"
