"""GRASP channel: holistic attention over frozen LLM-text tables (BACKBONES.md "GRASP channel").

Offline (`aser_jax.bank.grasp`), every user u and item j has a text embedding (`U_u`, `I_j`) and
the mean embedding of its k most similar others (`Ū_u`, `Ī_j`). Here, with the backbone's width d:

  q = W_u U_u,  q̄ = W_u Ū_u,  p = W_i I_j,  p̄ = W_i Ī_j        one projection per side
  A(x, v) = σ(x·v / √dim v) v                                  sigmoid, not softmax
  i_self = A(q, p),  i_sim = A(q̄, p̄),  i_glob = A([q ‖ q̄], [p ‖ p̄])
  i_all  = W2 gelu(W1 [i_self ‖ i_sim ‖ i_glob] + b1) + b2      the MLP

`i_all(u, j)` is the item j the backbone sees for user u: its input at every position and, tied,
its output embedding (score `o_u · i_all(u, j)`, the backbone's loss unchanged). It replaces the
ID embedding, as the spec builds it, so items are known only through their text; `grasp_ids=True`
(an extension) adds each item's ID embedding `e_j` to `i_all`, at the input and in the scores.

Full-catalogue scores never build the [B, I+1, d] tensor: W1's input is linear in the three
gates, so `W1` applied to each item's terms is computed once per call ([I+1, H] three times),
and `o·i_all = gelu(h)·(W2ᵀ o) + b2·o`; a chunk of B users costs [B, I+1, H] memory.
The tables reach the model only as the variable collection "grasp": never parameters, never in
the optimiser state or a params checkpoint.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aser_jax.models import layers

GRASP = "grasp"  # variable collection holding the frozen tables


def grasp_variables(model, sample_ids, tables) -> dict:
  """The `{"grasp": ...}` variables for `model`, filled from `tables` (`bank.grasp.GraspTables`)
  wherever the channel sits in the module tree; shapes are checked against the model's."""
  shapes = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, sample_ids, method=model.score))
  if GRASP not in shapes:
    raise ValueError("this model has no GRASP channel (was it built with grasp_dim > 0?)")

  def fill(path, leaf):
    value = np.asarray(getattr(tables, path[-1].key), np.float32)
    if value.shape != leaf.shape:
      raise ValueError(f"GRASP table {path[-1].key} has shape {value.shape}, the model expects {leaf.shape}")
    return value

  return {GRASP: jax.tree_util.tree_map_with_path(fill, shapes[GRASP])}


