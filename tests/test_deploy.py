"""Chunked deploy: blocks with halos into zarr, resumable after SIGKILL, Dask workers, stitched instances."""
from __future__ import annotations

import argparse
import signal
import subprocess
import time
from pathlib import Path

import cc3d
import numpy as np
import pytest
import zarr
from conftest import BIN, TINY, run_main

from emseg_plugins.cli.predict import build_plan, parse_blocks
from emseg_plugins.config.loader import load_config
from emseg_plugins.datasets.synthetic_em import make_em_volume
from emseg_plugins.datasets.volume_io import write_volume
from emseg_plugins.engine.run import train
from emseg_plugins.inference.predictor import restore_model
from emseg_plugins.errors import ConfigError, DataError
from emseg_plugins.inference.deploy import deploy, with_halo
from emseg_plugins.inference.sliding_window import predict_volume

SHAPE = (10, 96, 80)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny trained checkpoint and a synthetic EM volume written as h5 (Z, Y, X) = SHAPE."""
    root = tmp_path_factory.mktemp("deploy")
    cfg = load_config(TINY, overrides=["DATASET.OUTPUT_PATH", str(root / "run"), "SOLVER.ITERATION_TOTAL", "4", "SOLVER.ITERATION_VAL", "4"])
    train(cfg)
    image = make_em_volume(SHAPE, seed=3).image
    write_volume(root / "em.h5:/main", image)
    return root, root / "run" / "checkpoints" / "last.ckpt", image


def args_for(setup, output, *extra):
    root, ckpt, _ = setup
    return ["--config-file", str(TINY), "--checkpoint", str(ckpt), "--input", f"{root / 'em.h5'}:/main", "--output", str(output), *extra]


def namespace(argv):
    from emseg_plugins.cli.predict import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_intermixed_args(argv)


def run_predict(argv, **kwargs):
    return subprocess.run([str(BIN / "emseg"), "predict", *argv, "--no-progress"], capture_output=True, text=True, timeout=300, **kwargs)


def read_store(path: Path) -> dict[str, np.ndarray]:
    root = zarr.open_group(str(path), mode="r")
    return {name: root[name][...] for name in root.array_keys()}


def test_blocks_match_whole_volume_prediction_away_from_block_borders(setup, tmp_path):
    _, ckpt, image = setup
    plan, cfg = build_plan(namespace(args_for(setup, tmp_path / "p.zarr", "--block", "5", "48", "40", "--halo", "0", "16", "16")))
    assert deploy(plan, cfg, progress=False)
    chunked = read_store(tmp_path / "p.zarr")["probabilities"]
    assert chunked.shape == (2, *SHAPE) and chunked.dtype == np.uint8
    model, _ = restore_model(ckpt)
    whole = np.round(predict_volume(model, image, cfg, progress=False) * 255).astype(np.uint8)
    # a halo of half a window gives every window the context it has in the whole volume
    diff = np.abs(chunked.astype(int) - whole)
    assert diff.max() <= 2 and (diff > 1).mean() < 1e-4, (diff.max(), (diff > 1).mean())  # float noise only


def test_stitched_instances_equal_components_of_the_whole_mask(setup, tmp_path):
    plan, cfg = build_plan(namespace(args_for(setup, tmp_path / "i.zarr", "--block", "4", "40", "32", "--instances", "cc")))
    deploy(plan, cfg, progress=False)
    store = read_store(tmp_path / "i.zarr")
    whole = cc3d.connected_components(store["probabilities"][0] >= 128, connectivity=26)  # the cc decoder's neighbourhood
    assert whole.max() > 0
    ids = store["instances"]
    pairs = np.unique(np.stack([ids.ravel(), whole.ravel()]), axis=1)
    assert ((pairs[0] == 0) == (pairs[1] == 0)).all()  # same foreground
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]  # one-to-one ids


def test_killed_deploy_resumes_to_the_same_bytes(setup, tmp_path):
    reference = tmp_path / "ref.zarr"
    plan, cfg = build_plan(namespace(args_for(setup, reference, "--block", "2", "32", "32", "--instances", "cc")))
    deploy(plan, cfg, progress=False)
    target = tmp_path / "killed.zarr"
    process = subprocess.Popen([str(BIN / "emseg"), "predict", *args_for(setup, target, "--block", "2", "32", "32", "--instances", "cc"),
                                "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((target / "blocks").glob("*.json"))) < 3:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(list((target / "blocks").glob("*.json")))
    assert 3 <= done_before < 45, done_before  # killed part-way (45 blocks in all)
    plan, cfg = build_plan(namespace(args_for(setup, target, "--block", "2", "32", "32", "--instances", "cc")))
    assert deploy(plan, cfg, progress=False)  # the restart, here in-process: the same code path as the CLI's
    a, b = read_store(reference), read_store(target)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_half_written_block_without_marker_is_redone(setup, tmp_path):
    out = tmp_path / "h.zarr"
    plan, cfg = build_plan(namespace(args_for(setup, out, "--block", "5", "48", "40")))
    deploy(plan, cfg, progress=False)
    good = read_store(out)["probabilities"]
    root = zarr.open_group(str(out), mode="r+")
    root["probabilities"][:, 0:5, 0:48, 0:40] = 7  # a block torn by a crash: data written, marker lost
    (out / "blocks" / "000000.json").unlink()
    deploy(plan, cfg, progress=False)
    assert np.array_equal(read_store(out)["probabilities"], good)


def test_dask_scheduler_over_tcp_finishes_after_a_worker_is_killed(setup, tmp_path):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1; one worker is SIGKILLed
    mid-run: its blocks are redone on the other and the store equals an in-process run."""
    import socket

    from dask.distributed import Client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = [subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard", "--memory-limit", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        local, remote = tmp_path / "local.zarr", tmp_path / "tcp.zarr"
        extra = ("--block", "2", "32", "32", "--instances", "cc")
        plan, cfg = build_plan(namespace(args_for(setup, local, *extra)))
        assert deploy(plan, cfg, progress=False)
        run = subprocess.Popen([str(BIN / "emseg"), "predict", *args_for(setup, remote, *extra), "--scheduler", address, "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 240
        while len(list((remote / "blocks").glob("*.json"))) < 3 and time.time() < deadline and run.poll() is None:
            time.sleep(0.2)
        done_before_kill = len(list((remote / "blocks").glob("*.json")))
        workers[0].kill()
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:]
        assert 3 <= done_before_kill < len(plan.boxes)  # the kill landed mid-run
        a, b = read_store(local), read_store(remote)
        assert np.abs(a["probabilities"].astype(int) - b["probabilities"]).max() <= 1  # other processes may order float sums differently
        pairs = np.unique(np.stack([a["instances"].ravel(), b["instances"].ravel()]), axis=1)
        assert pairs.shape[1] == len(np.unique(a["instances"])) == len(np.unique(b["instances"]))
    finally:
        for process in (*workers, scheduler):
            process.kill()
            process.wait()


def test_precomputed_input_reads_like_the_h5_volume(setup, tmp_path):
    from cloudvolume import CloudVolume

    _, _, image = setup
    info = CloudVolume.create_new_info(1, "image", "uint8", "raw", [8, 8, 40], [0, 0, 0], image.shape[::-1], chunk_size=[32, 32, 4])
    url = f"file://{tmp_path / 'layer'}"
    layer = CloudVolume(url, info=info, progress=False)
    layer.commit_info()
    layer[:, :, :] = np.transpose(image, (2, 1, 0))[..., None]
    from_h5, from_cloud = tmp_path / "a.zarr", tmp_path / "b.zarr"
    for source, out in ((None, from_h5), (f"precomputed://{url}", from_cloud)):
        argv = args_for(setup, out, "--block", "10", "96", "80")
        if source:
            argv[argv.index("--input") + 1] = source
        plan, cfg = build_plan(namespace(argv))
        deploy(plan, cfg, progress=False)
    assert np.array_equal(read_store(from_h5)["probabilities"], read_store(from_cloud)["probabilities"])


def test_with_halo_clips_at_the_volume_edge():
    outer, inner = with_halo((slice(0, 4), slice(8, 16), slice(12, 20)), (2, 3, 3), (10, 20, 20))
    assert outer == (slice(0, 6), slice(5, 19), slice(9, 20)) and inner == (slice(0, 4), slice(3, 11), slice(3, 11))


def test_block_smaller_than_halo_is_a_one_line_error_and_writes_nothing(setup, tmp_path):
    out = tmp_path / "never.zarr"
    result = run_predict(args_for(setup, out, "--block", "4", "8", "8", "--halo", "4", "2", "2"))
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and errors == ["error: --block [4, 8, 8] must be larger than --halo [4, 2, 2] on every axis (Z, Y, X)"]
    assert "Traceback" not in result.stderr and not out.exists()


def test_block_ranges_for_job_arrays():
    assert parse_blocks("3:7") == range(3, 7) and parse_blocks(None) is None
    for bad in ("5", "7:3", "a:b"):
        with pytest.raises(ConfigError, match=f"--blocks '{bad}' must"):
            parse_blocks(bad)


def test_unreadable_input_and_foreign_output_are_refused(setup, tmp_path):
    argv = args_for(setup, tmp_path / "x.zarr")
    argv[argv.index("--input") + 1] = str(tmp_path / "missing.h5")
    with pytest.raises(DataError, match="missing.h5: no such file"):
        build_plan(namespace(argv))
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    plan, cfg = build_plan(namespace(args_for(setup, foreign, "--overwrite")))
    with pytest.raises(DataError, match="exists and is not an emseg deploy output"):
        deploy(plan, cfg, progress=False)
    assert (foreign / "keep.txt").read_text() == "precious"


def test_restart_with_other_settings_is_refused_unless_overwrite(setup, tmp_path):
    out = tmp_path / "o.zarr"
    plan, cfg = build_plan(namespace(args_for(setup, out, "--block", "5", "48", "40")))
    deploy(plan, cfg, progress=False)
    other, _ = build_plan(namespace(args_for(setup, out, "--block", "10", "48", "40")))
    with pytest.raises(DataError, match=r"was started with another block \(\(5, 48, 40\) vs now \(10, 48, 40\)\); pass --overwrite"):
        deploy(other, cfg, progress=False)
    assert len(list((out / "blocks").glob("*.json"))) == 2 * 2 * 2  # the finished run is untouched
    deploy(other, cfg, overwrite=True, progress=False)
    assert len(list((out / "blocks").glob("*.json"))) == 1 * 2 * 2


def test_model_with_other_input_channels_is_refused(setup, tmp_path):
    plan, cfg = build_plan(namespace(args_for(setup, tmp_path / "c.zarr")))
    cfg = load_config(TINY, overrides=["MODEL.IN_PLANES", "2"])
    with pytest.raises(ConfigError, match="MODEL.IN_PLANES = 2 channels per slice"):
        deploy(plan, cfg, progress=False)
    assert not (tmp_path / "c.zarr").exists()


@pytest.mark.parametrize("decoder, message", [
    ("bc_watershed", "--instances bc_watershed needs the contour map(s), but the model learns only TARGET.NAMES []"),
    ("mutex_watershed", "--instances mutex_watershed needs the affinity map(s)"),
    ("agglomerate", "unknown decoder 'agglomerate'"),
])
def test_decoder_missing_its_maps_is_a_one_line_error_and_writes_nothing(setup, tmp_path, decoder, message):
    out = tmp_path / "never.zarr"
    result = run_main("emseg", "predict", *args_for(setup, out, "--block", "4", "32", "32", "--instances", decoder))
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0], errors
    assert not out.exists()


def test_learned_maps_are_stored_and_decoded_blockwise_like_the_whole_store(tmp_path):
    """A model with contour + distance targets: emseg predict stores both maps, and its bcd_watershed
    instances equal one decode of the whole stored volume (8+ blocks, objects crossing block corners)."""
    from emseg_plugins.postprocess.decoders import maps_reader
    from emseg_plugins.registry import DECODERS

    overrides = ["DATASET.OUTPUT_PATH", str(tmp_path / "run"), "SOLVER.ITERATION_TOTAL", "2", "SOLVER.ITERATION_VAL", "2",
                 "TARGET.NAMES", '["contour", "distance"]', "INFERENCE.INSTANCE_CLASS", "mito", "INFERENCE.DECODE.THRESHOLD", "0.3"]
    cfg = load_config(TINY, overrides=overrides)
    train(cfg)
    volume = make_em_volume((8, 96, 96), seed=5).image
    write_volume(tmp_path / "em.h5:/main", volume)
    argv = ["--config-file", str(TINY), "--checkpoint", str(tmp_path / "run" / "checkpoints" / "last.ckpt"),
            "--input", f"{tmp_path / 'em.h5'}:/main", "--output", str(tmp_path / "p.zarr"), "--block", "4", "48", "48",
            "--halo", "3", "40", "40", "--instances", "bcd_watershed", *overrides]
    plan, cfg = build_plan(namespace(argv))
    assert len(plan.boxes) == 8 and deploy(plan, cfg, progress=False)
    root = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")
    assert root["contour"].shape == root["distance"].shape == (1, 8, 96, 96)
    whole = DECODERS.build("bcd_watershed", cfg).decode(maps_reader(root, ["nuc", "mito"], "mito")(tuple(slice(0, n) for n in (8, 96, 96))))
    ids = root["instances"][:]
    pairs = np.unique(np.stack([ids.ravel().astype(np.int64), whole.ravel().astype(np.int64)]), axis=1)
    assert pairs.shape[1] == len(np.unique(ids)) == len(np.unique(whole)) and ((pairs[0] == 0) == (pairs[1] == 0)).all()
