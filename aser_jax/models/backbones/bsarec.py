"""BSARec: SASRec whose attention layers mix in a frequency filter (BACKBONES.md "BSARec").

Per block: `h = α · Freq(x) + (1 − α) · MHA(x)` (each with its own residual and LayerNorm),
then the FFN. Embedding `Dropout(LN(E_item[ids] + E_pos))`, causal and padding mask, user
state at the last position, tied scores (the item table may be fused with the sensory
bank, ASER_SPEC §5), softmax cross-entropy over all items at the last
position. Reference Beauty settings: lr 5e-4, α 0.7, c 5, 1 head.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from aser_jax.models import layers
from aser_jax.models.backbones.frequency import FrequencyFilter
from aser_jax.models.fusion import ItemTable
from aser_jax.models.registry import register


@dataclasses.dataclass(frozen=True)
class BSARecConfig(layers.BackboneConfig):
  alpha: float = 0.9  # weight of the frequency (inductive-bias) path
  c: int = 3  # low-pass keeps rfft bins [0, c//2 + 1)
  filter_impl: str = "matrix"  # "matrix" (L×L operator) or "fft"; equal up to rounding


class BSARecBlock(nn.Module):
  cfg: BSARecConfig

  @nn.compact
  def __call__(self, x_BxLxD, bias, train: bool, last_only: bool = False):
    cfg = self.cfg
    dsp = FrequencyFilter(cfg, cfg.c, True, cfg.filter_impl, name="filter")(x_BxLxD, train, last_only)
    gsp = layers.SelfAttention(cfg, name="attn")(x_BxLxD, bias, train, last_only)
    h = cfg.alpha * dsp + (1.0 - cfg.alpha) * gsp
    return layers.FeedForward(cfg, name="ffn")(h, train)


@register("bsarec", BSARecConfig)
class BSARec(nn.Module):
  cfg: BSARecConfig
  num_items: int

  def setup(self):
    self.items = ItemTable(self.cfg, self.num_items, name="items")
    self.pos_emb = layers.embed(self.cfg.max_len, self.cfg, "pos_emb")
    self.emb_ln = layers.layer_norm(self.cfg, "emb_ln")
    self.emb_drop = layers.Dropout(self.cfg.dropout)
    self.blocks = [BSARecBlock(self.cfg, name=f"block_{i}") for i in range(self.cfg.layers)]

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
    return layers.ce_loss(self.encode(batch["input_ids"], train, table), table, batch["target"])
