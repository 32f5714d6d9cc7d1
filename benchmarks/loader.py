"""Data-loader throughput against what training consumes: does training ever wait on data?

For each data source (``SOURCES``) and each case (2D 256 x 256 patches for Joe Net as in
configs/demo.yaml, batch 8; 3D 64 x 128 x 128 patches for a small ``monai_unet``, batch 2), with
full augmentation (every ``AUGMENTOR.*.P`` = 0.5 plus flips, 90-degree rotations and intensity):

- loader: samples/s through a ``torch`` DataLoader with ``--workers`` worker processes (default 2),
  first batch (worker start-up) not timed;
- model: samples/s consumed by training steps (forward, loss, backward, AdamW step) on the CPU, in
  this process, with torch's default thread count, after one warm-up step;
- ratio: loader / model; the target is >= 3 (the loader is never the bottleneck).

The two are timed one after the other, not concurrently (on a machine with few cores they compete
for the same CPUs during real training). ``--quick``: 2D 128 x 128 and 3D 32 x 64 x 64, fewer batches,
and only the ``memory`` source unless ``--sources`` names others.

A source is a function ``(cfg, num_samples) -> torch Dataset`` yielding batch-schema samples
(docs/schemas.md) for ``cfg.DATASET``'s patch size: ``memory`` (in-memory volume) and ``cellmap``
(cellmap-data on a synthetic CellMap-layout zarr root written to a temporary directory).

    .venv/bin/python benchmarks/loader.py [--quick] [--workers 2] [--batches 20] [--steps 5] [--sources memory] [--json PATH]
"""
from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from figures import Figure, add_json_argument, meets, write_figures  # benchmarks/figures.py, next to this script
from torch.utils.data import DataLoader, Dataset
from yacs.config import CfgNode as CN

from emseg_plugins.config import load_config
from emseg_plugins.challenge.standin import write_cellmap_root
from emseg_plugins.datasets.patches import Volume, VolumeData
from emseg_plugins.datasets.synthetic_em import make_em_volume
from emseg_plugins.engine.module import SegmentationModule
from emseg_plugins.models.outputs import logits_of
from emseg_plugins.registry import DATASETS

FULL_AUGMENTATION = [x for name in ("ROTATE", "ELASTIC", "GAMMA", "NOISE", "BLUR", "MISSINGSECTION", "MISALIGNMENT", "MOTIONBLUR")
                     for x in (f"AUGMENTOR.{name}.P", "0.5")]
CASES = {  # name -> (config overrides on configs/demo.yaml, patch (Z, Y, X) full / quick)
    "2D joenet": ([], {False: [1, 256, 256], True: [1, 128, 128]}),
    "3D monai_unet": (["MODEL.ARCHITECTURE", "monai_unet", "DATASET.DIMS", "3", "SOLVER.SAMPLES_PER_BATCH", "2",
                       "MODEL.MONAI_UNET.CHANNELS", "[8, 16, 32, 64]", "MODEL.MONAI_UNET.STRIDES", "[2, 2, 2]",
                       "MODEL.MONAI_UNET.NUM_RES_UNITS", "1"],
                      {False: [64, 128, 128], True: [32, 64, 64]}),
}


def memory_source(cfg: CN, num_samples: int) -> Dataset:
    """Random augmented patches (RandomPatches) from one in-memory synthetic EM volume a bit larger than the patch."""
    pz, py, px = cfg.DATASET.PATCH_SIZE
    shape = (max(pz + 16, 16), 2 * py, 2 * px)
    synthetic = make_em_volume(shape, seed=0)
    volume = Volume("memory", synthetic.image, np.stack([synthetic.nuc, synthetic.mito]), instances=synthetic.mito_ids)
    return VolumeData(cfg, {"train": [volume]}).train_dataset(num_samples)


