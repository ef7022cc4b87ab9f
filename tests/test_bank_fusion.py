"""Bank aggregation (ASER_SPEC §4), bank IO, and the fusion equations (§5) against direct NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aser_jax.bank.aggregate import Bank, aggregate_bank, snorm
from aser_jax.bank.io import export_npz, load_bank, save_bank
from aser_jax.models.fusion import BANK, SensoryFusion, bank_constants


def _texts(seed=0, X=7, F=5, D=4):
  rng = np.random.default_rng(seed)
  item = np.array([1, 1, 1, 2, 2, 4, 4])[:X]
  P = np.array([[0.9, 0.2, 0.5, 0.0, 0.7]] * X) * rng.uniform(0.5, 1.0, (X, F)).round(2)
  P[5:] = 0.1  # item 4: nothing reaches θ
  k = rng.normal(size=(X, F, D))
  c = rng.uniform(size=(X, F))
  pi = rng.normal(size=(X, F, 3))
  return item, P, k, c, pi


def _bank():
  item, P, k, c, pi = _texts()
  return aggregate_bank(item, 4, P, k, c, pi)


def test_aggregation_by_hand():
  item, P, k, c, pi = _texts()
  bank = aggregate_bank(item, 4, P, k, c, pi, theta=0.5)
  for i in range(5):
    rows = np.flatnonzero(item == i)
    for f in range(5):
      w = np.array([P[x, f] if P[x, f] >= 0.5 else 0.0 for x in rows])
      active = w.sum() > 1e-6 and i > 0
      assert bank.A[i, f] == float(active)
      if not active:
        assert bank.C[i, f] == 0 and bank.N[i, f] == 0 and not bank.K[i, f].any()
        np.testing.assert_allclose(bank.Pi[i, f], 0.0 if i == 0 else 1 / 3)
        continue
      v = (w[:, None] * k[rows, f]).sum(0)
      np.testing.assert_allclose(bank.K[i, f], v / np.linalg.norm(v), rtol=1e-5)
      np.testing.assert_allclose(bank.C[i, f], (w * c[rows, f]).sum() / (w.sum() + 1e-6), rtol=1e-5)
      z = (w * c[rows, f])[:, None] * pi[rows, f]
      z = z.sum(0) / ((w * c[rows, f]).sum() + 1e-6)
      np.testing.assert_allclose(bank.Pi[i, f], np.exp(z) / np.exp(z).sum(), rtol=1e-5)
      assert bank.N[i, f] == (w > 0).sum()
  assert not bank.A[3].any() and not bank.A[4].any()  # item 3 has no text, item 4 no evidence


def test_snorm_zero_indicator_and_zero_vector():
  assert not snorm(np.ones((2, 3)), np.zeros(2)).any()
  assert not snorm(np.zeros((1, 3)), np.ones(1)).any()  # no division by zero


def test_validate_rejects_nan_and_dirty_padding_row():
  item, P, k, c, pi = _texts()
  bank = aggregate_bank(item, 4, P, k, c, pi)
  K = bank.K.copy()
  K[2, 0, 0] = np.nan
  with pytest.raises(ValueError, match="non-finite value at item 2"):
    Bank(K, bank.C, bank.Pi, bank.N, bank.A).validate()
  A = bank.A.copy()
  A[0, 1] = 1
  with pytest.raises(ValueError, match="row 0"):
    Bank(bank.K, bank.C, bank.Pi, bank.N, A).validate()


def test_bank_roundtrip_orbax_and_npz(tmp_path):
  bank = _bank()
  save_bank(tmp_path / "bank", bank, {"encoder": "test"})
  back, meta = load_bank(tmp_path / "bank")
  assert meta["encoder"] == "test" and meta["num_items"] == 4
  for name, arr in bank.arrays().items():
    np.testing.assert_array_equal(getattr(back, name), arr)
  export_npz(tmp_path / "bank.npz", bank, {"encoder": "test"})
  back2, meta2 = load_bank(tmp_path / "bank.npz")
  np.testing.assert_array_equal(back2.K, bank.K)
  assert meta2["encoder"] == "test"


def _fusion(bank, D=6):
  mod = SensoryFusion(hidden=D, bank_dim=bank.K.shape[-1], num_items=bank.num_items)
  e = jnp.zeros((bank.num_items + 1, D))
  variables = mod.init(jax.random.key(0), e, method=mod.fuse)
  params = jax.tree.map(lambda w: w + 0.1 * jax.random.normal(jax.random.key(1), w.shape), variables["params"])
  consts = {BANK: {k: jnp.asarray(v) for k, v in bank_constants(bank).items()}}
  return mod, params, consts


def test_fusion_matches_the_per_facet_equations():
  bank = _bank()
  mod, params, consts = _fusion(bank)
  e = jax.random.normal(jax.random.key(2), (5, 6))
  got = np.asarray(mod.apply({"params": params, **consts}, e, method=mod.fuse))
  p = jax.tree.map(np.asarray, params)
  s_f = np.einsum("nfd,dh->nfh", bank.K, p["proj_kernel"]) + p["proj_bias"] + p["facet_offsets"]
  q = bank.A * bank.C * np.log1p(bank.N)
  beta = q / (q.sum(-1, keepdims=True) + 1e-6)
  s = (beta[..., None] * s_f).sum(1)
  a = 1 / (1 + np.exp(-p["blend_logit"]))
  np.testing.assert_allclose(got, (1 - a) * np.asarray(e) + a * s, rtol=1e-5, atol=1e-6)
  assert not s[3].any() and not s[0].any()  # inactive and padding items get no sensory vector


def test_blend_starts_at_rho0_and_zero_bank_with_alpha_zero_is_base():
  bank = _bank()
  mod = SensoryFusion(hidden=6, bank_dim=4, num_items=4, rho0=0.1)
  v = mod.init(jax.random.key(0), jnp.zeros((5, 6)), method=mod.fuse)
  assert float(mod.apply(v, method=mod.alpha)) == pytest.approx(0.1)
  zero = Bank(*(np.zeros_like(a) for a in bank.arrays().values()))
  consts = {BANK: {k: jnp.asarray(x) for k, x in bank_constants(zero).items()}}
  params = {**v["params"], "blend_logit": jnp.array(-jnp.inf)}
  e = jax.random.normal(jax.random.key(2), (5, 6))
  out = mod.apply({"params": params, **consts}, e, method=mod.fuse)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(e))


def test_residual_blend_adds_the_sensory_vector_and_leaves_inactive_rows_alone():
  bank = _bank()
  mod, params, consts = _fusion(bank)
  res = SensoryFusion(hidden=6, bank_dim=4, num_items=4, blend="residual")
  e = jax.random.normal(jax.random.key(2), (5, 6))
  v = {"params": params, **consts}
  s = np.asarray(mod.apply(v, method=mod.sensory))
  a = float(mod.apply(v, method=mod.alpha))
  got = np.asarray(res.apply(v, e, method=res.fuse))
  np.testing.assert_allclose(got, np.asarray(e) + a * s, rtol=1e-5, atol=1e-6)
  assert 0 < a < 1
  np.testing.assert_array_equal(got[[0, 3]], np.asarray(e)[[0, 3]])  # padding and inactive: e exactly
  with pytest.raises(ValueError, match="blend must be one of"):
    SensoryFusion(hidden=6, bank_dim=4, num_items=4, blend="gate").init(jax.random.key(0), e, method="fuse")


@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec", "bsarec", "diff", "gru4rec"])
def test_backbone_configs_refuse_fusion_settings_no_model_can_use(backbone):
  from aser_jax.models import registry
  cls = registry.config_class(backbone)
  cls(rho0=0.3, blend="residual", fusion="late", dropout=0.0)  # valid, even without a bank
  bad = [({"blend": "gate"}, "blend must be one of"), ({"fusion": "middle"}, "fusion must be one of"),
         ({"rho0": 0.0}, "rho0 must lie strictly between 0 and 1"), ({"rho0": 1.5}, "rho0 must lie"),
         ({"dropout": 1.0}, r"dropout must lie in \[0, 1\)"), ({"attn_dropout": -0.1}, "attn_dropout must lie")]
  for kw, msg in bad:  # a Base config (bank_dim 0) refuses them too
    with pytest.raises(ValueError, match=msg):
      cls(**kw)


def test_bank_is_not_a_parameter():
  bank = _bank()
  mod, params, _ = _fusion(bank)
  assert set(params) == {"proj_kernel", "proj_bias", "facet_offsets", "blend_logit"}
