"""SASRec: causal self-attention over the item sequence (BACKBONES.md "SASRec").

`x = Dropout(LN(E_item[ids] + E_pos))`, post-LN Transformer blocks with a causal and padding
mask, user state = output at the last position, scores = `h · E_itemᵀ` (tied).
Loss: BCE with one sampled negative at the last position (reference), or full softmax CE.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from aser_jax.models import layers
from aser_jax.models.fusion import ItemTable
from aser_jax.models.registry import register


@dataclasses.dataclass(frozen=True)
class SASRecConfig(layers.BackboneConfig):
  loss: str = "bce"  # "bce" (one sampled negative) or "ce" (softmax over all items)


@register("sasrec", SASRecConfig)
class SASRec(nn.Module):
  cfg: SASRecConfig
  num_items: int

  def setup(self):
    self.items = ItemTable(self.cfg, self.num_items, name="items")
    self.pos_emb = layers.embed(self.cfg.max_len, self.cfg, "pos_emb")
    self.emb_ln = layers.layer_norm(self.cfg, "emb_ln")
    self.emb_drop = layers.Dropout(self.cfg.dropout)
    self.blocks = [layers.TransformerBlock(self.cfg, name=f"block_{i}") for i in range(self.cfg.layers)]

  def item_table(self) -> jax.Array:
    return self.items.table()

  def hidden(self, input_ids_BxL, train: bool, last_only: bool = False, table=None) -> jax.Array:
    """Block outputs [B, L, D]; with `last_only` the final block computes position L-1 only."""
    L = input_ids_BxL.shape[1]
    table = self.item_table() if table is None else table
    x = table[input_ids_BxL] + self.pos_emb(jnp.arange(L))[None]
    x = self.emb_drop(self.emb_ln(x), deterministic=not train)
    bias = layers.attention_bias(input_ids_BxL, causal=True)
    for i, block in enumerate(self.blocks):
      x = block(x, bias, train, last_only and i == len(self.blocks) - 1)
    return x

  def encode(self, input_ids_BxL, train: bool = False, table=None) -> jax.Array:
    h = self.hidden(input_ids_BxL, train, last_only=True, table=table)[:, -1]
    return self.items.user_state(h, input_ids_BxL)

  def score(self, input_ids_BxL) -> jax.Array:
    table = self.item_table()
    return self.encode(input_ids_BxL, False, table) @ table.T

  def loss(self, batch, train: bool = True) -> jax.Array:
    table = self.item_table()
    u = self.encode(batch["input_ids"], train, table)
    if self.cfg.loss == "ce":
      return layers.ce_loss(u, table, batch["target"])
    neg = batch.get("negative")
    if neg is None:
      neg = layers.sample_negatives(self.make_rng("sample"), batch["input_ids"], batch["target"], self.num_items)
    return layers.bce_loss(u, table, batch["target"], neg)
