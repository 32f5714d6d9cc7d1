"""The plugin's own tests: registered by entry points, schema-conformant, and trainable.

Run after installing the package (pip install -e .): pytest tests
"""
import math

import torch

from emseg_plugins.config.defaults import get_cfg_defaults
from emseg_plugins.registry import DATASETS, LOSSES, MODELS


def _cfg(**overrides):
    cfg = get_cfg_defaults()  # includes MODEL.TINY_UNET and DATASET.BLOBS once the package is installed
    cfg.MODEL.ARCHITECTURE, cfg.LOSS.NAME, cfg.DATASET.NAME = "tiny_unet", "soft_l1", "blobs"
    cfg.DATASET.PATCH_SIZE = [1, 32, 32]
    for key, value in overrides.items():
        node, leaf = key.rsplit(".", 1) if "." in key else ("", key)
        target = cfg
        for part in node.split("."):
            target = target[part]
        target[leaf] = value
    return cfg


def test_entry_points_come_from_this_distribution():
    for registry, name in ((MODELS, "tiny_unet"), (LOSSES, "soft_l1"), (DATASETS, "blobs")):
        record = {r.name: r for r in registry.records()}[name]
        assert record.source == "emseg-plugin-example" and record.status == "ok"


def test_model_returns_logits_of_the_batch_schema():
    model = MODELS.build("tiny_unet", _cfg())
    logits = model(torch.rand(2, 1, 32, 32))
    assert logits.shape == (2, 2, 32, 32)  # (B, K, Y, X): one channel per class of DATASET.CLASSES


def test_loss_ignores_unannotated_voxels_and_is_zero_without_annotation():
    loss = LOSSES.build("soft_l1", _cfg())
    logits = torch.zeros(1, 2, 4, 4)  # probability 0.5 everywhere
    label = torch.ones(1, 2, 4, 4)
    label[:, 1] = float("nan")  # class 1 not annotated
    assert math.isclose(loss(logits, label).item(), 0.5, rel_tol=1e-6)
    assert loss(logits, torch.full_like(label, float("nan"))).item() == 0.0
    assert loss(logits, label, torch.zeros(1, 1, 4, 4)).item() == 0.0  # valid_mask 0 everywhere


def test_dataset_yields_batches_of_the_schema():
    data = DATASETS.build("blobs", _cfg())
    sample = data.train_dataset(3)[0]
    assert sample["image"].shape == (1, 32, 32) and sample["label"].shape == (2, 32, 32)
    assert set(torch.unique(sample["label"]).tolist()) <= {0.0, 1.0}
    assert len(data.val_dataset()) > 0
    labels = data.volumes("val")[0].labels
    assert labels.shape[0] == 2 and labels.any()  # both classes drawn in the held-out slices
