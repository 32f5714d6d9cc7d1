"""Inference figures: sliding-window throughput vs MONAI, the cost of TTA, chunked-deploy memory,
watershed + stitching throughput. All in one run, on the same models, weights and volumes.

1. voxels/s of our predictor (``predict_outputs``, the path of `emseg predict` and
   `pytc-train --inference`) against calling MONAI's ``sliding_window_inference`` directly with the
   same model, weights, window, overlap, blending and window batch: 2D Joe Net (demo config) on a
   1024x1024 slice, 3D MONAI UNet on 64x256x256 (``--quick``: 512x512 and 32x128x128). A/B rounds
   alternate so machine drift hits both; the best (minimum) time of the rounds is reported, the
   least disturbed by other processes on a shared machine.
2. TTA: the same predictor with INFERENCE.AUG_MODE mean, AUG_NUM 4 and 8 (2D), 8 and 16 (3D); ``--quick``: 4 (2D, 3D).
3. `emseg predict` (chunked deploy) peak RSS on a volume and on one 8x larger (2x per axis), each
   in its own subprocess (peak RSS of the child via getrusage(RUSAGE_CHILDREN)); same block size.
4. Seeded watershed per block + cross-block stitching on a 256^3 synthetic mito volume (``--quick``:
   128^3), against one whole-volume watershed.

Targets: ours/MONAI voxels/s >= 1.0; deploy peak RSS growth <= 1.2 for 8x the voxels. ``--quick``
also runs 1 round unless ``--rounds`` is given (so its ratios are noisier).

    .venv/bin/python benchmarks/inference.py [--quick] [--rounds 4] [--json PATH]

Weights are random (throughput and memory do not depend on them).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from figures import Figure, add_json_argument, meets, write_figures  # benchmarks/figures.py, next to this script
from monai.inferers import sliding_window_inference

from emseg_plugins.config import load_config
from emseg_plugins.datasets.synthetic_em import make_em_volume
from emseg_plugins.datasets.volume_io import write_volume
from emseg_plugins.engine.module import SegmentationModule
from emseg_plugins.inference.sliding_window import predict_outputs
from emseg_plugins.postprocess.instances import watershed_instances
from emseg_plugins.postprocess.blockwise import decode_blockwise
from emseg_plugins.postprocess.decoders import DistanceWatershed
from emseg_plugins.postprocess.stitch import block_grid

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.yaml"
BIN = Path(sys.executable).parent

MODELS = {  # config overrides on configs/demo.yaml
    2: ["INFERENCE.SAMPLES_PER_BATCH", "4"],
    3: ["MODEL.ARCHITECTURE", "monai_unet", "DATASET.DIMS", "3", "DATASET.PATCH_SIZE", "[32, 64, 64]", "INFERENCE.INPUT_SIZE", "[32, 64, 64]",
        "MODEL.MONAI_UNET.CHANNELS", "[16, 32, 64, 128]", "MODEL.MONAI_UNET.STRIDES", "[2, 2, 2]", "MODEL.MONAI_UNET.NUM_RES_UNITS", "1",
        "INFERENCE.SAMPLES_PER_BATCH", "2"],
}
Rows = list[tuple[str, float, str]]  # console rows: (what, voxels/s, notes)
RSS_CHILD = "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ours(model, image, cfg):
    return predict_outputs(model, image, cfg, progress=False)["probabilities"]


def monai_direct(model, image, cfg):
    """MONAI's sliding_window_inference called directly, as a user would without this package."""
    i = cfg.INFERENCE
    with torch.no_grad():
        if cfg.DATASET.DIMS == 2:  # one slice (1, 1, Y, X)
            x, roi = torch.from_numpy(image[0]).float()[None, None] / 255.0, list(i.INPUT_SIZE[1:])
        else:
            x, roi = torch.from_numpy(image).float()[None, None] / 255.0, list(i.INPUT_SIZE)
        out = sliding_window_inference(x, roi, i.SAMPLES_PER_BATCH, model, overlap=i.OVERLAP, mode=i.BLENDING, padding_mode="reflect")
        return torch.sigmoid(out).numpy()


