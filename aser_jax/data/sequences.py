"""Sequential-recommendation datasets: the S3-Rec/BSARec `.txt` format and RecBole atomic files.

The `.txt` format has one user per line, `user_id item_id item_id ...` in time order, ids
1-based, 0 reserved for padding (BACKBONES.md, "Data protocol").
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from aser_jax.data.errors import DataError
from aser_jax.data.io import iter_lines, write_text_atomic

MIN_ITEMS = 3  # leave-one-out needs a training item, a validation item and a test item.


@dataclasses.dataclass(frozen=True)
class ReadReport:
  """What a reader skipped, so nothing is dropped without being counted."""

  path: str
  users: int
  interactions: int
  blank_lines: int = 0
  short_users: int = 0  # users with fewer than MIN_ITEMS items, skipped by the protocol

  def summary(self) -> str:
    return (f"{self.path}: {self.users} users, {self.interactions} interactions; skipped "
            f"{self.short_users} users with < {MIN_ITEMS} items and {self.blank_lines} blank lines")


@dataclasses.dataclass(frozen=True)
class SequenceData:
  """Users' time-ordered item sequences; `num_items` is the largest item id (ids 1..num_items)."""

  user_ids: np.ndarray  # [U] int64, as given in the file
  sequences: tuple[np.ndarray, ...]  # U int32 arrays
  num_items: int
  name: str = "data"
  synthetic: bool = False
  report: ReadReport | None = None

  @property
  def num_users(self) -> int:
    return len(self.sequences)

  @property
  def num_interactions(self) -> int:
    return int(sum(len(s) for s in self.sequences))


def _parse_id(token: str, path, lineno: int, field: str) -> int:
  try:
    value = int(token)
  except ValueError:
    raise DataError(path, lineno, f"expected an integer id, got {token!r}", field) from None
  return value


def read_sequences(path: str | os.PathLike, *, name: str | None = None,
                   min_items: int = MIN_ITEMS, num_items: int | None = None) -> SequenceData:
  """Reads a `.txt`/`.txt.gz` sequence file and validates every token.

  Errors (file, line and field named): non-integer ids, item id 0 or negative, a user line
  with no items, a repeated user id, truncated gzip. Blank lines and users with fewer than
  `min_items` items are skipped and counted in the returned `report`.
  """
  path = Path(path)
  user_ids, seqs, seen = [], [], {}
  blank = short = 0
  max_item = 0
  for lineno, line in iter_lines(path):
    tokens = line.split()
    if not tokens:
      blank += 1
      continue
    user = _parse_id(tokens[0], path, lineno, "user_id")
    if len(tokens) == 1:
      raise DataError(path, lineno, f"user {user} has no items", "items")
    if user in seen:
      raise DataError(path, lineno, f"user {user} already appeared on line {seen[user]}", "user_id")
    seen[user] = lineno
    items = np.empty(len(tokens) - 1, dtype=np.int64)
    for k, tok in enumerate(tokens[1:]):
      items[k] = _parse_id(tok, path, lineno, f"item {k + 1}")
    bad = np.flatnonzero(items <= 0)
    if bad.size:
      k = int(bad[0])
      raise DataError(path, lineno, f"item id {items[k]} is not a valid item (0 is padding, ids start at 1)",
                      f"item {k + 1}")
    if len(items) < min_items:
      short += 1
      continue
    max_item = max(max_item, int(items.max()))
    user_ids.append(user)
    seqs.append(items.astype(np.int32))
  if not seqs:
    raise DataError(path, None, "no usable user sequences")
  if num_items is not None:
    if max_item > num_items:
      raise DataError(path, None, f"item id {max_item} exceeds num_items={num_items}")
    max_item = num_items
  report = ReadReport(str(path), len(seqs), int(sum(len(s) for s in seqs)), blank, short)
  return SequenceData(np.asarray(user_ids, np.int64), tuple(seqs), max_item,
                      name or path.name.split(".")[0], report=report)


def write_sequences(data: SequenceData, path: str | os.PathLike) -> None:
  """Writes the `.txt` format (gzipped when the name ends in `.gz`), atomically."""
  lines = [" ".join(map(str, [int(u), *s.tolist()])) for u, s in zip(data.user_ids, data.sequences)]
  write_text_atomic(path, "\n".join(lines) + "\n")


def read_recbole_inter(path: str | os.PathLike, *, min_items: int = MIN_ITEMS,
                       name: str | None = None) -> tuple[SequenceData, dict[str, int], dict[str, int]]:
  """Reads a RecBole `.inter` atomic file into sequences ordered by timestamp.

  Needs `user_id:token` and `item_id:token` columns; `timestamp:float` orders each user's
  items when present (file order otherwise). Raw tokens are remapped to dense ids: users in
  order of first appearance from 1, items likewise from 1. Returns the data and both maps.
  """
  path = Path(path)
  rows = iter_lines(path)
  try:
    _, header = next(rows)
  except StopIteration:
    raise DataError(path, 1, "empty file, expected a header line") from None
  cols = [c.split(":")[0] for c in header.split("\t")]
  for need in ("user_id", "item_id"):
    if need not in cols:
      raise DataError(path, 1, f"header has no {need}:token column (got {header!r})", need)
  iu, ii = cols.index("user_id"), cols.index("item_id")
  it = cols.index("timestamp") if "timestamp" in cols else None
  users: dict[str, list[tuple[float, int, int]]] = {}
  item_map: dict[str, int] = {}
  for lineno, line in rows:
    if not line.strip():
      continue
    fields = line.split("\t")
    if len(fields) != len(cols):
      raise DataError(path, lineno, f"expected {len(cols)} tab-separated fields, got {len(fields)}")
    ts = 0.0
    if it is not None:
      try:
        ts = float(fields[it])
      except ValueError:
        raise DataError(path, lineno, f"timestamp {fields[it]!r} is not a number", "timestamp") from None
    item = item_map.setdefault(fields[ii], len(item_map) + 1)
    users.setdefault(fields[iu], []).append((ts, lineno, item))
  user_map, uids, seqs, short = {}, [], [], 0
  for raw, events in users.items():
    events.sort()
    if len(events) < min_items:
      short += 1
      continue
    user_map[raw] = len(user_map) + 1
    uids.append(user_map[raw])
    seqs.append(np.asarray([e[2] for e in events], np.int32))
  report = ReadReport(str(path), len(seqs), int(sum(len(s) for s in seqs)), 0, short)
  data = SequenceData(np.asarray(uids, np.int64), tuple(seqs), len(item_map),
                      name or path.name.split(".")[0], report=report)
  return data, user_map, item_map


def write_recbole_inter(data: SequenceData, path: str | os.PathLike) -> None:
  """Writes sequences as a RecBole `.inter` file; the position in the sequence is the timestamp."""
  lines = ["user_id:token\titem_id:token\ttimestamp:float"]
  for u, seq in zip(data.user_ids, data.sequences):
    lines.extend(f"{int(u)}\t{int(i)}\t{t}" for t, i in enumerate(seq.tolist()))
  write_text_atomic(path, "\n".join(lines) + "\n")
