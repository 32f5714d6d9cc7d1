"""Atomic writes: the old file survives a failed write; no temporary file is left behind."""
from __future__ import annotations

import pytest
import torch

from emseg_plugins.engine.checkpoint import AtomicCheckpointIO
from emseg_plugins.utils.atomic import atomic_path, atomic_write_text


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_checkpoint_io_round_trip_is_weights_only(tmp_path):
    io = AtomicCheckpointIO()
    state = {"state_dict": {"w": torch.arange(3.0)}, "hyper_parameters": {"cfg_yaml": "MODEL: {}\n"}, "global_step": 4}
    io.save_checkpoint(state, tmp_path / "last.ckpt")
    loaded = io.load_checkpoint(tmp_path / "last.ckpt")
    assert torch.equal(loaded["state_dict"]["w"], torch.arange(3.0)) and loaded["global_step"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
