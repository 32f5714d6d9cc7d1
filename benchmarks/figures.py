"""One benchmark figure, and the ``--json PATH`` option every benchmark script shares.

A script collects :class:`Figure` s while it prints its usual console report, then calls
``write_figures(args.json, figures)``; ``benchmarks/run_all.py`` reads those JSON lists and writes
benchmarks/RESULTS.md. Convention: ``target`` is stated on ``ratio`` (``value / peer_value``, or the
quantity the project's issue states its target on, e.g. a Dice or a time in seconds).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

from emseg_plugins.utils.atomic import atomic_write_text


@dataclass
class Figure:
    """One measured figure and what it is compared with in the same run."""

    benchmark: str  # script name, e.g. "inference"
    figure: str  # what is measured, e.g. "2D 1024x1024 voxels/s ours vs MONAI"
    value: float  # the measurement, in ``unit``
    unit: str  # e.g. "voxels/s", "s", "MiB", "Dice"
    peer: str = ""  # what it is compared with, measured in the same run ("" when nothing)
    peer_value: float | None = None  # the peer's measurement, same unit
    ratio: float | None = None  # value / peer_value, or the quantity ``target`` is stated on
    target: str = ""  # e.g. ">= 1.0", "<= 1.2"; "" when the project's issues give none
    met: bool | None = None  # ratio meets target; None without a target or when it applies to full mode only
    note: str = ""  # anything a reader needs to interpret the figure


def ratio_of(value: float | None, peer_value: float | None) -> float | None:
    """value / peer_value, or None when either is missing or the peer is zero."""
    if value is None or peer_value is None or peer_value == 0:
        return None
    return value / peer_value


def meets(ratio: float | None, target: str) -> bool | None:
    """Whether ``ratio`` satisfies ``target`` (">= X", "<= X", "> X", "< X"); None when either is missing."""
    if ratio is None or not target or not math.isfinite(ratio):
        return None
    op, _, bound = target.strip().partition(" ")
    checks = {">=": ratio.__ge__, "<=": ratio.__le__, ">": ratio.__gt__, "<": ratio.__lt__}
    if op not in checks:
        raise ValueError(f"target {target!r}: expected '>= X', '<= X', '> X' or '< X'")
    return bool(checks[op](float(bound)))


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--json PATH``: also write the run's figures there as a JSON list (see benchmarks/figures.py)."""
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the figures as a JSON list of benchmarks/figures.py Figure records to PATH")


def _finite(x):
    """JSON has no NaN/inf: a missing or non-finite number becomes null."""
    return x if not isinstance(x, float) or math.isfinite(x) else None


def write_figures(path: str | os.PathLike | None, figures: Iterable[Figure]) -> None:
    """Write ``figures`` as a JSON list to ``path`` atomically (temp file + os.replace); no-op when path is None."""
    if path is None:
        return
    records = [{k: _finite(v) for k, v in dataclasses.asdict(f).items()} for f in figures]
    atomic_write_text(path, json.dumps(records, indent=1))
