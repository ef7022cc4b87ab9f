"""BSARec against a NumPy re-computation (BACKBONES.md "BSARec")."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import backbone_ref as ref
from aser_jax.models import registry
from aser_jax.models.backbones import frequency

IDS = np.array([[0, 0, 3, 4, 5, 6, 2], [1, 2, 3, 4, 5, 7, 8], [0, 0, 0, 0, 0, 0, 9]])


@pytest.mark.parametrize("L,c", [(7, 3), (7, 5), (8, 5), (50, 5), (6, 11)])
def test_low_pass_matrix_equals_explicit_dft(L, c):
  x = np.random.default_rng(0).standard_normal((2, L, 3))
  m = frequency.low_pass_matrix(L, c)
  np.testing.assert_allclose(np.einsum("ij,bjd->bid", m, x), ref.low_pass_direct(x, c), atol=1e-5)
  np.testing.assert_allclose(np.asarray(frequency.low_pass_fft(jnp.asarray(x, jnp.float32), c)),
                             ref.low_pass_direct(x, c), atol=1e-5)


def test_low_pass_keeps_constant_and_removes_alternation():
  L = 8
  m = frequency.low_pass_matrix(L, 3)
  np.testing.assert_allclose(m @ np.ones(L), np.ones(L), atol=1e-6)
  np.testing.assert_allclose(m @ (-1.0) ** np.arange(L), 0, atol=1e-6)


def _model(impl, heads=2):
  model, cfg = registry.build("bsarec", 30, hidden=8, heads=heads, layers=2, max_len=7, alpha=0.7, c=5,
                              filter_impl=impl)
  params = model.init({"params": jax.random.key(0)}, jnp.asarray(IDS), method=model.score)["params"]
  return model, cfg, ref.perturb(params)


def _np_hidden(p, cfg):
  x = ref.ln(p["items"]["id_emb"]["embedding"][IDS] + p["pos_emb"]["embedding"][None], p["emb_ln"])
  for i in range(cfg.layers):
    b = p[f"block_{i}"]
    h = cfg.alpha * ref.freq_filter(x, b["filter"], cfg.c) + (1 - cfg.alpha) * ref.attention(
        x, IDS, b["attn"], cfg.heads, causal=True)
    x = ref.ffn(h, b["ffn"])
  return x


@pytest.mark.parametrize("impl", ["matrix", "fft"])
def test_bsarec_matches_numpy(impl):
  model, cfg, params = _model(impl)
  want = _np_hidden(params, cfg)
  got = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), False, method=model.hidden))
  np.testing.assert_allclose(got, want, atol=5e-5)
  scores = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), method=model.score))
  np.testing.assert_allclose(scores, want[:, -1] @ params["items"]["id_emb"]["embedding"].T, atol=5e-5)


def test_matrix_and_fft_models_agree_and_beta_is_per_channel():
  m_mat, _, params = _model("matrix")
  m_fft, _, _ = _model("fft")
  assert params["block_0"]["filter"]["sqrt_beta"].shape == (8,)
  a = m_mat.apply({"params": params}, jnp.asarray(IDS), method=m_mat.score)
  b = m_fft.apply({"params": params}, jnp.asarray(IDS), method=m_fft.score)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=5e-5)


def test_bsarec_ce_loss_is_softmax_at_last_position():
  model, _, params = _model("matrix", heads=1)
  target = np.array([7, 9, 1])
  batch = {"input_ids": jnp.asarray(IDS), "target": jnp.asarray(target), "weight": jnp.ones(3)}
  loss = np.asarray(model.apply({"params": params}, batch, False, method=model.loss))
  logits = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), method=model.score)).astype(np.float64)
  logits[:, 0] = -np.inf
  want = -np.log(ref.softmax(logits)[np.arange(3), target])
  np.testing.assert_allclose(loss, want, rtol=1e-4)


def test_last_only_equals_full_computation():
  model, _, params = _model("matrix")
  full = model.apply({"params": params}, jnp.asarray(IDS), False, method=model.hidden)[:, -1]
  last = model.apply({"params": params}, jnp.asarray(IDS), method=model.encode)
  np.testing.assert_allclose(np.asarray(last), np.asarray(full), atol=1e-5)
