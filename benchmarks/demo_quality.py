"""Quality and time of the demo: train configs/demo.yaml, then score the held-out volume.

Runs `pytc-train` as a user would (a subprocess; all cores of this machine), times training, and
reports per-class Dice twice: the run's own validation table (tiles of the held-out Z range) and
sliding-window inference over the whole held-out volume (`pytc-train --inference`). Target:
Dice >= 0.90 for nuc and mito within 5 minutes of training on 2 CPU cores. ``--quick``: 40 steps
(SOLVER.ITERATION_TOTAL and ITERATION_VAL 40; the target then applies to the full run only).

    .venv/bin/python benchmarks/demo_quality.py [--quick] [--json PATH] [--config-file configs/demo.yaml] [KEY VALUE ...]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from figures import Figure, add_json_argument, meets, write_figures  # benchmarks/figures.py, next to this script

from emseg_plugins.config import load_config
from emseg_plugins.registry import DATASETS

BIN = Path(sys.executable).parent
QUICK_STEPS = 40
DICE_TARGET, TIME_TARGET = ">= 0.90", "<= 300"
THRESHOLD_PEER = "best single global intensity threshold (held-out volume)"


def best_threshold_dice(image: np.ndarray, label: np.ndarray) -> float:
    """Dice of the best single global threshold (dark or bright side): what a model must beat."""
    positives = np.bincount(image[label > 0].ravel(), minlength=256).astype(float)
    total = np.bincount(image.ravel(), minlength=256).astype(float)
    best = 0.0
    for counts_pos, counts_all in ((positives, total), (positives[::-1], total[::-1])):
        tp, predicted = np.cumsum(counts_pos), np.cumsum(counts_all)
        best = max(best, float(np.max(2 * tp / (predicted + positives.sum()))))
    return best


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([str(BIN / "pytc-train"), *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="configs/demo.yaml")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} training steps; the Dice/time target is then not judged")
    add_json_argument(parser)
    parser.add_argument("opts", nargs="*", help="KEY VALUE overrides")
    args = parser.parse_args()
    if args.quick:  # before the user's overrides, which win
        args.opts = ["SOLVER.ITERATION_TOTAL", str(QUICK_STEPS), "SOLVER.ITERATION_VAL", str(QUICK_STEPS), *args.opts]
    with tempfile.TemporaryDirectory() as tmp:
        common = ["--config-file", args.config_file, *args.opts, "DATASET.OUTPUT_PATH", tmp, "MONITOR.PROGRESS_BAR", "False"]
        train_s = run(common)
        infer_s = run([*common, "--inference"])
        val = json.loads((Path(tmp) / "metrics.json").read_text())
        held_out = json.loads((Path(tmp) / "predictions" / "metrics.json").read_text())
    print(f"\n{args.config_file} {' '.join(args.opts)} on {os.cpu_count()} CPU cores")
    print(f"training wall time : {train_s:6.1f} s (whole pytc-train command, {val['global_step']} steps)")
    print(f"inference wall time: {infer_s:6.1f} s (sliding window over the held-out volume)")
    cfg = load_config(args.config_file, overrides=args.opts)
    volume = DATASETS.build(cfg.DATASET.NAME, cfg).volumes(cfg.INFERENCE.SPLIT)[0]
    print(f"{'class':<6} {'val tiles Dice':>15} {'held-out volume Dice':>21} {'best threshold Dice':>20}")
    steps = val["global_step"]
    judged = not args.quick  # the target is on the full demo run
    full_only = "" if judged else f"target applies to the full run (configs/demo.yaml's steps); quick: {steps} steps"
    figures = []
    for k, name in enumerate(val["classes"]):
        baseline = best_threshold_dice(volume.image, volume.labels[k])
        print(f"{name:<6} {val['classes'][name]['dice']:>15.4f} {held_out['classes'][name]['dice']:>21.4f} {baseline:>20.4f}")
        dice = held_out["classes"][name]["dice"]
        figures.append(Figure(
            "demo_quality", f"held-out Dice {name} (sliding window, {steps} steps)", dice, "Dice", THRESHOLD_PEER, baseline,
            dice, DICE_TARGET, meets(dice, DICE_TARGET) if judged else None,
            "; ".join(x for x in (f"ratio = the Dice itself (target stated on it); x{dice / baseline:.2f} the threshold's Dice"
                                  if baseline else "ratio = the Dice itself (target stated on it)", full_only) if x)))
        figures.append(Figure("demo_quality", f"validation tiles Dice {name} ({steps} steps)", val["classes"][name]["dice"], "Dice",
                              note="the run's own validation table (tiles of the held-out Z range)"))
    worst = min(c["dice"] for c in held_out["classes"].values())
    verdict = "meets" if worst >= 0.90 and train_s <= 300 else "misses"
    print(f"target Dice >= 0.90 within 300 s: {verdict} (lowest held-out Dice {worst:.4f}, {train_s:.0f} s)")
    figures.append(Figure(
        "demo_quality", f"training wall time (whole pytc-train command, {steps} steps)", train_s, "s", ratio=train_s,
        target=TIME_TARGET, met=meets(train_s, TIME_TARGET) if judged else None,
        note="; ".join(x for x in (f"ratio = the time in s (target stated on it); {os.cpu_count()} CPU cores", full_only) if x)))
    figures.append(Figure("demo_quality", "inference wall time (pytc-train --inference, held-out volume)", infer_s, "s"))
    write_figures(args.json, figures)


if __name__ == "__main__":
    main()
