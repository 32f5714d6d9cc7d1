"""Bad input through the console scripts: exit status 2, one error line, nothing written.

Most cases call the scripts' ``main`` in-process (``run_main``); the missing-config and ``--debug``
cases start the real installed scripts, which shows both paths behave alike.
"""
from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch

from conftest import TINY, run_cli, run_main, tiny_args
from emseg_plugins.config import load_config


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()} if directory.exists() else {}


def assert_one_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def fake_checkpoint(path: Path, cfg_yaml: str, **extra) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "global_step": 3, "hyper_parameters": {"cfg_yaml": cfg_yaml}, **extra}, path)
    return path


class CodeCarrier:  # pickled by reference: loading it would import and run code
    pass


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (["MODEL.ARCHITECTURE", "unet_9000"], ["unknown model 'unet_9000'"]),
        (["LOSS.NAME", "dice_bc"], ["unknown loss 'dice_bc'; did you mean 'dice_bce'?"]),
        (["DATASET.NAME", "synthetc"], ["unknown dataset 'synthetc'; did you mean 'synthetic'?"]),
        (["SOLVER.ITERATON_TOTAL", "3"], ["unknown key SOLVER.ITERATON_TOTAL; did you mean SOLVER.ITERATION_TOTAL?"]),
        (["SOLVER.BASE_LR", "fast"], ["SOLVER.BASE_LR expects a float"]),
        (["DATASET.CLASSES", "['nuc', 'er']"], ["DATASET.CLASSES ['er'] not drawn by the synthetic dataset"]),
        (["DATASET.PATCH_SIZE", "[1, 128, 128]"], ["smaller than DATASET.PATCH_SIZE"]),
        (["SYSTEM.STRATEGY", "dpp"], ["SYSTEM.STRATEGY = 'dpp' is not one of 'auto', 'ddp'"]),
        (["SYSTEM.NUM_GPUS", "64"], ["SYSTEM.NUM_GPUS = 64 but", "GPUs are visible; set SYSTEM.NUM_GPUS 0"]),
    ],
)
def test_bad_overrides(tmp_path, overrides, fragments):
    result = run_main("pytc-train", *tiny_args(tmp_path / "run", *overrides))
    assert_one_error(result, *fragments)
    assert not (tmp_path / "run").exists()


def test_missing_config_file(tmp_path):
    result = run_cli("pytc-train", "--config-file", str(tmp_path / "missing.yaml"))
    assert_one_error(result, "missing.yaml: config file not found")


def test_run_dir_with_checkpoint_of_incompatible_config_is_left_alone(tmp_path):
    run_dir = tmp_path / "run"
    other = load_config(TINY, overrides=["MODEL.FILTERS", "[8, 16]"]).dump()
    fake_checkpoint(run_dir / "checkpoints" / "last.ckpt", other)
    (run_dir / "config.yaml").write_text(other)
    before = snapshot(run_dir)
    result = run_main("pytc-train", *tiny_args(run_dir))
    assert_one_error(result, "last.ckpt: checkpoint was trained with MODEL.FILTERS = [8, 16] but the config has [4, 8]")
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("kind", ["text", "truncated", "foreign", "pickled-code"])
def test_bad_checkpoint_files(tmp_path, kind):
    path = tmp_path / "model.ckpt"
    cfg_yaml = load_config(TINY).dump()
    if kind == "text":
        path.write_text("not a checkpoint at all\n")
        fragment = "not a PyTorch checkpoint"
    elif kind == "truncated":
        fake_checkpoint(path, cfg_yaml)
        path.write_bytes(path.read_bytes()[:200])
        fragment = "not a PyTorch checkpoint"
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
        fragment = "not an emseg-plugins checkpoint"
    else:
        fake_checkpoint(path, cfg_yaml, payload=CodeCarrier(), history=collections.Counter())
        fragment = "refused: the checkpoint carries pickled code"
    run_dir = tmp_path / "run"
    for mode in ([], ["--inference"]):
        result = run_main("pytc-train", *mode, "--checkpoint", str(path), *tiny_args(run_dir))
        assert_one_error(result, str(path), fragment)
        assert not run_dir.exists()


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("pytc-train", "--debug", *tiny_args(tmp_path / "run", "MODEL.ARCHITECTURE", "nope"))
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_inference_without_any_checkpoint(tmp_path):
    result = run_main("pytc-train", "--inference", *tiny_args(tmp_path / "run"))
    assert_one_error(result, "the run has no checkpoints yet; train it first or pass --checkpoint")
    assert not (tmp_path / "run").exists()