def throughput(dims: int, shape: tuple[int, int, int], rounds: int, tta: list[int]) -> tuple[Rows, list[Figure]]:
    cfg = load_config(DEMO, overrides=MODELS[dims])
    model = SegmentationModule(cfg.dump()).model.eval()
    image = make_em_volume(shape if dims == 3 else (3, *shape[1:]), seed=1).image[: shape[0]]
    voxels = image.size
    a = ours(model, image, cfg)
    b = monai_direct(model, image, cfg)
    b = b[0] if dims == 3 else b[0][:, None]
    assert np.abs(a - b).max() < 1e-4, np.abs(a - b).max()  # the same computation
    times = {"ours": [], "monai": []}
    for _ in range(rounds):
        times["ours"].append(timed(lambda: ours(model, image, cfg)))
        times["monai"].append(timed(lambda: monai_direct(model, image, cfg)))
    t_ours, t_monai = min(times["ours"]), min(times["monai"])
    name = f"{dims}D {cfg.MODEL.ARCHITECTURE} {'x'.join(map(str, shape))}"
    rows = [(f"{name}: ours (predict_outputs)", voxels / t_ours, f"ratio ours/MONAI {t_monai / t_ours:.3f}"),
            (f"{name}: MONAI sliding_window_inference", voxels / t_monai, "")]
    best = f"best of {rounds} alternating round{'s' * (rounds > 1)}"
    figures = [Figure("inference", f"{name}: voxels/s ours vs MONAI", voxels / t_ours, "voxels/s",
                      "MONAI sliding_window_inference (same model, window, overlap, blending)", voxels / t_monai, t_monai / t_ours,
                      ">= 1.0", meets(t_monai / t_ours, ">= 1.0"), f"{best}; outputs equal within 1e-4")]
    for n in tta:
        aug = load_config(DEMO, overrides=[*MODELS[dims], "INFERENCE.AUG_MODE", "mean", "INFERENCE.AUG_NUM", str(n)])
        t = min(timed(lambda aug=aug: ours(model, image, aug)) for _ in range(rounds))
        rows.append((f"{name}: ours + TTA x{n}", voxels / t, f"time x{t / t_ours:.2f} of no TTA"))
        figures.append(Figure("inference", f"{name}: TTA x{n} (AUG_MODE mean) cost", voxels / t, "voxels/s",
                              "ours without TTA", voxels / t_ours, t / t_ours,
                              note=f"ratio = time with TTA / time without; {best.replace('alternating ', '')}"))
    return rows, figures


def deploy_rss(small: tuple[int, int, int], block: tuple[int, int, int], tmp: Path) -> tuple[Rows, list[Figure]]:
    overrides = ["MODEL.FILTERS", "[8, 16, 32, 64]", "INFERENCE.INPUT_SIZE", "[1, 64, 64]", "INFERENCE.SAMPLES_PER_BATCH", "8"]
    cfg = load_config(DEMO, overrides=overrides)
    ckpt = tmp / "w.ckpt"
    torch.save({"state_dict": SegmentationModule(cfg.dump()).state_dict(), "hyper_parameters": {"cfg_yaml": cfg.dump()}}, ckpt)
    big = tuple(2 * s for s in small)
    peaks = {}
    for shape in (small, big):
        path = tmp / f"em_{'x'.join(map(str, shape))}.h5"
        write_volume(f"{path}:/main", make_em_volume(shape, seed=2).image, chunks=(8, 64, 64))
        cmd = [str(BIN / "emseg"), "predict", "--config-file", str(DEMO), "--checkpoint", str(ckpt), "--input", f"{path}:/main",
               "--output", str(tmp / f"pred_{path.stem}.zarr"), "--block", *map(str, block), "--no-progress", *overrides]
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", RSS_CHILD, *cmd], capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(result.stderr[-2000:])
        peaks[shape] = (int(result.stdout.strip().splitlines()[-1]) / 1024, seconds, int(np.prod(shape)))
    (rss_s, t_s, v_s), (rss_b, t_b, v_b) = peaks[small], peaks[big]
    x = "x".join
    rows = [(f"deploy {x(map(str, small))} (block {x(map(str, block))})", v_s / t_s, f"peak RSS {rss_s:.0f} MiB"),
            (f"deploy {x(map(str, big))} (8x voxels)", v_b / t_b, f"peak RSS {rss_b:.0f} MiB: growth x{rss_b / rss_s:.3f}")]
    figures = [Figure("inference", f"emseg predict peak RSS, {x(map(str, big))} (8x voxels)", rss_b, "MiB",
                      f"the same on {x(map(str, small))}", rss_s, rss_b / rss_s, "<= 1.2", meets(rss_b / rss_s, "<= 1.2"),
                      f"block {x(map(str, block))}; each run in its own process; {v_b / t_b:,.0f} vs {v_s / t_s:,.0f} voxels/s")]
    return rows, figures


