"""Added special tokens (`[DOM_*]`, `[SRC_*]`, ASER_SPEC §3) with their own embedding rows."""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp

from aser_jax.models.encoders.tokenization import TextTokenizer


def add_special_tokens(params: Any, tokenizer: TextTokenizer,
                       tokens: Sequence[str]) -> tuple[Any, TextTokenizer]:
  """(params, tokenizer) that know `tokens` as unsplittable special tokens.

  Each new token gets the next free id; the word-embedding table grows when an id is past its
  end (DeBERTa-v3's table already has spare rows). A new token's row starts at the mean of the
  original vocabulary's rows, a neutral point the fine-tuning moves away from. Tokens the
  tokenizer already knows keep their ids and rows. `params` is not modified in place.
  """
  new = [t for t in dict.fromkeys(tokens) if tokenizer.token_to_id(t) is None]
  table = params["embeddings"]["word_embeddings"]["embedding"]
  if not new:
    return params, tokenizer
  grown = tokenizer.with_special_tokens(new)
  ids = jnp.array([grown.token_to_id(t) for t in new])
  rows = max(table.shape[0], int(ids.max()) + 1)
  mean_row = table[:min(tokenizer.vocab_size, table.shape[0])].mean(axis=0)
  table = jnp.concatenate([table, jnp.zeros((rows - table.shape[0], table.shape[1]), table.dtype)])
  table = table.at[ids].set(mean_row)
  word = {**params["embeddings"]["word_embeddings"], "embedding": table}
  return {**params, "embeddings": {**params["embeddings"], "word_embeddings": word}}, grown
