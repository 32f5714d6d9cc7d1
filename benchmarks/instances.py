"""Instance figures: what learned targets buy over connected components, decoding speed, blockwise memory.

1. Quality at equal model budget. ONE network (3D unetv3, configs/mito_bcd.yaml: DATASET.CLASSES
   [mito] and TARGET.NAMES [contour, distance]) is trained with the project's own entry point
   (``engine.run.train``) on the synthetic volume, whose mitochondria partly come in touching
   clusters (``make_em_volume``'s ``clustered_fraction``). The independent ``test`` split is predicted
   with ``predict_outputs`` and decoded by ``cc`` (on the mito class probability: the same network's
   binary output, the baseline), ``watershed``, ``bc_watershed`` and ``bcd_watershed``, and scored
   against the true mito instance ids: adapted Rand error (``partition_scores``, background ignored)
   and instance F1 at IoU 0.5 (``instance_scores``). Each decoder's INFERENCE.DECODE thresholds
   (and MIN_SIZE, for every decoder alike) are chosen on the ``val`` split (lowest ARE over the small
   grid GRIDS) and then applied once to ``test``; the defaults' test scores are in the notes. Targets: the
   best learned decoder (bc/bcd, picked on val) has test ARE <= 0.5 x cc's, and a higher F1 (gain > 0).
2. Decoding speed: voxels/s of each decoder on the whole predicted test volume and of
   ``decode_blockwise`` (bcd_watershed, stated block and halo), against one whole-volume
   ``skimage.segmentation.watershed`` of the negated EDT with markers (EDT >= 2) on the same maps.
3. Memory: peak RSS of the deploy's instance passes (``deploy_instances.decode_task`` for every block,
   then ``stitch_output``) over a zarr store of uint8 maps (perfect bcd maps of a synthetic volume),
   on a volume and on one 8x larger (the same maps mirrored 2x per axis), each in its own process
   (peak RSS of the child via getrusage(RUSAGE_CHILDREN)); same block and halo. Target: growth <= 1.2,
   at sizes where loading the large volume's float32 maps whole would already exceed it.

    .venv/bin/python benchmarks/instances.py [--quick] [--steps N] [--rounds R] [--workdir DIR] [--json PATH]

Full mode: 1000 training steps, 80-slice training / 40-slice val and test volumes (256x256), memory
on 64x256x256 and 128x512x512 (about 10-15 minutes on 2 idle cores); ``--quick``: 150 steps, the
same volumes, memory on 48x256x256 and 96x512x512 (a few minutes on idle cores; training is most of
it, over 10 minutes when other processes share the cores). The deploy path imports torch and
monai (about 1 GiB of RSS before any voxel), so the volumes must be this large for the large one's
float32 maps (3 x 4 bytes a voxel) to exceed 0.2 x that.
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from figures import Figure, add_json_argument, meets, ratio_of, write_figures  # benchmarks/figures.py, next to this script
from scipy import ndimage
from skimage.segmentation import watershed

from emseg_plugins.config import load_config
from emseg_plugins.datasets.synthetic_em import make_em_volume
from emseg_plugins.evaluation.instance_metrics import instance_scores
from emseg_plugins.evaluation.partition_metrics import partition_scores
from emseg_plugins.postprocess.blockwise import decode_blockwise
from emseg_plugins.postprocess.decoders import maps_reader
from emseg_plugins.registry import DATASETS, DECODERS
from emseg_plugins.targets.maps import contour_map, distance_map

ROOT = Path(__file__).resolve().parents[1]
MITO_BCD = ROOT / "configs" / "mito_bcd.yaml"
DECODER_NAMES = ["cc", "watershed", "bc_watershed", "bcd_watershed"]
LEARNED = ["bc_watershed", "bcd_watershed"]  # decoders that read the learned targets
# INFERENCE.DECODE grids searched on the val split (MIN_SIZE for every decoder alike)
GRIDS = {
    "cc": {"THRESHOLD": [0.3, 0.5, 0.7]},
    "watershed": {"SEED_DISTANCE": [1.0, 2.0, 3.0, 4.0]},
    "bc_watershed": {"SEED_THRESHOLD": [0.7, 0.9], "CONTOUR_THRESHOLD": [0.1, 0.2, 0.3, 0.5], "MIN_SEED_SIZE": [0, 20]},
    "bcd_watershed": {"SEED_THRESHOLD": [0.7, 0.9], "CONTOUR_THRESHOLD": [0.1, 0.2, 0.3, 0.5], "MIN_SEED_SIZE": [0, 20],
                      "DISTANCE_THRESHOLD": [0.3, 0.5]},
}
MIN_SIZES = [0, 100]
SPEED_BLOCK, SPEED_HALO = (20, 128, 128), (8, 32, 32)
MEMORY_BLOCK, MEMORY_HALO = (32, 128, 128), (8, 32, 32)
Rows = list[tuple[str, str, str]]  # console rows: (what, value, notes)
RSS_CHILD = "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
DECODE_STORE = """
import json, sys, time
from pathlib import Path
from emseg_plugins.inference.deploy import Plan
from emseg_plugins.inference.deploy_instances import decode_task, stitch_output
text = (Path(sys.argv[1]) / "deploy.json").read_text()
plan = Plan.from_json(text)
start = time.perf_counter()
count = sum(decode_task(text, i) for i in range(len(plan.boxes)))
cut = stitch_output(plan, progress=False)
print(json.dumps({"seconds": time.perf_counter() - start, "blocks": len(plan.boxes), "cut": cut, "count": count}))
"""
IMPORTS_ONLY = """
import json
from emseg_plugins.inference.deploy import Plan
from emseg_plugins.inference.deploy_instances import decode_task, stitch_output
print(json.dumps({}))
"""


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def shape_str(shape) -> str:
    return "x".join(map(str, shape))


# ---------------------------------------------------------------------------- 1. quality


def training_config(run_dir: Path, steps: int):
    """configs/mito_bcd.yaml (3D unetv3: mito mask + contour + distance) on a larger synthetic volume.

    3D, because touching mitochondria also touch across sections: per-section contours (a 2D model's)
    cannot separate them, so their seeds join through Z."""
    return load_config(MITO_BCD, overrides=[
        "DATASET.SYNTHETIC.SHAPE", "[120, 256, 256]", "DATASET.SYNTHETIC.VAL_Z", "[80, 120]",
        "SOLVER.ITERATION_TOTAL", str(steps), "SOLVER.ITERATION_VAL", str(steps), "DATASET.OUTPUT_PATH", str(run_dir),
        "MONITOR.PROGRESS_BAR", "False", "INFERENCE.DECODE.MIN_SIZE", "0"])


def decoder_maps(outputs: dict, cfg) -> dict[str, np.ndarray]:
    """The decoders' maps of a whole predicted volume (``predict_outputs``), as the deploy reads them."""
    whole = tuple(slice(0, n) for n in outputs["probabilities"].shape[1:])
    return maps_reader(outputs, cfg.DATASET.CLASSES, cfg.INFERENCE.INSTANCE_CLASS)(whole)


def decoder_cfg(cfg, params: dict):
    variant = cfg.clone()
    variant.defrost()
    for key, value in params.items():
        variant.INFERENCE.DECODE[key] = value
    variant.freeze()
    return variant


def score(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    part = partition_scores(labels, truth)
    inst = instance_scores(labels, truth, (0.5,))
    return {"are": part["are"], "are_precision": part["are_precision"], "are_recall": part["are_recall"],
            "f1": inst["f1@0.5"], "predicted": inst["predicted"], "true": inst["true"]}


def tune(name: str, cfg, maps: dict, truth: np.ndarray) -> tuple[dict, dict]:
    """(the grid point with the lowest val ARE (ties: higher F1), its val scores)."""
    grid = {**GRIDS[name], "MIN_SIZE": MIN_SIZES}
    best = None
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        s = score(DECODERS.build(name, decoder_cfg(cfg, params)).decode(maps), truth)
        if best is None or (s["are"], -s["f1"]) < (best[1]["are"], -best[1]["f1"]):
            best = (params, s)
    return best


def params_text(params: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in params.items())


def quality(steps: int, tmp: Path) -> tuple[Rows, list[Figure], dict]:
    from emseg_plugins.engine.run import train
    from emseg_plugins.inference.predictor import best_checkpoint, restore_model
    from emseg_plugins.inference.sliding_window import predict_outputs

    cfg = training_config(tmp / "run", steps)
    reused = (tmp / "run" / "checkpoints" / "last.ckpt").exists()  # --workdir with a run in it: resumed, not retrained
    start = time.perf_counter()
    train(cfg)
    t_train = time.perf_counter() - start
    checkpoint = best_checkpoint(tmp / "run")
    model, _ = restore_model(checkpoint)
    data = DATASETS.build(cfg.DATASET.NAME, cfg)
    val, test = data.volumes("val")[0], data.volumes("test")[0]
    start = time.perf_counter()
    val_maps = decoder_maps(predict_outputs(model, val.image, cfg, progress=False), cfg)
    test_maps = decoder_maps(predict_outputs(model, test.image, cfg, progress=False), cfg)
    t_predict = time.perf_counter() - start
    np.savez_compressed(tmp / "maps.npz", **{f"val_{k}": v for k, v in val_maps.items()}, **{f"test_{k}": v for k, v in test_maps.items()},
                        val_ids=val.instances, test_ids=test.instances)
    chosen, results, defaults = {}, {}, {}
    for name in DECODER_NAMES:
        chosen[name], val_scores = tune(name, cfg, val_maps, val.instances)
        results[name] = score(DECODERS.build(name, decoder_cfg(cfg, chosen[name])).decode(test_maps), test.instances)
        results[name]["val_are"] = val_scores["are"]
        defaults[name] = score(DECODERS.build(name, cfg).decode(test_maps), test.instances)
    best = min(LEARNED, key=lambda n: (results[n]["val_are"], n))
    base = results["cc"]
    truth_cc = int(ndimage.label(test.instances > 0, np.ones((3, 3, 3)))[1])
    setting = (f"{shape_str(test.image.shape)} test volume, {int(base['true'])} true mito instances "
               f"({truth_cc} connected components of the true mask); {steps} steps")
    trained = f"{steps} steps" + (" (a run already in --workdir, resumed: the time is not a training time)" if reused else "")
    setting += "; reused run" if reused else ""
    rows: Rows = [("training", f"{t_train:.0f} s", f"{trained}, checkpoint {checkpoint.name}; prediction of val + test {t_predict:.0f} s")]
    figures: list[Figure] = []
    for name in DECODER_NAMES:
        r, d = results[name], defaults[name]
        how = f"val-chosen {params_text(chosen[name])}; defaults give ARE {d['are']:.3f}, F1 {d['f1']:.3f}"
        rows.append((f"{name}: test ARE / F1@0.5", f"{r['are']:.3f} / {r['f1']:.3f}",
                     f"{int(r['predicted'])} objects; ARE precision {r['are_precision']:.3f} recall {r['are_recall']:.3f}; {how}"))
        peer = ("cc of the same network's mito probability" if name != "cc" else "", base if name != "cc" else None)
        figures.append(Figure("instances", f"test ARE, {name}", r["are"], "ARE", peer[0], peer[1] and peer[1]["are"],
                              ratio_of(r["are"], base["are"]) if name != "cc" else None,
                              note=f"{setting}; {how}; ARE precision {r['are_precision']:.3f}, recall {r['are_recall']:.3f}"))
        figures.append(Figure("instances", f"test instance F1@0.5, {name}", r["f1"], "F1", peer[0], peer[1] and peer[1]["f1"],
                              ratio_of(r["f1"], base["f1"]) if name != "cc" else None,
                              note=f"{int(r['predicted'])} predicted vs {int(r['true'])} true instances"))
    are_ratio = ratio_of(results[best]["are"], base["are"])
    gain = results[best]["f1"] - base["f1"]
    figures.append(Figure("instances", f"best learned decoder ({best}) test ARE vs cc", results[best]["are"], "ARE",
                          "cc (same network, same steps)", base["are"], are_ratio, "<= 0.5", meets(are_ratio, "<= 0.5"),
                          f"best of {', '.join(LEARNED)} by val ARE; {setting}; train {t_train:.0f} s"))
    figures.append(Figure("instances", f"best learned decoder ({best}) F1@0.5 gain over cc", results[best]["f1"], "F1",
                          "cc (same network, same steps)", base["f1"], gain, "> 0", meets(gain, "> 0"),
                          "ratio = F1 - cc F1 (the gain)"))
    rows.append((f"best learned ({best}) vs cc", f"ARE x{are_ratio:.3f}" if are_ratio is not None else "ARE n/a",
                 f"F1 gain {gain:+.3f} (targets: ARE ratio <= 0.5, gain > 0)"))
    context = {"maps": test_maps, "cfg": decoder_cfg(cfg, {}), "chosen": chosen, "volume": test.image.shape}
    return rows, figures, context


# ---------------------------------------------------------------------------- 2. speed


def peer_watershed(foreground: np.ndarray, threshold: float = 0.5, seed_distance: float = 2.0) -> np.ndarray:
    """One whole-volume skimage watershed of the negated EDT, markers = 26-connected EDT >= seed_distance."""
    mask = foreground >= threshold
    distance = ndimage.distance_transform_edt(mask)
    markers, _ = ndimage.label(distance >= seed_distance, np.ones((3, 3, 3)))
    return watershed(-distance, markers=markers, mask=mask)


def speed(context: dict, rounds: int) -> tuple[Rows, list[Figure]]:
    maps, cfg, chosen = context["maps"], context["cfg"], context["chosen"]
    shape = maps["foreground"].shape
    voxels = int(np.prod(shape))
    best_of = lambda fn: min(timed(fn) for _ in range(rounds))  # noqa: E731
    t_peer = best_of(lambda: peer_watershed(maps["foreground"]))
    peer_name = f"one whole-volume skimage watershed (-EDT, markers EDT >= 2) on the same {shape_str(shape)} maps"
    rows: Rows = [(f"peer: skimage watershed {shape_str(shape)}", f"{voxels / t_peer:,.0f} voxels/s", f"{t_peer:.2f} s")]
    figures: list[Figure] = []
    for name in DECODER_NAMES:
        decoder = DECODERS.build(name, decoder_cfg(cfg, chosen[name]))
        t = best_of(lambda decoder=decoder: decoder.decode(maps))
        rows.append((f"{name} whole volume", f"{voxels / t:,.0f} voxels/s", f"{t:.2f} s; x{t_peer / t:.2f} of the peer's rate"))
        figures.append(Figure("instances", f"decode {name}, whole {shape_str(shape)}", voxels / t, "voxels/s", peer_name,
                              voxels / t_peer, t_peer / t, note=f"val-chosen {params_text(chosen[name])}; best of {rounds}"))
    decoder = DECODERS.build("bcd_watershed", decoder_cfg(cfg, chosen["bcd_watershed"]))
    read = lambda region: {k: v[region] for k, v in maps.items()}  # noqa: E731
    result = {}

    def blockwise():
        result["ids"], result["cut"] = decode_blockwise(decoder, read, shape, SPEED_BLOCK, SPEED_HALO)

    t = best_of(blockwise)
    whole = decoder.decode(maps)
    same = _same_partition(result["ids"], whole)
    where = f"block {shape_str(SPEED_BLOCK)}, halo {shape_str(SPEED_HALO)}"
    rows.append((f"bcd_watershed decode_blockwise ({where})", f"{voxels / t:,.0f} voxels/s",
                 f"{t:.2f} s; {result['cut']} cut components; equals the whole-volume decode: {'yes' if same else 'no'}"))
    figures.append(Figure("instances", f"decode_blockwise bcd_watershed, {shape_str(shape)} ({where})", voxels / t, "voxels/s",
                          peer_name, voxels / t_peer, t_peer / t,
                          note=f"decode + shell stitching in memory; {result['cut']} cut components; "
                               f"partition equal to the whole-volume bcd decode: {'yes' if same else 'no'}; best of {rounds}"))
    return rows, figures


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label maps are the same partition (ids may differ)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0].astype(np.int64), b[b > 0].astype(np.int64)]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


