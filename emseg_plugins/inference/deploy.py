"""Chunked, resumable prediction over volumes larger than memory, locally or on a Dask cluster.

The volume (Z, Y, X) is cut into blocks (``block_grid``). Each block task reads its block plus a
halo of context, runs the sliding-window predictor, and writes the block's core into a zarr store
whose chunks are exactly the blocks, so concurrent tasks never share a chunk file (zarr writes each
chunk file atomically). Only then is the block's marker ``blocks/<index>.json`` written
(atomically). A run killed at any moment and started again redoes every block without a marker and
nothing else; each block's result depends only on the input and the weights, so the final store is
the same as an uninterrupted run's. Peak memory is that of one block with its halo per worker.

Output store (``--output x.zarr``):

    probabilities     uint8 (K, Z, Y, X), round(255 p) (default), or float16 p with --dtype float16;
                      chunks (1, *block); attribute ``classes``
    masks             uint8 (K, Z, Y, X), 1 where p >= INFERENCE.THRESHOLD (with --masks)
    binary, contour,  the model's learned-target maps (TARGET.NAMES), (C, Z, Y, X), dtype as probabilities
    distance, affinity
    instances_local   uint32 (Z, Y, X), per-block instance ids (with --instances DECODER)
    instances         uint64 (Z, Y, X), ids stitched across blocks (with --instances DECODER)
    deploy.json       the plan (input, weights, block, halo, config); a restart must agree with it
    blocks/, decoded/, stitched/, shells/  completion markers and decoded block shells

With ``--instances`` a second pass decodes each block from the stored maps with the same halo and a
third stitches them (``deploy_instances.py``): the result equals decoding the whole stored volume at
once for every object whose foreground component fits in a block plus its halo.
"""
from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm
from yacs.config import CfgNode as CN

from emseg_plugins.errors import ConfigError, DataError
from emseg_plugins.inference.sliding_window import predict_outputs
from emseg_plugins.inference.sources import open_source
from emseg_plugins.inference.tta import check_tta
from emseg_plugins.inference.deploy_instances import decode_task, stitch_output
from emseg_plugins.inference.plan import PLAN_FILE, Plan, marker
from emseg_plugins.postprocess.blockwise import grow, inside
from emseg_plugins.postprocess.stitch import Box
from emseg_plugins.registry import DECODERS
from emseg_plugins.targets import build_targets, target_names
from emseg_plugins.utils.atomic import atomic_write_text

PROBABILITY_DTYPES = ("uint8", "float16")  # uint8: round(255 p), 1 byte/voxel; float16: p itself, 2 bytes/voxel


