"""Wall time of the commands a user waits for, each a fresh process, against ``python -c pass`` in the same environment.

Timed: ``emseg --help``, ``emseg config --keys``, ``emseg plugins`` and a config error of ``pytc-train`` (an
unknown key: one ``error:`` line, exit status 2). Each is the median of ``--runs`` runs (default 5, quick 3),
taken in rounds over all commands so that machine drift hits every command alike, after one untimed warm-up
run of each (file cache, bytecode). Target (project issue G2): each command answers in <= 2 s; the ratio to
the bare interpreter start (``python -c pass``) is printed and noted beside each figure.

``emseg plugins`` imports every plugin module (torch, MONAI) on purpose: it lists a plugin whose module fails to
import as broken, and each builder's docstring; the others import no torch (tests/test_fast_cli.py).

    .venv/bin/python benchmarks/cli.py [--quick] [--runs 5] [--json PATH]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from figures import Figure, add_json_argument, meets, write_figures  # benchmarks/figures.py, next to this script

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET = "<= 2"  # seconds, stated on the time itself
# name -> (argv, expected exit status)
COMMANDS = {
    "emseg --help": ([str(BIN / "emseg"), "--help"], 0),
    "emseg config --keys": ([str(BIN / "emseg"), "config", "--keys"], 0),
    "emseg plugins": ([str(BIN / "emseg"), "plugins"], 0),
    "pytc-train config error (unknown key)": (
        [str(BIN / "pytc-train"), "--config-file", "configs/demo.yaml", "SOLVER.ITERATON_TOTAL", "5"], 2),
}
PEER = ("python -c pass", [sys.executable, "-c", "pass"], 0)


def run_once(argv: list[str], expected: int) -> float:
    """Seconds from start to exit of one fresh process; SystemExit if it exits with another status."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != expected:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"error: {' '.join(argv)} exited with {done.returncode}, expected {expected}: {last}")
    if expected == 2:
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        if len(errors) != 1:
            raise SystemExit(f"error: {' '.join(argv)} printed {len(errors)} error lines, expected one: {done.stderr[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 runs of each command (unless --runs)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs of each command (default 5, quick 3)")
    add_json_argument(parser)
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    commands = {PEER[0]: PEER[1:], **COMMANDS}
    for argv, expected in commands.values():  # warm-up: bytecode and file cache
        run_once(argv, expected)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (argv, expected) in commands.items():
            times[name].append(run_once(argv, expected))
    peer = statistics.median(times[PEER[0]])
    print(f"median of {runs} fresh processes each, {os.cpu_count()} CPU cores; target <= 2 s per command")
    print(f"  {PEER[0]:<40} {peer:7.3f} s")
    figures = []
    for name in COMMANDS:
        value = statistics.median(times[name])
        met = meets(value, TARGET)
        print(f"  {name:<40} {value:7.3f} s  x{value / peer:6.1f} python -c pass  {'meets' if met else 'MISSES'} <= 2 s"
              f"  (runs: {', '.join(f'{t:.3f}' for t in times[name])})")
        why = ("; imports every plugin module (torch, MONAI) to list broken plugins and each builder's docstring"
               if name == "emseg plugins" else "")
        figures.append(Figure(
            "cli", f"{name}: wall time, fresh process", value, "s", f"{PEER[0]} (same environment)", peer, value, TARGET, met,
            f"ratio = the time in s (target stated on it); x{value / peer:.1f} {PEER[0]}; median of {runs} runs{why}"))
    write_figures(args.json, figures)


if __name__ == "__main__":
    main()
