"""The instance passes of a chunked deploy: decode every block from the stored maps, then stitch.

Runs after every block's maps are in the store (``deploy.py``). Block ``i`` is decoded with the plan's
halo of context by the decoder ``plan.instances`` (``INFERENCE.DECODER`` parameters) and writes its
core ids to ``instances_local``, its shell to ``shells/<i>.npz`` and its marker ``decoded/<i>.json``
(count, cut components), each atomically, so a killed run redoes only undecoded blocks. Stitching
joins shells with neighbouring cores (``postprocess/blockwise.py``) and writes ``instances``.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm
from yacs.config import CfgNode as CN

from emseg_plugins.inference.plan import Plan, marker
from emseg_plugins.postprocess.decoders import maps_reader
from emseg_plugins.postprocess.blockwise import block_index, decode_block, join, shell_pairs
from emseg_plugins.postprocess.stitch import apply_lookup, block_offsets
from emseg_plugins.registry import DECODERS
from emseg_plugins.utils.atomic import atomic_path, atomic_write_text

def decode_task(plan_json: str, index: int) -> int:
    """Decode block ``index`` of a plan whose maps are all stored; returns its instance count."""
    plan = Plan.from_json(plan_json)
    cfg = CN.load_cfg(plan.cfg_yaml)
    if plan.min_size:  # --min-size overrides INFERENCE.DECODE.MIN_SIZE
        cfg.INFERENCE.DECODE.MIN_SIZE = plan.min_size
    out = Path(plan.output)
    root = zarr.open_group(str(out), mode="r+")
    decoder = DECODERS.build(plan.instances, cfg)
    result = decode_block(decoder, maps_reader(root, list(plan.classes), cfg.INFERENCE.INSTANCE_CLASS), plan.boxes[index], plan.halo, plan.shape)
    root["instances_local"][plan.boxes[index]] = result.core
    buffer = io.BytesIO()
    np.savez_compressed(buffer, shell=result.shell, box=np.array([[s.start, s.stop] for s in result.shell_box]))
    with atomic_path(out / "shells" / f"{index:06d}.npz") as tmp:
        Path(tmp).write_bytes(buffer.getvalue())
    atomic_write_text(marker(out, "decoded", index), json.dumps({"count": result.count, "cut": result.cut}))
    return result.count


def stitch_output(plan, progress: bool = True) -> int:
    """Write ``instances`` from the decoded blocks (resumable per block); returns the cut components."""
    out = Path(plan.output)
    root = zarr.open_group(str(out), mode="r+")
    done = [json.loads(marker(out, "decoded", i).read_text()) for i in range(len(plan.boxes))]
    offsets = block_offsets([d["count"] for d in done])
    grid = [len(range(0, s, b)) for s, b in zip(plan.shape, plan.block)]
    owner = block_index(plan.block, grid)
    pairs = []
    for i in range(len(plan.boxes)):
        with np.load(out / "shells" / f"{i:06d}.npz") as shell:
            box = tuple(slice(int(a), int(b)) for a, b in shell["box"])
            pairs.append(shell_pairs(shell["shell"], box, int(offsets[i]), root["instances_local"], owner, offsets))
    lookup = join(pairs, int(sum(d["count"] for d in done)))
    for index, box in enumerate(tqdm(plan.boxes, desc="stitch", unit="block", disable=not progress)):
        if not marker(out, "stitched", index).is_file():
            root["instances"][box] = apply_lookup(root["instances_local"][box], int(offsets[index]), lookup)
            atomic_write_text(marker(out, "stitched", index), "{}")
    return sum(d["cut"] for d in done)