# ---------------------------------------------------------------------------- 3. memory


def perfect_maps(shape, seed: int) -> dict[str, np.ndarray]:
    """uint8 round(255 p) maps of a perfect model: mito probability, per-slice contour and distance."""
    ids = make_em_volume(shape, seed=seed).mito_ids
    maps = {"probabilities": ids > 0, "contour": contour_map(ids, 1, per_slice=True)[0],
            "distance": distance_map(ids, per_slice=True)[0]}
    return {k: np.round(np.asarray(v, np.float32) * 255).astype(np.uint8) for k, v in maps.items()}


def write_store(path: Path, maps: dict[str, np.ndarray], cfg) -> None:
    """A deploy store whose maps are all written (as ``emseg predict --instances bcd_watershed`` leaves it)."""
    import zarr

    from emseg_plugins.inference.deploy import Plan, prepare_output

    shape = next(iter(maps.values())).shape
    plan = Plan(input="synthetic", output=str(path), checkpoint="none", checkpoint_sha256="none", cfg_yaml=cfg.dump(),
                shape=tuple(shape), block=MEMORY_BLOCK, halo=MEMORY_HALO, classes=("mito",), instances="bcd_watershed")
    prepare_output(plan, overwrite=False)
    root = zarr.open_group(str(path), mode="r+")
    for name, values in maps.items():
        for box in plan.boxes:
            root[name][(0, *box)] = values[box]


