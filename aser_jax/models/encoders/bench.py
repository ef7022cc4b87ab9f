"""Throughput of sentence embedding (texts per second), for experiments/bench_encoder.py."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from aser_jax import provenance
from aser_jax.models.encoders.embedding import SentenceEmbedder
from aser_jax.models.encoders.loader import load_encoder

_TEXT_FIELDS = ("reviewText", "text", "Text", "review", "question", "answer")


def read_texts(path: str | Path, limit: int) -> list[str]:
  """Up to `limit` non-empty texts from a `.txt` (one per line), `.jsonl`/`.json` (one object
  per line; first of reviewText/text/review/question/answer) or `.csv` (column Text/text/review)
  file, optionally gzipped."""
  path = Path(path)
  name = path.name[:-3] if path.name.endswith(".gz") else path.name
  opener = gzip.open if path.name.endswith(".gz") else open
  with opener(path, "rt", encoding="utf-8") as f:
    if name.endswith(".csv"):
      rows = csv.DictReader(io.StringIO(f.read()))
      col = next((c for c in _TEXT_FIELDS if c in (rows.fieldnames or [])), None)
      if col is None:
        raise ValueError(f"{path}:1: no text column among {_TEXT_FIELDS} (header: {rows.fieldnames})")
      texts = [r[col] for r in rows]
    elif name.endswith((".json", ".jsonl")):
      texts = []
      for lineno, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          obj = json.loads(line)
        except json.JSONDecodeError as e:
          raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from e
        texts.append(next((obj[k] for k in _TEXT_FIELDS if isinstance(obj.get(k), str)), ""))
        if len(texts) >= 4 * limit:
          break
    else:
      texts = f.read().splitlines()
  texts = [t.strip() for t in texts if t and t.strip()]
  if not texts:
    raise ValueError(f"{path}: no texts found")
  return texts[:limit]


def benchmark_embedding(texts: Sequence[str], batch_size: int = 64, repeats: int = 3,
                        encoder: str = "all-minilm-l6-v2", encoder_path: str | None = None,
                        dtype: str | None = None) -> dict[str, Any]:
  """Texts per second of sentence embedding on the default JAX device, best of `repeats`
  passes after a first pass that also compiles every bucket. `dtype` defaults to bfloat16 on
  GPU and float32 elsewhere."""
  backend = jax.default_backend()
  dtype = jnp.dtype(dtype or ("bfloat16" if backend == "gpu" else "float32"))
  embedder = SentenceEmbedder(load_encoder(encoder, path=encoder_path, dtype=dtype))
  t0 = time.perf_counter()
  embedder(texts, batch_size)
  first_s = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    embedder(texts, batch_size)
    times.append(time.perf_counter() - t0)
  lengths = [len(e.ids) for e in embedder.encoder.tokenizer.encode(texts)]
  return {"encoder": encoder, "backend": backend, "device": str(jax.devices()[0]), "dtype": dtype.name,
          "texts": len(texts), "batch_size": batch_size, "mean_tokens": round(float(np.mean(lengths)), 1),
          "max_len": embedder.encoder.tokenizer.max_len, "cpu_count": os.cpu_count(),
          "first_pass_s": round(first_s, 3), "best_pass_s": round(min(times), 3),
          "texts_per_s": round(len(texts) / min(times), 1), "environment": provenance.environment()}


def run_benchmark(texts_path: str | Path, num_texts: int = 1000, **kwargs: Any) -> dict[str, Any]:
  """`benchmark_embedding` on the first `num_texts` texts of `texts_path`; records the file."""
  result = benchmark_embedding(read_texts(texts_path, num_texts), **kwargs)
  return {"texts_file": str(texts_path), **result}
