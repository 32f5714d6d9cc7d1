"""Training-step overhead of pytc-train (Lightning engine) against a bare PyTorch loop.

Both run the same model (built from the config by the registry), the same loss, AdamW + the same
LR schedule, and the same pre-computed batches, in this process, alternating A/B rounds so that
machine drift hits both. Prints steps/s of each and the overhead ratio (target: overhead <= 5 %,
i.e. engine steps/s / bare-loop steps/s >= 0.95). ``--quick``: 10 timed steps after 3 warm-up, 2 rounds.

    .venv/bin/python benchmarks/train_overhead.py [--quick] [--config-file configs/demo.yaml] [--steps 60] [--rounds 3] [--json PATH]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import pytorch_lightning as pl
import torch
from figures import Figure, add_json_argument, meets, write_figures  # benchmarks/figures.py, next to this script
from torch.utils.data import DataLoader

from emseg_plugins.config import load_config
from emseg_plugins.engine.module import SegmentationModule
from emseg_plugins.engine.trainer import build_trainer
from emseg_plugins.registry import DATASETS


class StepTimer(pl.Callback):
    """Wall time from the start of batch ``warmup`` to the end of the last batch."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, None, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.end = time.perf_counter()


def bare_loop(cfg, batches, warmup: int) -> float:
    """Steps/s of a hand-written loop: zero_grad, forward, loss, backward, step, schedule."""
    torch.manual_seed(0)
    module = SegmentationModule(cfg.dump())  # the same registry-built model and loss
    model, loss_fn = module.model, module.loss
    opt_config = module.configure_optimizers()
    optimizer, scheduler = opt_config["optimizer"], opt_config["lr_scheduler"]["scheduler"]
    model.train()
    for i, batch in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(batch["image"]), batch["label"])
        loss.backward()
        optimizer.step()
        scheduler.step()
    return (len(batches) - warmup) / (time.perf_counter() - start)


def lightning_loop(cfg, batches, warmup: int) -> float:
    """Steps/s of pytc-train's Trainer (build_trainer) on the same batches."""
    torch.manual_seed(0)
    module = SegmentationModule(cfg.dump())
    timer = StepTimer(warmup)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = build_trainer(cfg, run_dir)
        trainer.callbacks.append(timer)
        loader = DataLoader(batches, batch_size=None, shuffle=False)
        trainer.fit(module, train_dataloaders=loader)
    return (len(batches) - warmup) / (timer.end - timer.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="configs/demo.yaml")
    parser.add_argument("--quick", action="store_true", help="10 timed steps after 3 warm-up, 2 rounds (unless given)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (default 60, quick 10)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps per round (default 10, quick 3)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating A/B rounds (default 3, quick 2)")
    add_json_argument(parser)
    args = parser.parse_args()
    defaults = {"steps": (60, 10), "warmup": (10, 3), "rounds": (3, 2)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    steps = args.steps + args.warmup
    cfg = load_config(args.config_file, overrides=[
        "SOLVER.ITERATION_TOTAL", str(steps), "SOLVER.ITERATION_VAL", str(10 * steps),  # no validation in the window
        "MONITOR.PROGRESS_BAR", "True", "SYSTEM.NUM_CPUS", "0",
    ])
    data = DATASETS.build(cfg.DATASET.NAME, cfg)
    batch = cfg.SOLVER.SAMPLES_PER_BATCH
    samples = data.train_dataset(steps * batch)
    batches = list(DataLoader(samples, batch_size=batch, shuffle=False))  # identical tensors for both loops
    bare, light = [], []
    for _ in range(args.rounds):
        bare.append(bare_loop(cfg, batches, args.warmup))
        light.append(lightning_loop(cfg, batches, args.warmup))
    b, l = statistics.median(bare), statistics.median(light)
    print(f"\nmodel {cfg.MODEL.ARCHITECTURE} {list(cfg.MODEL.FILTERS)}, batch {batch} x {list(cfg.DATASET.PATCH_SIZE)}, "
          f"{args.steps} timed steps after {args.warmup} warm-up, {args.rounds} rounds, torch threads {torch.get_num_threads()}")
    print(f"bare PyTorch loop : {b:7.3f} steps/s  (rounds: {', '.join(f'{x:.3f}' for x in bare)})")
    print(f"pytc-train engine : {l:7.3f} steps/s  (rounds: {', '.join(f'{x:.3f}' for x in light)})")
    print(f"overhead          : {100 * (b / l - 1):+6.2f} %  (target <= 5 %)")
    write_figures(args.json, [Figure(
        "train_overhead", f"training steps/s, pytc-train engine vs bare loop ({cfg.MODEL.ARCHITECTURE}, batch {batch})",
        l, "steps/s", "bare PyTorch loop (same model, batches, AdamW + schedule)", b, l / b, ">= 0.95", meets(l / b, ">= 0.95"),
        f"overhead {100 * (b / l - 1):+.2f} % (target <= 5 %); median of {args.rounds} alternating rounds of "
        f"{args.steps} timed steps after {args.warmup} warm-up")])


if __name__ == "__main__":
    main()