class GraspItems(nn.Module):
  """User-conditioned item embeddings `i_all(u, j)` for a backbone of width `cfg.hidden`."""

  cfg: object  # layers.BackboneConfig with grasp_dim, grasp_users > 0
  num_items: int

  def setup(self):
    cfg = self.cfg
    E, D = cfg.grasp_dim, cfg.hidden
    n_rows = {"U": cfg.grasp_users, "U_bar": cfg.grasp_users, "I": self.num_items + 1, "I_bar": self.num_items + 1}
    self.tables = {k: self.variable(GRASP, k, jnp.zeros, (n, E), jnp.float32) for k, n in n_rows.items()}
    init = nn.initializers.normal(cfg.init_std)
    self.user_proj = nn.Dense(D, use_bias=False, kernel_init=init, name="user_proj")
    self.item_proj = nn.Dense(D, use_bias=False, kernel_init=init, name="item_proj")
    self.w1 = self.param("mlp_in_kernel", nn.initializers.lecun_normal(), (4 * D, D))
    self.b1 = self.param("mlp_in_bias", nn.initializers.zeros, (D,))
    self.w2 = self.param("mlp_out_kernel", nn.initializers.lecun_normal(), (D, D))
    self.b2 = self.param("mlp_out_bias", nn.initializers.zeros, (D,))
    if cfg.grasp_ids:
      self.id_emb = nn.Embed(self.num_items + 1, D, embedding_init=init, name="id_emb")

  def table(self):
    raise ValueError("a GRASP model has no user-independent item table: its items depend on the user "
                     "(use score(input_ids, user_B) or items.scores)")

  def _queries(self, user_B, B: int):
    """The user side `q, q̄`; `user_B=None` (shape tracing at init only) stands for user 0."""
    if user_B is None:
      user_B = jnp.zeros((B,), jnp.int32)
    return (self.user_proj(self.tables["U"].value[user_B]), self.user_proj(self.tables["U_bar"].value[user_B]))

  def item_terms(self, ids=None):
    """Per item: p, p̄ and W1's three terms (self, similar, global); all items when `ids` is None.
    They depend on the params and tables only: a server computes them once (`scores(..., terms)`)."""
    I, I_bar = self.tables["I"].value, self.tables["I_bar"].value
    if ids is not None:
      I, I_bar = I[ids], I_bar[ids]
    p, pb = self.item_proj(I), self.item_proj(I_bar)
    D, k = p.shape[-1], self.w1
    return p, pb, p @ k[:D], pb @ k[D:2 * D], p @ k[2 * D:3 * D] + pb @ k[3 * D:]

  def _hidden(self, q, qb, terms):
    return _hidden(q, qb, terms, self.b1)

  def _out(self):
    """What turns the hidden layer into scores: W2, b2 and the ID table of `grasp_ids` (or None)."""
    return self.w2, self.b2, self.id_emb.embedding if self.cfg.grasp_ids else None

  def embed(self, ids_BxK, user_B) -> jax.Array:
    """`i_all(u_b, ids[b, k])`: [B, K, D], zero at padding (id 0)."""
    q, qb = self._queries(user_B, ids_BxK.shape[0])
    h = self._hidden(q[:, None], qb[:, None], self.item_terms(ids_BxK))
    e = h @ self.w2 + self.b2
    if self.cfg.grasp_ids:
      e = e + self.id_emb(ids_BxK)
    return e * (ids_BxK > 0)[..., None]

  def logits(self, o_BxKxD, ids_BxK, user_B) -> jax.Array:
    """`o[b, k] · i_all(u_b, ids[b, k])`: [B, K] (a [B, D] state is shared by the row's ids)."""
    e = self.embed(ids_BxK, user_B)
    if o_BxKxD.ndim == 2:
      o_BxKxD = o_BxKxD[:, None]
    return jnp.sum(o_BxKxD * e, -1)

  def scores(self, o, user_B, terms=None) -> jax.Array:
    """`o_b · i_all(u_b, j)` for every item j: [B, I+1] for states `o` [B, D], or [B, K, I+1] for
    K states per user [B, K, D], without a [B, I+1, D] tensor; `terms`: `item_terms()` computed
    beforehand."""
    o_BxKxD = o[:, None] if o.ndim == 2 else o
    q, qb = self._queries(user_B, o.shape[0])
    terms = self.item_terms() if terms is None else terms
    s = _factored_scores(q, qb, o_BxKxD, terms, self.b1, *self._out())
    return s[:, 0] if o.ndim == 2 else s

  def ce(self, o_BxKxD, user_B, target_BxK, budget_bytes: int = 64 << 20) -> jax.Array:
    """Softmax cross-entropy over every item of each state `o[b, k]` against `target[b, k]`:
    [B, K]. A few rows at a time (their `[rows, I+1, D]` activation within `budget_bytes`), each
    group recomputed in the backward pass, so a training step never holds the batch's
    `[B, I+1, D]` (a BERT4Rec step that did peaked at 19 GB on Beauty's batch of 256)."""
    B, K, D = o_BxKxD.shape
    q, qb = self._queries(user_B, B)
    terms, b1, out = self.item_terms(), self.b1, self._out()
    rows = int(max(1, min(B, budget_bytes // (4 * (self.num_items + 1) * D))))
    pad = -B % rows
    grouped = lambda x: jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)).reshape(-1, rows, *x.shape[1:])

    @jax.checkpoint
    def group(args):
      q_r, qb_r, o_r, t_r = args
      s = _factored_scores(q_r, qb_r, o_r, terms, b1, *out)
      return layers.ce_from_logits(s.reshape(rows * K, -1), t_r.reshape(-1)).reshape(rows, K)

    ce = jax.lax.map(group, tuple(grouped(x) for x in (q, qb, o_BxKxD, target_BxK)))
    return ce.reshape(-1, K)[:B]


def _hidden(q, qb, terms, b1):
  """gelu(W1 [...] + b1) for query rows `q, q̄` ([..., 1, D] or [..., K, D] against the terms)."""
  p, pb, t_self, t_sim, t_glob = terms
  D = p.shape[-1]
  s_self, s_sim = jnp.sum(q * p, -1), jnp.sum(qb * pb, -1)
  g_self = jax.nn.sigmoid(s_self / math.sqrt(D))
  g_sim = jax.nn.sigmoid(s_sim / math.sqrt(D))
  g_glob = jax.nn.sigmoid((s_self + s_sim) / math.sqrt(2 * D))
  return nn.gelu(g_self[..., None] * t_self + g_sim[..., None] * t_sim + g_glob[..., None] * t_glob + b1)


def _factored_scores(q_BxD, qb_BxD, o_BxKxD, terms, b1, w2, b2, id_table) -> jax.Array:
  """[B, K, I+1] scores of K states per user against the catalogue's terms (`GraspItems.scores`)."""
  h_BxNxH = _hidden(q_BxD[:, None], qb_BxD[:, None], jax.tree.map(lambda t: t[None], terms), b1)
  s = jnp.einsum("bnh,bkh->bkn", h_BxNxH, o_BxKxD @ w2.T) + (o_BxKxD @ b2)[..., None]
  return s if id_table is None else s + o_BxKxD @ id_table.T


def catalogue_terms(model) -> tuple:
  """`model.apply(variables, method=catalogue_terms)`: the GRASP backbone's item terms of the
  whole catalogue, which depend on params and tables only (build them once, then serve)."""
  return model.items.item_terms()


def served_scores(model, ids_BxL, user_B, terms) -> jax.Array:
  """`model.apply(variables, ids, users, terms, method=served_scores)`: every item's score for each
  user, from item terms built beforehand by `catalogue_terms`; equals `model.score(ids, users)`."""
  return model.items.scores(model.encode(ids_BxL, False, user_B=user_B), user_B, terms)
