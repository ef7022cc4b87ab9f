"""DIFF: dual side-information filtering and fusion (BACKBONES.md "DIFF").

Streams: ID `v = Dropout(LN(E_item[ids]))` (no position), attributes `A_k` (sum-pooled over
an item's attribute ids), positions `P`. Early fusion `F = Dropout(LN(Fuse(v, A_1..A_m, P)))`.
Per layer: `f, h, a_k = Filt(F), Filt(v), Filt(A_k)` (the BSARec filter, scalar β); ID-centric
attention fuses the score maps `Q_v(h)K_v(h)ᵀ`, `Q_p(P)K_p(P)ᵀ`, `Q_k(a_k)K_k(a_k)ᵀ`, takes values
from `h` only and adds its residual `h`; the early path is standard attention over `f`; one FFN
is shared by both. User state `α v_L + (1 − α) F_L` at the last position, tied scores; the
item table may be fused with the sensory bank (ASER "Sens", ASER_SPEC §5).
Loss: CE + λ · symmetric InfoNCE (τ) between item embeddings and summed attribute embeddings.
Fuse ∈ {sum, concat (dense over the stacked inputs), gate (softmax weights over the inputs)}.
Attribute tables train by default (the reference's stay at their random N(0, 1) init:
`freeze_attributes` reproduces that).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from aser_jax.models import layers
from aser_jax.models.backbones.frequency import FrequencyFilter
from aser_jax.models.backbones.side import SideInfo
from aser_jax.models.fusion import ItemTable
from aser_jax.models.registry import register


@dataclasses.dataclass(frozen=True)
class DIFFConfig(layers.BackboneConfig):
  side_fusion: str = "concat"  # "sum", "concat" or "gate", for the early and the intermediate fusion
  alpha: float = 0.3  # output weight of the ID stream
  lam: float = 100.0  # λ, weight of the alignment loss
  align_temp: float = 0.1  # τ of the alignment InfoNCE, ≥ 0.025 (see DIFF.alignment)
  align_window: int = 8  # newest positions per row that enter the alignment loss
  c: int = 5
  freeze_attributes: bool = False


class Fuse(nn.Module):
  """Fuses `S` inputs stacked on axis -2 (`[..., S, F]` -> `[..., F]`)."""

  cfg: DIFFConfig

  @nn.compact
  def __call__(self, stack_xSxF):
    mode = self.cfg.side_fusion
    if mode == "sum":
      return stack_xSxF.sum(-2)
    if mode == "concat":
      flat = stack_xSxF.reshape(*stack_xSxF.shape[:-2], -1)
      return layers.dense(stack_xSxF.shape[-1], self.cfg, "proj")(flat)
    if mode == "gate":
      w = jax.nn.softmax(layers.dense(1, self.cfg, "gate")(stack_xSxF), axis=-2)
      return (w * stack_xSxF).sum(-2)
    raise ValueError(f"unknown fusion {mode!r} (sum, concat, gate)")


class IDCentricAttention(nn.Module):
  """Attention whose score maps from ID, position and each attribute are fused; values from `h`."""

  cfg: DIFFConfig

  @nn.compact
  def __call__(self, h_BxLxD, p_LxD, attrs, bias, train: bool, last_only: bool = False):
    cfg = self.cfg
    B, L, D = h_BxLxD.shape
    H = cfg.heads
    dh = D // H
    last = (lambda x: x[..., -1:, :]) if last_only else (lambda x: x)

    def scores(x, name):
      q = layers.dense(D, cfg, f"{name}_q")(last(x)).reshape(*last(x).shape[:-1], H, dh)
      k = layers.dense(D, cfg, f"{name}_k")(x).reshape(*x.shape[:-1], H, dh)
      return jnp.einsum("...qhd,...khd->...hqk", q, k)

    Lq = 1 if last_only else L
    maps = [scores(h_BxLxD, "id"), jnp.broadcast_to(scores(p_LxD, "pos")[None], (B, H, Lq, L))]
    maps += [scores(a, f"attr{k}") for k, a in enumerate(attrs)]
    logits = Fuse(cfg, name="fuse")(jnp.stack(maps, -1)[..., None])[..., 0] / jnp.sqrt(dh)
    bias = bias[:, :, -1:] if last_only else bias
    probs = layers.Dropout(cfg.attn_dropout)(jax.nn.softmax(logits + bias, -1), deterministic=not train)
    v = layers.dense(D, cfg, "value")(h_BxLxD).reshape(B, L, H, dh)
    ctx = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(B, Lq, D)
    out = layers.Dropout(cfg.dropout)(layers.dense(D, cfg, "out")(ctx), deterministic=not train)
    return layers.layer_norm(cfg, "ln")(out + last(h_BxLxD))


class DIFFBlock(nn.Module):
  cfg: DIFFConfig

  @nn.compact
  def __call__(self, v, f, p, attrs, bias, train: bool, last_only: bool = False):
    """With `last_only` both streams are returned at position L-1 only (the filters still see
    the whole sequence: their outputs are the attention keys and values)."""
    cfg = self.cfg
    filt = lambda x, name: FrequencyFilter(cfg, cfg.c, per_channel=False, name=name)(x, train)
    h = filt(v, "filter_id")
    a = [filt(x, f"filter_attr{k}") for k, x in enumerate(attrs)]
    f = filt(f, "filter_fused")
    v_out = IDCentricAttention(cfg, name="id_attn")(h, p, a, bias, train, last_only)
    f_out = layers.SelfAttention(cfg, name="fused_attn")(f, bias, train, last_only)
    ffn = layers.FeedForward(cfg, name="ffn")
    return ffn(v_out, train), ffn(f_out, train)


@register("diff", DIFFConfig)
class DIFF(nn.Module):
  cfg: DIFFConfig
  num_items: int
  side: SideInfo | None = None
  needs_side = True  # read by run_recommender: DIFF is built with the dataset's side information

  def setup(self):
    cfg = self.cfg
    if self.side is None:
      raise ValueError("DIFF needs side information (an item2attributes file or an item table)")
    if cfg.lam and cfg.align_temp < 0.025:
      raise ValueError(f"DIFF align_temp={cfg.align_temp}: must be >= 0.025 (exp(-2/τ) must not underflow)")
    self.items = ItemTable(cfg, self.num_items, name="items")
    self.pos_emb = layers.embed(cfg.max_len, cfg, "pos_emb")
    attr_std = 1.0 if cfg.freeze_attributes else cfg.init_std
    self.attr_embs = [nn.Embed(v + 1, cfg.hidden, embedding_init=nn.initializers.normal(attr_std),
                               name=f"attr_emb_{n}") for n, v in zip(self.side.names, self.side.vocab)]
    self.id_ln = layers.layer_norm(cfg, "id_ln")
    self.fused_ln = layers.layer_norm(cfg, "fused_ln")
    self.drop = layers.Dropout(cfg.dropout)
    self.early = Fuse(cfg, name="early_fuse")
    self.blocks = [DIFFBlock(cfg, name=f"block_{i}") for i in range(cfg.layers)]

  def item_table(self) -> jax.Array:
    return self.items.table()

  def attributes(self, input_ids_BxL) -> list[jax.Array]:
    """Per field `[B, L, D]`: the sum of the item's attribute embeddings (0 for none)."""
    out = []
    for emb, ids in zip(self.attr_embs, self.side.ids):
      a_BxLxK = jnp.asarray(ids)[input_ids_BxL]
      table = emb.embedding
      table = jax.lax.stop_gradient(table) if self.cfg.freeze_attributes else table
      out.append(jnp.where((a_BxLxK > 0)[..., None], table[a_BxLxK], 0.0).sum(-2))
    return out

  def hidden(self, input_ids_BxL, train: bool, table=None, last_only: bool = False) -> tuple[jax.Array, jax.Array]:
    """Final ID stream and fused stream, each [B, L, D] ([B, 1, D] with `last_only`: the final
    block computes position L-1 only, all the loss and the ranking read)."""
    L = input_ids_BxL.shape[1]
    table = self.item_table() if table is None else table
    v = self.drop(self.id_ln(table[input_ids_BxL]), deterministic=not train)
    attrs = self.attributes(input_ids_BxL)
    p_LxD = self.pos_emb(jnp.arange(L))
    stack = jnp.stack([v, *attrs, jnp.broadcast_to(p_LxD, v.shape)], axis=-2)
    f = self.drop(self.fused_ln(self.early(stack)), deterministic=not train)
    bias = layers.attention_bias(input_ids_BxL, causal=True)
    for i, block in enumerate(self.blocks):
      v, f = block(v, f, p_LxD, attrs, bias, train, last_only and i == len(self.blocks) - 1)
    return v, f

  def encode(self, input_ids_BxL, train: bool = False, table=None) -> jax.Array:
    v, f = self.hidden(input_ids_BxL, train, table, last_only=True)
    h = self.cfg.alpha * v[:, -1] + (1.0 - self.cfg.alpha) * f[:, -1]
    return self.items.user_state(h, input_ids_BxL)

  def score(self, input_ids_BxL) -> jax.Array:
    table = self.item_table()
    return self.encode(input_ids_BxL, False, table) @ table.T

  def alignment(self, ids_N, valid_N, table=None) -> jax.Array:
    """Symmetric InfoNCE between item and summed-attribute embeddings of the positions `ids_N`;
    positives are positions whose items have equal attributes (valid positions only).

    Both directions share one `exp`: cosines are at most 1, so with `E = exp(z − 1/τ)` every
    log-sum-exp difference is `log Σ E·all − log Σ E·pos` over rows (item -> attributes) or
    columns (attributes -> item). That is a third of the exps of four separate log-sum-exps,
    the bulk of this loss's cost on CPU; E stays above exp(−2/τ), so τ must be ≥ 0.025.
    """
    e = (self.item_table() if table is None else table)[ids_N]
    s = sum(self.attributes(ids_N[None])).reshape(e.shape)
    norm = lambda x: x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-8)
    E_NxN = jnp.exp((norm(e) @ norm(s).T - 1.0) / self.cfg.align_temp)
    g = jnp.asarray(self.side.group)[ids_N]
    all_NxN = (valid_N[:, None] & valid_N[None, :]).astype(E_NxN.dtype)
    pos_NxN = all_NxN * (g[:, None] == g[None, :])
    tiny = jnp.finfo(E_NxN.dtype).tiny  # keeps the log finite on invalid rows (weighted 0 below)
    n = jnp.maximum(valid_N.sum(), 1)

    def nce(axis):
      gap = jnp.log((E_NxN * all_NxN).sum(axis) + tiny) - jnp.log((E_NxN * pos_NxN).sum(axis) + tiny)
      return jnp.sum(gap * valid_N) / n

    return 0.5 * (nce(1) + nce(0))

  def loss(self, batch, train: bool = True) -> jax.Array:
    ids = batch["input_ids"]
    table = self.item_table()
    ce = layers.ce_loss(self.encode(ids, train, table), table, batch["target"])
    if self.cfg.lam == 0.0:
      return ce
    window = ids[:, -self.cfg.align_window:]
    valid = (window > 0) & (batch["weight"][:, None] > 0)
    return ce + self.cfg.lam * self.alignment(window.reshape(-1), valid.reshape(-1), table)
