"""Which loss? Train the demo with several losses for the same short budget and compare Dice.

A small version of the loss-optimisation study: each loss trains `configs/demo.yaml` for
`--steps` optimizer steps (same seed, data and schedule), then the held-out volume is predicted
with sliding windows. Prints per-class Dice and each loss's change against the first.
``--quick``: 20 steps and the first two losses (unless --steps / --losses say otherwise).

    .venv/bin/python benchmarks/losses_compare.py [--quick] [--steps 200] [--losses dice_bce per_class_combo ohem] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import Figure, add_json_argument, ratio_of, write_figures  # benchmarks/figures.py, next to this script

BIN = Path(sys.executable).parent
# Per-loss settings of the study: per_class_combo weights the harder, thinner class up.
STUDY_OVERRIDES = {"per_class_combo": ["LOSS.PER_CLASS_COMBO.CLASS_WEIGHTS", "['nuc:1.0', 'mito:2.0']"]}


def train_and_score(config: str, loss: str, steps: int, run_dir: Path) -> tuple[dict, float]:
    args = ["--config-file", config, "LOSS.NAME", loss, *STUDY_OVERRIDES.get(loss, []), "SOLVER.ITERATION_TOTAL", str(steps),
            "SOLVER.ITERATION_VAL", str(max(1, steps // 2)), "DATASET.OUTPUT_PATH", str(run_dir), "MONITOR.PROGRESS_BAR", "False"]
    start = time.perf_counter()
    for extra in ([], ["--inference"]):
        subprocess.run([str(BIN / "pytc-train"), *args, *extra], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = json.loads((run_dir / "predictions" / "metrics.json").read_text())["classes"]
    return metrics, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="configs/demo.yaml")
    parser.add_argument("--quick", action="store_true", help="20 steps, the first two losses (unless given)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per loss (default 200, quick 20)")
    parser.add_argument("--losses", nargs="+", default=None, help="default dice_bce per_class_combo ohem (quick: the first two)")
    add_json_argument(parser)
    args = parser.parse_args()
    args.steps = args.steps or (20 if args.quick else 200)
    args.losses = args.losses or ["dice_bce", "per_class_combo", "ohem"][: 2 if args.quick else 3]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for loss in args.losses:
            results[loss] = train_and_score(args.config_file, loss, args.steps, Path(tmp) / loss)
    classes = list(next(iter(results.values()))[0])
    first = args.losses[0]
    print(f"\n{args.config_file}, {args.steps} steps per loss, held-out volume (sliding window)")
    for loss in args.losses:
        if loss in STUDY_OVERRIDES:
            print(f"  {loss}: {' '.join(STUDY_OVERRIDES[loss])}")
    print(f"{'loss':<16}" + "".join(f"{c + ' Dice':>11}" for c in classes) + f"{'mean':>9}{'vs ' + first:>14}{'time s':>8}")
    base = sum(results[first][0][c]["dice"] for c in classes) / len(classes)
    figures = []
    for loss, (metrics, seconds) in results.items():
        mean = sum(metrics[c]["dice"] for c in classes) / len(classes)
        change = f"{100 * (mean - base) / base:>+13.1f}%" if base else f"{'n/a':>14}"  # a first loss at Dice 0 (tiny budgets)
        print(f"{loss:<16}" + "".join(f"{metrics[c]['dice']:>11.4f}" for c in classes)
              + f"{mean:>9.4f}{change}{seconds:>8.0f}")
        settings = f" ({' '.join(STUDY_OVERRIDES[loss])})" if loss in STUDY_OVERRIDES else ""
        figures.append(Figure(
            "losses_compare", f"{loss} mean held-out Dice ({args.steps} steps)", mean, "Dice",
            f"first loss {first} (same steps, seed, data)" if loss != first else "", base if loss != first else None,
            ratio_of(mean, base) if loss != first else None,
            note=", ".join(f"{c} {metrics[c]['dice']:.4f}" for c in classes) + f"; train + predict {seconds:.0f} s{settings}"))
    write_figures(args.json, figures)


if __name__ == "__main__":
    main()
