"""Grain input pipeline for training: seeded per-epoch shuffle, fixed-shape batches, checkpointable state.

Every batch has exactly `batch_size` rows so the jitted step compiles once and shards evenly
over devices; the last batch of an epoch is padded with rows of weight 0, which the losses
ignore. An epoch's order depends only on `(seed, epoch)`, so a resumed run sees the same data.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import grain
from absl import flags
import numpy as np

from aser_jax.data.splits import TrainSamples


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  batch_size: int = 256
  seed: int = 0
  workers: int = 0  # >0 prefetches batches in that many worker processes


class _Gather:
  """Turns a batch of sample indices into a padded, weighted batch dict."""

  def __init__(self, samples: TrainSamples, batch_size: int):
    self.samples = samples
    self.batch_size = batch_size

  def __call__(self, idx: np.ndarray) -> dict[str, np.ndarray]:
    idx = np.asarray(idx, np.int64)
    n = len(idx)
    pad = self.batch_size - n
    take = np.concatenate([idx, np.zeros(pad, np.int64)]) if pad else idx
    weight = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return {
        "input_ids": self.samples.inputs[take],
        "target": self.samples.targets[take],
        "user": self.samples.users[take],  # row of the user in SequenceData (GRASP's user tables)
        "weight": weight,
    }


def epoch_dataset(samples: TrainSamples, cfg: PipelineConfig, epoch: int) -> grain.IterDataset:
  """The batches of one epoch, shuffled by a seed derived from `(cfg.seed, epoch)`."""
  seed = int(np.random.SeedSequence([cfg.seed, epoch]).generate_state(1)[0])
  ds = (grain.MapDataset.range(len(samples))
        .shuffle(seed=seed)
        .batch(cfg.batch_size, drop_remainder=False)
        .map(_Gather(samples, cfg.batch_size)))
  it = ds.to_iter_dataset()
  if cfg.workers > 0:
    if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags; library callers may not parse any
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=cfg.workers))
  return it


def steps_per_epoch(samples: TrainSamples, cfg: PipelineConfig) -> int:
  return -(-len(samples) // cfg.batch_size)


class TrainIterator:
  """Iterates epochs of batches and can report/restore its position (for Orbax checkpoints)."""

  def __init__(self, samples: TrainSamples, cfg: PipelineConfig):
    self.samples, self.cfg = samples, cfg
    self.epoch = 0
    self._it = iter(epoch_dataset(samples, cfg, 0))

  def start_epoch(self, epoch: int) -> None:
    if epoch != self.epoch:
      self.epoch = epoch
      self._it = iter(epoch_dataset(self.samples, self.cfg, epoch))

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self._it

  def get_state(self) -> dict:
    return {"epoch": self.epoch, "iterator": self._it.get_state()}

  def set_state(self, state: dict) -> None:
    self.epoch = -1
    self.start_epoch(int(state["epoch"]))
    self._it.set_state(state["iterator"])
