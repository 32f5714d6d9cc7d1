"""The ``pytc`` config node: options for PyTC's own models and losses selected as ``pytc.<name>``."""
from __future__ import annotations

from yacs.config import CfgNode as CN


def add_pytc_config(cfg: CN) -> None:
    """MODEL.PYTC and LOSS.PYTC: options for PyTC's own models and losses selected as pytc.<name>."""
    cfg.MODEL.PYTC = CN()
    # PyTC config overrides for a pytc.* model, as PyTC's command line takes them: KEY VALUE pairs, e.g.
    # ["MODEL.BLOCK_TYPE", "residual_se", "MODEL.FILTERS", "[8, 16, 24, 32, 40]"] (v1) or ["model.monai.norm", "instance"] (v2)
    cfg.MODEL.PYTC.OPTS = []
    cfg.LOSS.PYTC = CN()
    # activation on the logits before a pytc.* loss: auto | sigmoid | none (auto: none for *Logits*/CE losses and all of v2, else sigmoid)
    cfg.LOSS.PYTC.ACTIVATION = "auto"
    cfg.LOSS.PYTC.KWARGS = []  # keyword arguments of the pytc.* loss as KEY VALUE pairs, e.g. ["smooth", "1.0"]
