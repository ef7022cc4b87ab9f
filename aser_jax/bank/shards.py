"""The offline text tables' shared mechanics (GRASP, R2END): resumable, sharded text embedding
guarded by a manifest, and the `.npz` table files with their metadata.

Each shard is an atomic `.npy` of `shard_size` rows; a killed build re-embeds only the shards
that are missing. `embed_kinds` guards the shard folder with a manifest so shards of other
texts, shard sizes or encoders are never reused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from aser_jax.data.errors import DataError
from aser_jax.data.io import save_atomic, write_text_atomic

ENCODERS = ("all-minilm-l6-v2", "char-ngram")


def text_embedder(name: str, batch_size: int = 64) -> Callable[[list[str]], np.ndarray]:
  """The frozen text encoder of a table build: MiniLM, or `char-ngram`, a fast hashed stand-in
  for smoke runs only."""
  if name == "char-ngram":
    from aser_jax.teacher.alignment import char_ngram_embed

    return functools.partial(char_ngram_embed, dim=256)
  if name != "all-minilm-l6-v2":
    raise ValueError(f"unknown text encoder {name!r}; choose one of {ENCODERS}")
  from aser_jax.models.encoders import embed_texts

  return functools.partial(embed_texts, batch_size=batch_size)


def text_digest(texts: Sequence[str]) -> str:
  """sha256 of a list of texts (their JSON), recorded in a table's metadata and shard manifest."""
  return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()


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


def embed_kinds(shard_dir: Path, kinds: dict[str, list[str]], embed_fn: Callable[[list[str]], np.ndarray],
                shard_size: int, encoder: str, text_sha256: str, progress: bool, desc: str) -> dict[str, np.ndarray]:
  """Embeds each kind's texts into `shard_dir` (resumable) and returns {kind: [n, E]}, every kind
  at the widest kind's E. `shard_dir/manifest.json` records the shard size, the encoder and the
  texts' digest; a folder built with others is refused rather than reused."""
  shard_dir = Path(shard_dir)
  shard_dir.mkdir(parents=True, exist_ok=True)
  manifest = {"shard_size": shard_size, "encoder": encoder, "text_sha256": text_sha256}
  man_path = shard_dir / "manifest.json"
  if man_path.exists() and json.loads(man_path.read_text()) != manifest:
    raise ValueError(f"{man_path}: shards were built from other texts, shard size or encoder; "
                     "remove the folder or use a fresh --out")
  write_text_atomic(man_path, json.dumps(manifest, indent=1) + "\n")
  full = {kind: embed_sharded(kind, texts, shard_dir, embed_fn, shard_size, progress, desc)
          for kind, texts in kinds.items()}
  E = max(a.shape[1] for a in full.values())
  return {kind: a if a.shape[1] else np.zeros((len(a), E), np.float32) for kind, a in full.items()}


def is_current(path: Path, meta: dict, load: Callable) -> bool:
  """Whether `path` exists and `load(path).meta` agrees with `meta` on every key of `meta`."""
  return path.exists() and {k: load(path).meta.get(k) for k in meta} == meta


def save_tables(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> None:
  """Writes the arrays (float32) and `meta` (a JSON string) to one `.npz`, atomically."""
  save_atomic(path, np.savez, **{name: np.asarray(a, np.float32) for name, a in arrays.items()},
              meta=json.dumps(meta, sort_keys=True))


def load_tables(path: str | os.PathLike, names: Iterable[str], missing: str) -> tuple[dict[str, np.ndarray], dict]:
  """(arrays as float32, meta) of a `.npz` written by `save_tables`; `missing` is the error of an
  absent file. An absent array names itself."""
  path = Path(path)
  if not path.exists():
    raise DataError(path, None, missing)
  names = tuple(names)
  with np.load(path) as z:
    for name in (*names, "meta"):
      if name not in z:
        raise DataError(path, None, "array missing", name)
    return {name: np.asarray(z[name], np.float32) for name in names}, json.loads(str(z["meta"]))


def check_counts(path: str | os.PathLike, meta: dict, counts: Iterable[tuple[str, int]]) -> None:
  """Refuses a table file whose metadata disagrees with its arrays' sizes."""
  for key, n in counts:
    if key in meta and meta[key] != n:
      raise DataError(path, None, f"meta says {meta[key]}, the arrays {n}", key)
