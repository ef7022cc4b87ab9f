"""BERT4Rec: bidirectional Transformer trained by masked-item prediction (BACKBONES.md "BERT4Rec").

Training (on whole training sequences, `sample_mode = "sequence"`): every real position is
masked with probability ρ; padding is never masked; a row with no draw gets its newest item
masked so every row trains. A masked position's whole input token is replaced by the learned
mask embedding (ASER_SPEC §5: later the token is ID + sensory, and none of it may leak).
Loss: softmax cross-entropy over all items at the masked positions, averaged per row. Only
`prediction_budget × B` positions per batch are scored (a fixed shape; Beauty averages under 2
masked positions per row); when a batch has more, the newest positions are kept.
`loss="mlm_bce"` scores the same positions by BCE against one uniformly sampled negative
(none of the row's items) in place of the softmax: the GRASP paper trains its backbones by BCE.
Evaluation: drop the oldest position, append a mask token and rank all items at it. Scores
are tied to the item table.

With `grasp_dim > 0` the items are GRASP's user-conditioned embeddings (`models.grasp`) at the
input and in the scores; a masked position still gets the mask embedding as its whole token.
"mlm_bce" then runs as above. "mlm" keeps the softmax over all items, which needs every item
built for the row's user, so each row scores its own newest `prediction_budget` masked positions
(the original BERT4Rec's per-row cap) in place of the batch-wide budget: `[B, budget, I+1]`
scores from one `[B, I+1, d]` activation (`GraspItems.ce`, a few rows at a time), where the
batch-wide positions would build one per position.

`loss="reference"` reproduces the BSARec repository's BERT4Rec, whose masked-item loss is
overwritten (BACKBONES.md calls it a defect; it is here to explain published rows, not to be
used): prefix samples; `int(ρ·L)` positions per row masked uniformly, padding included (a masked
padding slot becomes attendable); the state at one of them, uniformly drawn, is trained by
cross-entropy to predict the sample's next item.
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
class BERT4RecConfig(layers.BackboneConfig):
  mask_prob: float = 0.2  # ρ
  prediction_budget: int = 3  # masked positions scored: B × this a batch (a row, with GRASP's "mlm")
  repeats: int = 1  # copies of each training sequence per epoch, each masked afresh (the "dupe factor")
  loss: str = "mlm"  # "mlm" (the BERT4Rec paper), "mlm_bce" or "reference" (module docstring)

  def __post_init__(self):
    super().__post_init__()
    if self.loss not in ("mlm", "mlm_bce", "reference"):
      raise ValueError(f"BERT4Rec loss must be 'mlm', 'mlm_bce' or 'reference', got {self.loss!r}")


def mask_positions(rng: jax.Array, input_ids_BxL: jax.Array, prob: float) -> jax.Array:
  """[B, L] bool: real positions masked with probability `prob`, padding never; a row with no
  draw masks its last real position."""
  real = input_ids_BxL > 0
  masked = real & (jax.random.uniform(rng, input_ids_BxL.shape) < prob)
  L = input_ids_BxL.shape[1]
  last_real = (L - 1 - jnp.argmax(real[:, ::-1], axis=1))[:, None] == jnp.arange(L)[None]
  return jnp.where(masked.any(1, keepdims=True), masked, last_real & real)


def newest_masked_first(masked_BxL: jax.Array) -> jax.Array:
  """A score per position whose `top_k` yields the masked positions first, newest first."""
  return masked_BxL.astype(jnp.float32) + jnp.arange(masked_BxL.shape[-1]) * 1e-4


def reference_mask(rng: jax.Array, B: int, L: int, prob: float) -> tuple[jax.Array, jax.Array]:
  """The reference repository's masking: per row `int(prob·L)` of the L positions, drawn
  uniformly without replacement whether real or padding ([B, L] bool), and the position
  ([B]) whose state its loss reads: one of the masked ones, uniformly."""
  k = max(int(prob * L), 1)
  order_BxL = jnp.argsort(jax.random.uniform(rng, (B, L)), axis=1)
  rank_BxL = jnp.argsort(order_BxL, axis=1)
  return rank_BxL < k, order_BxL[:, 0]


@register("bert4rec", BERT4RecConfig)
class BERT4Rec(nn.Module):
  cfg: BERT4RecConfig
  num_items: int
  grasp_channel = True  # takes the GRASP channel (registry.build refuses it elsewhere)

  @property
  def sample_mode(self) -> str:
    """Read by the training loop: whole training sequences, or the reference's prefix samples."""
    return "prefix" if self.cfg.loss == "reference" else "sequence"

  def setup(self):
    cfg = self.cfg
    self.items = (GraspItems(cfg, self.num_items, name="grasp") if cfg.grasp_dim
                  else ItemTable(cfg, self.num_items, name="items"))
    self.mask_emb = self.param("mask_emb", nn.initializers.normal(cfg.init_std), (cfg.hidden,))
    self.pos_emb = layers.embed(cfg.max_len, cfg, "pos_emb")
    self.emb_ln = layers.layer_norm(cfg, "emb_ln")
    self.emb_drop = layers.Dropout(cfg.dropout)
    self.blocks = [layers.TransformerBlock(cfg, name=f"block_{i}") for i in range(cfg.layers)]

  @property
  def uses_users(self) -> bool:
    """Read by the loop and evaluator: GRASP's items depend on the user (batches carry "user")."""
    return bool(self.cfg.grasp_dim)

  def item_table(self) -> jax.Array:
    return self.items.table()

  def hidden(self, input_ids_BxL, masked_BxL, train: bool, last_only: bool = False, table=None,
             select=None, user_B=None) -> jax.Array:
    """Bidirectional block outputs; masked positions carry the mask embedding as their whole
    token (in place of the possibly sensory-fused item row, ASER_SPEC §5). With `last_only`
    ([B, 1, D]) or `select = (rows_P, pos_P)` ([P, 1, D]) the final block computes only those
    positions: the rest of a training step reads the scored masks alone."""
    L = input_ids_BxL.shape[1]
    if self.uses_users:
      items = self.items.embed(input_ids_BxL, user_B)
    else:
      items = (self.item_table() if table is None else table)[input_ids_BxL]
    tok = jnp.where(masked_BxL[..., None], self.mask_emb, items)
    x = self.emb_drop(self.emb_ln(tok + self.pos_emb(jnp.arange(L))[None]), deterministic=not train)
    bias = layers.attention_bias(jnp.where(masked_BxL, 1, input_ids_BxL), causal=False)
    for i, block in enumerate(self.blocks):
      final = i == len(self.blocks) - 1
      x = block(x, bias, train, last_only and final, select if final else None)
    return x

  def encode(self, input_ids_BxL, train: bool = False, table=None, user_B=None) -> jax.Array:
    """State at a mask token appended after the history (the oldest position is dropped)."""
    B = input_ids_BxL.shape[0]
    ids = jnp.concatenate([input_ids_BxL[:, 1:], jnp.zeros((B, 1), input_ids_BxL.dtype)], axis=1)
    masked = jnp.zeros(ids.shape, bool).at[:, -1].set(True)
    h = self.hidden(ids, masked, train, last_only=True, table=table, user_B=user_B)[:, -1]
    return h if self.uses_users else self.items.user_state(h, input_ids_BxL)

  def score(self, input_ids_BxL, user_B=None) -> jax.Array:
    if self.uses_users:
      return self.items.scores(self.encode(input_ids_BxL, False, user_B=user_B), user_B)
    table = self.item_table()
    return self.encode(input_ids_BxL, False, table) @ table.T

  def loss(self, batch, train: bool = True) -> jax.Array:
    if self.cfg.loss == "reference":
      return self._reference_loss(batch, train)
    ids = batch["input_ids"]
    B, L = ids.shape
    masked = mask_positions(self.make_rng("mask"), ids, self.cfg.mask_prob)
    if self.uses_users and self.cfg.loss == "mlm":
      return self._grasp_loss(batch, masked, train)
    table = None if self.uses_users else self.item_table()
    P = min(self.cfg.prediction_budget * B, B * L)
    # the batch's masked positions, the newest (largest position) first, up to the budget of P
    _, flat_P = jax.lax.top_k(newest_masked_first(masked).reshape(-1), P)
    row_P, pos_P = flat_P // L, flat_P % L
    on_P = masked.reshape(-1)[flat_P]
    target_P = jnp.where(on_P, ids.reshape(-1)[flat_P], 1)
    user = batch["user"] if self.uses_users else None
    h_PxD = self.hidden(ids, masked, train, table=table, select=(row_P, pos_P), user_B=user)[:, 0]
    if self.cfg.loss == "mlm":
      loss_P = layers.ce_loss(h_PxD, table, target_P)
    else:  # "mlm_bce": one uniform negative per position, none of the row's items
      neg_P = layers.sample_negatives(self.make_rng("sample"), ids[row_P], target_P, self.num_items)
      if self.uses_users:
        logits_Px2 = self.items.logits(h_PxD, jnp.stack([target_P, neg_P], 1), user[row_P])
        loss_P = layers.bce_from_logits(logits_Px2[:, 0], logits_Px2[:, 1])
      else:
        loss_P = layers.bce_loss(h_PxD, table, target_P, neg_P)
    loss_P = loss_P * on_P
    total_B = jax.ops.segment_sum(loss_P, row_P, num_segments=B)
    count_B = jax.ops.segment_sum(on_P.astype(loss_P.dtype), row_P, num_segments=B)
    return total_B / jnp.maximum(count_B, 1.0)

  def _grasp_loss(self, batch, masked_BxL, train: bool) -> jax.Array:
    """Masked-item CE with GRASP items: each row's newest `prediction_budget` masked positions,
    scored against every item as built for the row's user (module docstring)."""
    ids, user = batch["input_ids"], batch["user"]
    B, L = ids.shape
    K = min(self.cfg.prediction_budget, L)
    _, pos_BxK = jax.lax.top_k(newest_masked_first(masked_BxL), K)
    on_BxK = jnp.take_along_axis(masked_BxL, pos_BxK, 1)
    target_BxK = jnp.where(on_BxK, jnp.take_along_axis(ids, pos_BxK, 1), 1)
    select = (jnp.repeat(jnp.arange(B), K), pos_BxK.reshape(-1))
    h_BxKxD = self.hidden(ids, masked_BxL, train, select=select, user_B=user).reshape(B, K, -1)
    ce_BxK = self.items.ce(h_BxKxD, user, target_BxK)
    on = on_BxK.astype(ce_BxK.dtype)
    return jnp.sum(ce_BxK * on, 1) / jnp.maximum(on.sum(1), 1.0)

  def _reference_loss(self, batch, train: bool) -> jax.Array:
    ids = batch["input_ids"]
    B, L = ids.shape
    masked, read_B = reference_mask(self.make_rng("mask"), B, L, self.cfg.mask_prob)
    select = (jnp.arange(B), read_B)
    if self.uses_users:
      h_BxD = self.hidden(ids, masked, train, select=select, user_B=batch["user"])[:, 0]
      return self.items.ce(h_BxD[:, None], batch["user"], batch["target"][:, None])[:, 0]
    table = self.item_table()
    h_BxD = self.hidden(ids, masked, train, table=table, select=select)[:, 0]
    return layers.ce_loss(h_BxD, table, batch["target"])
