"""TensorBoard pictures during training: input | ground truth | prediction for fixed validation slices.

At every validation the same ``MONITOR.IMAGES`` validation samples (chosen once: evenly spread over
the validation set, those showing the most classes first) are predicted and logged as
``val_images/NN`` (RGB, panels as in ``emseg view``). A model with deep-supervision heads also gets
``val_aux/NN``: each auxiliary head's thresholded prediction, upsampled (nearest) to the slice. 2.5D
samples show their centre slice, 3D samples their middle Z slice.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from emseg_plugins.models.outputs import aux_of, logits_of
from emseg_plugins.visualize.composite import class_colours, composite
from emseg_plugins.visualize.panels import side_by_side, slice_panels

CANDIDATES_PER_IMAGE = 4  # validation samples inspected per picture when choosing the fixed set


class ValidationImages(pl.Callback):
    """Logs panels of ``count`` fixed validation samples at every validation (rank 0, TensorBoard logger only)."""

    def __init__(self, count: int, classes: list[str], threshold: float = 0.5):
        self.count, self.classes, self.threshold = count, list(classes), threshold
        self.colours = class_colours(classes)
        self.indices: list[int] | None = None
        self.has_aux: bool | None = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        experiment = getattr(trainer.logger, "experiment", None)
        if self.count <= 0 or trainer.sanity_checking or not trainer.is_global_zero or not hasattr(experiment, "add_image"):
            return
        dataset = getattr(trainer.datamodule, "val_set", None)  # the engine's data module; absent: nothing to show
        if dataset is None or len(dataset) == 0:
            return
        if self.indices is None:
            self.indices = choose_samples(dataset, self.count)
        samples = [dataset[i] for i in self.indices]
        images = torch.stack([s["image"] for s in samples]).to(pl_module.device)
        model, k = pl_module.model, len(self.classes)
        with torch.no_grad(), _mode(model, eval_heads=True):
            probs = torch.sigmoid(logits_of(model(images))[:, :k].float()).cpu().numpy()  # the class channels come first
        aux = []
        if self.has_aux is not False:
            with torch.no_grad(), _mode(model, eval_heads=False):
                output = model(images)
            aux = [torch.sigmoid(a[:, :k].float()) for a in aux_of(output)]
            self.has_aux = bool(aux)
        step = trainer.global_step
        for j, sample in enumerate(samples):
            image, label, z = _centre(sample["image"].numpy(), sample["label"].numpy())
            pred = probs[j] if z is None else probs[j][:, z]
            experiment.add_image(f"val_images/{j:02d}", slice_panels(image, label, self.colours, pred >= self.threshold),
                                 step, dataformats="HWC")
            if aux:
                heads = []
                for a in aux:
                    up = F.interpolate(a[j : j + 1].cpu(), size=sample["label"].shape[1:], mode="nearest")[0].numpy()
                    heads.append(composite(image, (up if z is None else up[:, z]) >= self.threshold, self.colours))
                experiment.add_image(f"val_aux/{j:02d}", side_by_side(heads, [f"aux {h}" for h in range(len(heads))]),
                                     step, dataformats="HWC")


def choose_samples(dataset, count: int) -> list[int]:
    """``count`` fixed indices: candidates evenly spread over ``dataset``, those with the most classes present first."""
    n = len(dataset)
    candidates = np.unique(np.linspace(0, n - 1, min(n, count * CANDIDATES_PER_IMAGE)).round().astype(int))

    def richness(i: int) -> tuple[int, float]:
        label = np.nan_to_num(dataset[int(i)]["label"].numpy())
        present = label.reshape(label.shape[0], -1).max(axis=1) > 0.5
        return int(present.sum()), float(label.mean())

    ranked = sorted(candidates, key=lambda i: richness(i), reverse=True)
    return sorted(int(i) for i in ranked[:count])


def _centre(image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(slice (Y, X), its labels (K, Y, X), z or None): the centre channel of a 2.5D image, the middle Z of a 3D one."""
    if image.ndim == 3:  # (C, Y, X): C adjacent slices, labels of the centre one
        return image[image.shape[0] // 2], label, None
    z = image.shape[1] // 2  # (1, Z, Y, X)
    return image[0, z], label[:, z], z


@contextlib.contextmanager
def _mode(model: nn.Module, eval_heads: bool) -> Iterator[None]:
    """Eval mode (``eval_heads``), or training mode with every norm and dropout layer in eval mode:
    deep-supervision models return their auxiliary heads only in training mode, and this shows them
    without touching BatchNorm running statistics or dropping activations."""
    flags = [(m, m.training) for m in model.modules()]
    model.train(not eval_heads)
    if not eval_heads:
        for m in model.modules():
            if isinstance(m, (nn.modules.batchnorm._NormBase, nn.modules.dropout._DropoutNd)):
                m.eval()
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training
