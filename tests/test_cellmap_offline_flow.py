"""The README's offline CellMap flow, command for command, on the synthetic stand-in.

The commands are read from the first ``bash`` block of the README's "CellMap Segmentation Challenge"
section and run in that order in a scratch directory (``configs/`` linked in), each through its own
entry point (``python -m``'s ``main``, the console scripts' ``main``). Only steps and sizes are shrunk,
and only through documented override keys appended to a command: nothing else differs from the README.
It ends in the score table that ``emseg cellmap evaluate`` prints.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import zarr
from conftest import ROOT, run_main

from emseg_plugins.challenge.manifest import load_manifest
from emseg_plugins.challenge import standin

README = ROOT / "README.md"
STANDIN = "emseg_plugins.challenge.standin"

# Appended to the README's command of that program/action (documented keys only): a few steps of a
# batch of one, no DataLoader workers, no TensorBoard images.
SHRINK = {
    "pytc-train": ["SOLVER.ITERATION_TOTAL", "2", "SOLVER.ITERATION_VAL", "2", "SOLVER.SAMPLES_PER_BATCH", "1",
                   "SYSTEM.NUM_CPUS", "0", "MONITOR.IMAGES", "0"],
}
SCORE = r"(\d+\.\d+)"


def readme_commands() -> list[list[str]]:
    """The commands of the first bash block under the README's CellMap heading (``\\`` continuations joined, comments dropped)."""
    section = README.read_text(encoding="utf-8").split("## CellMap Segmentation Challenge\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    text = re.sub(r"\\\n", " ", block)
    return [shlex.split(line, comments=True) for line in text.splitlines() if shlex.split(line, comments=True)]


def step(argv: list[str]) -> str:
    """What a README command is: ``synthetic``, ``pytc-train`` or the ``emseg cellmap`` action."""
    if argv[0] == ".venv/bin/python" and argv[1:3] == ["-m", STANDIN]:
        return "synthetic"
    assert argv[0] in (".venv/bin/pytc-train", ".venv/bin/emseg"), argv
    return "pytc-train" if argv[0].endswith("pytc-train") else argv[2]


def run(argv: list[str]):
    """One README command with its SHRINK overrides, in this process: (step, CompletedProcess)."""
    key = step(argv)
    if key == "synthetic":
        from contextlib import redirect_stdout
        from io import StringIO
        from subprocess import CompletedProcess

        out = StringIO()
        with redirect_stdout(out):
            code = standin.main(argv[3:])
        return key, CompletedProcess(argv, code, out.getvalue(), "")
    return key, run_main(Path(argv[0]).name, *argv[1:], *SHRINK.get(key, []))


def test_readme_cellmap_flow_ends_in_a_score(tmp_path, monkeypatch):
    commands = readme_commands()
    assert [step(c) for c in commands] == ["synthetic", "pytc-train", "predict", "submit", "evaluate"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    results = {}
    for argv in commands:
        key, result = run(argv)
        assert result.returncode == 0, f"{shlex.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        results[key] = result

    # the stand-in: training crops, and held-out test crops with their manifest and ground truth
    root = tmp_path / "data" / "cellmap"
    rows = load_manifest(str(root / "test_crop_manifest.csv"))
    assert {r.id for r in rows} == {8, 9} and {r.class_label for r in rows} == {"nuc", "mito", "mito_mem", "mito_lum"}
    assert not any((root / r.dataset / f"{r.dataset}.zarr/recon-1/labels/groundtruth" / r.name).exists() for r in rows)
    assert "test-crop manifest (2 crops)" in results["synthetic"].stdout
    # the 3D quick config trained (the crops are smaller than its patch: PAD pads them) and predicted every test crop
    assert (tmp_path / "outputs/cellmap_quick/checkpoints/last.ckpt").is_file()
    assert "predicted 2 crops" in results["predict"].stdout
    assert "packaged 8 crop/labels" in results["submit"].stdout and "(0 without a prediction)" in results["submit"].stdout
    submission = zarr.open_group(str(tmp_path / "outputs/cellmap_quick/submission.zarr"), mode="r")
    assert sorted(submission.group_keys()) == ["crop8", "crop9"] and submission["crop8"]["mito"].shape == (16, 48, 48)

    # the printed score: one row per label, then the overall line, every score in [0, 1]
    out = results["evaluate"].stdout
    overall = re.search(rf"^overall instance {SCORE}\s+semantic {SCORE}\s+overall {SCORE}$", out, re.M)
    assert overall, out
    assert all(0.0 <= float(v) <= 1.0 for v in overall.groups())
    for label, kind in (("mito", "instance"), ("nuc", "instance"), ("mito_mem", "semantic"), ("mito_lum", "semantic")):
        row = re.search(rf"^{label}\s+{kind}\s+{SCORE}", out, re.M)
        assert row and 0.0 <= float(row.group(1)) <= 1.0, out
    scores = json.loads((tmp_path / "outputs/cellmap_quick/scores.json").read_text())
    assert scores["missing"] == [] and scores["overall_score"] == pytest.approx(float(overall.group(3)), abs=1e-4)
