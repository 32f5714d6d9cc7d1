"""CellMap scoring parity: our evaluator against outputs of the OFFICIAL evaluator (golden vectors).

Each scenario of ``tests/fixtures/cellmap_golden/scenarios.py`` (seeded) is rebuilt here and scored with
``emseg_plugins.challenge.evaluate.score_submission`` (what ``emseg cellmap evaluate`` runs), and every
field the official ``score_submission`` wrote to ``<scenario>.json`` (per crop and label, per label,
overall) must be equal within 1e-9. The JSON files were produced by ``regenerate.py`` with the official
package; these tests need only ours. ``chunked_rescale.npz`` holds the official chunk-by-chunk rescaling
of large sources (``MatchedCrop._load_array_chunked``) of ``scenarios.chunked_sources()``.
"""
from __future__ import annotations

import importlib.util
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from emseg_plugins.challenge.config import INSTANCE_CLASSES
from emseg_plugins.challenge.evaluate import rescale_chunked, score_submission
from emseg_plugins.challenge.manifest import load_manifest

GOLDEN = Path(__file__).parent / "fixtures" / "cellmap_golden"
_spec = importlib.util.spec_from_file_location("cellmap_golden_scenarios", GOLDEN / "scenarios.py")
scenarios = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))  # dataclasses look it up
_spec.loader.exec_module(scenarios)

# Fields of the official result that describe the run, not the scores.
RUN_FIELDS = {"total_evals", "num_evals_done", "git_version"}
TOLERANCE = 1e-9


def differences(official, ours, where: str) -> list[str]:
    """``where: official X, ours Y`` for every field of ``official`` that ``ours`` lacks or holds another value in."""
    if isinstance(official, dict):
        if not isinstance(ours, dict):
            return [f"{where}: official {official!r}, ours {ours!r}"]
        out = []
        for key, value in official.items():
            if key in RUN_FIELDS:
                continue
            out += differences(value, ours[key], f"{where}.{key}") if key in ours else [f"{where}.{key}: missing in ours"]
        return out
    if isinstance(official, (list, tuple)):
        if not isinstance(ours, (list, tuple)) or len(ours) != len(official):
            return [f"{where}: official {official!r}, ours {ours!r}"]
        return [d for i, (a, b) in enumerate(zip(official, ours)) for d in differences(a, b, f"{where}[{i}]")]
    if isinstance(official, bool) or isinstance(official, str) or official is None:
        return [] if official == ours else [f"{where}: official {official!r}, ours {ours!r}"]
    if isinstance(ours, bool) or not isinstance(ours, (int, float)) or not math.isclose(official, ours, rel_tol=0, abs_tol=TOLERANCE):
        return [f"{where}: official {official!r}, ours {ours!r}"]
    return []


def test_every_scenario_has_its_golden_output():
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(scenarios.SCENARIOS)
    assert len(scenarios.SCENARIOS) >= 12


@pytest.mark.parametrize("name", sorted(scenarios.SCENARIOS))
def test_scores_equal_the_official_evaluator(name, tmp_path):
    official = json.loads((GOLDEN / f"{name}.json").read_text())
    submission, truth, manifest = scenarios.write(name, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # missing labels, skipped matching: expected here
        ours = score_submission(submission, truth, load_manifest(str(manifest)), INSTANCE_CLASSES, progress=False)
    found = differences(official, json.loads(json.dumps(ours, default=float)), name)
    assert not found, f"scenario {name}: {len(found)} fields differ from the official evaluator:\n" + "\n".join(found[:40])


@pytest.mark.parametrize("name", sorted(scenarios.chunked_sources()))
def test_chunked_rescaling_equals_the_official(name):
    """Sources over 500 MiB are rescaled chunk by chunk there; ours must give the same voxels (gaps included)."""
    data, factors, instance = scenarios.chunked_sources()[name]
    with np.load(GOLDEN / "chunked_rescale.npz") as golden:
        official = golden[name]
    ours = rescale_chunked(data, factors, instance)
    assert ours.shape == official.shape and ours.dtype == official.dtype, f"{name}: {ours.shape} {ours.dtype} vs {official.shape} {official.dtype}"
    assert np.array_equal(ours, official), f"{name}: {int(np.count_nonzero(ours != official))} voxels differ from the official"
