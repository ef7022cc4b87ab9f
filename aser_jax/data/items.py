"""Item-side tables: RecBole `.item` atomic files and the item-text TSV/JSONL files.

All readers return an `ItemTable`: one row per item, keyed by the sequence file's item id
where the file carries one, with named string/list/float columns.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from pathlib import Path

from aser_jax.data.errors import DataError
from aser_jax.data.io import iter_json_objects, iter_lines, open_text, write_text_atomic

RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


@dataclasses.dataclass(frozen=True)
class ItemTable:
  """Columns keyed by name; `key` is the id column (int ids or raw tokens such as ASINs)."""

  key: str
  rows: dict  # key value -> {column: value}
  columns: tuple[str, ...]
  path: str = ""

  def __len__(self) -> int:
    return len(self.rows)

  def text(self, item, fields: tuple[str, ...] = ("title", "brand", "categories"), sep: str = "\n") -> str:
    """Joins the named, non-empty fields of one item (lists joined by ', ')."""
    row = self.rows.get(item, {})
    parts = []
    for f in fields:
      v = row.get(f)
      if isinstance(v, (list, tuple)):
        v = ", ".join(map(str, v))
      if v not in (None, ""):
        parts.append(str(v))
    return sep.join(parts)


def _recbole_value(raw: str, kind: str, path, lineno: int, field: str, seq_sep: str):
  if kind == "token":
    return raw
  if kind == "token_seq":
    return [t for t in raw.split(seq_sep) if t] if raw else []
  try:
    if kind == "float":
      return float(raw) if raw != "" else float("nan")
    return [float(t) for t in raw.split(seq_sep) if t]
  except ValueError:
    raise DataError(path, lineno, f"{raw!r} is not a {kind}", field) from None


def _records(path, header_and_rows):
  """Yields (line_number, fields) from csv rows, tracking physical line numbers."""
  for fields in header_and_rows:
    yield header_and_rows.line_num, fields


def read_recbole_item(path: str | os.PathLike, *, seq_sep: str = " ") -> ItemTable:
  """Reads a RecBole `.item` file; header fields are `name:type` with type in RECBOLE_TYPES.

  Quoted fields may hold tabs or newlines (as two titles of the Amazon Beauty file do).
  `seq_sep` splits `token_seq`/`float_seq` fields (RecBole's default is a space).
  """
  path = Path(path)
  with open_text(path) as f:
    reader = csv.reader(f, delimiter="\t", quotechar='"')
    try:
      header = next(reader)
    except StopIteration:
      raise DataError(path, 1, "empty file, expected a header line") from None
    names, kinds = [], []
    for h in header:
      name, _, kind = h.partition(":")
      if kind not in RECBOLE_TYPES:
        raise DataError(path, 1, f"column {h!r} has no RecBole type ({', '.join(RECBOLE_TYPES)})", name)
      names.append(name)
      kinds.append(kind)
    key = names[0]
    rows = {}
    for lineno, fields in _records(path, reader):
      if not fields:
        continue
      if len(fields) != len(names):
        raise DataError(path, lineno, f"expected {len(names)} fields, got {len(fields)}")
      row = {n: _recbole_value(v, k, path, lineno, n, seq_sep) for n, k, v in zip(names, kinds, fields)}
      if row[key] in rows:
        raise DataError(path, lineno, f"duplicate {key} {row[key]!r}", key)
      rows[row[key]] = row
  return ItemTable(key, rows, tuple(names), str(path))


def write_recbole_item(table: ItemTable, path: str | os.PathLike, types: dict[str, str]) -> None:
  """Writes a RecBole `.item` file; `types` gives each column's RecBole type."""
  buf = io.StringIO()
  w = csv.writer(buf, delimiter="\t", quotechar='"', lineterminator="\n")
  w.writerow([f"{c}:{types[c]}" for c in table.columns])
  for row in table.rows.values():
    w.writerow([" ".join(map(str, v)) if isinstance(v, list) else v for v in (row[c] for c in table.columns)])
  write_text_atomic(path, buf.getvalue())


def _int_key(value, path, lineno, field):
  try:
    return int(value)
  except (TypeError, ValueError):
    raise DataError(path, lineno, f"expected an integer item id, got {value!r}", field) from None


def read_item_text(path: str | os.PathLike) -> ItemTable:
  """Reads an item-text file keyed by integer item id.

  Formats (chosen by content): JSON lines with an `item_id` key; a TSV with a header whose
  first column is `item_id`; a header-less `id<TAB>asin<TAB>text` TSV (title fragments).
  """
  path = Path(path)
  name = path.name.removesuffix(".gz")
  rows = {}
  if name.endswith(".jsonl") or name.endswith(".json"):
    for lineno, obj in iter_json_objects(path):
      if "item_id" not in obj:
        raise DataError(path, lineno, "object has no item_id", "item_id")
      rows[_int_key(obj["item_id"], path, lineno, "item_id")] = obj
    columns = tuple(next(iter(rows.values())).keys()) if rows else ("item_id",)
    return ItemTable("item_id", rows, columns, str(path))
  lines = iter_lines(path)
  try:
    first_no, first = next(lines)
  except StopIteration:
    raise DataError(path, 1, "empty file") from None
  head = first.split("\t")
  if head[0] == "item_id":
    columns = tuple(head)
  else:
    columns = ("item_id", "asin", "title")
    lines = iter([(first_no, first), *lines])
  for lineno, line in lines:
    if not line.strip():
      continue
    fields = line.split("\t")
    if len(fields) != len(columns):
      raise DataError(path, lineno, f"expected {len(columns)} tab-separated fields, got {len(fields)}")
    row = dict(zip(columns, fields))
    if "categories" in row:
      row["categories"] = [c.strip().strip("'\"") for c in row["categories"].split(",") if c.strip()]
    rows[_int_key(fields[0], path, lineno, "item_id")] = row
  return ItemTable("item_id", rows, columns, str(path))


def read_item_attributes(path: str | os.PathLike) -> dict[int, list[int]]:
  """Reads an S3-Rec `item2attributes.json`: item id -> list of attribute ids (1-based)."""
  path = Path(path)
  with open_text(path) as f:
    try:
      obj = json.load(f)
    except json.JSONDecodeError as e:
      raise DataError(path, e.lineno, f"invalid JSON ({e.msg})") from None
  out = {}
  for k, v in obj.items():
    item = _int_key(k, path, None, f"item {k}")
    if not isinstance(v, list) or not all(isinstance(a, int) and a > 0 for a in v):
      raise DataError(path, None, f"attributes must be a list of positive ints, got {v!r}", f"item {k}")
    out[item] = v
  return out
