"""Config loading: defaults, _BASE_, --config-base, overrides, and one-line errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, TINY
from emseg_plugins.config import get_cfg_defaults, load_config
from emseg_plugins.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_use_pytc_vocabulary_and_plugin_nodes():
    cfg = get_cfg_defaults()
    for node in ("SYSTEM", "MODEL", "DATASET", "SOLVER", "MONITOR", "INFERENCE", "AUGMENTOR"):
        assert node in cfg
    assert cfg.MODEL.JOENET.DOWNSAMPLE == "conv"  # added by the joenet config plugin
    assert cfg.DATASET.SYNTHETIC.VAL_Z == [80, 100]
    assert cfg.LOSS.DICE_BCE.BCE_WEIGHT == 1.0


def test_base_chain_then_file_then_overrides(tmp_path):
    cfg = load_config(TINY, overrides=["SOLVER.BASE_LR", "1e-4", "DATASET.CLASSES", "['mito']"])
    assert cfg.MODEL.FILTERS == [4, 8]  # tiny.yaml
    assert cfg.SOLVER.LR_SCHEDULER_NAME == "cosine"  # demo.yaml, its _BASE_
    assert cfg.SOLVER.BASE_LR == pytest.approx(1e-4)
    assert cfg.DATASET.CLASSES == ["mito"]
    assert cfg.is_frozen()


def test_config_base_is_merged_before_config_file(tmp_path):
    base = write(tmp_path / "base.yaml", "SOLVER:\n  BASE_LR: 0.5\n  ITERATION_TOTAL: 7\n")
    top = write(tmp_path / "top.yaml", "SOLVER:\n  BASE_LR: 0.25\n")
    cfg = load_config(top, config_base=base)
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.ITERATION_TOTAL) == (0.25, 7)


def test_int_for_float_and_scientific_notation_are_accepted(tmp_path):
    cfg = load_config(write(tmp_path / "c.yaml", "SOLVER:\n  BASE_LR: 1\n  WEIGHT_DECAY: 1e-5\n"))
    assert cfg.SOLVER.BASE_LR == 1.0 and cfg.SOLVER.WEIGHT_DECAY == pytest.approx(1e-5)


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("SOLVER:\n  ITERATON_TOTAL: 5\n", [], r"c\.yaml: unknown key SOLVER\.ITERATON_TOTAL; did you mean SOLVER\.ITERATION_TOTAL\?"),
        ("SOLVER:\n  BASE_LR: fast\n", [], r"c\.yaml: SOLVER\.BASE_LR expects a float \(default 0\.001\), got 'fast'"),
        ("MODEL: joenet\n", [], r"c\.yaml: MODEL is a section"),
        ("- a list\n", [], r"c\.yaml: a config must be a mapping"),
        ("SOLVER: {BASE_LR: [\n", [], r"c\.yaml: not valid YAML at line \d+"),
        ("", ["SOLVER.BASE_LRR", "1"], r"command line: unknown key SOLVER\.BASE_LRR; did you mean SOLVER\.BASE_LR\?"),
        ("", ["SOLVER.BASE_LR"], r"command line: overrides come in KEY VALUE pairs"),
        ("", ["SOLVER.LR_SCHEDULER_NAME", "step"], r"SOLVER\.LR_SCHEDULER_NAME = 'step' is not one of 'cosine', 'plateau', 'constant'"),
        ("", ["SOLVER.BASE_LR", "-1"], r"SOLVER\.BASE_LR = -1\.0 must be > 0"),
        ("", ["DATASET.INPUT_SLICES", "4"], r"DATASET\.INPUT_SLICES = 4 must be a positive odd number"),
        ("", ["DATASET.PATCH_SIZE", "[4, 32, 32]"], r"DATASET\.PATCH_SIZE = \[4, 32, 32\] must start with 1 when DATASET\.DIMS is 2"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(write(tmp_path / "c.yaml", text), overrides=overrides)
    assert "\n" not in str(info.value)


def test_missing_file_and_base_cycle(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    write(tmp_path / "a.yaml", "_BASE_: b.yaml\n")
    write(tmp_path / "b.yaml", "_BASE_: a.yaml\n")
    with pytest.raises(ConfigError, match=r"_BASE_ cycle \(.*a\.yaml -> .*b\.yaml -> .*a\.yaml\)"):
        load_config(tmp_path / "a.yaml")


def test_every_shipped_config_loads():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        assert load_config(path).MODEL.ARCHITECTURE
