"""A fast command line: loading a config, `emseg config --keys` and a config error import no torch.

Every config load applies every installed config node, so the built-in nodes live in torch-free modules
(``models/config_nodes.py``, ``losses/config_nodes.py``, ``datasets/config_nodes.py``) and ``pytc-train``
loads the config before it imports the engine. Each check runs in a fresh interpreter and reads its
``sys.modules``; wall times are measured by benchmarks/cli.py, not here.
"""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, run_cli

DEMO = ROOT / "configs" / "demo.yaml"
# Nothing on the config path may import these (numpy and zarr too: they are most of what is left to wait for).
HEAVY = ("torch", "monai", "pytorch_lightning", "lightning", "cellmap_data", "numpy", "zarr")
REPORT = f"import json, sys; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)"


def _heavy_modules(code: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run ``code`` then REPORT in a fresh interpreter: (the process, the heavy modules it imported)."""
    result = subprocess.run([sys.executable, "-c", f"{code}\n{REPORT}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    return result, json.loads(result.stderr.strip().splitlines()[-1])


def test_loading_a_config_imports_no_torch():
    result, heavy = _heavy_modules(f"from emseg_plugins.config import load_config\nload_config({str(DEMO)!r})")
    assert result.returncode == 0, result.stderr[-2000:]
    assert heavy == []


def test_config_keys_imports_no_torch():
    code = ("from emseg_plugins.cli.main import main\n"
            "try:\n    main(['config', '--keys'])\nexcept SystemExit as exit_:\n    assert exit_.code == 0, exit_.code")
    result, heavy = _heavy_modules(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DATASET.CELLMAP.RAW_NAME = 'recon-1/em/fibsem-uint8'" in result.stdout.splitlines()  # every node is there
    assert "MODEL.UNETV3.AUX_HEADS = -1" in result.stdout.splitlines()
    assert heavy == []


def test_a_config_error_of_pytc_train_imports_no_torch_nor_the_engine():
    code = ("import sys\nfrom emseg_plugins.cli.train import main\n"
            f"try:\n    main(['--config-file', {str(DEMO)!r}, 'SOLVER.ITERATON_TOTAL', '5'])\n"
            "except SystemExit as exit_:\n    assert exit_.code == 2, exit_.code\n"
            "assert not [m for m in sys.modules if m.startswith('emseg_plugins.engine')]")
    result, heavy = _heavy_modules(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert heavy == []
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: command line: unknown key SOLVER.ITERATON_TOTAL; did you mean SOLVER.ITERATION_TOTAL?"]


def test_the_console_script_reports_a_config_error_on_one_line():
    result = run_cli("pytc-train", "--config-file", str(DEMO), "SOLVER.ITERATON_TOTAL", "5")
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "error: command line: unknown key SOLVER.ITERATON_TOTAL; did you mean SOLVER.ITERATION_TOTAL?"]


def test_built_in_config_nodes_are_torch_free_entry_points():
    from importlib.metadata import entry_points

    targets = {ep.name: ep.value for ep in entry_points(group="emseg_plugins.configs") if ep.value.startswith("emseg_plugins.")}
    light = ("emseg_plugins.models.config_nodes:", "emseg_plugins.losses.config_nodes:", "emseg_plugins.datasets.config_nodes:",
             "emseg_plugins.challenge.config:")
    assert targets and all(value.startswith(light) for value in targets.values()), targets


def test_the_cellmap_node_is_the_torch_free_one_and_its_raw_name_matches_the_layout():
    from emseg_plugins.datasets import cellmap, cellmap_layout, config_nodes

    assert cellmap.add_cellmap_config is config_nodes.add_cellmap_config
    assert config_nodes.RAW_NAME == cellmap_layout.RAW_NAME
