"""Shared helpers: run the real console scripts, and real plugin distributions installed by pip."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
BIN = Path(sys.executable).parent


def run_cli(*args: str, cwd: Path | None = None, pythonpath: list[Path] = (), timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``pytc-train``/``emseg`` from this environment as a subprocess; text output captured."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, pythonpath)), "PYTHONWARNINGS": "default"}
    program, *rest = args
    return subprocess.run([str(BIN / program), *rest], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def run_main(program: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``pytc-train``/``emseg`` in this process (the console scripts' own ``main``), output captured.

    The same code path as :func:`run_cli` without a new interpreter (about 10 s each here): for the
    many error-path tests. Plugins from PYTHONPATH sites need :func:`run_cli`.
    """
    import contextlib
    import io
    import warnings

    from emseg_plugins.cli import main as emseg_main
    from emseg_plugins.cli import train as train_main

    entry = {"pytc-train": train_main.main, "emseg": emseg_main.main}[program]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        try:
            code = entry(list(args)) or 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return subprocess.CompletedProcess([program, *args], code, out.getvalue(), err.getvalue())


def tiny_args(run_dir: Path, *overrides: str) -> list[str]:
    """pytc-train arguments training the tiny config into ``run_dir``."""
    return ["--config-file", str(TINY), "DATASET.OUTPUT_PATH", str(run_dir), *overrides]


@pytest.fixture(scope="session")
def plugin_sites(tmp_path_factory) -> dict[str, Path]:
    """pip-install each plugin distribution into its own directory (put it on PYTHONPATH to use it)."""
    sites = {}
    for name, source in {
        "example": ROOT / "examples" / "emseg-plugin-example",
        "broken": ROOT / "tests" / "fixtures" / "broken-plugin",
        "rival": ROOT / "tests" / "fixtures" / "rival-plugin",
    }.items():
        target = tmp_path_factory.mktemp(f"site-{name}")
        build = tmp_path_factory.mktemp(f"build-{name}")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
             "--target", str(target), str(source)],
            check=True, capture_output=True, cwd=build,
        )
        sites[name] = target
    return sites
