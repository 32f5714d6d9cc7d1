"""The LightningDataModule around a dataset plugin.

Training samples are indexed by their position in the whole run, so one "epoch" spans every
optimizer step, and a resumed run continues with exactly the samples it had not seen yet. Each
process of a DDP run takes every ``world``-th index (Lightning's sampler injection is off).
"""
from __future__ import annotations

from collections.abc import Iterator

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from yacs.config import CfgNode as CN


class ResumeSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` below ``length``, skipping the first ``skip`` of them.

    ``len()`` still counts the skipped indices: on resume Lightning restores its batch counter to
    the batches already done, so the epoch ends exactly when the run does.
    """

    def __init__(self, length: int, rank: int = 0, world: int = 1, skip: int = 0):
        self.indices = range(rank, length, world)
        self.skip = min(skip, len(self.indices))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices[self.skip :])

    def __len__(self) -> int:
        return len(self.indices)


class SegmentationDataModule(pl.LightningDataModule):
    """Wraps the object a ``DATASETS`` builder returns (``train_dataset(num_samples)``, ``val_dataset()``)."""

    def __init__(self, cfg: CN, data, start_batch: int = 0):
        """``start_batch``: training batches this process already consumed (a resumed run skips them)."""
        super().__init__()
        self.cfg, self.data, self.start_batch = cfg, data, start_batch
        self.val_set = data.val_dataset()
        data.train_dataset(1)  # bad data (e.g. volumes smaller than a patch) fails here, before the run writes anything

    def train_dataloader(self) -> DataLoader:
        s, world = self.cfg.SOLVER, self.trainer.world_size
        per_process_step = s.SAMPLES_PER_BATCH * s.ITERATION_STEP
        dataset = self.data.train_dataset(s.ITERATION_TOTAL * per_process_step * world)
        sampler = ResumeSampler(len(dataset), self.trainer.global_rank, world, skip=self.start_batch * s.SAMPLES_PER_BATCH)
        return self._loader(dataset, sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        sampler = ResumeSampler(len(self.val_set), self.trainer.global_rank, self.trainer.world_size)
        return self._loader(self.val_set, sampler, drop_last=False)

    def _loader(self, dataset: Dataset, sampler: Sampler, drop_last: bool) -> DataLoader:
        workers = self.cfg.SYSTEM.NUM_CPUS
        # Its own generator: creating an iterator then draws no number from the global RNG, whose state
        # (dropout) a resumed run restores from the checkpoint. Samples do not depend on it (seed, index).
        generator = torch.Generator().manual_seed(self.cfg.SYSTEM.SEED)
        return DataLoader(dataset, batch_size=self.cfg.SOLVER.SAMPLES_PER_BATCH, sampler=sampler, generator=generator,
                          num_workers=workers, persistent_workers=workers > 0, drop_last=drop_last)
