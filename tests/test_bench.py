"""benchmarks/run_all.py: runs the real benchmark scripts as subprocesses and writes one markdown report."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_ALL = ROOT / "benchmarks" / "run_all.py"
COLUMNS = "| benchmark | figure | value | peer (same run) | peer value | ratio | target | met |"


def run_all(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN_ALL), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def rows(report: str, benchmark: str) -> list[list[str]]:
    """The table's rows of ``benchmark``, as lists of cells."""
    return [[c.strip() for c in line.strip("|").split("|")] for line in report.splitlines()
            if line.startswith(f"| {benchmark} |")]


def number(cell: str) -> float:
    """A table number ("1,234 voxels/s", "0.95") as a float."""
    return float(cell.split()[0].replace(",", ""))


def test_quick_loader_benchmark_end_to_end(tmp_path):
    """The quickest real script (loader --quick: in-memory source, 2D and 3D) gives numeric rows and a machine header."""
    output = tmp_path / "out" / "RESULTS.md"
    done = run_all("--quick", "--only", "loader", "--output", str(output))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[1/1] loader ... ok, 2 figures" in done.stdout
    report = output.read_text()
    for line in ("# Benchmark results (quick mode)", "- git commit:", "- RAM:", "- torch: ", "device: CPU", "- Python: 3."):
        assert line in report
    assert "cores (os.cpu_count)" in report
    assert COLUMNS in report
    table = rows(report, "loader")
    assert [r[1].split(" / ")[0] for r in table] == ["2D joenet 128x128", "3D monai_unet 32x64x64"]
    for _, figure, value, peer, peer_value, ratio, target, met in table:
        assert value.endswith("samples/s") and number(value) > 0 and number(peer_value) > 0
        assert abs(number(ratio) - number(value) / number(peer_value)) < 0.01 * number(ratio) + 1e-3  # rounding of the cells
        assert target == ">= 3" and met == ("yes" if number(ratio) >= 3 else "**no**")
    assert "| case | source | patch |" in (tmp_path / "out" / "logs" / "loader.log").read_text()  # its console table
    assert not list((tmp_path / "out").glob(".RESULTS.md.*"))  # atomic write left no temp file


def test_unknown_benchmark_is_one_error_line_and_nothing_written(tmp_path):
    output = tmp_path / "out" / "RESULTS.md"
    done = run_all("--only", "loader,nonesuch", "--output", str(output), timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: --only loader,nonesuch: unknown benchmark(s) nonesuch")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_failing_and_hanging_scripts_become_rows_and_exit_1(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    figure = {"benchmark": "good", "figure": "speed ours vs theirs", "value": 2000.0, "unit": "voxels/s", "peer": "theirs",
              "peer_value": 1000.0, "ratio": 2.0, "target": ">= 1.0", "met": True, "note": "a | pipe"}
    (scripts / "good.py").write_text(textwrap.dedent(f"""
        import argparse, json
        p = argparse.ArgumentParser(); p.add_argument("--json"); p.add_argument("--quick", action="store_true")
        a = p.parse_args()
        print("console figures"); json.dump([{figure!r}], open(a.json, "w"))
    """))
    (scripts / "crash.py").write_text("import sys\nprint('started')\nsys.stderr.write('warming up\\n')\nraise RuntimeError('boom')\n")
    (scripts / "hang.py").write_text("import time\ntime.sleep(60)\n")
    (scripts / "figures.py").write_text("raise SystemExit('a helper module, not a benchmark')\n")
    output = tmp_path / "RESULTS.md"
    done = run_all("--scripts-dir", str(scripts), "--timeout", "3", "--output", str(output), timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[1/3] crash ... failed: RuntimeError: boom" in done.stdout
    assert "[2/3] good ... ok, 1 figures" in done.stdout
    assert "[3/3] hang ... timed out after 3 s" in done.stdout
    report = output.read_text()
    assert rows(report, "crash") == [["crash", "failed: RuntimeError: boom", *["—"] * 6]]
    assert rows(report, "hang") == [["hang", "timed out after 3 s", *["—"] * 6]]
    assert rows(report, "good") == [["good", "speed ours vs theirs", "2,000 voxels/s", "theirs", "1,000", "2", ">= 1.0", "yes"]]
    assert "- speed ours vs theirs: a \\| pipe" not in report and "- speed ours vs theirs: a | pipe" in report  # notes are not table cells
    crash_log = (tmp_path / "logs" / "crash.log").read_text()
    assert "started" in crash_log and "RuntimeError: boom" in crash_log
