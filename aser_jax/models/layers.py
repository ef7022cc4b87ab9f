"""Blocks shared by the Transformer backbones, initialised as the reference code does.

BACKBONES.md "Data protocol": dense and embedding weights N(0, 0.02), biases 0, LayerNorm
eps 1e-12, exact (erf) GELU, additive mask value −10000.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

MASK_VALUE = -10000.0
FUSIONS = ("early", "late")
BLENDS = ("convex", "residual")


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
  """Settings every backbone shares; backbone files subclass it with their own fields."""

  hidden: int = 64
  layers: int = 2
  heads: int = 2
  dropout: float = 0.5  # hidden dropout
  attn_dropout: float = 0.5
  max_len: int = 50
  init_std: float = 0.02
  ln_eps: float = 1e-12
  bank_dim: int = 0  # width of the sensory bank's embeddings; 0 = no bank (Base)
  fusion: str = "early"  # "early": fused item table (ASER_SPEC §5); "late": blend into the user state
  rho0: float = 0.1  # initial sensory blend α
  blend: str = "convex"  # "convex": (1 − α) e + α s (ASER_SPEC §5); "residual": e + α s (extension)
  grasp_dim: int = 0  # width of the GRASP channel's text tables; 0 = no GRASP (models.grasp)
  grasp_users: int = 0  # rows of its user tables (the data's users)
  grasp_ids: bool = False  # GRASP: add each item's ID embedding to i_all (an extension; the spec has none)

  def __post_init__(self):
    """Refuses values no backbone can use, Base runs included: a mistyped fusion setting would
    otherwise pass unnoticed in the Base run of a pair and fail only in its Sens run."""
    if self.fusion not in FUSIONS:
      raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
    if self.blend not in BLENDS:
      raise ValueError(f"blend must be one of {BLENDS}, got {self.blend!r}")
    if not 0.0 < self.rho0 < 1.0:  # α = σ(a) starts at ρ0: a logit exists only inside (0, 1)
      raise ValueError(f"rho0 must lie strictly between 0 and 1, got {self.rho0!r}")
    if self.grasp_dim and (self.grasp_users <= 0 or self.bank_dim):
      raise ValueError("the GRASP channel needs grasp_users > 0 and no sensory bank (they are separate channels)")
    for name in ("dropout", "attn_dropout"):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)!r}")


def dense(features: int, cfg: BackboneConfig, name: str | None = None) -> nn.Dense:
  return nn.Dense(features, kernel_init=nn.initializers.normal(cfg.init_std),
                  bias_init=nn.initializers.zeros, name=name)


def layer_norm(cfg: BackboneConfig, name: str | None = None) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=cfg.ln_eps, name=name)


def embed(num: int, cfg: BackboneConfig, name: str | None = None) -> nn.Embed:
  return nn.Embed(num, cfg.hidden, embedding_init=nn.initializers.normal(cfg.init_std), name=name)


def attention_bias(input_ids_BxL: jax.Array, causal: bool) -> jax.Array:
  """Additive mask [B, 1, L, L]: keys that are padding (and future keys when causal) get −10000."""
  keep_BxL = input_ids_BxL > 0
  keep = keep_BxL[:, None, None, :]
  if causal:
    L = input_ids_BxL.shape[1]
    keep = keep & jnp.tril(jnp.ones((L, L), bool))[None, None]
  return jnp.where(keep, 0.0, MASK_VALUE)


def hash_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """uint32 pseudo-random bits: a murmur3 finaliser over (element index, one threefry seed).

  About 30x cheaper than threefry per element on CPU, and plenty for dropout masks. The
  value of an element depends on its global index only, so it does not change with sharding.
  """
  seed = jax.random.bits(key, (), jnp.uint32)
  h = jax.lax.iota(jnp.uint32, math.prod(shape)) * jnp.uint32(0x9E3779B1) + seed
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  h = h ^ (h >> 16)
  return h.reshape(shape)


class Dropout(nn.Module):
  """Inverted dropout (rng stream "dropout") with masks from `hash_bits`.

  Same semantics as `nn.Dropout`; drawing threefry masks was a large share of a CPU step.
  """

  rate: float

  @nn.compact
  def __call__(self, x, deterministic: bool):
    if deterministic or self.rate == 0.0:
      return x
    threshold = jnp.uint32(min(round(self.rate * 2.0**32), 2**32 - 1))
    keep = hash_bits(self.make_rng("dropout"), x.shape) >= threshold
    return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))


class SelfAttention(nn.Module):
  """Multi-head self-attention with its residual and post-LayerNorm: `LN(Dropout(W_o ctx) + x)`.

  With `last_only`, only the final position is used as a query (keys and values still cover
  the whole sequence), which is all a model scored at the last position needs. With
  `select = (rows_P, pos_P)`, only those P (row, position) pairs are queries and the output is
  [P, 1, D]: what a model scored at a few scattered positions (BERT4Rec's masks) needs.
  """

  cfg: BackboneConfig

  @nn.compact
  def __call__(self, x_BxLxD, bias_Bx1xLxL, train: bool, last_only: bool = False, select=None):
    cfg = self.cfg
    B, L, D = x_BxLxD.shape
    H = cfg.heads
    dh = D // H
    keys = lambda t: t
    if select is not None:
      rows, pos = select
      xq = x_BxLxD[rows, pos][:, None]
      bias = bias_Bx1xLxL[rows]
      if bias.shape[2] > 1:
        bias = bias[jnp.arange(rows.shape[0]), :, pos][:, :, None]
      keys = lambda t: t[rows]
    else:
      xq = x_BxLxD[:, -1:] if last_only else x_BxLxD
      bias = bias_Bx1xLxL[:, :, -1:] if last_only else bias_Bx1xLxL
    Bq, Lq = xq.shape[:2]

    q = dense(D, cfg, "query")(xq).reshape(Bq, Lq, H, dh)
    k = keys(dense(D, cfg, "key")(x_BxLxD).reshape(B, L, H, dh))
    v = keys(dense(D, cfg, "value")(x_BxLxD).reshape(B, L, H, dh))
    logits_BxHxQxL = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(dh).astype(x_BxLxD.dtype)
    probs = jax.nn.softmax(logits_BxHxQxL + bias, axis=-1)
    probs = Dropout(cfg.attn_dropout)(probs, deterministic=not train)
    ctx = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(Bq, Lq, D)
    out = Dropout(cfg.dropout)(dense(D, cfg, "out")(ctx), deterministic=not train)
    return layer_norm(cfg, "ln")(out + xq)


class FeedForward(nn.Module):
  """`LN(Dropout(W2 GELU(W1 x)) + x)` with a 4x inner width."""

  cfg: BackboneConfig

  @nn.compact
  def __call__(self, x_BxLxD, train: bool):
    cfg = self.cfg
    h = jax.nn.gelu(dense(4 * cfg.hidden, cfg, "inner")(x_BxLxD), approximate=False)
    h = Dropout(cfg.dropout)(dense(cfg.hidden, cfg, "outer")(h), deterministic=not train)
    return layer_norm(cfg, "ln")(h + x_BxLxD)


class TransformerBlock(nn.Module):
  cfg: BackboneConfig

  @nn.compact
  def __call__(self, x_BxLxD, bias, train: bool, last_only: bool = False, select=None):
    x = SelfAttention(self.cfg, name="attn")(x_BxLxD, bias, train, last_only, select)
    return FeedForward(self.cfg, name="ffn")(x, train)


def _first_unseen(cand_BxSxT: jax.Array, avoid_BxM: jax.Array) -> jax.Array:
  """Per (row, slot), the first of T candidates not in the row's `avoid` ids (the first candidate
  if none is valid, which is vanishingly rare for real catalogues): [B, S]."""
  seen = (cand_BxSxT[..., None] == avoid_BxM[:, None, None, :]).any(-1)
  first = jnp.argmax(~seen, axis=-1)
  return jnp.take_along_axis(cand_BxSxT, first[..., None], axis=-1)[..., 0]


def sample_negatives(rng: jax.Array, input_ids_BxL: jax.Array, target_B: jax.Array, num_items: int,
                     tries: int = 8) -> jax.Array:
  """One uniform negative per row from 1..num_items, avoiding the row's input and target."""
  cand_BxT = jax.random.randint(rng, (target_B.shape[0], tries), 1, num_items + 1)
  avoid = jnp.concatenate([input_ids_BxL, target_B[:, None]], axis=1)
  return _first_unseen(cand_BxT[:, None], avoid)[:, 0]


