"""Fusing the frozen item facet bank into a recommender's item table (ASER_SPEC §5).

  s[i,f] = Wp K[i,f] + bp + o_f                     shared projection, per-facet offset
  q[i,f] = A[i,f] · C[i,f] · log(1 + N[i,f])        quality
  β[i,f] = q[i,f] / (Σ_f' q[i,f'] + ε)
  s_i    = Σ_f β[i,f] s[i,f]                         zero when no facet is active
  x_i    = (1 − α) e_i + α s_i,   α = σ(a),  a₀ = logit(ρ0)

Because Wp is shared, `s_i = Wp K̄_i + (Σ_f β) bp + β·o` with `K̄_i = Σ_f β[i,f] K[i,f]`; K̄ and β
depend on the bank alone, so `bank_constants` computes them once, and a step costs one
[I+1, d_b] x [d_b, D] product instead of five. The bank reaches the model only as the
non-trainable variable collection "bank": it is never a parameter, never in the optimiser
state, and never in a params checkpoint.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aser_jax.bank.aggregate import Bank
from aser_jax.bank.facets import EPS, FACETS

BANK = "bank"  # variable collection holding the frozen constants


def bank_constants(bank: Bank) -> dict[str, np.ndarray]:
  """The bank-only terms of the fusion: `beta` [I+1, F] and `k_bar` [I+1, d_b]."""
  q = bank.A * bank.C * np.log1p(bank.N)
  beta = q / (q.sum(-1, keepdims=True) + EPS)
  k_bar = np.einsum("nf,nfd->nd", beta, bank.K)
  return {"beta": beta.astype(np.float32), "k_bar": k_bar.astype(np.float32)}


class SensoryFusion(nn.Module):
  """Maps item ids' bank constants to sensory vectors and blends them with ID embeddings."""

  hidden: int
  bank_dim: int
  num_items: int
  rho0: float = 0.1
  init_std: float = 0.02

  def setup(self):
    n, F = self.num_items + 1, len(FACETS)
    self.beta = self.variable(BANK, "beta", lambda: jnp.zeros((n, F), jnp.float32))
    self.k_bar = self.variable(BANK, "k_bar", lambda: jnp.zeros((n, self.bank_dim), jnp.float32))
    self.proj_kernel = self.param("proj_kernel", nn.initializers.normal(self.init_std),
                                  (self.bank_dim, self.hidden))
    self.proj_bias = self.param("proj_bias", nn.initializers.zeros, (self.hidden,))
    self.offsets = self.param("facet_offsets", nn.initializers.normal(self.init_std), (F, self.hidden))
    logit = math.log(self.rho0 / (1.0 - self.rho0))
    self.blend_logit = self.param("blend_logit", nn.initializers.constant(logit), ())

  def alpha(self) -> jax.Array:
    return jax.nn.sigmoid(self.blend_logit)

  def sensory(self, ids=None) -> jax.Array:
    """Sensory vectors s_i for `ids` (any shape), or for every item when `ids` is None."""
    beta, k_bar = self.beta.value, self.k_bar.value
    if ids is not None:
      beta, k_bar = beta[ids], k_bar[ids]
    return k_bar @ self.proj_kernel + beta.sum(-1, keepdims=True) * self.proj_bias + beta @ self.offsets

  def fuse(self, e, ids=None) -> jax.Array:
    """`(1 − α) e + α s` for the ID embeddings `e` of `ids` (all items when None)."""
    a = self.alpha()
    return (1.0 - a) * e + a * self.sensory(ids)
