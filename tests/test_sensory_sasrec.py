"""Sensory fusion wired into SASRec and the training loop (ASER_SPEC §5)."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aser_jax.bank.aggregate import Bank
from aser_jax.data.sequences import read_sequences
from aser_jax.models import registry
from aser_jax.models.fusion import BANK, bank_constants, bank_variables, fusion_diagnostics
from aser_jax.train import sharding
from aser_jax.train.loop import TrainConfig, bank_digest, train_and_evaluate
from aser_jax.train.state import init_state, jit_train_step


def _bank(num_items, d_b=8, seed=0, zero=False):
  rng = np.random.default_rng(seed)
  n, F = num_items + 1, 5
  A = (rng.random((n, F)) < 0.4).astype(np.float32)
  if zero:
    A[:] = 0
  A[0] = 0
  K = rng.normal(size=(n, F, d_b)).astype(np.float32)
  K /= np.linalg.norm(K, axis=-1, keepdims=True)
  K *= A[..., None]
  C = (rng.random((n, F)) * A).astype(np.float32)
  N = (rng.integers(1, 4, (n, F)) * A).astype(np.float32)
  Pi = np.full((n, F, 3), 1 / 3, np.float32)
  Pi[0] = 0
  return Bank(K, C, Pi, N, A)


IDS = jnp.array([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7]])


def _models(num_items=12):
  base, _ = registry.build("sasrec", num_items, hidden=16, max_len=6)
  sens, _ = registry.build("sasrec", num_items, hidden=16, max_len=6, bank_dim=8)
  pb = base.init({"params": jax.random.key(0)}, IDS, method=base.score)["params"]
  ps = sens.init({"params": jax.random.key(0)}, IDS, method=sens.score)["params"]
  return base, sens, pb, ps


def test_zero_bank_with_alpha_zero_gives_exactly_the_base_model():
  base, sens, pb, ps = _models()
  ps = {**pb, "items": {**pb["items"], "fusion": {**ps["items"]["fusion"], "blend_logit": jnp.array(-jnp.inf)}}}
  consts = bank_variables(sens, IDS, _bank(12, zero=True))
  a = base.apply({"params": pb}, IDS, method=base.score)
  b = sens.apply({"params": ps, **consts}, IDS, method=sens.score)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("fusion", ["early", "late"])
def test_residual_blend_with_a_zero_bank_is_the_base_model_at_any_alpha(fusion):
  base, _, pb, _ = _models()
  sens, _ = registry.build("sasrec", 12, hidden=16, max_len=6, bank_dim=8, fusion=fusion, blend="residual")
  ps = sens.init({"params": jax.random.key(0)}, IDS, method=sens.score)["params"]
  ps = {**pb, "items": {**ps["items"], "id_emb": pb["items"]["id_emb"]}}
  assert float(jax.nn.sigmoid(ps["items"]["fusion"]["blend_logit"])) == pytest.approx(0.1)  # α = ρ0, not 0
  a = base.apply({"params": pb}, IDS, method=base.score)
  b = sens.apply({"params": ps, **bank_variables(sens, IDS, _bank(12, zero=True))}, IDS, method=sens.score)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  c = sens.apply({"params": ps, **bank_variables(sens, IDS, _bank(12))}, IDS, method=sens.score)
  assert not np.allclose(np.asarray(a), np.asarray(c))  # a real bank does move the scores


def test_fused_table_is_used_at_input_and_output():
  _, sens, _, ps = _models()
  variables = {"params": ps, **bank_variables(sens, IDS, _bank(12))}
  table = sens.apply(variables, method=sens.item_table)
  e = ps["items"]["id_emb"]["embedding"]
  assert not np.allclose(np.asarray(table), np.asarray(e))  # the bank changes the table
  u = sens.apply(variables, IDS, method=sens.encode)
  np.testing.assert_allclose(np.asarray(sens.apply(variables, IDS, method=sens.score)), np.asarray(u @ table.T),
                             rtol=1e-5, atol=1e-6)
  # replacing the ID table by the fused one in a Base forward reproduces the Sens user state
  u_manual = sens.apply(variables, IDS, False, table, method=sens.encode)
  np.testing.assert_allclose(np.asarray(u), np.asarray(u_manual), rtol=1e-6)


def test_bank_is_frozen_and_not_in_trainable_state():
  _, sens, _, _ = _models()
  bank = _bank(12)
  consts = bank_variables(sens, IDS, bank)
  before = jax.tree.map(np.copy, consts)
  tx = optax.adam(1e-2)
  state = init_state(sens, tx, {"input_ids": IDS}, 0)
  assert BANK not in state.params and "beta" not in str(jax.tree_util.tree_structure(state.opt_state))
  step = jit_train_step(sens, tx, sharding.data_mesh(), consts)
  batch = {"input_ids": IDS, "target": jnp.array([8, 9]), "weight": jnp.ones(2)}
  a0 = float(jax.nn.sigmoid(state.params["items"]["fusion"]["blend_logit"]))
  for _ in range(5):
    state, _ = step(state, batch, jax.random.key(0))
  jax.tree.map(np.testing.assert_array_equal, consts, before)
  assert float(jax.nn.sigmoid(state.params["items"]["fusion"]["blend_logit"])) != a0  # α is learned


def test_training_with_a_bank_end_to_end(tiny_data_file, tmp_path):
  data = read_sequences(tiny_data_file)
  bank = _bank(data.num_items)
  out = train_and_evaluate(data, "sasrec", tmp_path / "sens", TrainConfig(epochs=2, batch_size=64, progress=False),
                           bank=bank, hidden=16)
  assert 0 < out["sensory_alpha"] < 1 and out["model_config"]["bank_dim"] == 8
  saved = json.loads((tmp_path / "sens" / "metrics.json").read_text())
  other = Bank(bank.K, bank.C * 0.5, bank.Pi, bank.N, bank.A)
  assert saved["bank"] == out["bank"] == bank_digest(bank) != bank_digest(other)  # which bank the run fused
  diag = saved["fusion"]
  assert diag["alpha"] == pytest.approx(out["sensory_alpha"]) and 0 <= diag["shared_energy"] <= 1
  assert diag["active_items"] == int((bank_constants(bank)["beta"][1:].sum(-1) > 0).sum()) > 0
  assert diag["sensory_to_id_norm"] > 0
  assert np.isfinite(out["test"]["NDCG@10"])
  assert saved["environment"]["packages"]["jax"] == jax.__version__  # what the numbers were measured on
  with open(tmp_path / "sens" / "log.csv") as f:
    rows = list(csv.DictReader(f))
  alphas = [float(r["sensory_alpha"]) for r in rows]  # the α trajectory, one value per epoch
  assert len(alphas) == 2 and all(0 < a < 1 for a in alphas) and alphas[0] != 0.1


def test_fusion_diagnostics_by_hand():
  K = np.zeros((4, 5, 2), np.float32)
  A = np.zeros((4, 5), np.float32)
  K[1, 0], K[2, 0] = [1, 0], [0, 1]  # two active items, orthogonal; item 3 has no active facet
  A[1:3, 0] = 1
  bank = Bank(K, A.copy(), np.full((4, 5, 3), 1 / 3, np.float32), A.copy(), A)
  params = {"items": {"id_emb": {"embedding": np.array([[0, 0], [3, 4], [0, 2], [1, 1]], np.float32)},
                      "fusion": {"proj_kernel": np.eye(2, dtype=np.float32), "proj_bias": np.zeros(2, np.float32),
                                 "facet_offsets": np.zeros((5, 2), np.float32), "blend_logit": np.float32(0.0)}}}
  d = fusion_diagnostics(params, bank)
  # s_1 = [1, 0], s_2 = [0, 1] (β = 1 on facet 0); α = 0.5: norm ratios 1/5 and 1/2
  assert d["alpha"] == 0.5 and d["active_items"] == 2
  assert d["sensory_to_id_norm"] == pytest.approx(0.35, rel=1e-5)  # β = q / (q + ε), a hair under 1
  assert d["shared_energy"] == pytest.approx(0.5, rel=1e-5)  # ‖(½, ½)‖² / 1
  assert fusion_diagnostics(params, bank, early=False)["sensory_to_id_norm"] is None
  # residual blend: the ID row enters at full scale, ratios ½·1/5 and ½·1/2
  assert fusion_diagnostics(params, bank, blend="residual")["sensory_to_id_norm"] == pytest.approx(0.175, rel=1e-5)
  same = K.copy()
  same[2, 0] = [1, 0]  # both items' sensory vectors now coincide
  assert fusion_diagnostics(params, Bank(same, A.copy(), bank.Pi, A.copy(), A))["shared_energy"] == pytest.approx(1.0)


def test_late_fusion_changes_only_the_user_state():
  num_items = 12
  late, _ = registry.build("sasrec", num_items, hidden=16, max_len=6, bank_dim=8, fusion="late")
  p = late.init({"params": jax.random.key(0)}, IDS, method=late.score)["params"]
  variables = {"params": p, **bank_variables(late, IDS, _bank(num_items))}
  np.testing.assert_array_equal(np.asarray(late.apply(variables, method=late.item_table)),
                                np.asarray(p["items"]["id_emb"]["embedding"]))
  h = late.apply(variables, IDS, False, method=late.hidden)[:, -1]
  u = late.apply(variables, IDS, method=late.encode)
  assert not np.allclose(np.asarray(h), np.asarray(u))
