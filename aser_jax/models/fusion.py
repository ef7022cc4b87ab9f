"""Fusing the frozen item facet bank into a recommender's item table (ASER_SPEC §5).

  s[i,f] = Wp K[i,f] + bp + o_f                     shared projection, per-facet offset
  q[i,f] = A[i,f] · C[i,f] · log(1 + N[i,f])        quality
  β[i,f] = q[i,f] / (Σ_f' q[i,f'] + ε)
  s_i    = Σ_f β[i,f] s[i,f]                         zero when no facet is active
  x_i    = (1 − α) e_i + α s_i,   α = σ(a),  a₀ = logit(ρ0)

`blend="residual"` (an extension, not in the spec) uses `x_i = e_i + α s_i` instead: items with
no active facet keep exactly their ID embedding, so a sparse bank leaves the rest of the table
as in Base (the convex blend scales every row by 1 − α while α moves).

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
from aser_jax.models.layers import BLENDS

BANK = "bank"  # variable collection holding the frozen constants
# Backbone settings that act only through the fusion: a Base model ignores them.
FUSION_SETTINGS = ("fusion", "rho0", "blend")


def bank_constants(bank: Bank) -> dict[str, np.ndarray]:
  """The bank-only terms of the fusion: `beta` [I+1, F] and `k_bar` [I+1, d_b]."""
  q = bank.A * bank.C * np.log1p(bank.N)
  beta = q / (q.sum(-1, keepdims=True) + EPS)
  k_bar = np.einsum("nf,nfd->nd", beta, bank.K)
  return {"beta": beta.astype(np.float32), "k_bar": k_bar.astype(np.float32)}


def bank_variables(model, sample_ids, bank: Bank) -> dict:
  """The `{"bank": ...}` variables for `model`: its bank slots (found by tracing `init`, at no
  compute cost) filled with `bank_constants(bank)`, whatever module path the fusion lives at."""
  consts = bank_constants(bank)
  shapes = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, sample_ids, method=model.score))
  if BANK not in shapes:
    raise ValueError("this model has no sensory fusion (was it built with bank_dim > 0?)")

  def fill(path, leaf):
    value = consts[path[-1].key]
    if value.shape != leaf.shape:
      raise ValueError(f"bank constant {path[-1].key} has shape {value.shape}, the model expects {leaf.shape}")
    return value

  return {BANK: jax.tree_util.tree_map_with_path(fill, shapes[BANK])}


class SensoryFusion(nn.Module):
  """Maps item ids' bank constants to sensory vectors and blends them with ID embeddings."""

  hidden: int
  bank_dim: int
  num_items: int
  rho0: float = 0.1
  init_std: float = 0.02
  blend: str = "convex"  # "convex": ASER_SPEC §5; "residual": e + α s (extension)

  def setup(self):
    if self.blend not in BLENDS:
      raise ValueError(f"blend must be one of {BLENDS}, got {self.blend!r}")
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

  def mix(self, e, s) -> jax.Array:
    """The blend of a base vector `e` with a sensory one `s`: `(1 − α) e + α s`, or `e + α s`."""
    a = self.alpha()
    return (e if self.blend == "residual" else (1.0 - a) * e) + a * s

  def fuse(self, e, ids=None) -> jax.Array:
    """The fused rows for the ID embeddings `e` of `ids` (all items when None)."""
    return self.mix(e, self.sensory(ids))


class ItemTable(nn.Module):
  """A backbone's item table: ID embeddings, fused with the bank when `cfg.bank_dim > 0`.

  Early fusion returns the fused table, used at the input and (tied) at the output. Late
  fusion (ablation) keeps the ID table and blends `(1 − α) h_u + α W s_u` into the user
  state, with `s_u` the mean sensory vector of the history (`h_u + α W s_u` when residual).
  """

  cfg: object  # layers.BackboneConfig
  num_items: int

  def setup(self):
    cfg = self.cfg
    self.id_emb = nn.Embed(self.num_items + 1, cfg.hidden, embedding_init=nn.initializers.normal(cfg.init_std),
                           name="id_emb")
    self.fusion = (SensoryFusion(cfg.hidden, cfg.bank_dim, self.num_items, cfg.rho0, cfg.init_std, cfg.blend,
                                 name="fusion")
                   if cfg.bank_dim else None)
    if self.fusion is not None and cfg.fusion == "late":
      self.late_proj = nn.Dense(cfg.hidden, use_bias=False, kernel_init=nn.initializers.normal(cfg.init_std),
                                name="late_proj")

  def table(self) -> jax.Array:
    """[I+1, D] table for the input lookup and the output scores."""
    e = self.id_emb.embedding
    if self.fusion is None or self.cfg.fusion == "late":
      return e
    return self.fusion.fuse(e)

  def user_state(self, h_BxD, input_ids_BxL) -> jax.Array:
    """Applies late fusion to the user state; identity otherwise."""
    if self.fusion is None or self.cfg.fusion == "early":
      return h_BxD
    real = (input_ids_BxL > 0).astype(h_BxD.dtype)
    s = self.fusion.sensory(input_ids_BxL)
    s_u = (s * real[..., None]).sum(1) / jnp.maximum(real.sum(1, keepdims=True), 1.0)
    return self.fusion.mix(h_BxD, self.late_proj(s_u))


def fusion_diagnostics(params, bank: Bank, early: bool = True, blend: str = "convex") -> dict:
  """What a trained fusion takes from the bank, over the items with an active facet:

  - `alpha`: the blend σ(a);
  - `sensory_to_id_norm`: median of ‖α s_i‖ / ‖(1 − α) e_i‖ (‖e_i‖ when residual), the sensory
    term's weight in the fused table row (early fusion only; None for late fusion, which blends the user state);
  - `shared_energy`: ‖mean_i s_i‖² / mean_i ‖s_i‖², the share of the sensory vectors that is one
    vector common to all active items. Near 1, Sens adds an "has a facet" bias and little that
    tells items apart (see `bank.aggregate.facet_spread` for the bank's side of this).
  """
  table = params["items"]
  fusion, e = table["fusion"], np.asarray(table["id_emb"]["embedding"], np.float64)
  consts = bank_constants(bank)
  bank_dim, hidden = np.shape(fusion["proj_kernel"])
  module = SensoryFusion(hidden, bank_dim, bank.num_items)
  variables = {"params": fusion, BANK: consts}
  s = np.asarray(module.apply(variables, method=SensoryFusion.sensory), np.float64)
  alpha = float(module.apply(variables, method=SensoryFusion.alpha))
  active = consts["beta"].sum(-1) > 0
  active[0] = False
  out = {"alpha": alpha, "active_items": int(active.sum()), "sensory_to_id_norm": None, "shared_energy": None}
  if not active.any():
    return out
  s_act = s[active]
  if early:
    id_scale = 1.0 if blend == "residual" else 1 - alpha
    ratio = alpha * np.linalg.norm(s_act, axis=-1) / np.maximum(id_scale * np.linalg.norm(e[active], axis=-1), EPS)
    out["sensory_to_id_norm"] = float(np.median(ratio))
  mean = s_act.mean(0)
  out["shared_energy"] = float(mean @ mean / max(float((s_act ** 2).sum(-1).mean()), EPS))
  return out
