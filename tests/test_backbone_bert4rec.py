"""BERT4Rec against a NumPy re-computation (BACKBONES.md "BERT4Rec")."""

import jax
import jax.numpy as jnp
import numpy as np

import backbone_ref as ref
from scipy.special import log_softmax
from aser_jax.data.sequences import SequenceData
from aser_jax.data.splits import train_sequences
from aser_jax.models import layers, registry
from aser_jax.models.backbones.bert4rec import mask_positions, reference_mask
from aser_jax.train.loop import training_samples

IDS = np.array([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7], [0, 0, 0, 0, 0, 9]])


def _model(**kw):
  model, cfg = registry.build("bert4rec", 30, hidden=8, heads=2, layers=2, max_len=6, **kw)
  params = model.init({"params": jax.random.key(0)}, jnp.asarray(IDS), method=model.score)["params"]
  return model, cfg, ref.perturb(params)


def _np_hidden(p, ids, masked, layers_n, heads):
  tok = np.where(masked[..., None], p["mask_emb"], p["items"]["id_emb"]["embedding"][ids])
  x = ref.ln(tok + p["pos_emb"]["embedding"][None, : ids.shape[1]], p["emb_ln"])
  vis = np.where(masked, 1, ids)
  for i in range(layers_n):
    b = p[f"block_{i}"]
    x = ref.ffn(ref.attention(x, vis, b["attn"], heads, causal=False), b["ffn"])
  return x


def test_masking_never_touches_padding_and_has_rate_rho():
  rng = np.random.default_rng(0)
  lens = rng.integers(1, 41, 4000)
  ids = np.zeros((4000, 40), np.int32)
  for r, n in enumerate(lens):
    ids[r, 40 - n:] = rng.integers(1, 100, n)
  m = np.asarray(mask_positions(jax.random.key(3), jnp.asarray(ids), 0.2))
  assert not (m & (ids == 0)).any()
  assert m.any(1).all()  # every row trains
  assert abs(m.sum() / (ids > 0).sum() - 0.2) < 0.02


def test_row_without_a_draw_masks_its_newest_item():
  ids = jnp.array([[0, 0, 5, 6], [0, 0, 0, 7]])
  m = np.asarray(mask_positions(jax.random.key(0), ids, 0.0))
  np.testing.assert_array_equal(m, [[False, False, False, True], [False, False, False, True]])


def test_hidden_matches_numpy_with_masked_tokens():
  model, cfg, params = _model()
  masked = np.zeros(IDS.shape, bool)
  masked[0, 3] = masked[1, 0] = masked[1, 5] = True
  got = model.apply({"params": params}, jnp.asarray(IDS), jnp.asarray(masked), False, method=model.hidden)
  want = _np_hidden(params, IDS, masked, cfg.layers, cfg.heads)
  real = (IDS > 0) | masked
  np.testing.assert_allclose(np.asarray(got)[real], want[real], atol=5e-5)


def test_selected_queries_match_the_full_final_block():
  model, _, params = _model()
  masked = np.zeros(IDS.shape, bool)
  masked[0, 3] = masked[1, 0] = masked[1, 5] = masked[2, 5] = True
  rows, pos = np.array([1, 0, 2, 1]), np.array([5, 3, 5, 0])
  apply = lambda **kw: np.asarray(model.apply({"params": params}, jnp.asarray(IDS), jnp.asarray(masked), False,
                                              method=model.hidden, **kw))
  got = apply(select=(jnp.asarray(rows), jnp.asarray(pos)))
  assert got.shape == (4, 1, 8)
  np.testing.assert_allclose(got[:, 0], apply()[rows, pos], atol=1e-5)


def test_selected_queries_follow_a_causal_mask_too():
  cfg = layers.BackboneConfig(hidden=8, heads=2)
  x = jax.random.normal(jax.random.key(1), (3, 6, 8))
  attn = layers.SelfAttention(cfg)
  params = attn.init(jax.random.key(0), x, layers.attention_bias(jnp.asarray(IDS), True), False)
  rows, pos = jnp.array([2, 0, 1]), jnp.array([5, 4, 2])
  for causal in (True, False):
    bias = layers.attention_bias(jnp.asarray(IDS), causal)
    full = attn.apply(params, x, bias, False)
    got = attn.apply(params, x, bias, False, select=(rows, pos))
    np.testing.assert_allclose(np.asarray(got[:, 0]), np.asarray(full[rows, pos]), atol=1e-5)


def test_masked_position_hides_its_whole_token():
  model, _, params = _model()
  masked = np.zeros(IDS.shape, bool)
  masked[:, -1] = True
  other = IDS.copy()
  other[:, -1] = [11, 12, 13]
  a, b = (model.apply({"params": params}, jnp.asarray(x), jnp.asarray(masked), False, method=model.hidden)
          for x in (IDS, other))
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_encode_appends_a_mask_after_the_history():
  model, cfg, params = _model()
  shifted = np.concatenate([IDS[:, 1:], np.zeros((3, 1), IDS.dtype)], 1)
  masked = np.zeros(IDS.shape, bool)
  masked[:, -1] = True
  want = _np_hidden(params, shifted, masked, cfg.layers, cfg.heads)[:, -1]
  got = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), method=model.encode))
  np.testing.assert_allclose(got, want, atol=5e-5)
  scores = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), method=model.score))
  np.testing.assert_allclose(scores, want @ params["items"]["id_emb"]["embedding"].T, atol=5e-5)


