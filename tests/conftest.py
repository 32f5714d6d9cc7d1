"""Shared helpers: run the real console scripts, and real plugin distributions installed by pip."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
BIN = Path(sys.executable).parent


def run_cli(*args: str, cwd: Path | None = None, pythonpath: list[Path] = (), timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``pytc-train``/``emseg`` from this environment as a subprocess; text output captured."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, pythonpath)), "PYTHONWARNINGS": "default"}
    program, *rest = args
    return subprocess.run([str(BIN / program), *rest], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def call_main(program: str, args: list[str]) -> int:
    """Exit status of ``pytc-train``/``emseg``'s ``main`` run in this process, as the console script's.

    An uncaught exception prints its traceback to stderr and gives 1, as the interpreter does.
    """
    from emseg_plugins.cli.main import main as emseg_main
    from emseg_plugins.cli.train import main as train_main

    entry = {"pytc-train": train_main, "emseg": emseg_main}[program]
    try:
        return entry(list(args)) or 0
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 1


def run_main(program: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``pytc-train``/``emseg`` in this process (the console scripts' own ``main``), output captured.

    The same code path as :func:`run_cli` without a new interpreter (about 10 s each here): for the
    many error-path tests. Plugins from PYTHONPATH sites need :func:`run_cli`.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        code = call_main(program, list(args))
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
