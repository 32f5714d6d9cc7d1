"""The one patch-size check of the U-shaped models: every spatial size a multiple of the downsampling."""
from __future__ import annotations

from collections.abc import Sequence

from yacs.config import CfgNode as CN

from emseg_plugins.errors import ConfigError

SIZE_KEYS = ("DATASET.PATCH_SIZE", "INFERENCE.INPUT_SIZE")  # (Z, Y, X) voxels; Z is 1 or the slice axis in 2D


def require_multiples(cfg: CN, multiples: int | Sequence[int], arch: str, why: str) -> None:
    """:class:`ConfigError` unless DATASET.PATCH_SIZE and INFERENCE.INPUT_SIZE are multiples of ``multiples``.

    ``multiples``: one number for every spatial axis of DATASET.DIMS, or one per axis, (Z, Y, X) for
    3D models and (Y, X) for 2D ones (Z is then the slice axis and not checked). The message names the
    key, the sizes needed, ``arch`` and ``why``, and the nearest sizes that fit.
    """
    if isinstance(multiples, int):
        axes = "YX" if cfg.DATASET.DIMS == 2 else "ZYX"
        need, multiples = f"{multiples} in {', '.join(axes)}", (multiples,) * len(axes)
    else:
        axes = "ZYX"[3 - len(multiples):]
        need = ", ".join(f"{m} in {a}" for a, m in zip(axes, multiples))
    first = 3 - len(multiples)
    for key, size in zip(SIZE_KEYS, (cfg.DATASET.PATCH_SIZE, cfg.INFERENCE.INPUT_SIZE)):
        size = list(size)
        if any(s % m for s, m in zip(size[first:], multiples)):
            fixed = size[:first] + [-(-s // m) * m for s, m in zip(size[first:], multiples)]
            raise ConfigError(f"config: {key} = {size} must be a multiple of {need} for {arch} ({why}); e.g. {fixed}")
