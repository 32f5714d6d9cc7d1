"""Several losses over several model outputs and batch targets, summed with weights.

``LOSS.NAME`` is the main term (weight 1); ``LOSS.EXTRA`` adds terms as ``"name"`` or
``"name:weight"`` (e.g. ``["discriminative:1.0"]`` next to ``dice_bce`` for semantic mito plus an
instance embedding). Each loss says which model output and batch key it consumes through its
``inputs`` attribute (default ``("logits", "label")``; the discriminative loss takes
``("embedding", "instance")``). Terms on ``logits`` also train the deep-supervision heads
(``output["aux"]``, weighted by ``LOSS.AUX_WEIGHTS``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from yacs.config import CfgNode as CN

from emseg_plugins.errors import ConfigError
from emseg_plugins.losses.deep_supervision import supervised_loss
from emseg_plugins.models.outputs import LOGITS, declared_outputs
from emseg_plugins.registry import LOSSES
from emseg_plugins.targets import build_targets, target_losses

SEGMENTATION_INPUTS = (LOGITS, "label")  # what a loss consumes unless it declares `inputs`


@dataclass(frozen=True)
class LossTerm:
    """One weighted loss: ``fn(output[output_key], batch[batch_key], batch.get("valid_mask"))``."""

    name: str
    weight: float
    fn: Callable[..., torch.Tensor]
    output_key: str
    batch_key: str


def parse_extra(entries: Sequence[str]) -> list[tuple[str, float]]:
    """``["discriminative:0.5", "dice"]`` -> ``[("discriminative", 0.5), ("dice", 1.0)]``."""
    parsed = []
    for entry in entries:
        name, colon, weight = entry.partition(":")
        try:
            value = float(weight) if colon else 1.0
        except ValueError:
            value = -1.0
        if not name or not value > 0:
            raise ConfigError(f"config: LOSS.EXTRA entry {entry!r} must be 'name' or 'name:weight' with a weight > 0")
        parsed.append((name, value))
    return parsed


def build_terms(cfg: CN) -> list[LossTerm]:
    """The main term, every ``LOSS.EXTRA`` term, and one term per learned target (``TARGET.NAMES``),
    each built from the ``LOSSES`` registry; a target's term trains its own output channels."""
    terms = []
    for name, weight in [(cfg.LOSS.NAME, 1.0), *parse_extra(cfg.LOSS.EXTRA)]:
        fn = LOSSES.build(name, cfg)
        output_key, batch_key = getattr(fn, "inputs", SEGMENTATION_INPUTS)
        terms.append(LossTerm(name, weight, fn, output_key, batch_key))
    for target, loss_name, weight in target_losses(cfg, build_targets(cfg)):
        terms.append(LossTerm(target.name, weight, LOSSES.build(loss_name, cfg), target.name, target.name))
    return terms


def check_model_outputs(terms: Sequence[LossTerm], model: torch.nn.Module, cfg: CN) -> None:
    """:class:`ConfigError` when a term trains an output the model does not produce."""
    outputs = declared_outputs(model) + tuple(t.name for t in build_targets(cfg))  # targets: channel groups of the logits
    for term in terms:
        if term.output_key not in outputs:
            key = "LOSS.NAME" if term.name == cfg.LOSS.NAME else "LOSS.EXTRA"
            raise ConfigError(
                f"config: {key} {term.name!r} trains the model's {term.output_key!r} output, but MODEL.ARCHITECTURE "
                f"{cfg.MODEL.ARCHITECTURE!r} outputs only {', '.join(outputs)}; choose a model that outputs {term.output_key} "
                f"(e.g. unet2d_ebd, unetv3_ebd) or another loss"
            )


def check_batch_keys(terms: Sequence[LossTerm], sample: dict[str, Any], cfg: CN) -> None:
    """:class:`ConfigError` when a term needs a target (e.g. ``instance``) the dataset does not yield."""
    for term in terms:
        if term.batch_key not in sample:
            raise ConfigError(
                f"config: loss {term.name!r} needs the batch's {term.batch_key!r} targets, but DATASET.NAME "
                f"{cfg.DATASET.NAME!r} yields only {', '.join(sorted(sample))}; configure {term.batch_key} labels for the dataset or drop the loss"
            )


def multitask_loss(
    terms: Sequence[LossTerm], output: Any, batch: dict[str, torch.Tensor], aux_weights: Sequence[float] = ()
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(weighted total, {part name: unweighted loss})`` for a tensor or dict model output.

    With one term the parts are ``main``, ``aux1``, ...; with several each is prefixed by the loss name.
    """
    total, parts = None, {}
    for term in terms:
        if term.output_key == LOGITS:
            value, own = supervised_loss(term.fn, output, batch[term.batch_key], batch.get("valid_mask"), aux_weights)
        else:
            value = term.fn(output[term.output_key], batch[term.batch_key], batch.get("valid_mask"))
            own = {"main": value}
        parts.update(own if len(terms) == 1 else {f"{term.name}_{k}" if k != "main" else term.name: v for k, v in own.items()})
        total = term.weight * value if total is None else total + term.weight * value
    return total, parts
