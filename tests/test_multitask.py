"""Several losses over several heads (LOSS.EXTRA), their config-time checks, and embedding -> instances."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_cli, run_main, tiny_args
from test_loss_training import TINY

from emseg_plugins.config.loader import load_config
from emseg_plugins.errors import ConfigError
from emseg_plugins.losses.multitask import LossTerm, build_terms, check_batch_keys, multitask_loss, parse_extra
from emseg_plugins.postprocess.embedding_clusters import cluster_embedding, cluster_embedding_by_slice


def test_extra_terms_parse_with_default_weight_one():
    assert parse_extra(["discriminative:0.5", "dice"]) == [("discriminative", 0.5), ("dice", 1.0)]
    for bad in ("dice:", "dice:-1", "dice:heavy", ":2"):
        with pytest.raises(ConfigError, match=f"LOSS.EXTRA entry '{bad}' must be"):
            parse_extra([bad])


def test_terms_route_outputs_and_targets_and_weight_them():
    """Known values: mean logits vs label (weight 1) + 0.5 x mean embedding vs instance."""
    def seg(pred, target, mask=None):
        return (pred - target).abs().mean()

    def emb(pred, target, mask=None):
        return pred.mean() * 0 + target.float().mean()

    terms = [LossTerm("seg", 1.0, seg, "logits", "label"), LossTerm("emb", 0.5, emb, "embedding", "instance")]
    output = {"logits": torch.ones(1, 1, 2, 2), "embedding": torch.zeros(1, 4, 2, 2, requires_grad=True)}
    batch = {"label": torch.zeros(1, 1, 2, 2), "instance": torch.full((1, 1, 2, 2), 4)}
    total, parts = multitask_loss(terms, output, batch)
    assert parts["seg"].item() == 1.0 and parts["emb"].item() == 4.0
    assert total.item() == pytest.approx(1.0 + 0.5 * 4.0)
    # one term keeps the deep-supervision part names (main, aux1, ...)
    total, parts = multitask_loss(terms[:1], {"logits": torch.ones(1, 1, 4, 4), "aux": [torch.zeros(1, 1, 2, 2)]},
                                  {"label": torch.zeros(1, 1, 4, 4)}, aux_weights=[0.5])
    assert set(parts) == {"main", "aux1"} and total.item() == pytest.approx(1.0)


def test_built_terms_read_inputs_from_the_loss_plugins():
    cfg = load_config(TINY, overrides=["LOSS.EXTRA", "['discriminative:0.25']"])
    terms = build_terms(cfg)
    assert [(t.name, t.weight, t.output_key, t.batch_key) for t in terms] == [
        ("dice_bce", 1.0, "logits", "label"), ("discriminative", 0.25, "embedding", "instance")]


def test_missing_batch_target_is_a_config_error():
    cfg = load_config(TINY, overrides=["LOSS.EXTRA", "['discriminative']"])
    with pytest.raises(ConfigError, match="loss 'discriminative' needs the batch's 'instance' targets, but DATASET.NAME 'synthetic' yields only image, label"):
        check_batch_keys(build_terms(cfg), {"image": 0, "label": 0}, cfg)


def test_embedding_loss_on_a_model_without_embedding_head_fails_before_anything_is_written(tmp_path):
    run_dir = tmp_path / "run"
    result = run_main("pytc-train", *tiny_args(run_dir, "LOSS.EXTRA", "['discriminative']"))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in result.stderr
    assert lines == [
        "error: config: LOSS.EXTRA 'discriminative' trains the model's 'embedding' output, but MODEL.ARCHITECTURE "
        "'joenet' outputs only logits; choose a model that outputs embedding (e.g. unet2d_ebd, unetv3_ebd) or another loss"
    ], result.stderr
    assert not run_dir.exists()


def test_instance_class_must_be_a_configured_class():
    with pytest.raises(ConfigError, match="INFERENCE.INSTANCE_CLASS 'er' is not one of DATASET.CLASSES"):
        load_config(TINY, overrides=["INFERENCE.INSTANCE_CLASS", "er"])


def three_instances(shape=(4, 48, 48), dim=8, noise=0.08, seed=0):
    """Ground-truth ids 1..3 and an embedding with one well-separated centre per instance (E, Z, Y, X)."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(shape, np.int64)
    truth[:, 2:20, 2:20], truth[:, 25:45, 4:16], truth[:, 6:40, 26:44] = 1, 2, 3
    centres = rng.normal(0, 2.0, (4, dim))
    embedding = centres[truth] + rng.normal(0, noise, (*shape, dim))
    return truth, np.moveaxis(embedding, -1, 0).astype(np.float32)