def default_halo(cfg: CN) -> tuple[int, int, int]:
    """Context around each block: a quarter window in Y/X (and Z in 3D); 2.5D neighbours in Z for 2D."""
    z, y, x = cfg.INFERENCE.INPUT_SIZE
    return (cfg.DATASET.INPUT_SLICES // 2 if cfg.DATASET.DIMS == 2 else z // 4, y // 4, x // 4)


def check_block_halo(block: Sequence[int], halo: Sequence[int]) -> None:
    """:class:`ConfigError` unless block (Z, Y, X) > halo (Z, Y, X) >= 0 on every axis."""
    if len(block) != 3 or min(block) < 1:
        raise ConfigError(f"--block {list(block)} must be three positive sizes (Z, Y, X)")
    if len(halo) != 3 or min(halo) < 0:
        raise ConfigError(f"--halo {list(halo)} must be three sizes >= 0 (Z, Y, X)")
    if any(h >= b for h, b in zip(halo, block)):
        raise ConfigError(f"--block {list(block)} must be larger than --halo {list(halo)} on every axis (Z, Y, X)")


def check_scheduler(scheduler: str, workers: int) -> None:
    """``local``, ``dask`` (with workers >= 1) or a Dask scheduler address such as ``tcp://host:8786``."""
    if scheduler == "dask" and workers < 1:
        raise ConfigError(f"--workers {workers} must be at least 1 with --scheduler dask")
    if scheduler not in ("local", "dask") and not re.fullmatch(r"(tcp|tls|ucx|inproc)://[^/\s]+:\d+", scheduler):
        raise ConfigError(f"--scheduler {scheduler!r} must be local, dask, or a Dask scheduler address such as tcp://host:8786")


def check_plan(plan: Plan, cfg: CN) -> None:
    """One-line errors for plans that cannot work (before anything is written)."""
    check_block_halo(plan.block, plan.halo)
    if plan.min_size < 0:
        raise ConfigError(f"--min-size {plan.min_size} must be >= 0")
    if cfg.MODEL.IN_PLANES != 1:
        raise ConfigError(f"{plan.checkpoint}: the model takes MODEL.IN_PLANES = {cfg.MODEL.IN_PLANES} channels per slice, "
                          f"but {plan.input} is a single-channel volume")
    if plan.instances:
        check_decoder(plan.instances, cfg)
    if plan.dtype not in PROBABILITY_DTYPES:
        raise ConfigError(f"--dtype {plan.dtype!r} must be one of {', '.join(PROBABILITY_DTYPES)}")
    check_tta(cfg)


def check_decoder(name: str, cfg: CN) -> None:
    """:class:`ConfigError` when decoder ``name`` is unknown or needs a map the model does not learn."""
    decoder = DECODERS.build(name, cfg)
    learned = {"foreground", *target_names(cfg)}
    missing = [m for m in decoder.needs if m not in learned]
    if missing:
        raise ConfigError(f"--instances {name} needs the {', '.join(missing)} map(s), but the model learns only "
                          f"TARGET.NAMES {list(cfg.TARGET.NAMES)}; train with {', '.join(missing)} in TARGET.NAMES or use cc/watershed")


def prepare_output(plan: Plan, overwrite: bool) -> list[int]:
    """Create (or reopen) the output store; returns the block indices still to do."""
    out = Path(plan.output)
    plan_file = out / PLAN_FILE
    if out.exists() and not plan_file.is_file() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: exists and is not an emseg deploy output; choose another --output (it is never deleted)")
    if plan_file.is_file():
        previous = Plan.from_json(plan_file.read_text())
        changed = [k for k in ("input", "checkpoint_sha256", "shape", "block", "halo", "classes", "instances", "min_size",
                                                                "dtype", "masks", "cfg_yaml")
                   if getattr(previous, k) != getattr(plan, k)]
        if changed and not overwrite:
            key = changed[0]
            raise DataError(f"{out}: was started with another {key} ({_short(getattr(previous, key))} vs now "
                            f"{_short(getattr(plan, key))}); pass --overwrite to start again, or use another --output")
        if changed:
            shutil.rmtree(out)
    if not plan_file.is_file():
        root = zarr.open_group(str(out), mode="w")
        k = len(plan.classes)
        probs = root.create_dataset("probabilities", shape=(k, *plan.shape), chunks=(1, *plan.block), dtype=plan.dtype, fill_value=0)
        probs.attrs["classes"] = list(plan.classes)
        if plan.masks:
            masks = root.create_dataset("masks", shape=(k, *plan.shape), chunks=(1, *plan.block), dtype="u1", fill_value=0)
            masks.attrs["classes"] = list(plan.classes)
        for target in build_targets(CN.load_cfg(plan.cfg_yaml)):  # the model's learned-target maps
            root.create_dataset(target.name, shape=(target.channels, *plan.shape), chunks=(1, *plan.block), dtype=plan.dtype, fill_value=0)
        if plan.instances:
            root.create_dataset("instances_local", shape=plan.shape, chunks=plan.block, dtype="u4", fill_value=0)
            root.create_dataset("instances", shape=plan.shape, chunks=plan.block, dtype="u8", fill_value=0)
        atomic_write_text(plan_file, plan.to_json())  # last: a store without it is recreated
    return [i for i in range(len(plan.boxes)) if not marker(out, "blocks", i).is_file()]


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


_MODELS: dict[str, object] = {}  # per process: checkpoint sha -> model, loaded once per worker


def _model_for(plan: Plan, gpu: bool = False):
    """The plan's model, on a GPU when ``gpu`` (SYSTEM.NUM_GPUS > 0) and one is visible, else on the CPU."""
    if plan.checkpoint_sha256 not in _MODELS:
        from emseg_plugins.inference.predictor import restore_model  # pulls in the model registry; only workers need it

        _MODELS[plan.checkpoint_sha256] = restore_model(plan.checkpoint, gpu=gpu)[0]
    return _MODELS[plan.checkpoint_sha256]


def with_halo(box: Box, halo: Sequence[int], shape: Sequence[int]) -> tuple[Box, Box]:
    """(the block grown by ``halo`` and clipped to the volume, the block's position inside it)."""
    outer = grow(box, halo, shape)
    return outer, inside(box, outer)


def predict_block(plan_json: str, index: int) -> int:
    """Predict block ``index`` of the plan into the store (probabilities and learned maps) and mark it done."""
    plan = Plan.from_json(plan_json)
    cfg = CN.load_cfg(plan.cfg_yaml)
    box = plan.boxes[index]
    outer, inner = with_halo(box, plan.halo, plan.shape)
    with open_source(plan.input) as source:
        image = np.asarray(source[outer])
    outputs = predict_outputs(_model_for(plan, cfg.SYSTEM.NUM_GPUS > 0), image, cfg, progress=False)
    root = zarr.open_group(plan.output, mode="r+")
    probs = outputs["probabilities"][(slice(None), *inner)]
    for name in ("probabilities", *target_names(cfg)):
        values = outputs[name][(slice(None), *inner)]
        root[name][(slice(None), *box)] = np.round(values * 255).astype(np.uint8) if plan.dtype == "uint8" else values.astype(np.float16)
    if plan.masks:
        root["masks"][(slice(None), *box)] = (probs >= cfg.INFERENCE.THRESHOLD).astype(np.uint8)
    atomic_write_text(marker(Path(plan.output), "blocks", index), "{}")
    return index


def run_blocks(plan: Plan, todo: Sequence[int], scheduler: str = "local", workers: int = 2, progress: bool = True,
               task=predict_block, desc: str = "deploy") -> None:
    """Run ``task(plan_json, index)`` for the blocks in ``todo``: ``local`` (in this process), ``dask`` (a
    LocalCluster of ``workers`` processes) or the address of a running Dask scheduler (``tcp://host:8786``)."""
    plan_json = plan.to_json()
    bar = tqdm(total=len(plan.boxes), initial=len(plan.boxes) - len(todo), desc=desc, unit="block", disable=not progress)
    with bar:
        if scheduler == "local":
            for index in todo:
                task(plan_json, index)
                bar.update()
            return
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) if scheduler == "dask" else None
        try:
            with Client(cluster if cluster is not None else scheduler) as client:
                futures = client.map(task, [plan_json] * len(todo), list(todo), pure=False)
                for future in as_completed(futures):
                    future.result()  # a failed task raises here, with its own error
                    bar.update()
        finally:
            if cluster is not None:
                cluster.close()


