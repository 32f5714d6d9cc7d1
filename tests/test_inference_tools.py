"""Test-time augmentation, `emseg instances`, resampling and `emseg slurm` scripts."""
from __future__ import annotations

import argparse
import os
import stat
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import zarr
from conftest import TINY, run_cli, run_main

from emseg_plugins.config.loader import load_config
from emseg_plugins.datasets.volume_io import read_volume, write_volume
from emseg_plugins.errors import ConfigError
from emseg_plugins.inference.sliding_window import predict_outputs
from emseg_plugins.inference.tta import variants
from emseg_plugins.postprocess.instances import watershed_instances
from emseg_plugins.postprocess.resample import factors_for_voxel_size, output_shape, resample


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The ``error:`` lines of a CLI run; also checks that no traceback was printed."""
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


# -- test-time augmentation ----------------------------------------------------------------------


class Convs(torch.nn.Module):
    """logits and embedding from two convolutions (2D or 3D) with the given kernels (no bias)."""

    def __init__(self, logit_kernel: torch.Tensor, embed_kernel: torch.Tensor | None = None):
        super().__init__()
        conv = torch.nn.functional.conv2d if logit_kernel.ndim == 4 else torch.nn.functional.conv3d
        self.conv, self.logit_kernel, self.embed_kernel = conv, torch.nn.Parameter(logit_kernel), embed_kernel

    def forward(self, x):
        pad = self.logit_kernel.shape[-1] // 2
        out = {"logits": self.conv(x, self.logit_kernel, padding=pad)}
        if self.embed_kernel is not None:
            out["embedding"] = self.conv(x, self.embed_kernel, padding=pad)
        return out


def tta_cfg(dims: int, size: tuple[int, int, int], *aug: str):
    return load_config(TINY, overrides=["DATASET.DIMS", str(dims), "DATASET.PATCH_SIZE", str(list(size)), "INFERENCE.INPUT_SIZE",
                                        str(list(size)), "INFERENCE.OVERLAP", "0.0", "DATASET.CLASSES", "['mito']", *aug])


def symmetric_kernel(dims: int) -> torch.Tensor:
    """A 3x3(x3) kernel unchanged by every flip and Y<->X transpose: weights by distance from the centre."""
    grid = np.indices((3,) * dims) - 1
    return torch.tensor(1.0 / (1 + (grid**2).sum(0)), dtype=torch.float32)[None, None] * 0.5


@pytest.mark.parametrize("dims, aug_num", [(2, 8), (3, 16)])
def test_tta_of_a_flip_equivariant_model_equals_no_tta(dims, aug_num):
    size = (1, 16, 16) if dims == 2 else (8, 16, 16)
    image = np.random.default_rng(0).random((3, 16, 16) if dims == 2 else (8, 16, 16)).astype(np.float32)
    model = Convs(symmetric_kernel(dims) - 0.3)
    plain = predict_outputs(model, image, tta_cfg(dims, size), progress=False)["probabilities"]
    tta = predict_outputs(model, image, tta_cfg(dims, size, "INFERENCE.AUG_MODE", "mean", "INFERENCE.AUG_NUM", str(aug_num)),
                          progress=False)["probabilities"]
    assert plain.shape == tta.shape == (1, *image.shape)
    np.testing.assert_allclose(tta, plain, atol=1e-5)


def dihedral(a: np.ndarray, k: int, inverse: bool = False) -> np.ndarray:
    """The k-th of the 8 symmetries of the YX square (k = 4*transpose + 2*flip_y + flip_x), written
    independently of inference.tta with numpy; ``inverse`` undoes it."""
    transpose, flip_y, flip_x = k >= 4, (k // 2) % 2 == 1, k % 2 == 1
    if not inverse and transpose:
        a = np.swapaxes(a, -1, -2)
    a = np.flip(a, -2) if flip_y else a
    a = np.flip(a, -1) if flip_x else a
    return np.swapaxes(a, -1, -2) if inverse and transpose else a


@pytest.mark.parametrize("aug_num", [4, 8])
def test_tta_of_an_asymmetric_model_is_the_mean_of_unflipped_outputs(aug_num):
    rng = np.random.default_rng(1)
    image = rng.random((2, 16, 16)).astype(np.float32)  # 2D model: one window per slice
    logit_kernel = torch.tensor(rng.normal(size=(1, 1, 3, 3)), dtype=torch.float32)  # no symmetry at all
    embed_kernel = torch.tensor(rng.normal(size=(2, 1, 3, 3)), dtype=torch.float32)
    model = Convs(logit_kernel, embed_kernel)
    out = predict_outputs(model, image, tta_cfg(2, (1, 16, 16), "INFERENCE.AUG_MODE", "mean", "INFERENCE.AUG_NUM", str(aug_num)),
                          progress=False)
    plain = predict_outputs(model, image, tta_cfg(2, (1, 16, 16)), progress=False)
    # by hand: each symmetry applied to the slice, the model run, the output transformed back, then averaged
    logits, embedding = [], []
    for k in range(aug_num):
        x = torch.from_numpy(np.ascontiguousarray(dihedral(image, k)))[:, None]  # (Z, 1, Y, X)
        with torch.no_grad():
            y = model(x)
        logits.append(dihedral(y["logits"].numpy(), k, inverse=True))
        embedding.append(dihedral(y["embedding"].numpy(), k, inverse=True))
    expected_p = 1 / (1 + np.exp(-np.mean(logits, 0)))  # (Z, 1, Y, X)
    np.testing.assert_allclose(out["probabilities"], expected_p.transpose(1, 0, 2, 3), atol=1e-5)
    np.testing.assert_allclose(out["embedding"], np.mean(embedding, 0).transpose(1, 0, 2, 3), atol=1e-5)
    assert np.abs(out["probabilities"] - plain["probabilities"]).max() > 0.01  # the asymmetric model does change


def test_tta_variants_are_distinct_and_invert_exactly():
    x = torch.randn(2, 1, 3, 4, 4)
    assert len(set(variants(2))) == 8 and len(set(variants(3))) == 16
    outputs = {tuple(v.apply(x).flatten().tolist()) for v in variants(3)}
    assert len(outputs) == 16
    assert all(torch.equal(v.invert(v.apply(x)), x) for v in variants(3))


@pytest.mark.parametrize("aug, message", [
    (["INFERENCE.AUG_MODE", "max"], "INFERENCE.AUG_MODE = 'max' is not one of '', 'mean'"),
    (["INFERENCE.AUG_MODE", "mean", "INFERENCE.AUG_NUM", "16"], "INFERENCE.AUG_NUM = 16 must be between 1 and 8 for a 2D model"),
])
def test_bad_tta_settings_are_one_line_config_errors(aug, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        predict_outputs(Convs(symmetric_kernel(2)), np.zeros((1, 16, 16), np.float32), tta_cfg(2, (1, 16, 16), *aug), progress=False)


# -- emseg instances -----------------------------------------------------------------------------


def balls(shape, centres, radius):
    zz, yy, xx = np.indices(shape)
    out = np.zeros(shape, bool)
    for z, y, x in centres:
        out |= (zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
    return out


@pytest.fixture
def prediction(tmp_path):
    """pred.zarr as `emseg predict` writes it: probabilities uint8 (2, Z, Y, X), classes [nuc, mito]."""
    mito = balls((16, 32, 48), [(8, 16, 16), (8, 16, 30)], 8)  # two touching balls: one component
    probs = np.stack([np.zeros_like(mito), mito]).astype(np.uint8) * 230
    root = zarr.open_group(str(tmp_path / "pred.zarr"), mode="w")
    root.create_dataset("probabilities", data=probs, chunks=(1, 8, 16, 16)).attrs["classes"] = ["nuc", "mito"]
    return tmp_path / "pred.zarr", probs


def test_instances_cli_watershed_by_class_name_and_cc_by_index(prediction, tmp_path):
    store, probs = prediction
    result = run_main("emseg", "instances", "--input", f"{store}:probabilities", "--channel", "mito", "--method", "watershed",
                     "--seed-distance", "5", "--output", str(tmp_path / "out.h5"))
    assert result.returncode == 0, result.stderr
    ids = read_volume(tmp_path / "out.h5:instances")
    assert ids.dtype == np.uint32 and ids.max() == 2
    assert np.array_equal(ids, watershed_instances(probs[1] / 255.0, 0.5, seed_distance=5))
    result = run_main("emseg", "instances", "--input", f"{store}:probabilities", "--channel", "1", "--method", "cc",
                     "--output", f"{store}:mito_ids")
    assert result.returncode == 0, result.stderr
    root = zarr.open_group(str(store), mode="r")
    assert root["mito_ids"][...].max() == 1 and np.array_equal(root["probabilities"][...], probs)  # written beside, input kept


def test_instances_cli_errors_are_one_line_and_write_nothing(prediction, tmp_path):
    store, _ = prediction
    out = tmp_path / "new" / "out.h5"
    result = run_main("emseg", "instances", "--input", f"{store}:probabilities", "--channel", "er", "--output", str(out))
    expected = f"error: --channel 'er' is not a class name or an index below 2 of {store}:probabilities (classes: nuc, mito)"
    assert result.returncode == 2 and error_lines(result) == [expected], result.stderr
    assert "Traceback" not in result.stderr and not out.parent.exists()
    write_volume(tmp_path / "taken.h5:instances", np.ones((2, 2, 2), np.uint32))
    result = run_main("emseg", "instances", "--input", f"{store}:probabilities", "--channel", "mito", "--output", str(tmp_path / "taken.h5"))
    assert result.returncode == 2 and "already holds 'instances'; pass --overwrite" in result.stderr
    assert read_volume(tmp_path / "taken.h5:instances").max() == 1  # untouched


# -- resampling ----------------------------------------------------------------------------------


def test_integer_label_upsampling_repeats_voxels_and_downsampling_keeps_ids():
    labels = np.random.default_rng(2).integers(0, 2**40, (3, 5, 7), dtype=np.uint64)
    up = resample(labels, (1, 2, 3), "labels")
    assert up.dtype == np.uint64 and np.array_equal(up, labels.repeat(2, 1).repeat(3, 2))
    down = resample(up, (1, 0.5, 1 / 3), "labels")
    assert np.array_equal(down, labels)  # nearest: back to the original exactly
    odd = resample(labels, 0.5, "labels")
    assert odd.shape == (2, 2, 4) == output_shape(labels.shape, (0.5,) * 3)  # round(1.5)=2, round(2.5)=2, round(3.5)=4
    assert set(np.unique(odd)) <= set(np.unique(labels))  # no new ids


def test_probability_resampling_is_linear_and_keeps_dtype():
    ramp = np.broadcast_to(np.linspace(0, 1, 8, dtype=np.float32), (2, 4, 8, 8)).copy()  # (C, Z, Y, X), ramp along X
    up = resample(ramp, (1, 1, 2), "probabilities")
    assert up.shape == (2, 4, 8, 16) and up.dtype == np.float32
    assert np.all(np.diff(up[0, 0, 0]) >= 0) and len(np.unique(np.round(up[0, 0, 0], 5))) > 8  # in-between values
    np.testing.assert_allclose(up[..., 1:-1].mean(), ramp[..., 1:-1].mean(), atol=0.02)
    flat = np.full((4, 16, 16), 200, np.uint8)
    down = resample(flat, (1, 0.5, 0.5), "probabilities")
    assert down.dtype == np.uint8 and down.shape == (4, 8, 8) and np.all(down == 200)
    assert factors_for_voxel_size((40, 8, 8), (40, 16, 4)) == (1.0, 0.5, 2.0)


def test_resample_cli_to_a_voxel_size_and_its_errors(tmp_path):
    labels = np.random.default_rng(3).integers(0, 50, (2, 6, 6), dtype=np.uint32)
    write_volume(tmp_path / "seg.h5:instances", labels)
    result = run_main("emseg", "resample", "--input", f"{tmp_path / 'seg.h5'}:instances", "--voxel-size", "40", "16", "16",
                     "--target-voxel-size", "40", "8", "8", "--output", str(tmp_path / "up.zarr"))
    assert result.returncode == 0, result.stderr
    assert np.array_equal(read_volume(tmp_path / "up.zarr:instances"), labels.repeat(2, 1).repeat(2, 2))
    result = run_main("emseg", "resample", "--input", str(tmp_path / "seg.h5"), "--voxel-size", "40", "16", "16",
                     "--output", str(tmp_path / "never.h5"))
    assert result.returncode == 2 and error_lines(result) == [
        "error: --voxel-size needs --target-voxel-size (the voxel size to resample to, Z Y X in nm)"]
    assert not (tmp_path / "never.h5").exists()


# -- emseg slurm ---------------------------------------------------------------------------------

NASTY = "my data $(touch INJECTED) `touch INJECTED2` 'q' \"dq\""


@pytest.fixture(scope="module")
def slurm_setup(tmp_path_factory):
    """An untrained tiny checkpoint and a (12, 64, 64) input, under a directory name full of shell syntax."""
    from emseg_plugins.engine.module import SegmentationModule

    root = tmp_path_factory.mktemp("slurm") / NASTY
    root.mkdir()
    cfg = load_config(TINY)
    ckpt = root / "w.ckpt"
    module = SegmentationModule(cfg.dump())
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": {"cfg_yaml": cfg.dump()}}, ckpt)
    write_volume(root / "em.h5:/main", np.zeros((12, 64, 64), np.uint8))
    return root, ckpt


def shim(path: Path, name: str, log: Path, reply: str = "") -> None:
    """An executable that logs its arguments (one per line, between markers) and prints ``reply``."""
    path.mkdir(exist_ok=True)
    script = path / name
    script.write_text(f'#!/bin/bash\n{{ echo "--- {name}"; for a in "$@"; do printf "%s\\n" "$a"; done; }} >> {log}\n'
                      + (f"echo '{reply}'\n" if reply else ""))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_slurm_scripts_pass_values_through_literally(slurm_setup, tmp_path):
    root, ckpt = slurm_setup
    scripts, logs = root / "scripts", tmp_path / "calls.log"
    shim(tmp_path / "bin", "sbatch", logs, reply="4242;cluster")
    shim(tmp_path / "bin", "emseg", logs)
    output = str(root / "pred.zarr")
    result = run_cli("emseg", "slurm", "--config-file", str(TINY), "--checkpoint", str(ckpt), "--input", f"{root / 'em.h5'}:/main",
                     "--output", output, "--block", "4", "32", "32", "--blocks-per-task", "5", "--instances", "cc",
                     "--partition", "gpu $(touch INJECTED3)", "--time", "01:00:00", "--gpus", "1", "--mem", "8G",
                     "--extra-sbatch=--comment=it's `touch INJECTED4`", "--emseg", str(tmp_path / "bin" / "emseg"),
                     "--scripts-dir", str(scripts), "INFERENCE.OUTPUT_NAME", NASTY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 array tasks x 5 blocks (12 blocks of [4, 32, 32])" in result.stdout
    for name in ("predict_array.sh", "finish.sh", "submit.sh"):
        assert subprocess.run(["bash", "-n", str(scripts / name)], check=False).returncode == 0, name
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    submitted = subprocess.run(["bash", str(scripts / "submit.sh")], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert submitted.returncode == 0, submitted.stderr
    assert "submitted array job 4242 (3 tasks) and finish job 4242" in submitted.stdout
    task = subprocess.run(["bash", str(scripts / "predict_array.sh")], cwd=tmp_path, env={**env, "SLURM_ARRAY_TASK_ID": "2"}, check=False)
    assert task.returncode == 0
    calls = [c.splitlines() for c in logs.read_text().split("--- ")[1:]]
    array, final, predict = calls
    assert array[:4] == ["sbatch", "--parsable", "--array=0-2", "--job-name=emseg-predict"]
    assert {"--partition=gpu $(touch INJECTED3)", "--gpus=1", "--comment=it's `touch INJECTED4`"} <= set(array)
    assert array[-1] == str(scripts / "predict_array.sh")
    assert "--dependency=afterok:4242" in final and "--gpus=1" not in final and final[-1] == str(scripts / "finish.sh")
    assert predict[predict.index("--output") + 1] == output and predict[-2:] == ["--blocks", "10:12"]  # last task: clipped
    assert predict[predict.index("INFERENCE.OUTPUT_NAME") + 1] == NASTY
    assert not list(tmp_path.rglob("INJECTED*")) and not list(root.rglob("INJECTED*"))  # nothing was executed
    # what the task runs is a valid `emseg predict` command line for the same plan
    from emseg_plugins.cli.predict import add_arguments, build_plan

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    plan, cfg = build_plan(parser.parse_intermixed_args(predict[2:]))
    assert plan.output == output and plan.block == (4, 32, 32) and plan.instances == "cc" and cfg.INFERENCE.OUTPUT_NAME == NASTY


def test_slurm_errors_are_one_line_and_write_no_scripts(slurm_setup, tmp_path, capsys):
    from emseg_plugins.cli import slurm
    from emseg_plugins.cli.common import run_command

    root, ckpt = slurm_setup
    parser = argparse.ArgumentParser()
    slurm.add_arguments(parser)
    base = ["--config-file", str(TINY), "--checkpoint", str(ckpt), "--output", str(tmp_path / "p.zarr"), "--scripts-dir", str(tmp_path / "s")]
    for extra, message in (
        (["--input", str(tmp_path / "missing.h5"), "--blocks-per-task", "2"], f"{tmp_path / 'missing.h5'}: no such file or directory; check the path"),
        (["--input", f"{root / 'em.h5'}:/main", "--blocks-per-task", "0"], "--blocks-per-task 0 must be at least 1"),
        (["--input", f"{root / 'em.h5'}:/main", "--blocks-per-task", "2", "--extra-sbatch", "account=lab"],
         "--extra-sbatch 'account=lab' must be an sbatch option such as --account=lab (write it as --extra-sbatch=--account=lab)"),
        (["--input", f"{root / 'em.h5'}:/main", "--blocks-per-task", "2", "--block", "4", "8", "8", "--halo", "4", "2", "2"],
         "--block [4, 8, 8] must be larger than --halo [4, 2, 2] on every axis (Z, Y, X)"),
    ):
        assert run_command(slurm.run, parser.parse_intermixed_args([*base, *extra])) == 2
        assert capsys.readouterr().err.splitlines() == [f"error: {message}"]
    assert not (tmp_path / "s").exists()


def test_predict_dtype_and_masks_are_part_of_the_plan(slurm_setup, tmp_path):
    from emseg_plugins.cli.predict import add_arguments, build_plan
    from emseg_plugins.errors import DataError
    from emseg_plugins.inference.deploy import deploy

    root, ckpt = slurm_setup
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--config-file", str(TINY), "--checkpoint", str(ckpt), "--input", f"{root / 'em.h5'}:/main", "--output", str(tmp_path / "o.zarr"),
            "--block", "12", "64", "64"]
    plan, cfg = build_plan(parser.parse_intermixed_args([*argv, "--dtype", "float16", "--masks"]))
    assert deploy(plan, cfg, progress=False)
    store = zarr.open_group(str(tmp_path / "o.zarr"), mode="r")
    probs, masks = store["probabilities"][...], store["masks"][...]
    assert probs.dtype == np.float16 and masks.dtype == np.uint8 and probs.shape == masks.shape == (2, 12, 64, 64)
    assert np.array_equal(masks, (probs >= 0.5).astype(np.uint8)) or np.mean(masks != (probs >= 0.5)) < 1e-3  # float16 rounding
    other, _ = build_plan(parser.parse_intermixed_args(argv))
    with pytest.raises(DataError, match=r"was started with another dtype \(float16 vs now uint8\)"):
        deploy(other, cfg, progress=False)
    with h5py.File(root / "em.h5", "r") as f:  # the input is never touched
        assert f["main"].shape == (12, 64, 64)
