"""The plan of a chunked deploy: everything that decides its output, stored as ``deploy.json``."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emseg_plugins.postprocess.stitch import Box, block_grid

PLAN_FILE = "deploy.json"


@dataclass(frozen=True)
class Plan:
    """Everything that decides a deploy's output; stored in ``deploy.json`` and compared on restart."""

    input: str
    output: str
    checkpoint: str
    checkpoint_sha256: str
    cfg_yaml: str  # model + INFERENCE settings (the checkpoint's model, the run config's inference)
    shape: tuple[int, int, int]  # (Z, Y, X) voxels
    block: tuple[int, int, int]
    halo: tuple[int, int, int]
    classes: tuple[str, ...]
    instances: str = ""  # "" or a DECODERS name, on INFERENCE.INSTANCE_CLASS (else the first class) and the learned maps
    min_size: int = 0  # voxels; smaller instances are dropped
    dtype: str = "uint8"  # probabilities as "uint8" (round(255 p)) or "float16" (p)
    masks: bool = False  # also write ``masks`` (uint8, p >= INFERENCE.THRESHOLD)
    boxes: tuple[Box, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "boxes", tuple(block_grid(self.shape, self.block)))

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if k != "boxes"}
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        for key in ("shape", "block", "halo", "classes"):
            data[key] = tuple(data[key])
        return cls(**data)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def marker(out: Path, kind: str, index: int) -> Path:
    """Completion marker of block ``index`` for a pass (``blocks``, ``decoded``, ``stitched``) in a deploy store."""
    return Path(out) / kind / f"{index:06d}.json"