def watershed_stitch(size: int, block: int) -> tuple[Rows, list[Figure]]:
    mito = make_em_volume((size,) * 3, seed=3).mito.astype(np.float32)  # the foreground map of a perfect model
    voxels = mito.size
    start = time.perf_counter()
    boxes = block_grid(mito.shape, (block,) * 3)
    stitched, _ = decode_blockwise(DistanceWatershed(0.5, 2.0), lambda region: {"foreground": mito[region]},
                                   mito.shape, (block,) * 3, (block // 4,) * 3)
    t_total = time.perf_counter() - start
    t_whole = timed(lambda: watershed_instances(mito, 0.5, seed_distance=2.0))
    whole_n = int(watershed_instances(mito, 0.5, seed_distance=2.0).max())
    n_stitched = len(np.unique(stitched)) - 1
    rows = [(f"watershed {size}^3 in {len(boxes)} blocks of {block}^3 + stitch", voxels / t_total,
             f"{t_total:.1f} s (decode with a {block // 4}-voxel halo + shell stitching); {n_stitched} objects"),
            (f"watershed {size}^3 whole volume", voxels / t_whole, f"{t_whole:.1f} s; {whole_n} objects; ratio blocks/whole {t_whole / t_total:.2f}")]
    figures = [Figure("inference", f"watershed {size}^3: {len(boxes)} blocks of {block}^3 + stitching", voxels / t_total, "voxels/s",
                      "one whole-volume watershed", voxels / t_whole, t_whole / t_total,
                      note=f"{n_stitched} objects stitched vs {whole_n} whole")]
    return rows, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (minutes on a laptop CPU)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating A/B rounds (best of; default 4, quick 1)")
    add_json_argument(parser)
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 4)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    parts = []
    if args.quick:
        parts.append(throughput(2, (1, 512, 512), args.rounds, [4]))
        parts.append(throughput(3, (32, 128, 128), args.rounds, [4]))
    else:
        parts.append(throughput(2, (1, 1024, 1024), args.rounds, [4, 8]))
        parts.append(throughput(3, (64, 256, 256), args.rounds, [8, 16]))
    with tempfile.TemporaryDirectory() as tmp:
        parts.append(deploy_rss((16, 128, 128) if args.quick else (32, 256, 256), (8, 128, 128), Path(tmp)))
    parts.append(watershed_stitch(128 if args.quick else 256, 64 if args.quick else 128))
    rows = [row for part_rows, _ in parts for row in part_rows]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'what':<{width}}  {'voxels/s':>12}  notes")
    for name, rate, note in rows:
        print(f"{name:<{width}}  {rate:>12,.0f}  {note}")
    write_figures(args.json, [figure for _, part_figures in parts for figure in part_figures])


if __name__ == "__main__":
    main()