def test_loss_is_mean_ce_over_masked_positions():
  model, cfg, params = _model(mask_prob=0.5, prediction_budget=6)
  rngs = {"mask": jax.random.key(5)}
  batch = {"input_ids": jnp.asarray(IDS), "target": jnp.zeros(3, jnp.int32), "weight": jnp.ones(3)}
  loss = np.asarray(model.apply({"params": params}, batch, False, rngs=rngs, method=model.loss))
  masked = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), rngs=rngs,
                                  method=lambda m, ids: mask_positions(m.make_rng("mask"), ids, 0.5)))
  h = _np_hidden(params, IDS, masked, cfg.layers, cfg.heads).astype(np.float64)
  logits = h @ params["items"]["id_emb"]["embedding"].T
  logits[..., 0] = -np.inf
  logp = log_softmax(logits, -1)
  want = [np.mean([-logp[r, j, IDS[r, j]] for j in np.flatnonzero(masked[r])]) for r in range(3)]
  np.testing.assert_allclose(loss, want, rtol=1e-4)
  # a budget of one position per row keeps the batch's newest masked positions only
  model, _, _ = _model(mask_prob=0.5, prediction_budget=1)
  loss = np.asarray(model.apply({"params": params}, batch, False, rngs=rngs, method=model.loss))
  order = sorted(zip(*np.nonzero(masked)), key=lambda rj: (-rj[1], rj[0]))[:3]
  want = [np.mean([-logp[r, j, IDS[r, j]] for (rr, j) in order if rr == r] or [0.0]) for r in range(3)]
  np.testing.assert_allclose(loss, want, rtol=1e-4)


def test_mlm_bce_is_mean_bce_over_masked_positions_against_negatives_outside_the_row():
  model, cfg, params = _model(mask_prob=0.5, prediction_budget=6, loss="mlm_bce")
  rngs = {"mask": jax.random.key(5), "sample": jax.random.key(9)}
  batch = {"input_ids": jnp.asarray(IDS), "target": jnp.zeros(3, jnp.int32), "weight": jnp.ones(3)}
  loss = np.asarray(model.apply({"params": params}, batch, False, rngs=rngs, method=model.loss))
  masked = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), rngs=rngs,
                                  method=lambda m, ids: mask_positions(m.make_rng("mask"), ids, 0.5)))
  # the loss's positions: all 18 of the batch (budget 6 x 3 rows), masked first, newest first
  order = sorted(((r, j) for r in range(3) for j in range(6)), key=lambda rj: (not masked[rj], -rj[1], rj[0]))
  rows, pos = np.array(order).T
  targets = np.where(masked[rows, pos], IDS[rows, pos], 1)
  neg = np.asarray(model.apply({"params": params}, rngs=rngs, method=lambda m: layers.sample_negatives(
      m.make_rng("sample"), jnp.asarray(IDS[rows]), jnp.asarray(targets), 30)))
  on = masked[rows, pos]
  assert not any(neg[p] in IDS[rows[p]] or neg[p] == targets[p] for p in range(len(order)))
  h = _np_hidden(params, IDS, masked, cfg.layers, cfg.heads).astype(np.float64)[rows, pos]
  E = params["items"]["id_emb"]["embedding"]
  logsig = lambda x: -np.logaddexp(0, -x)
  bce = -(logsig(np.sum(h * E[targets], -1)) + logsig(-np.sum(h * E[neg], -1)))
  want = [bce[on & (rows == r)].mean() for r in range(3)]
  np.testing.assert_allclose(loss, want, rtol=1e-4)


def test_train_sequences_are_whole_training_parts():
  data = SequenceData(np.arange(3), (np.array([1, 2, 3, 4, 5]), np.array([6, 7]), np.array([2, 3, 4])), 7)
  s = train_sequences(data, 2, repeats=2)
  np.testing.assert_array_equal(s.inputs, [[2, 3], [0, 2]] * 2)
  np.testing.assert_array_equal(s.targets, [3, 2] * 2)
  np.testing.assert_array_equal(s.users, [0, 2] * 2)


def test_reference_mask_draws_int_rho_l_positions_padding_included():
  m, read = (np.asarray(a) for a in reference_mask(jax.random.key(1), 4000, 50, 0.2))
  assert (m.sum(1) == 10).all()
  assert m[np.arange(4000), read].all()  # the loss reads a masked position
  assert abs(m.mean(0) - 0.2).max() < 0.04  # every slot, padding or not, equally likely
  assert abs(np.bincount(read, minlength=50) / 4000 - 1 / 50).max() < 0.01


def test_reference_loss_is_ce_of_the_next_item_at_one_masked_slot():
  model, cfg, params = _model(loss="reference", mask_prob=0.5)
  assert model.sample_mode == "prefix"
  target = np.array([7, 8, 2])
  rngs = {"mask": jax.random.key(2)}
  batch = {"input_ids": jnp.asarray(IDS), "target": jnp.asarray(target), "weight": jnp.ones(3)}
  loss = np.asarray(model.apply({"params": params}, batch, False, rngs=rngs, method=model.loss))
  masked, read = (np.asarray(a) for a in model.apply(
      {"params": params}, rngs=rngs, method=lambda m: reference_mask(m.make_rng("mask"), 3, 6, 0.5)))
  assert (masked & (IDS == 0)).any()  # this draw masks padding, which then becomes attendable
  h = _np_hidden(params, IDS, masked, cfg.layers, cfg.heads).astype(np.float64)[np.arange(3), read]
  logits = h @ params["items"]["id_emb"]["embedding"].T
  logits[:, 0] = -np.inf
  want = -log_softmax(logits, -1)[np.arange(3), target]
  np.testing.assert_allclose(loss, want, rtol=1e-4)


def test_reference_loss_trains_on_prefix_samples():
  data = SequenceData(np.arange(1), (np.array([1, 2, 3, 4, 5]),), 5)
  model, _ = registry.build("bert4rec", 5, hidden=8, heads=2, max_len=4, loss="reference")
  s = training_samples(model, data)
  np.testing.assert_array_equal(s.targets, [2, 3])
