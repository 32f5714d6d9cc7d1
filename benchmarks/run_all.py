"""Run every benchmark and write one markdown report (default benchmarks/RESULTS.md).

Each script (cli, cellmap_scoring, train_overhead, loader, inference, models, losses_compare, instances, demo_quality) runs as its
own subprocess (so memory and threads stay separate), from the repository root, with ``--json TMPFILE``
(and ``--quick`` with --quick); its stdout and stderr go to logs/<name>.log next to the output file,
and one progress line per script goes to the console. The
report has a header (mode, date, git commit, CPU model and cores, RAM, torch, device, Python), one
table of every figure (| benchmark | figure | value | peer (same run) | peer value | ratio | target | met |)
and the figures' notes per benchmark. ``target`` is stated on ``ratio``; ``met`` is "—" where there is
no target or the target applies to the full mode only (demo_quality's Dice and time with --quick).

The report is rewritten after every script (the rest marked "not run yet"), so a stopped run keeps
what it measured. A script that exits non-zero, writes no figures or runs past --timeout becomes a row "failed: <its last
stderr line>" / "timed out after N s"; the report is still written and the exit status is then 1.
Unknown names in --only: one "error:" line, exit status 2, nothing run or written.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only a,b] [--output benchmarks/RESULTS.md] [--timeout S]

--quick takes about 7 minutes on a 2-core CPU; the full mode over an hour.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emseg_plugins.utils.atomic import atomic_write_text  # the project's own atomic write (fsync, rename)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHMARKS = ["cli", "cellmap_scoring", "train_overhead", "loader", "inference", "models", "losses_compare", "instances", "demo_quality"]  # quickest first
NOT_BENCHMARKS = {"figures", "run_all"}  # helper modules in the scripts' folder
COLUMNS = ["benchmark", "figure", "value", "peer (same run)", "peer value", "ratio", "target", "met"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script (about 5 minutes in all)")
    parser.add_argument("--only", default="", help=f"comma-separated scripts to run, of: {', '.join(BENCHMARKS)} (default all)")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"), help="markdown report to write (default benchmarks/RESULTS.md)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds each script may run before it is killed (default 600 with --quick, 3600 without)")
    parser.add_argument("--scripts-dir", default=str(HERE), help=argparse.SUPPRESS)  # tests: run other scripts
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = 600.0 if args.quick else 3600.0
    return args


def available(scripts_dir: Path) -> list[str]:
    """The benchmark names in ``scripts_dir``: BENCHMARKS for this folder, else its *.py files."""
    if scripts_dir.resolve() == HERE:
        return list(BENCHMARKS)
    return sorted(p.stem for p in scripts_dir.glob("*.py") if p.stem not in NOT_BENCHMARKS)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_one(name: str, script: Path, quick: bool, timeout: float, log: Path) -> tuple[list[dict], str, float]:
    """Run one script; returns (its figures, failure line or "", seconds)."""
    fd, json_path = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".json")
    os.close(fd)
    os.unlink(json_path)  # the script creates it; absent means it wrote nothing
    cmd = [sys.executable, str(script), "--json", json_path, *(["--quick"] if quick else [])]
    start = time.perf_counter()
    with open(log, "w") as out:
        out.write(f"$ {' '.join(cmd)}\n(cwd {ROOT})\n\n")
        out.flush()
        # its own session, so that a timeout kills the script's children (pytc-train, model processes) too
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout)
            failure = ""
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            failure = f"timed out after {timeout:g} s"
        out.write(f"\n--- stderr ---\n{err}")
    seconds = time.perf_counter() - start
    figures: list[dict] = []
    try:
        if not failure and proc.returncode != 0:
            failure = f"failed: {_last_line(err) or f'exit status {proc.returncode}'}"
        elif not failure:
            try:
                figures = json.loads(Path(json_path).read_text())
            except (OSError, ValueError) as exc:
                failure = f"failed: no figures in its --json output ({exc.__class__.__name__})"
            else:
                if not isinstance(figures, list) or not figures:
                    figures, failure = [], "failed: its --json output holds no figures"
    finally:
        Path(json_path).unlink(missing_ok=True)
    return figures, failure, seconds


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=20, check=False)
        if head.returncode:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True, timeout=20, check=False).stdout.strip()
        return head.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _torch_and_device() -> tuple[str, str]:
    """torch's version and the device, asked of a child interpreter (this process stays free of torch)."""
    probe = ("import json, torch; c = torch.cuda.is_available(); "
             "print(json.dumps([torch.__version__, torch.cuda.get_device_name(0) if c else '']))")
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
        version, cuda = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return "unknown", "CPU"
    # every benchmark runs with SYSTEM.NUM_GPUS 0 (the config default) or pins the CPU itself
    return version, "CPU" + (f" (CUDA device visible but not used: {cuda})" if cuda else "")


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?"