def deploy(plan: Plan, cfg: CN, scheduler: str = "local", workers: int = 2, overwrite: bool = False,
           blocks: range | None = None, progress: bool = True) -> bool:
    """Prepare, run the missing blocks (only those in ``blocks`` if given) and stitch when all are done.

    Returns True when the output is complete.
    """
    check_plan(plan, cfg)
    check_scheduler(scheduler, workers)
    _model_for(plan)  # a checkpoint whose weights do not fit fails here, before the store is created
    todo = prepare_output(plan, overwrite)
    if blocks is not None:
        todo = [i for i in todo if i in blocks]
    run_blocks(plan, todo, scheduler, workers, progress)
    out = Path(plan.output)
    done = all(marker(out, "blocks", i).is_file() for i in range(len(plan.boxes)))
    if done and plan.instances:
        undecoded = [i for i in range(len(plan.boxes)) if not marker(out, "decoded", i).is_file()]
        run_blocks(plan, undecoded, scheduler, workers, progress, task=decode_task, desc="decode")
        cut = stitch_output(plan, progress)
        if cut:
            print(f"warning: {cut} foreground component(s) reach past a block's halo {list(plan.halo)}; their instances may "
                  "differ from decoding the whole volume at once: raise --halo to cover the largest object", flush=True)
    return done
