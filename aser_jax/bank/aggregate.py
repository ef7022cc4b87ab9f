"""Item facet bank from per-text student outputs (ASER_SPEC §4).

For item i with texts x and facet f:
  ω[x,f] = P[x,f] · 1[P[x,f] ≥ θ]                      (presence-gated evidence)
  A[i,f] = 1[Σ_x ω > ε]
  K[i,f] = snorm(Σ_x ω k[x,f], A[i,f])                  (snorm(v, a) = a v / max(‖v‖, ε))
  C[i,f] = Σ_x ω ĉ / (Σ_x ω + ε)
  Π[i,f] = softmax(Σ_x ω ĉ π[x,f] / (Σ_x ω ĉ + ε))
  N[i,f] = Σ_x 1[ω > 0]
Inactive slots get K = 0, C = 0, Π = (1/3, 1/3, 1/3), N = 0. Row 0 is the padding item: all zeros.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from aser_jax.bank.facets import EPS, FACETS


@dataclasses.dataclass(frozen=True)
class Bank:
  """Arrays indexed by item id (row 0 = padding); F = 5 facets in `FACETS` order."""

  K: np.ndarray  # [I+1, F, d_b] float32 canonical facet embeddings
  C: np.ndarray  # [I+1, F] float32 confidence
  Pi: np.ndarray  # [I+1, F, 3] float32 polarity distribution (audit only)
  N: np.ndarray  # [I+1, F] float32 coverage: number of supporting texts
  A: np.ndarray  # [I+1, F] float32 active indicator (0/1)

  @property
  def num_items(self) -> int:
    return self.K.shape[0] - 1

  def arrays(self) -> dict[str, np.ndarray]:
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

  def validate(self) -> None:
    """Raises ValueError on NaN/inf, inconsistent shapes, or a non-empty padding row."""
    n = self.K.shape[0]
    F = len(FACETS)
    shapes = {"K": (n, F), "C": (n, F), "Pi": (n, F, 3), "N": (n, F), "A": (n, F)}
    for name, want in shapes.items():
      arr = getattr(self, name)
      if arr.shape[:len(want)] != want:
        raise ValueError(f"bank array {name} has shape {arr.shape}, expected {want}...")
      if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"bank array {name} has a non-finite value at item {bad[0]}")
    for name, arr in self.arrays().items():
      if np.any(arr[0] != 0):
        raise ValueError(f"bank array {name}: row 0 (padding) must be all zeros")


def snorm(v: np.ndarray, a: np.ndarray) -> np.ndarray:
  """Safe normalisation `a · v / max(‖v‖₂, ε)` over the last axis (ASER_SPEC §2)."""
  norm = np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), EPS)
  return a[..., None] * v / norm


def _softmax(z: np.ndarray) -> np.ndarray:
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def aggregate_bank(item_X: np.ndarray, num_items: int, P_XxF: np.ndarray, k_XxFxD: np.ndarray,
                   c_XxF: np.ndarray, pi_XxFx3: np.ndarray, theta: float = 0.5) -> Bank:
  """Aggregates per-text outputs (one row per text, `item_X` its 1-based item id) into a Bank."""
  item_X = np.asarray(item_X, np.int64)
  if item_X.size and (item_X.min() < 1 or item_X.max() > num_items):
    raise ValueError(f"text item ids must be in 1..{num_items}")
  F = P_XxF.shape[1]
  D = k_XxFxD.shape[2]
  P = np.asarray(P_XxF, np.float64)
  omega = P * (P >= theta)
  c = np.asarray(c_XxF, np.float64)
  sum_w = np.zeros((num_items + 1, F))
  sum_wk = np.zeros((num_items + 1, F, D))
  sum_wc = np.zeros((num_items + 1, F))
  sum_wcpi = np.zeros((num_items + 1, F, 3))
  count = np.zeros((num_items + 1, F))
  np.add.at(sum_w, item_X, omega)
  np.add.at(sum_wk, item_X, omega[..., None] * np.asarray(k_XxFxD, np.float64))
  np.add.at(sum_wc, item_X, omega * c)
  np.add.at(sum_wcpi, item_X, (omega * c)[..., None] * np.asarray(pi_XxFx3, np.float64))
  np.add.at(count, item_X, (omega > 0).astype(np.float64))
  A = (sum_w > EPS).astype(np.float64)
  K = snorm(sum_wk, A)
  C = A * sum_wc / (sum_w + EPS)
  Pi = np.where(A[..., None] > 0, _softmax(sum_wcpi / (sum_wc[..., None] + EPS)), 1.0 / 3.0)
  return finalize(K, C, Pi, A * count, A)


def facet_spread(bank: Bank) -> dict[str, float | None]:
  """Per facet, the mean cosine between the K vectors of two different active items (None with
  fewer than two). Near 1, the facet's embeddings are one shared direction: fused into a
  recommender they only say *that* an item has the facet, not how items differ in it."""
  out = {}
  for f, name in enumerate(FACETS):
    k = bank.K[1:, f][bank.A[1:, f] > 0].astype(np.float64)
    n = len(k)
    if n < 2:
      out[name] = None
      continue
    m = (k / np.maximum(np.linalg.norm(k, axis=-1, keepdims=True), EPS)).sum(0)
    out[name] = float((m @ m - n) / (n * (n - 1)))  # Σ_{i≠j} cos(k_i, k_j) / (n(n-1)), in O(n d)
  return out


def finalize(K, C, Pi, N, A) -> Bank:
  """Zeroes the padding row, casts to float32 and validates (no NaN may reach the bank)."""
  arrays = []
  for arr in (K, C, Pi, N, A):
    arr = np.array(arr, np.float32)
    arr[0] = 0.0
    arrays.append(arr)
  bank = Bank(*arrays)
  bank.validate()
  return bank
