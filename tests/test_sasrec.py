"""SASRec and the shared blocks against a direct NumPy re-computation of their equations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from aser_jax.models import layers, registry


def _ln(x, p, eps=1e-12):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _dense(x, p):
  return x @ np.asarray(p["kernel"]) + np.asarray(p["bias"])


def _np_block(x, ids, p, heads, causal=True):
  """One post-LN block: LN(attn + x) then LN(FFN + x), additive mask -10000."""
  B, L, D = x.shape
  dh = D // heads
  a = p["attn"]
  q, k, v = (_dense(x, a[n]).reshape(B, L, heads, dh) for n in ("query", "key", "value"))
  logits = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(dh)
  keep = (ids > 0)[:, None, None, :]
  if causal:
    keep = keep & np.tril(np.ones((L, L), bool))[None, None]
  logits = logits + np.where(keep, 0.0, -10000.0)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  ctx = np.einsum("bhqk,bkhd->bqhd", probs, v).reshape(B, L, D)
  x = _ln(_dense(ctx, a["out"]) + x, a["ln"])
  f = p["ffn"]
  h = _dense(x, f["inner"])
  h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
  return _ln(_dense(h, f["outer"]) + x, f["ln"])


@pytest.fixture
def model_and_params():
  model, cfg = registry.build("sasrec", 30, hidden=16, heads=2, layers=2, max_len=6)
  ids = jnp.array([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7], [0, 0, 0, 0, 0, 9]])
  params = model.init({"params": jax.random.key(0)}, ids, method=model.score)["params"]
  params = jax.tree.map(lambda w: w + 0.05 * jax.random.normal(jax.random.key(1), w.shape), params)
  return model, cfg, ids, params


def test_sasrec_matches_numpy(model_and_params):
  model, cfg, ids, params = model_and_params
  p = jax.tree.map(np.asarray, params)
  ids_np = np.asarray(ids)
  x = p["items"]["id_emb"]["embedding"][ids_np] + p["pos_emb"]["embedding"][None, : ids.shape[1]]
  x = _ln(x, p["emb_ln"])
  for i in range(cfg.layers):
    x = _np_block(x, ids_np, p[f"block_{i}"], cfg.heads)
  ours = np.asarray(model.apply({"params": params}, ids, False, method=model.hidden))
  np.testing.assert_allclose(ours, x, atol=2e-5)
  scores = np.asarray(model.apply({"params": params}, ids, method=model.score))
  np.testing.assert_allclose(scores, x[:, -1] @ p["items"]["id_emb"]["embedding"].T, atol=2e-5)


def test_last_only_equals_full_computation(model_and_params):
  model, _, ids, params = model_and_params
  full = model.apply({"params": params}, ids, False, method=model.hidden)[:, -1]
  last = model.apply({"params": params}, ids, method=model.encode)
  np.testing.assert_allclose(np.asarray(last), np.asarray(full), atol=1e-6)


def test_causality_future_items_do_not_leak(model_and_params):
  model, _, ids, params = model_and_params
  h = model.apply({"params": params}, ids, False, method=model.hidden)
  changed = ids.at[:, -1].set(11)
  h2 = model.apply({"params": params}, changed, False, method=model.hidden)
  real = np.asarray(ids[:, :-1] > 0)  # padding queries attend to masked keys only: undefined, unused
  np.testing.assert_allclose(np.asarray(h[:, :-1])[real], np.asarray(h2[:, :-1])[real], atol=1e-6)
  assert not np.allclose(np.asarray(h[:, -1]), np.asarray(h2[:, -1]))


def test_bce_loss_matches_hand_formula(model_and_params):
  model, _, ids, params = model_and_params
  neg = jnp.array([1, 29, 12])
  batch = {"input_ids": ids, "target": jnp.array([7, 8, 10]), "weight": jnp.ones(3), "negative": neg}
  loss = model.apply({"params": params}, batch, False, method=model.loss)
  u = np.asarray(model.apply({"params": params}, ids, method=model.encode))
  E = np.asarray(params["items"]["id_emb"]["embedding"])
  pos_l, neg_l = (u * E[np.asarray(batch["target"])]).sum(-1), (u * E[np.asarray(neg)]).sum(-1)
  want = -np.log(1 / (1 + np.exp(-pos_l))) - np.log(1 - 1 / (1 + np.exp(-neg_l)))
  np.testing.assert_allclose(np.asarray(loss), want, rtol=1e-5)


def test_negatives_avoid_input_and_target():
  ids = jnp.tile(jnp.arange(1, 9)[None], (64, 1))  # items 1..8 in every input
  target = jnp.full((64,), 9)
  neg = np.asarray(layers.sample_negatives(jax.random.key(0), ids, target, 12, tries=16))
  assert set(neg.tolist()) <= {10, 11, 12}
  assert len(set(neg.tolist())) == 3


def test_ce_loss_never_predicts_padding():
  u = jnp.array([[1.0, 0.0]])
  table = jnp.array([[100.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  got = float(layers.ce_loss(u, table, jnp.array([1]))[0])
  want = -np.log(np.exp(1) / (np.exp(1) + np.exp(0)))
  assert got == pytest.approx(want, rel=1e-6)


def test_dropout_rate_and_scaling():
  x = jnp.ones((200, 500))
  y = layers.Dropout(0.3).apply({}, x, False, rngs={"dropout": jax.random.key(0)})
  kept = np.asarray(y) != 0
  assert abs(kept.mean() - 0.7) < 0.005
  np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.7, rtol=1e-6)
  y2 = layers.Dropout(0.3).apply({}, x, False, rngs={"dropout": jax.random.key(1)})
  assert (np.asarray(y2) != 0).mean() != kept.mean() or not np.array_equal(np.asarray(y2) != 0, kept)
  assert np.array_equal(np.asarray(layers.Dropout(0.3).apply({}, x, True)), np.asarray(x))


def test_every_position_bce_matches_hand_formula():
  model, cfg = registry.build("sasrec", 30, hidden=16, heads=2, layers=2, max_len=5, loss="bce_all")
  seq = jnp.array([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7], [0, 0, 0, 0, 8, 9], [0, 0, 0, 2, 4, 6]])
  params = model.init({"params": jax.random.key(0)}, seq[:, :-1], method=model.score)["params"]
  params = jax.tree.map(lambda w: w + 0.05 * jax.random.normal(jax.random.key(1), w.shape), params)
  neg = jnp.array([[1, 2, 9, 11, 12], [13, 14, 15, 16, 17], [3, 4, 5, 6, 18], [20, 21, 22, 23, 24]])
  weight = jnp.array([1.0, 1.0, 1.0, 0.0])  # the last row is batch padding
  batch = {"input_ids": seq, "weight": weight, "negative": neg}
  per_row = model.apply({"params": params}, batch, False, method=model.loss)
  got = float(jnp.sum(per_row * weight) / jnp.sum(weight))

  h = np.asarray(model.apply({"params": params}, seq[:, :-1], False, method=model.hidden))
  E = np.asarray(params["items"]["id_emb"]["embedding"])
  s, n = np.asarray(seq), np.asarray(neg)
  terms = []
  for b in range(3):
    for p in range(5):
      if s[b, p] > 0:  # position p reads item s[b, p] and predicts s[b, p + 1]
        pos_l, neg_l = h[b, p] @ E[s[b, p + 1]], h[b, p] @ E[n[b, p]]
        terms.append(np.log1p(np.exp(-pos_l)) + np.log1p(np.exp(neg_l)))
  assert len(terms) == 3 + 5 + 1
  assert got == pytest.approx(np.mean(terms), rel=1e-5)


def test_position_negatives_avoid_the_row():
  seq = jnp.tile(jnp.arange(0, 9)[None], (32, 1))  # items 1..8 (and padding) in every row
  neg = np.asarray(layers.sample_position_negatives(jax.random.key(0), seq, 7, 12, tries=16))
  assert neg.shape == (32, 7)
  assert set(neg.ravel().tolist()) == {9, 10, 11, 12}


def test_every_position_bce_trains_on_windows_one_longer():
  from aser_jax.data.sequences import SequenceData
  from aser_jax.train.loop import training_samples
  data = SequenceData(np.arange(3), (np.arange(1, 12), np.array([3, 4, 5]), np.array([5, 6, 7, 8])), 12)
  model, _ = registry.build("sasrec", 12, max_len=4, loss="bce_all")
  samples = training_samples(model, data)
  np.testing.assert_array_equal(samples.inputs, [[5, 6, 7, 8, 9], [0, 0, 0, 0, 3], [0, 0, 0, 5, 6]])
  base, _ = registry.build("sasrec", 12, max_len=4)
  assert len(training_samples(base, data)) == 3 + 0 + 1  # prefixes of s[-6:-2] with an input
  with pytest.raises(ValueError, match="early fusion"):
    registry.build("sasrec", 12, loss="bce_all", bank_dim=8, fusion="late")
