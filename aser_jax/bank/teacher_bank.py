"""An item facet bank straight from teacher records: the canonical targets of ASER_SPEC §2.

For item i with texts x: `w[x,f] = y[x,f] κ[x,f]`, `A[i,f] = 1[Σ_x w ≥ τ_mass]`,
`K[i,f] = c*[i,f] = snorm(Σ_x w z[x,f], A)` with `z[x,f] = snorm(E_T(target text), y)`;
`C` is the w-weighted mean teacher confidence, `N` the number of texts with the facet present,
`Π` the confidence-weighted polarity shares of the kept records. This is what the student of
§3 learns to predict; it serves as the bank until a trained student exists, and as the
"structured-attribute bank" channel of the ablations.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from aser_jax.bank.aggregate import Bank, finalize, snorm
from aser_jax.bank.facets import EPS, FACETS
from aser_jax.supervision.clean import CleanConfig, facet_labels


def teacher_bank(rows: list[dict], num_items: int, embed_fn: Callable[[list[str]], np.ndarray],
                 item_key: Callable[[dict], int] = lambda r: int(r["item_id"]), tau_mass: float = 0.5,
                 cfg: CleanConfig = CleanConfig()) -> tuple[Bank, dict]:
  """Builds the bank from teacher output rows; returns it with coverage statistics."""
  F = len(FACETS)
  labels = [facet_labels(r.get("records", []), r["source"], r["text"], cfg) for r in rows]
  texts = sorted({t for lab in labels for t in lab.target_text if t})
  vec = {}
  if texts:
    emb = np.asarray(embed_fn(texts), np.float64)
    vec = dict(zip(texts, emb))
  dim = next(iter(vec.values())).shape[0] if vec else 1
  sum_w = np.zeros((num_items + 1, F))
  sum_wz = np.zeros((num_items + 1, F, dim))
  sum_wk = np.zeros((num_items + 1, F))
  count = np.zeros((num_items + 1, F))
  pol = np.zeros((num_items + 1, F, 3))
  skipped = 0
  for row, lab in zip(rows, labels):
    i = item_key(row)
    if not 1 <= i <= num_items:
      skipped += 1
      continue
    for f in range(F):
      if not lab.presence[f]:
        continue
      w = lab.confidence[f]
      z = snorm(vec[lab.target_text[f]], np.ones(()))
      sum_w[i, f] += w
      sum_wz[i, f] += w * z
      sum_wk[i, f] += w * lab.confidence[f]
      count[i, f] += 1
      pol[i, f] += lab.polarity_mass[f]
  A = (sum_w >= tau_mass).astype(np.float64)
  K = snorm(sum_wz, A)
  C = A * sum_wk / (sum_w + EPS)
  total = pol.sum(-1, keepdims=True)
  Pi = np.where((A[..., None] > 0) & (total > 0), pol / np.maximum(total, EPS), 1.0 / 3.0)
  bank = finalize(K, C, Pi, A * count, A)
  stats = {
      "items": num_items, "texts": len(rows), "texts_outside_catalogue": skipped,
      "items_with_active_facet": int(A[1:].any(-1).sum()),
      "coverage": {f: float(A[1:, k].mean()) for k, f in enumerate(FACETS)},
  }
  return bank, stats
