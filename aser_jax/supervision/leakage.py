"""Benchmark-item removal from the supervision corpus, and a check that fails loudly (ASER_SPEC §2)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Iterable, Sequence

from aser_jax.data.errors import DataError

# Raw ids of the recommendation benchmarks' items: Amazon ASINs and Yelp business ids.
BENCHMARK_ID_FILES = ("amazon2014/beauty/item_id2asin.tsv.gz", "amazon2014/toys/item_id2asin.tsv.gz",
                      "yelp/item_id2business_id.tsv.gz")


class LeakageError(ValueError):
  """A benchmark item is in the supervision corpus."""


def read_benchmark_ids(data_dir: str | os.PathLike, files: Sequence[str] = BENCHMARK_ID_FILES) -> set[str]:
  """Raw item ids (second column of `id \\t raw_id` maps) of every benchmark present under data_dir."""
  ids = set()
  for rel in files:
    path = Path(data_dir) / rel
    if not path.exists():
      continue
    with gzip.open(path, "rt", encoding="utf-8") as handle:
      for line_no, line in enumerate(handle, start=1):
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 2 or not fields[1]:
          raise DataError(path, line_no, f"expected `id<TAB>raw_id`, got {line.rstrip()!r}")
        ids.add(fields[1])
  return ids


def remove_benchmark_items(rows: Iterable[dict], benchmark_ids: set[str]) -> tuple[list[dict], int]:
  """Rows whose item is not a benchmark item, and how many were removed."""
  kept, removed = [], 0
  for row in rows:
    if str(row["item_id"]) in benchmark_ids:
      removed += 1
    else:
      kept.append(row)
  return kept, removed


def check_no_leakage(item_ids: Iterable[str], benchmark_ids: set[str]) -> None:
  """Raises LeakageError naming the leaked items when any supervision item is a benchmark item."""
  leaked = sorted({str(i) for i in item_ids} & benchmark_ids)
  if leaked:
    raise LeakageError(f"{len(leaked)} benchmark items in the supervision corpus, e.g. {leaked[:5]}")