def sample_position_negatives(rng: jax.Array, seq_BxM: jax.Array, positions: int, num_items: int,
                              tries: int = 8) -> jax.Array:
  """One uniform negative per (row, position) from 1..num_items avoiding every item of the row: [B, positions]."""
  cand = jax.random.randint(rng, (seq_BxM.shape[0], positions, tries), 1, num_items + 1)
  return _first_unseen(cand, seq_BxM)


def bce_loss(u_BxD, table_NxD, target_B, negative_B) -> jax.Array:
  """BCE with one positive and one sampled negative per user state (SASRec's loss); the leading
  shape of `u` ([B] or [B, L]) is that of the targets and negatives and of the result."""
  return bce_from_logits(jnp.sum(u_BxD * table_NxD[target_B], -1), jnp.sum(u_BxD * table_NxD[negative_B], -1))


def bce_from_logits(pos, neg) -> jax.Array:
  """BCE of a positive and a negative logit of the same shape."""
  return -(jax.nn.log_sigmoid(pos) + jax.nn.log_sigmoid(-neg))


def ce_loss(u_BxD, table_NxD, target_B) -> jax.Array:
  """Per-row softmax cross-entropy over all items; the padding row 0 is never a class."""
  return ce_from_logits(u_BxD @ table_NxD.T, target_B)


def ce_from_logits(logits_BxN, target_B) -> jax.Array:
  """Per-row softmax cross-entropy of all-item logits; column 0 (padding) is never a class."""
  logits_BxN = logits_BxN.at[:, 0].set(-jnp.inf)
  return -jnp.take_along_axis(jax.nn.log_softmax(logits_BxN, -1), target_B[:, None], -1)[:, 0]