def same_partition(found: np.ndarray, truth: np.ndarray) -> bool:
    """One found id per true instance, distinct between instances, background kept."""
    ids = [np.unique(found[truth == k]) for k in np.unique(truth[truth > 0])]
    return all(len(i) == 1 and i[0] > 0 for i in ids) and len({int(i[0]) for i in ids}) == len(ids) and not found[truth == 0].any()


def test_mean_shift_recovers_instances_from_a_separated_embedding():
    truth, embedding = three_instances()
    found = cluster_embedding(embedding, truth > 0, bandwidth=0.5)
    assert found.dtype == np.uint32 and same_partition(found, truth)
    assert sorted(np.bincount(found.ravel())[1:]) == sorted(np.bincount(truth.ravel())[1:])  # numbered by size
    assert np.bincount(found.ravel())[1] == np.bincount(truth.ravel())[1:].max()


def test_small_clusters_become_background_and_empty_foreground_is_fine():
    truth, embedding = three_instances()
    smallest = np.bincount(truth.ravel())[1:].min()
    found = cluster_embedding(embedding, truth > 0, bandwidth=0.5, min_size=smallest + 1)
    assert len(np.unique(found)) == 3 and not found[truth == np.bincount(truth.ravel())[1:].argmin() + 1].any()
    assert not cluster_embedding(embedding, np.zeros(truth.shape, bool), 0.5).any()


def test_slice_wise_clustering_numbers_instances_uniquely_over_the_volume():
    truth, embedding = three_instances(shape=(3, 48, 48))
    found = cluster_embedding_by_slice(embedding, truth > 0, 0.5)
    assert all(same_partition(found[z], truth[z]) for z in range(3))
    assert len(np.unique(found[found > 0])) == 9  # 3 instances x 3 slices, no id reused


def test_embedding_model_trains_two_losses_and_inference_writes_instances(tmp_path):
    """unet2d_ebd + dice_bce + discriminative on synthetic mito ids; --inference clusters the mito embedding."""
    import h5py

    run_dir = tmp_path / "run"
    overrides = ["MODEL.ARCHITECTURE", "unet2d_ebd", "MODEL.EMBEDDING.DIM", "4", "LOSS.EXTRA", "['discriminative:1.0']",
                 "INFERENCE.INSTANCE_CLASS", "mito", "MONITOR.IMAGES", "0", "SOLVER.ITERATION_TOTAL", "4", "SOLVER.ITERATION_VAL", "4"]
    trained = run_cli("pytc-train", *tiny_args(run_dir, *overrides))
    assert trained.returncode == 0, trained.stderr[-3000:]
    # threshold 0: every voxel is mito foreground, so each slice's whole embedding is clustered
    predicted = run_cli("pytc-train", *tiny_args(run_dir, *overrides, "INFERENCE.THRESHOLD", "0.0"), "--inference")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    with h5py.File(run_dir / "predictions" / "synthetic-val.h5") as f:
        probabilities, masks, instances = f["probabilities"][...], f["masks"][...], f["instances"][...]
    assert instances.dtype == np.uint32 and instances.shape == probabilities.shape[1:]
    assert masks[1].all() and (instances > 0).all()
    per_slice = [set(np.unique(plane)) for plane in instances]
    assert all(per_slice) and sum(map(len, per_slice)) == len(set.union(*per_slice))  # slice-wise clusters, ids unique over the volume
