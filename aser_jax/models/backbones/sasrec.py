"""SASRec: causal self-attention over the item sequence (BACKBONES.md "SASRec").

`x = Dropout(LN(E_item[ids] + E_pos))`, post-LN Transformer blocks with a causal and padding
mask, user state = output at the last position, scores = `h · E_itemᵀ` (tied).
Losses (`cfg.loss`):
- "bce": BCE with one sampled negative at the last position of each prefix-augmented sample
  (the BSARec repository's SASRec, BACKBONES.md);
- "bce_all": BCE with one sampled negative at every position of the user's whole training
  sequence, averaged over the batch's positions (the S3-Rec/CoSeRec lineage of SASRec, i.e.
  the original SASRec objective; ASER_SPEC §6: "learn to predict the next item at each step").
  Its batches are the newest L+1 training items per user: inputs the first L, targets the last L;
- "ce": full softmax cross-entropy at the last position.
With `grasp_dim > 0` the items are GRASP's user-conditioned embeddings (`models.grasp`) at the
input and in the scores, every loss unchanged.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from aser_jax.models import layers
from aser_jax.models.fusion import ItemTable
from aser_jax.models.grasp import GraspItems
from aser_jax.models.registry import register


@dataclasses.dataclass(frozen=True)
class SASRecConfig(layers.BackboneConfig):
  loss: str = "bce"  # "bce", "bce_all" or "ce" (module docstring)

  def __post_init__(self):
    super().__post_init__()
    if self.loss not in ("bce", "bce_all", "ce"):
      raise ValueError(f"SASRec loss must be 'bce', 'bce_all' or 'ce', got {self.loss!r}")
    if self.loss == "bce_all" and self.bank_dim and self.fusion == "late":
      raise ValueError("SASRec loss 'bce_all' supports early fusion only (late fusion blends one user state)")


@register("sasrec", SASRecConfig)
class SASRec(nn.Module):
  cfg: SASRecConfig
  num_items: int
  grasp_channel = True  # takes the GRASP channel (registry.build refuses it elsewhere)

  @property
  def sample_mode(self) -> str:
    """Read by the training loop: prefix samples, or whole sequences for every-position BCE."""
    return "next_items" if self.cfg.loss == "bce_all" else "prefix"

  def setup(self):
    self.items = (GraspItems(self.cfg, self.num_items, name="grasp") if self.cfg.grasp_dim
                  else ItemTable(self.cfg, self.num_items, name="items"))
    self.pos_emb = layers.embed(self.cfg.max_len, self.cfg, "pos_emb")
    self.emb_ln = layers.layer_norm(self.cfg, "emb_ln")
    self.emb_drop = layers.Dropout(self.cfg.dropout)
    self.blocks = [layers.TransformerBlock(self.cfg, name=f"block_{i}") for i in range(self.cfg.layers)]

  @property
  def uses_users(self) -> bool:
    """Read by the loop and evaluator: GRASP's items depend on the user (batches carry "user")."""
    return bool(self.cfg.grasp_dim)

  def item_table(self) -> jax.Array:
    return self.items.table()

  def hidden(self, input_ids_BxL, train: bool, last_only: bool = False, table=None, user_B=None) -> jax.Array:
    """Block outputs [B, L, D]; with `last_only` the final block computes position L-1 only."""
    L = input_ids_BxL.shape[1]
    if self.uses_users:
      x = self.items.embed(input_ids_BxL, user_B)
    else:
      x = (self.item_table() if table is None else table)[input_ids_BxL]
    x = self.emb_drop(self.emb_ln(x + self.pos_emb(jnp.arange(L))[None]), deterministic=not train)
    bias = layers.attention_bias(input_ids_BxL, causal=True)
    for i, block in enumerate(self.blocks):
      x = block(x, bias, train, last_only and i == len(self.blocks) - 1)
    return x

  def encode(self, input_ids_BxL, train: bool = False, table=None, user_B=None) -> jax.Array:
    h = self.hidden(input_ids_BxL, train, last_only=True, table=table, user_B=user_B)[:, -1]
    return h if self.uses_users else self.items.user_state(h, input_ids_BxL)

  def score(self, input_ids_BxL, user_B=None) -> jax.Array:
    if self.uses_users:
      return self.items.scores(self.encode(input_ids_BxL, False, user_B=user_B), user_B)
    table = self.item_table()
    return self.encode(input_ids_BxL, False, table) @ table.T

  def loss(self, batch, train: bool = True) -> jax.Array:
    if self.cfg.loss == "bce_all":
      return self._loss_all_positions(batch, train)
    user = batch["user"] if self.uses_users else None
    table = None if self.uses_users else self.item_table()
    u = self.encode(batch["input_ids"], train, table, user)
    if self.cfg.loss == "ce":
      if self.uses_users:
        return self.items.ce(u[:, None], user, batch["target"][:, None])[:, 0]
      return layers.ce_loss(u, table, batch["target"])
    neg = batch.get("negative")
    if neg is None:
      neg = layers.sample_negatives(self.make_rng("sample"), batch["input_ids"], batch["target"], self.num_items)
    if self.uses_users:
      logits = self.items.logits(u, jnp.stack([batch["target"], neg], 1), user)
      return layers.bce_from_logits(logits[:, 0], logits[:, 1])
    return layers.bce_loss(u, table, batch["target"], neg)

  def _loss_all_positions(self, batch, train: bool) -> jax.Array:
    """Every-position BCE; rows return `sum of their position losses × (Σ weight) / (weighted
    position count)`, so the loop's weighted row mean is the mean over the batch's positions."""
    seq_BxM = batch["input_ids"]
    ids_BxL, targets_BxL = seq_BxM[:, :-1], seq_BxM[:, 1:]
    B, L = ids_BxL.shape
    user = batch["user"] if self.uses_users else None
    table = None if self.uses_users else self.item_table()
    h_BxLxD = self.hidden(ids_BxL, train, table=table, user_B=user)
    neg_BxL = batch.get("negative")
    if neg_BxL is None:
      neg_BxL = layers.sample_position_negatives(self.make_rng("sample"), seq_BxM, L, self.num_items)
    on = (ids_BxL > 0).astype(h_BxLxD.dtype)
    if self.uses_users:
      bce = layers.bce_from_logits(self.items.logits(h_BxLxD, targets_BxL, user),
                                   self.items.logits(h_BxLxD, neg_BxL, user))
    else:
      bce = layers.bce_loss(h_BxLxD, table, targets_BxL, neg_BxL)
    per_row = jnp.sum(bce * on, -1)
    w_B = batch.get("weight", jnp.ones((B,), h_BxLxD.dtype))
    return per_row * jnp.sum(w_B) / jnp.maximum(jnp.sum(on.sum(-1) * w_B), 1.0)
