"""GRU4Rec against a NumPy re-computation (BACKBONES.md "GRU4Rec")."""

import jax
import jax.numpy as jnp
import numpy as np

import backbone_ref as ref
from aser_jax.models import registry

IDS = np.array([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7], [0, 0, 0, 0, 0, 9]])


def _model(**kw):
  model, cfg = registry.build("gru4rec", 30, hidden=8, max_len=6, **kw)
  params = model.init({"params": jax.random.key(0)}, jnp.asarray(IDS), method=model.score)["params"]
  return model, cfg, ref.perturb(params)


def _np_encode(p, ids):
  sig = lambda z: 1 / (1 + np.exp(-z))
  D = p["gru_rec"].shape[0]
  out = []
  for row in ids:
    h = np.zeros(D)
    for item in row[row > 0]:  # padding is skipped
      xw = ref.dense(p["items"]["id_emb"]["embedding"][item], p["gru_in"])
      hu = h @ p["gru_rec"] + p["gru_rec_bias"]
      r, z = sig(xw[:D] + hu[:D]), sig(xw[D:2 * D] + hu[D:2 * D])
      n = np.tanh(xw[2 * D:] + r * hu[2 * D:])
      h = (1 - z) * n + z * h
    out.append(ref.dense(h, p["out"]))
  return np.stack(out)


def test_gru4rec_matches_numpy():
  model, _, params = _model()
  want = _np_encode(params, IDS)
  got = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), method=model.encode))
  np.testing.assert_allclose(got, want, atol=2e-5)
  scores = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), method=model.score))
  np.testing.assert_allclose(scores, want @ params["items"]["id_emb"]["embedding"].T, atol=2e-5)


def test_more_left_padding_changes_nothing():
  model, _, params = _model()
  a = model.apply({"params": params}, jnp.array([[0, 0, 0, 3, 4]]), method=model.encode)
  b = model.apply({"params": params}, jnp.array([[0, 3, 4]]), method=model.encode)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_ce_and_bce_losses():
  batch = {"input_ids": jnp.asarray(IDS), "target": jnp.array([7, 8, 10]), "weight": jnp.ones(3)}
  model, _, params = _model(loss="ce")
  u = _np_encode(params, IDS)
  logits = u @ params["items"]["id_emb"]["embedding"].T
  logits[:, 0] = -np.inf
  want = -np.log(ref.softmax(logits)[np.arange(3), [7, 8, 10]])
  got = model.apply({"params": params}, batch, False, method=model.loss)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4)
  model, _, params = _model(loss="bce")
  u = _np_encode(params, IDS)
  E = params["items"]["id_emb"]["embedding"]
  neg = np.array([1, 29, 12])
  got = model.apply({"params": params}, {**batch, "negative": jnp.asarray(neg)}, False, method=model.loss)
  pos_l, neg_l = (u * E[[7, 8, 10]]).sum(-1), (u * E[neg]).sum(-1)
  want = np.log1p(np.exp(-pos_l)) + np.log1p(np.exp(neg_l))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4)
  sampled = model.apply({"params": params}, batch, False, rngs={"sample": jax.random.key(0)}, method=model.loss)
  assert np.isfinite(np.asarray(sampled)).all()