def cellmap_source(cfg: CN, num_samples: int) -> Dataset:
    """The ``cellmap`` plugin (cellmap-data) over a synthetic CellMap-layout zarr root on local disk."""
    pz, py, px = cfg.DATASET.PATCH_SIZE
    root = Path(tempfile.mkdtemp(prefix="emseg-loader-bench-")) / "cellmap"
    atexit.register(shutil.rmtree, root.parent, True)
    crop = (max(2, pz + pz % 2), py, px)
    write_cellmap_root(root, shape=(crop[0] + 16, 2 * py, 2 * px), crop_size=crop, crops_per_dataset=2, n_datasets=1)
    cellmap_cfg = cfg.clone()
    cellmap_cfg.defrost()
    cellmap_cfg.DATASET.NAME = "cellmap"
    cellmap_cfg.DATASET.CELLMAP.DATA_ROOT = str(root)
    cellmap_cfg.DATASET.CELLMAP.VAL_FRACTION = 0.5
    return DATASETS.build("cellmap", cellmap_cfg).train_dataset(num_samples)


SOURCES: dict[str, Callable[[CN, int], Dataset]] = {
    "memory": memory_source,
    "cellmap": cellmap_source,
}


def loader_rate(dataset: Dataset, batch: int, workers: int, batches: int) -> float:
    """Samples/s over ``batches`` batches after the first (worker start-up excluded)."""
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, persistent_workers=workers > 0)
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - start)


def model_rate(cfg: CN, sample_batch: dict[str, torch.Tensor], steps: int) -> float:
    """Samples/s of training steps (forward, loss, backward, AdamW) on one fixed batch, after a warm-up step."""
    torch.manual_seed(0)
    module = SegmentationModule(cfg.dump())
    model, loss_fn = module.model.train(), module.loss
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.SOLVER.BASE_LR)
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(logits_of(model(sample_batch["image"])), sample_batch["label"], sample_batch.get("valid_mask"))
        loss.backward()
        optimizer.step()
    return steps * sample_batch["image"].shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller patches and fewer batches")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=None, help="timed loader batches (default 20, quick 6)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps (default 5, quick 3)")
    parser.add_argument("--sources", default=None, help=f"comma-separated, of {', '.join(SOURCES)} (default all; quick: memory)")
    add_json_argument(parser)
    args = parser.parse_args()
    args.sources = args.sources or ("memory" if args.quick else ",".join(SOURCES))
    batches = args.batches or (6 if args.quick else 20)
    steps = args.steps or (3 if args.quick else 5)
    rows = []
    for case, (overrides, patch) in CASES.items():
        size = patch[args.quick]
        cfg = load_config("configs/demo.yaml", overrides=[
            *overrides, *FULL_AUGMENTATION, "DATASET.PATCH_SIZE", str(size), "INFERENCE.INPUT_SIZE", str(size)])
        batch = cfg.SOLVER.SAMPLES_PER_BATCH
        for source in args.sources.split(","):
            dataset = SOURCES[source](cfg, (batches + 1) * batch)
            loaded = loader_rate(dataset, batch, args.workers, batches)
            first = next(iter(DataLoader(dataset, batch_size=batch)))
            consumed = model_rate(cfg, first, steps)
            rows.append((case, source, "x".join(map(str, size if cfg.DATASET.DIMS == 3 else size[1:])), batch, loaded, consumed))
            print(f"{case} / {source}: loader {loaded:.1f} samples/s, model {consumed:.1f} samples/s", flush=True)
    print(f"\nworkers {args.workers}, torch threads {torch.get_num_threads()}, full augmentation; ratio target >= 3")
    print("| case | source | patch | batch | loader samples/s | model samples/s (steps/s) | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    figures = []
    for case, source, size, batch, loaded, consumed in rows:
        print(f"| {case} | {source} | {size} | {batch} | {loaded:.1f} | {consumed:.1f} ({consumed / batch:.2f}) | {loaded / consumed:.1f} |")
        figures.append(Figure(
            "loader", f"{case} {size} / {source}: loader samples/s vs training", loaded, "samples/s",
            "training steps' consumption (fwd, loss, bwd, AdamW; timed after)", consumed, loaded / consumed, ">= 3",
            meets(loaded / consumed, ">= 3"), f"batch {batch}, {args.workers} workers, full augmentation"))
    write_figures(args.json, figures)


if __name__ == "__main__":
    main()
