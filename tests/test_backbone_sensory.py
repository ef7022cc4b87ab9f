"""The sensory bank (ASER_SPEC §5) reaches BSARec, BERT4Rec, DIFF and GRU4Rec through the fused item table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aser_jax.bank.aggregate import Bank
from aser_jax.models import registry
from aser_jax.models.backbones.side import side_from_attributes
from aser_jax.models.fusion import bank_variables

N_ITEMS = 12
IDS = jnp.array([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7]])


def _bank(seed):
  rng = np.random.default_rng(seed)
  n, F, d_b = N_ITEMS + 1, 5, 8
  A = (rng.random((n, F)) < 0.6).astype(np.float32)
  A[0] = 0
  K = rng.normal(size=(n, F, d_b)).astype(np.float32) * A[..., None]
  C = (rng.random((n, F)) * A).astype(np.float32)
  N = (rng.integers(1, 4, (n, F)) * A).astype(np.float32)
  return Bank(K, C, np.full((n, F, 3), 1 / 3, np.float32), N, A)


def _build(name):
  side = side_from_attributes({1: [1], 2: [2, 3], 3: [1], 6: [3]}, N_ITEMS) if name == "diff" else None
  model, _ = registry.build(name, N_ITEMS, side=side, hidden=8, heads=2, max_len=6, bank_dim=8)
  params = model.init({"params": jax.random.key(0)}, IDS, method=model.score)["params"]
  return model, params


@pytest.mark.parametrize("name", ["bsarec", "bert4rec", "diff", "gru4rec"])
def test_scores_use_the_fused_table_at_input_and_output(name):
  model, params = _build(name)
  variables = {"params": params, **bank_variables(model, IDS, _bank(0))}
  table = model.apply(variables, method=model.item_table)
  assert not np.allclose(np.asarray(table), np.asarray(params["items"]["id_emb"]["embedding"]))
  u = model.apply(variables, IDS, method=model.encode)
  np.testing.assert_allclose(np.asarray(model.apply(variables, IDS, method=model.score)),
                             np.asarray(u @ table.T), rtol=1e-5, atol=1e-6)
  other = {"params": params, **bank_variables(model, IDS, _bank(1))}
  assert not np.allclose(np.asarray(u), np.asarray(model.apply(other, IDS, method=model.encode)))


def test_bert4rec_mask_hides_the_sensory_part_of_the_token_too():
  model, params = _build("bert4rec")
  masked = jnp.zeros(IDS.shape, bool).at[:, -1].set(True)
  a, b = _bank(0), _bank(0)
  for arr in (b.K, b.C, b.N, b.A):
    arr[[6, 7]] = np.roll(arr, 1, axis=0)[[6, 7]]  # new sensory data for the two masked items only
  variables = [{"params": params, **bank_variables(model, IDS, bank)} for bank in (a, b)]
  tables = [np.asarray(model.apply(v, method=model.item_table)) for v in variables]
  assert not np.allclose(tables[0][[6, 7]], tables[1][[6, 7]])  # the fused tokens of 6 and 7 differ
  np.testing.assert_allclose(tables[0][:6], tables[1][:6])
  h = [model.apply(v, IDS, masked, False, method=model.hidden) for v in variables]
  np.testing.assert_allclose(np.asarray(h[0]), np.asarray(h[1]), atol=1e-6)
