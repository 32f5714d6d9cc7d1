"""The model-output contract (docs/schemas.md): what a model's ``forward(image)`` may return.

Either a logits tensor (B, K, [Z,] Y, X), or a dict with ``logits`` (the same), optional ``aux``
(list of deep-supervision logits at lower resolutions, (B, K, [Z/s,] Y/s, X/s)) and optional
``embedding`` (B, E, [Z,] Y, X). Every reader of model outputs goes through these functions.
"""
from __future__ import annotations

from typing import Any

LOGITS, AUX, EMBEDDING = "logits", "aux", "embedding"
DEFAULT_OUTPUTS = (LOGITS,)  # what a model outputs unless it declares `outputs` (aux heads are implied)
BLENDED = (LOGITS, EMBEDDING)  # the outputs sliding-window inference blends (full-resolution ones)


def logits_of(output: Any) -> Any:
    """The main logits (B, K, [Z,] Y, X) of a tensor or dict output."""
    return output[LOGITS] if isinstance(output, dict) else output


def aux_of(output: Any) -> list:
    """The deep-supervision logits, coarsest last; [] for a tensor output or a dict without ``aux``."""
    return list(output.get(AUX, [])) if isinstance(output, dict) else []


def embedding_of(output: Any) -> Any | None:
    """The embedding (B, E, [Z,] Y, X), or None when the model outputs none."""
    return output.get(EMBEDDING) if isinstance(output, dict) else None


def full_resolution(output: Any) -> dict[str, Any]:
    """``{"logits": ...[, "embedding": ...]}``: the outputs at the input's resolution, as a dict."""
    named = {LOGITS: logits_of(output), EMBEDDING: embedding_of(output)}
    return {key: value for key, value in named.items() if value is not None}


def declared_outputs(model: Any) -> tuple[str, ...]:
    """The outputs a model declares through its ``outputs`` attribute (default ``("logits",)``)."""
    return tuple(getattr(model, "outputs", DEFAULT_OUTPUTS))


def split_heads(output: Any, heads: list[tuple[str, slice]]) -> Any:
    """The output with its logits cut into named channel groups (``targets.heads``): ``logits`` keeps
    the class channels (also in each ``aux`` head), each learned target gets its own key. A model
    without targets (one group spanning every channel) is returned unchanged."""
    if len(heads) == 1:
        return output
    named = dict(output) if isinstance(output, dict) else {LOGITS: output}
    logits = named[LOGITS]
    for name, channels in heads:
        named[name] = logits[:, channels]
    named[AUX] = [head[:, heads[0][1]] for head in aux_of(output)]
    return named