def memory(small, tmp: Path, cfg) -> tuple[Rows, list[Figure]]:
    maps = perfect_maps(small, seed=4)
    big = tuple(2 * s for s in small)
    stores = {small: tmp / "small.zarr", big: tmp / "big.zarr"}
    write_store(stores[small], maps, cfg)
    mirrored = {k: np.pad(v, [(0, s) for s in small], mode="symmetric") for k, v in maps.items()}  # 2x per axis, seamless
    write_store(stores[big], mirrored, cfg)
    del maps, mirrored
    peaks = {}
    for shape, store in [("imports", None), *stores.items()]:
        cmd = [sys.executable, "-c", IMPORTS_ONLY] if store is None else [sys.executable, "-c", DECODE_STORE, str(store)]
        done = subprocess.run([sys.executable, "-c", RSS_CHILD, *cmd], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        lines = done.stdout.strip().splitlines()
        peaks[shape] = (int(lines[-1]) / 1024, json.loads(lines[-2]), int(np.prod(shape)) if store else 0)
    (rss_s, info_s, v_s), (rss_b, info_b, v_b), base = peaks[small], peaks[big], peaks["imports"][0]
    whole_f32 = 3 * 4 * v_b / 2**20  # the big volume's foreground, contour and distance as float32
    where = f"block {shape_str(MEMORY_BLOCK)}, halo {shape_str(MEMORY_HALO)}"
    rows: Rows = [
        (f"deploy decode+stitch {shape_str(small)} ({where})", f"{rss_s:.0f} MiB",
         f"{info_s['blocks']} blocks, {info_s['count']} block objects, {info_s['cut']} cut; {v_s / info_s['seconds']:,.0f} voxels/s"),
        (f"deploy decode+stitch {shape_str(big)} (8x voxels)", f"{rss_b:.0f} MiB",
         f"{info_b['blocks']} blocks, {info_b['cut']} cut; growth x{rss_b / rss_s:.3f}; {v_b / info_b['seconds']:,.0f} voxels/s; "
         f"whole float32 maps would add {whole_f32:.0f} MiB (x{(rss_s + whole_f32) / rss_s:.2f})"),
        ("imports only (same child, no decoding)", f"{base:.0f} MiB",
         f"above it: {rss_s - base:.0f} MiB small, {rss_b - base:.0f} MiB large")]
    figures = [Figure("instances", f"deploy instance passes (bcd_watershed) peak RSS, {shape_str(big)} (8x voxels)", rss_b, "MiB",
                      f"the same on {shape_str(small)}", rss_s, rss_b / rss_s, "<= 1.2", meets(rss_b / rss_s, "<= 1.2"),
                      f"decode_task per block + stitch_output over a uint8 zarr store, {where}, each size in its own process; "
                      f"perfect maps of a synthetic volume, mirrored 2x per axis for the large one; loading the large volume's "
                      f"3 float32 maps whole would add {whole_f32:.0f} MiB (x{(rss_s + whole_f32) / rss_s:.2f} of the small peak); "
                      f"{v_b / info_b['seconds']:,.0f} vs {v_s / info_s['seconds']:,.0f} voxels/s; the imports alone (torch, monai) peak at "
                      f"{base:.0f} MiB: {rss_s - base:.0f} / {rss_b - base:.0f} MiB above them")]
    return rows, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer training steps, smaller memory volumes (a few minutes)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 1000, quick 150)")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds, best of (default 3, quick 1)")
    parser.add_argument("--workdir", default=None, help="keep the run (and its predicted maps) here instead of a temporary folder; "
                        "a finished run there is reused, not trained again")
    add_json_argument(parser)
    args = parser.parse_args()
    args.steps = args.steps or (150 if args.quick else 1000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    parts = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        rows, figures, context = quality(args.steps, Path(args.workdir or tmp))
        parts.append(("quality at equal model budget (test split)", rows, figures))
        parts.append(("decoding speed", *speed(context, args.rounds)))
        parts.append(("blockwise decode memory", *memory((48, 256, 256) if args.quick else (64, 256, 256), Path(tmp), context["cfg"])))
    for title, rows, _ in parts:
        width = max(len(r[0]) for r in rows)
        value_width = max(len(r[1]) for r in rows)
        print(f"\n{title}")
        for what, value, note in rows:
            print(f"  {what:<{width}}  {value:>{value_width}}  {note}")
    write_figures(args.json, [f for _, _, figures in parts for f in figures])


if __name__ == "__main__":
    main()
