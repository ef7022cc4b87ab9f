"""Leave-one-out splits, prefix-augmented training samples and left padding (ASER_SPEC §6).

Per user with sequence `s`: test target `s[-1]`, validation target `s[-2]`, the rest trains.
Training samples follow the reference prefix augmentation: `w = s[-(L+2):-2]`, and every
prefix of `w` with a non-empty input gives (input = prefix minus its last item, target = that
item). Inputs are left-padded with 0 so the newest item sits at position L-1.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from aser_jax.data.sequences import SequenceData


def left_pad(seq: np.ndarray, max_len: int) -> np.ndarray:
  """Keeps the last `max_len` items of `seq`, left-padded with 0."""
  out = np.zeros(max_len, np.int32)
  tail = seq[-max_len:] if max_len else seq[:0]
  if len(tail):
    out[max_len - len(tail):] = tail
  return out


@dataclasses.dataclass(frozen=True)
class TrainSamples:
  inputs: np.ndarray  # [N, L] int32, left-padded
  targets: np.ndarray  # [N] int32
  users: np.ndarray  # [N] int32, row index of the user in SequenceData

  def __len__(self) -> int:
    return len(self.targets)


@dataclasses.dataclass(frozen=True)
class EvalSplit:
  """One evaluation split: model inputs, targets, and the history the ranking must exclude."""

  inputs: np.ndarray  # [U, L] int32
  targets: np.ndarray  # [U] int32
  history: np.ndarray  # [U, H] int32, every earlier item of the user (0-padded); scored -inf
  users: np.ndarray  # [U] int32

  def __len__(self) -> int:
    return len(self.targets)


def train_samples(data: SequenceData, max_len: int, empty_inputs: bool = False) -> TrainSamples:
  """Prefix-augmented training samples.

  By default the reference's one sample per user whose input is empty (all padding, target =
  the first item of `w`) is dropped, as BACKBONES.md asks; `empty_inputs=True` keeps it, which
  reproduces the reference's sample set (150,258 on Beauty instead of 127,895).
  """
  inputs, targets, users = [], [], []
  for u, seq in enumerate(data.sequences):
    w = seq[-(max_len + 2):-2]
    for j in range(0 if empty_inputs else 1, len(w)):
      inputs.append(left_pad(w[:j], max_len))
      targets.append(w[j])
      users.append(u)
  return TrainSamples(np.stack(inputs).astype(np.int32), np.asarray(targets, np.int32),
                      np.asarray(users, np.int32))


def train_sequences(data: SequenceData, max_len: int, repeats: int = 1) -> TrainSamples:
  """Whole training sequences for masked-item models: per user the last `max_len` items of
  `s[:-2]`, left-padded (target = its newest item), listed `repeats` times; users without a
  training item are skipped."""
  rows = [(u, seq[:-2]) for u, seq in enumerate(data.sequences) if len(seq) > 2]
  inputs = np.stack([left_pad(s, max_len) for _, s in rows]).astype(np.int32)
  targets = np.asarray([s[-1] for _, s in rows], np.int32)
  users = np.asarray([u for u, _ in rows], np.int32)
  return TrainSamples(np.tile(inputs, (repeats, 1)), np.tile(targets, repeats), np.tile(users, repeats))


def eval_split(data: SequenceData, max_len: int, which: str) -> EvalSplit:
  """`which='valid'`: input `s[:-2]`, target `s[-2]`; `which='test'`: input `s[:-1]`, target `s[-1]`."""
  if which not in ("valid", "test"):
    raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
  cut = 2 if which == "valid" else 1
  hist_len = max(len(s) - cut for s in data.sequences)
  n = data.num_users
  inputs = np.zeros((n, max_len), np.int32)
  history = np.zeros((n, hist_len), np.int32)
  targets = np.zeros(n, np.int32)
  for u, seq in enumerate(data.sequences):
    prefix = seq[:-cut]
    inputs[u] = left_pad(prefix, max_len)
    history[u, :len(prefix)] = prefix
    targets[u] = seq[-cut]
  return EvalSplit(inputs, targets, history, np.arange(n, dtype=np.int32))


def train_item_counts(data: SequenceData) -> np.ndarray:
  """[num_items + 1] count of each item in the training part (`s[:-2]`); for cold-start buckets."""
  counts = np.zeros(data.num_items + 1, np.int64)
  for seq in data.sequences:
    np.add.at(counts, seq[:-2], 1)
  return counts
