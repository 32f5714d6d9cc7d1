"""The comparison report: ``report.csv`` (one row per run and class), ``report.md`` and its plots.

Numbers come from each run's saved ``metrics.json`` (the best checkpoint's validation metrics, or the
sliding-window metrics of ``--split``). The improvement of a run over the first (the baseline), as in
the loss-optimisation notes' table, is relative: ``(dice - dice_first) / dice_first * 100`` %
(empty where the baseline Dice is 0); ``dice_change`` is the plain difference.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

from emseg_plugins.evaluation.metrics import METRIC_NAMES
from emseg_plugins.reports.compare import GridRun
from emseg_plugins.reports.plots import dice_bars, dice_curves, read_val_curves
from emseg_plugins.utils.atomic import atomic_write_text

REPORTED = ("dice", "precision", "recall")  # the columns of the markdown tables (the CSV has every metric)


@dataclass
class RunResult:
    """A finished run's metrics: ``table[class or "mean"][metric]``."""

    run: GridRun
    table: dict[str, dict[str, float]]
    checkpoint: str
    step: int | None


def load_result(run: GridRun) -> RunResult | None:
    """The run's saved metrics, or None when it has none (failed or never trained)."""
    if not run.metrics_file.exists():
        return None
    saved = json.loads(run.metrics_file.read_text())
    return RunResult(run, {**saved["classes"], "mean": saved["mean"]}, saved.get("checkpoint") or "", saved.get("global_step"))


def improvement(value: float, base: float) -> float | None:
    """Relative change in %, None when the baseline is 0."""
    return (value - base) / base * 100 if base > 0 else None


def report_rows(results: list[RunResult], classes: list[str], keys: list[str]) -> list[dict[str, str]]:
    """CSV rows: run, grid settings, class (and ``mean``), every metric, ``dice_change``, ``dice_improvement_pct``."""
    base = results[0].table
    rows = []
    for result in results:
        for name in [*classes, "mean"]:
            row = result.table[name]
            gain = improvement(row["dice"], base[name]["dice"])
            rows.append({
                "run": result.run.name, **{key: result.run.settings[key] for key in keys}, "class": name,
                **{m: f"{row[m]:.6f}" for m in METRIC_NAMES},
                "dice_change": f"{row['dice'] - base[name]['dice']:+.6f}",
                "dice_improvement_pct": "" if gain is None else f"{gain:+.3f}",
            })
    return rows


def write_report(output: Path, runs: list[GridRun], classes: list[str], title: str, budget: int | None = None) -> tuple[Path, Path]:
    """``report.csv``, ``report.md``, ``dice_per_class.png`` and ``val_dice_curves.png`` under ``output``."""
    results = [r for r in map(load_result, runs) if r is not None]
    missing = [run for run in runs if load_result(run) is None]
    keys = list(runs[0].settings)
    labels = {result.run.name: _label(result.run) for result in results}
    buffer = io.StringIO()
    columns = ["run", *keys, "class", *METRIC_NAMES, "dice_change", "dice_improvement_pct"]
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    if results:
        writer.writerows(report_rows(results, classes, keys))
        dice_bars({labels[r.run.name]: {k: v["dice"] for k, v in r.table.items()} for r in results}, classes, output / "dice_per_class.png")
        curves = {labels[r.run.name]: read_val_curves(r.run.run_dir, classes) for r in results}
        dice_curves(curves, classes, output / "val_dice_curves.png")
    csv_path, md_path = output / "report.csv", output / "report.md"
    atomic_write_text(csv_path, buffer.getvalue())
    atomic_write_text(md_path, markdown(results, missing, classes, title, budget, labels))
    return md_path, csv_path


def markdown(results: list[RunResult], missing: list[GridRun], classes: list[str], title: str, budget: int | None,
             labels: dict[str, str]) -> str:
    split = results[0].run.split if results else ""
    source = f"sliding-window metrics on the {split!r} split" if split else "validation metrics of each run's best checkpoint"
    lines = [f"# {title}", "", f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Numbers: {source}"
             + (f"; {budget} optimizer steps per run." if budget else "."), ""]
    if not results:
        return "\n".join([*lines, "No run has finished yet.", ""])
    base = results[0]
    lines += ["## Per-class Dice", "", f"Improvement: relative to the first run ({labels[base.run.name]}).", ""]
    header = ["class", *(labels[r.run.name] for r in results), *(f"{labels[r.run.name]} vs first" for r in results[1:])]
    lines += [_row(header), _row(["---"] * len(header))]
    for name in [*classes, "mean"]:
        cells = [f"**{name}**" if name == "mean" else name]
        cells += [f"{r.table[name]['dice']:.3f}" for r in results]
        for r in results[1:]:
            gain = improvement(r.table[name]["dice"], base.table[name]["dice"])
            cells.append("n/a" if gain is None else f"{gain:+.1f}%")
        lines.append(_row(cells))
    lines += ["", "## Every run", "", _row(["run", "class", *REPORTED]), _row(["---"] * (2 + len(REPORTED)))]
    for r in results:
        for name in [*classes, "mean"]:
            lines.append(_row([labels[r.run.name], name, *(f"{r.table[name][m]:.3f}" for m in REPORTED)]))
    lines += ["", "| run | directory | checkpoint | steps |", "| --- | --- | --- | --- |"]
    lines += [f"| {labels[r.run.name]} | `{r.run.run_dir}` | `{Path(r.checkpoint).name}` | {r.step if r.step is not None else ''} |"
              for r in results]
    if missing:
        lines += ["", "Not finished (see each run's train.log): " + ", ".join(f"`{run.name}`" for run in missing)]
    lines += ["", "## Plots", "", "![Dice per class](dice_per_class.png)", "", "![Validation Dice during training](val_dice_curves.png)", ""]
    return "\n".join(lines)


def _label(run: GridRun) -> str:
    """Short run label: the grid values, e.g. ``dice_bce / 5``."""
    return " / ".join(run.settings.values())


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
