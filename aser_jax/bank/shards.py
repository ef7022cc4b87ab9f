"""Resumable, sharded text embedding for the offline tables (GRASP, R2END).

Each shard is an atomic `.npy` of `shard_size` rows; a killed build re-embeds only the shards
that are missing. The caller guards the folder with a manifest so shards of other texts are
never reused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from aser_jax.data.errors import DataError
from aser_jax.data.io import save_atomic


def embed_sharded(kind: str, texts: list[str], shard_dir: Path, embed_fn: Callable[[list[str]], np.ndarray],
                  shard_size: int, progress: bool, desc: str = "embed") -> np.ndarray:
  """Embeds the non-empty texts shard by shard into `shard_dir/<kind>_NNNNN.npy` and returns all
  rows [len(texts), E] (float32; zero rows for empty texts, E = 0 when no text is non-empty)."""
  from tqdm import tqdm

  shards = []
  bar = tqdm(total=len(texts), desc=f"{desc}[{kind}]", unit="text", disable=not progress)
  for j, lo in enumerate(range(0, len(texts), shard_size)):
    chunk = texts[lo:lo + shard_size]
    path = Path(shard_dir) / f"{kind}_{j:05d}.npy"
    if path.exists():
      arr = np.load(path)
      if arr.shape[0] != len(chunk):
        raise DataError(path, None, f"shard has {arr.shape[0]} rows, expected {len(chunk)}")
    else:
      keep = [n for n, t in enumerate(chunk) if t]
      arr = np.zeros((len(chunk), 0), np.float32)
      if keep:
        emb = np.asarray(embed_fn([chunk[n] for n in keep]), np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(keep):
          raise ValueError(f"embed_fn returned shape {emb.shape} for {len(keep)} texts")
        arr = np.zeros((len(chunk), emb.shape[1]), np.float32)
        arr[keep] = emb
      save_atomic(path, np.save, arr)
    shards.append(arr)
    bar.update(len(chunk))
  bar.close()
  E = max((a.shape[1] for a in shards), default=0)
  return np.concatenate([a if a.shape[1] else np.zeros((len(a), E), np.float32) for a in shards]) if shards \
      else np.zeros((0, 0), np.float32)
