"""PNG plots of a comparison: per-class Dice bars, and validation Dice over training steps.

Curves come from the runs' TensorBoard event files (``<run>/tensorboard``), read with TensorBoard's
own ``EventAccumulator``. Only files written while fitting count (they hold ``train/loss``); the
final re-validation of the best checkpoint goes to a file of its own and is left out. Lightning
logs a validation during fitting at (optimizer steps taken - 1), so one is added back.
"""
from __future__ import annotations

from pathlib import Path

# pyplot-free: no display backend, no global figure state
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from emseg_plugins.utils.atomic import atomic_path

Curve = list[tuple[int, float]]


def read_val_curves(run_dir: Path, classes: list[str]) -> dict[str, Curve]:
    """``{"mean": [(step, dice)], "<class>": [...]}`` of one run's validations during training (empty if none)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {"mean": "val/dice_mean", **{c: f"val/{c}/dice" for c in classes}}
    points: dict[str, dict[int, tuple[float, float]]] = {name: {} for name in tags}
    for events in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 1, "tensors": 1})
        accumulator.Reload()
        scalars = set(accumulator.Tags().get("scalars", []))
        if "train/loss" not in scalars:  # trainer.validate of the best checkpoint, not a training curve
            continue
        for name, tag in tags.items():
            for event in accumulator.Scalars(tag) if tag in scalars else []:
                step = event.step + 1
                known = points[name].get(step)
                if known is None or event.wall_time > known[0]:  # a resumed run repeats steps: the latest wins
                    points[name][step] = (event.wall_time, event.value)
    return {name: sorted((step, value) for step, (_, value) in by_step.items()) for name, by_step in points.items() if by_step}


def dice_bars(dice: dict[str, dict[str, float]], classes: list[str], path: Path, title: str = "Dice per class") -> Path:
    """Grouped bars: ``dice[run][class or "mean"]`` for each class and the mean, one colour per run."""
    groups = [*classes, "mean"]
    runs = list(dice)
    width = 0.8 / max(1, len(runs))
    fig = Figure(figsize=(max(5.0, 1.2 * len(groups) * max(1, len(runs)) ** 0.5 + 2), 3.6))
    ax = fig.subplots()
    for r, run in enumerate(runs):
        xs = [g + (r - (len(runs) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, [dice[run].get(name, float("nan")) for name in groups], width, label=run)
        ax.bar_label(bars, fmt="%.3f", fontsize=6, padding=1)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("Dice")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(2, len(runs)), frameon=False)
    return _save(fig, path)


def dice_curves(curves: dict[str, dict[str, Curve]], classes: list[str], path: Path) -> Path:
    """One panel per class plus the mean: validation Dice against optimizer step, one line per run."""
    names = ["mean", *classes]
    fig = Figure(figsize=(3.2 * len(names), 3.2))
    axes = fig.subplots(1, len(names), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        for run, by_name in curves.items():
            curve = by_name.get(name, [])
            if curve:
                steps, values = zip(*curve)
                ax.plot(steps, values, marker="o", markersize=3, label=run)
        ax.set_title(f"validation Dice: {name}", fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Dice")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(2, len(labels)), frameon=False)
        fig.subplots_adjust(bottom=0.3)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path
