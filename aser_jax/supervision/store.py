"""Supervision shards on disk: ArrayRecord files read through Grain, plus a JSON manifest.

Each record is one example: its arrays (as an `.npz` byte string) and its metadata (JSON).
`SupervisionSource` is a Grain random-access data source; `load_split` stacks a split into
arrays for the in-memory training loop.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"


def _encode(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
  buf = io.BytesIO()
  np.savez(buf, **arrays, _meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
  return buf.getvalue()


def decode(record: bytes) -> tuple[dict[str, np.ndarray], dict]:
  with np.load(io.BytesIO(record)) as z:
    arrays = {k: z[k] for k in z.files if k != "_meta"}
    meta = json.loads(z["_meta"].tobytes().decode())
  return arrays, meta


def write_split(out_dir: str | os.PathLike, split: str, arrays: dict[str, np.ndarray], meta: list[dict],
                shard_size: int = 2000) -> list[str]:
  """Writes `split-00000.array_record`, ...; returns the shard file names."""
  from array_record.python.array_record_module import ArrayRecordWriter

  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  n = len(meta)
  names = []
  for k, start in enumerate(range(0, max(n, 1), shard_size)):
    name = f"{split}-{k:05d}.array_record"
    tmp = out / (name + ".tmp")
    writer = ArrayRecordWriter(str(tmp), "group_size:1")
    for i in range(start, min(start + shard_size, n)):
      writer.write(_encode({key: v[i] for key, v in arrays.items()}, meta[i]))
    writer.close()
    tmp.replace(out / name)
    names.append(name)
  return names


def write_manifest(out_dir: str | os.PathLike, manifest: dict) -> None:
  path = Path(out_dir) / MANIFEST
  tmp = path.with_suffix(".tmp")
  tmp.write_text(json.dumps(manifest, indent=2) + "\n")
  tmp.replace(path)


def read_manifest(data_dir: str | os.PathLike) -> dict:
  path = Path(data_dir) / MANIFEST
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no supervision manifest (run experiments/build_supervision.py)")
  return json.loads(path.read_text())


class SupervisionSource:
  """Grain `RandomAccessDataSource` over one split: `source[i] -> (arrays, meta)`."""

  def __init__(self, data_dir: str | os.PathLike, split: str):
    import grain.python as grain

    files = read_manifest(data_dir)["splits"].get(split)
    if files is None:
      raise KeyError(f"{data_dir}: no split {split!r}")
    self._source = grain.ArrayRecordDataSource([str(Path(data_dir) / f) for f in files])

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, i: int) -> tuple[dict[str, np.ndarray], dict]:
    return decode(self._source[i])


def load_split(data_dir: str | os.PathLike, split: str) -> tuple[dict[str, np.ndarray], list[dict]]:
  """All examples of `split`, stacked: arrays [N, ...] and metadata."""
  source = SupervisionSource(data_dir, split)
  items = [source[i] for i in range(len(source))]
  if not items:
    raise ValueError(f"{data_dir}: split {split!r} is empty")
  arrays = {k: np.stack([a[k] for a, _ in items]) for k in items[0][0]}
  return arrays, [m for _, m in items]