def machine_header(quick: bool, started: datetime.datetime, wall_s: float, timeout: float, load_before: str) -> list[str]:
    torch_version, device = _torch_and_device()
    return [
        f"# Benchmark results ({'quick' if quick else 'full'} mode)",
        "",
        f"- mode: {'quick (`run_all.py --quick`: smaller sizes, fewer steps)' if quick else 'full'}",
        f"- date: {started.isoformat(timespec='seconds')} (all scripts: {wall_s:.0f} s wall time, per-script timeout {timeout:g} s)",
        f"- git commit: {_git_commit()}",
        f"- CPU: {_cpu_model()}, {os.cpu_count()} cores (os.cpu_count)",
        f"- 1-min load average: {load_before} before, {_load()} after (other processes on the cores slow the timed figures)",
        f"- RAM: {_ram_gib()}",
        f"- torch: {torch_version}; device: {device}",
        f"- Python: {platform.python_version()} ({platform.python_implementation()})",
        "",
    ]


def fmt(x) -> str:
    """A number for the table: thousands separators for large values, 4 significant digits below."""
    if x is None:
        return "—"
    x = float(x)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.3e}"


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ") if text not in (None, "") else "—"


def render(header: list[str], runs: list[tuple[str, list[dict], str, float]], logs: Path, pending: list[str] = ()) -> str:
    """The report; ``pending``: scripts not run yet (the report is rewritten after every script)."""
    lines = [*header, "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    runs = [*runs, *((name, [], "not run yet (the run was stopped or is still going)", 0.0) for name in pending)]
    for name, figures, failure, _ in runs:
        if failure:
            lines.append("| " + " | ".join([name, cell(failure), *["—"] * (len(COLUMNS) - 2)]) + " |")
            continue
        for f in figures:
            met = {True: "yes", False: "**no**", None: "—"}[f.get("met")]
            value = fmt(f.get("value")) + (f" {f['unit']}" if f.get("unit") and f.get("value") is not None else "")
            lines.append("| " + " | ".join([
                cell(name), cell(f.get("figure")), value, cell(f.get("peer")), fmt(f.get("peer_value")),
                fmt(f.get("ratio")), cell(f.get("target")), met]) + " |")
    lines += ["", ("`target` is stated on `ratio` (value / peer value unless a note says otherwise); "
                   "`met` is — where there is no target or it applies to the full mode only."), "", "## Notes", ""]
    for name, figures, failure, seconds in runs:
        lines.append(f"### {name}")
        lines.append("")
        log = logs / f"{name}.log"
        shown = log.relative_to(ROOT) if log.is_relative_to(ROOT) else log
        lines.append(f"- {seconds:.0f} s wall time; log: {shown}" + (f"; {failure}" if failure else ""))
        lines += [f"- {f.get('figure')}: {f['note']}" for f in figures if f.get("note")]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scripts_dir = Path(args.scripts_dir)
    names = available(scripts_dir)
    selected = [n.strip() for n in args.only.split(",") if n.strip()] or names
    unknown = [n for n in selected if n not in names]
    if unknown:
        print(f"error: --only {args.only}: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}", file=sys.stderr)
        return 2
    output = Path(args.output).resolve()
    logs = output.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started, t0, load_before = datetime.datetime.now().astimezone(), time.perf_counter(), _load()
    print(f"benchmarks ({'quick' if args.quick else 'full'} mode): {', '.join(selected)}; logs in {logs}", flush=True)
    runs = []
    for i, name in enumerate(selected, 1):
        print(f"[{i}/{len(selected)}] {name} ... ", end="", flush=True)
        figures, failure, seconds = run_one(name, scripts_dir / f"{name}.py", args.quick, args.timeout, logs / f"{name}.log")
        print(f"{failure or f'ok, {len(figures)} figures'} ({seconds:.0f} s)", flush=True)
        runs.append((name, figures, failure, seconds))
        header = machine_header(args.quick, started, time.perf_counter() - t0, args.timeout, load_before)
        atomic_write_text(output, render(header, runs, logs, pending=selected[i:]))  # a stopped run keeps what it measured
    failed = [name for name, _, failure, _ in runs if failure]
    print(f"wrote {output}" + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
