"""Item side information for DIFF (BACKBONES.md "DIFF"): per field, each item's attribute ids.

Sources: the S3-Rec `<Name>_item2attributes*.json(.gz)` files (categories and brand mixed, no
names, so one multi-valued field "attributes"), or named fields of an item table (e.g. brand,
categories), each mapped to its own id vocabulary. Held by the module as a frozen constant.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class SideInfo:
  names: tuple[str, ...]
  ids: tuple[np.ndarray, ...]  # per field [I+1, K] int32 attribute ids, 0 = none (row 0 = padding item)
  vocab: tuple[int, ...]  # per field, the largest attribute id
  group: np.ndarray  # [I+1] int32: items with equal attributes in every field share a group


def _pack(rows: dict[int, list[int]], num_items: int) -> np.ndarray:
  width = max([len(v) for v in rows.values()] + [1])
  out = np.zeros((num_items + 1, width), np.int32)
  for item, attrs in rows.items():
    if 1 <= item <= num_items:
      out[item, :len(attrs)] = sorted(attrs)
  return out


def make_side(fields: dict[str, dict[int, list[int]]], num_items: int) -> SideInfo:
  """`fields`: name -> (item id -> attribute ids, 1-based)."""
  ids = tuple(_pack(rows, num_items) for rows in fields.values())
  vocab = tuple(int(a.max()) for a in ids)
  _, group = np.unique(np.concatenate(ids, axis=1), axis=0, return_inverse=True)
  return SideInfo(tuple(fields), ids, vocab, group.reshape(-1).astype(np.int32))


def side_from_attributes(item2attributes: dict[int, list[int]], num_items: int) -> SideInfo:
  return make_side({"attributes": item2attributes}, num_items)


def side_from_item_table(table, fields: tuple[str, ...], num_items: int) -> SideInfo:
  """Maps each named field's string values (lists for multi-valued fields) to ids 1..V."""
  out = {}
  for f in fields:
    vocab: dict[str, int] = {}
    rows = {}
    for item, row in table.rows.items():
      v = row.get(f)
      vals = [x for x in (v if isinstance(v, (list, tuple)) else [v]) if x not in (None, "")]
      rows[int(item)] = sorted({vocab.setdefault(str(x), len(vocab) + 1) for x in vals})
    out[f] = rows
  return make_side(out, num_items)


def find_attribute_file(sequence_file: str | Path) -> Path | None:
  """`<Name>_item2attributes*.json(.gz)` beside `<Name>.txt(.gz)`, if there is one."""
  p = Path(sequence_file)
  stem = p.name.split(".")[0]
  hits = sorted(p.parent.glob(f"{stem}_item2attributes*.json*"))
  return hits[0] if hits else None


def load_side(path: str | Path, num_items: int, fields: tuple[str, ...] = ("brand", "categories")) -> SideInfo:
  """An S3-Rec attribute json, or an item-text table whose named `fields` become side fields."""
  from aser_jax.data.items import read_item_attributes, read_item_text
  name = Path(path).name.removesuffix(".gz")
  if name.endswith(".json") and "item2attributes" in name:
    return side_from_attributes(read_item_attributes(path), num_items)
  table = read_item_text(path)
  missing = [f for f in fields if f not in table.columns]
  if missing:
    raise ValueError(f"{path}: no column(s) {missing}; has {list(table.columns)}")
  return side_from_item_table(table, fields, num_items)
