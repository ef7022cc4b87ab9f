"""GRU4Rec: embedding -> dropout -> one GRU layer -> dense (BACKBONES.md "GRU4Rec"; GRASP's backbone).

The GRU skips left padding (its state stays at zero until the first real item), so the state
after the last position is the state at the last real item. Gates follow the usual GRU
equations: `r, z = σ(x W_{r,z} + h U_{r,z} + b)`, `n = tanh(x W_n + b_n + r ⊙ (h U_n + c_n))`,
`h' = (1 − z) ⊙ n + z ⊙ h`. Scores are tied to the item embedding. Loss: BCE with one sampled
negative (GRASP) or softmax cross-entropy. With `grasp_dim > 0` the items are GRASP's
user-conditioned embeddings (`models.grasp`) at the input and in the scores.
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
class GRU4RecConfig(layers.BackboneConfig):
  loss: str = "bce"  # "bce" (one sampled negative) or "ce" (softmax over all items)


def gru_scan(xw_BxLx3D, real_BxL, u_Dx3D, c_3D) -> jax.Array:
  """Runs the recurrence over pre-projected inputs; returns the final state [B, D]."""
  B, _, D3 = xw_BxLx3D.shape
  D = D3 // 3

  def cell(h, inp):
    xw, real = inp
    hu = h @ u_Dx3D + c_3D
    r = jax.nn.sigmoid(xw[:, :D] + hu[:, :D])
    z = jax.nn.sigmoid(xw[:, D:2 * D] + hu[:, D:2 * D])
    n = jnp.tanh(xw[:, 2 * D:] + r * hu[:, 2 * D:])
    h_new = (1.0 - z) * n + z * h
    return jnp.where(real[:, None], h_new, h), None

  h0 = jnp.zeros((B, D), xw_BxLx3D.dtype)
  h, _ = jax.lax.scan(cell, h0, (jnp.swapaxes(xw_BxLx3D, 0, 1), jnp.swapaxes(real_BxL, 0, 1)))
  return h


@register("gru4rec", GRU4RecConfig)
class GRU4Rec(nn.Module):
  cfg: GRU4RecConfig
  num_items: int
  grasp_channel = True  # takes the GRASP channel (registry.build refuses it elsewhere)

  def setup(self):
    cfg = self.cfg
    D = cfg.hidden
    self.items = (GraspItems(cfg, self.num_items, name="grasp") if cfg.grasp_dim
                  else ItemTable(cfg, self.num_items, name="items"))
    self.emb_drop = layers.Dropout(cfg.dropout)
    self.w_in = nn.Dense(3 * D, kernel_init=nn.initializers.xavier_uniform(), name="gru_in")
    self.u_rec = self.param("gru_rec", nn.initializers.orthogonal(column_axis=-1), (D, 3 * D))
    self.c_rec = self.param("gru_rec_bias", nn.initializers.zeros, (3 * D,))
    self.out = layers.dense(D, cfg, "out")

  @property
  def uses_users(self) -> bool:
    """Read by the loop and evaluator: GRASP's items depend on the user (batches carry "user")."""
    return bool(self.cfg.grasp_dim)

  def item_table(self) -> jax.Array:
    return self.items.table()

  def encode(self, input_ids_BxL, train: bool = False, table=None, user_B=None) -> jax.Array:
    if self.uses_users:
      x = self.items.embed(input_ids_BxL, user_B)
    else:
      x = (self.item_table() if table is None else table)[input_ids_BxL]
    x = self.emb_drop(x, deterministic=not train)
    h = self.out(gru_scan(self.w_in(x), input_ids_BxL > 0, self.u_rec, self.c_rec))
    return h if self.uses_users else self.items.user_state(h, input_ids_BxL)

  def score(self, input_ids_BxL, user_B=None) -> jax.Array:
    if self.uses_users:
      return self.items.scores(self.encode(input_ids_BxL, False, user_B=user_B), user_B)
    table = self.item_table()
    return self.encode(input_ids_BxL, False, table) @ table.T

  def loss(self, batch, train: bool = True) -> jax.Array:
    if self.uses_users:
      return self._grasp_loss(batch, train)
    table = self.item_table()
    u = self.encode(batch["input_ids"], train, table)
    if self.cfg.loss == "ce":
      return layers.ce_loss(u, table, batch["target"])
    return layers.bce_loss(u, table, batch["target"], self._negatives(batch))

  def _negatives(self, batch):
    neg = batch.get("negative")
    if neg is None:
      neg = layers.sample_negatives(self.make_rng("sample"), batch["input_ids"], batch["target"], self.num_items)
    return neg

  def _grasp_loss(self, batch, train: bool) -> jax.Array:
    user = batch["user"]
    u = self.encode(batch["input_ids"], train, user_B=user)
    if self.cfg.loss == "ce":
      return self.items.ce(u[:, None], user, batch["target"][:, None])[:, 0]
    logits = self.items.logits(u, jnp.stack([batch["target"], self._negatives(batch)], 1), user)
    return layers.bce_from_logits(logits[:, 0], logits[:, 1])
