"""Single-vector representation channels for the ablations (ASER_SPEC §6), packed as banks.

The raw-text channel (the frozen encoder's embedding of an item's whole text) and the
broad-attribute channel (the embedding of its brand and categories) have one vector per item.
Packing that vector into facet slot 0 with A = C = N = 1 makes the fusion of §5 reduce to
`s_i = Wp v_i + bp + o_0`, so every channel goes through the same fusion code and flags.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from aser_jax.bank.aggregate import Bank, finalize, snorm
from aser_jax.bank.facets import FACETS


def vector_bank(texts: dict[int, str], num_items: int, embed_fn: Callable[[list[str]], np.ndarray]) -> Bank:
  """A bank whose only active slot holds the embedding of each item's text (items without text stay inactive)."""
  ids = sorted(i for i, t in texts.items() if t and 1 <= i <= num_items)
  emb = np.asarray(embed_fn([texts[i] for i in ids]), np.float64) if ids else np.zeros((0, 1))
  F, d = len(FACETS), emb.shape[1]
  K = np.zeros((num_items + 1, F, d))
  A = np.zeros((num_items + 1, F))
  A[ids, 0] = 1.0
  K[ids, 0] = snorm(emb, np.ones(len(ids)))
  Pi = np.full((num_items + 1, F, 3), 1.0 / 3.0)
  return finalize(K, A.copy(), Pi, A.copy(), A)
