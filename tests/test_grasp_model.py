"""GRASP channel in the backbones (models.grasp): the holistic attention against NumPy, the factored
full-catalogue scores, frozen tables, per-user items in training and ranking, and the refusals."""

import json
import os
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax

from aser_jax.bank.grasp import GraspTables
from aser_jax.data.synthetic import synthetic_dataset
from aser_jax.models import layers, registry
from aser_jax.models.backbones.bert4rec import mask_positions, reference_mask
from aser_jax.models.grasp import GRASP, catalogue_terms, grasp_variables, served_scores
from aser_jax.train.loop import TrainConfig, train_and_evaluate

E, D, USERS, ITEMS = 12, 8, 7, 20


def _tables(users=USERS, items=ITEMS, seed=0) -> GraspTables:
  rng = np.random.default_rng(seed)
  f = lambda n: rng.normal(size=(n, E)).astype(np.float32)
  I, I_bar = f(items + 1), f(items + 1)
  I[0] = I_bar[0] = 0
  return GraspTables(f(users), f(users), I, I_bar)


def _model(backbone="sasrec", tables=None, **kw):
  tables = tables or _tables()
  model, _ = registry.build(backbone, tables.num_items, hidden=D, max_len=5, grasp_dim=E,
                            grasp_users=tables.num_users, **kw)
  ids = np.zeros((1, 5), np.int32)
  params = model.init({"params": jax.random.key(1)}, ids, method=model.score)["params"]
  return model, {"params": params, **grasp_variables(model, ids, tables)}, tables


def _reference(p, t: GraspTables, user: int, item: int) -> np.ndarray:
  """BACKBONES.md's GRASP equations written out for one (user, item), concatenations and all."""
  sig = lambda x: 1 / (1 + np.exp(-x))
  gelu = lambda x: np.asarray(jax.nn.gelu(jnp.asarray(x)))
  Wu, Wi = np.asarray(p["user_proj"]["kernel"]), np.asarray(p["item_proj"]["kernel"])
  q, qb, v, vb = t.U[user] @ Wu, t.U_bar[user] @ Wu, t.I[item] @ Wi, t.I_bar[item] @ Wi
  att = lambda x, y: sig(x @ y / np.sqrt(len(y))) * y
  x = np.concatenate([att(q, v), att(qb, vb), att(np.concatenate([q, qb]), np.concatenate([v, vb]))])
  h = gelu(x @ np.asarray(p["mlp_in_kernel"]) + np.asarray(p["mlp_in_bias"]))
  return h @ np.asarray(p["mlp_out_kernel"]) + np.asarray(p["mlp_out_bias"])


def _wide(variables):
  """At init (projections of std 0.02) every gate sits near 1/2; widen them so users differ visibly."""
  g = variables["params"]["grasp"]
  g = {**g, **{k: {"kernel": g[k]["kernel"] * 30} for k in ("user_proj", "item_proj")}}
  return {**variables, "params": {**variables["params"], "grasp": g}}


def _grasp_params(variables):
  return variables["params"]["grasp"]


def test_item_embeddings_match_the_equations_and_padding_is_zero():
  model, variables, t = _model()
  ids = jnp.array([[3, 0, 11], [19, 3, 1]])
  users = jnp.array([2, 6])
  got = model.apply(variables, ids, users, method=lambda m, i, u: m.items.embed(i, u))
  p = jax.tree.map(np.asarray, _grasp_params(variables))
  for b in range(2):
    for k in range(3):
      item = int(ids[b, k])
      want = np.zeros(D) if item == 0 else _reference(p, t, int(users[b]), item)
      np.testing.assert_allclose(got[b, k], want, rtol=2e-5, atol=1e-6)
  model, variables, t = _model(grasp_ids=True)  # the extension adds the ID embedding, padding still zero
  got = model.apply(variables, ids, users, method=lambda m, i, u: m.items.embed(i, u))
  p = jax.tree.map(np.asarray, _grasp_params(variables))
  np.testing.assert_allclose(got[1, 0], _reference(p, t, 6, 19) + p["id_emb"]["embedding"][19], rtol=2e-5, atol=1e-6)
  assert not np.asarray(got[0, 1]).any()


@pytest.mark.parametrize("backbone,ids", [("sasrec", False), ("gru4rec", False), ("sasrec", True),
                                         ("bert4rec", False), ("bert4rec", True)])
def test_factored_scores_equal_the_user_state_times_every_item_embedding(backbone, ids):
  model, variables, _ = _model(backbone, grasp_ids=ids)
  assert ("id_emb" in variables["params"]["grasp"]) == ids
  ids = jnp.array([[0, 0, 4, 9, 2], [1, 2, 3, 4, 5], [0, 0, 0, 0, 7]])
  users = jnp.array([0, 5, 3])
  scores = model.apply(variables, ids, users, method=model.score)
  o = model.apply(variables, ids, False, None, users, method=model.encode)
  every = jnp.tile(jnp.arange(ITEMS + 1)[None], (3, 1))
  e = model.apply(variables, every, users, method=lambda m, i, u: m.items.embed(i, u))
  want = jnp.einsum("bd,bnd->bn", o, e)
  # the factored form scores padding as MLP(0)·o; ranking drops column 0 anyway
  np.testing.assert_allclose(scores[:, 1:], want[:, 1:], rtol=1e-4, atol=1e-6)
  other = model.apply(variables, ids, jnp.array([1, 1, 1]), method=model.score)
  assert not np.allclose(scores, other)  # the user conditions the items


def test_item_terms_built_once_serve_the_same_scores():
  """What bench_runtime serves (item terms computed once, then scores per batch) is `score`."""
  model, variables, _ = _model("gru4rec")
  ids, users = jnp.array([[0, 0, 4, 9, 2], [1, 2, 3, 4, 5]]), jnp.array([6, 2])
  terms = model.apply(variables, method=catalogue_terms)
  served = model.apply(variables, ids, users, terms, method=served_scores)
  np.testing.assert_allclose(served, model.apply(variables, ids, users, method=model.score), rtol=1e-6, atol=1e-7)


def test_tables_are_constants_not_parameters():
  model, variables, t = _model()
  flat = jax.tree_util.tree_flatten_with_path(variables["params"])[0]
  assert all(leaf.shape != t.U.shape and leaf.shape != t.I.shape for _, leaf in flat)
  np.testing.assert_array_equal(variables[GRASP]["grasp"]["I_bar"], t.I_bar)


@pytest.mark.parametrize("backbone,loss", [("sasrec", "bce"), ("sasrec", "bce_all"), ("sasrec", "ce"),
                                           ("gru4rec", "bce"), ("gru4rec", "ce")])
def test_training_loss_reads_each_rows_user(backbone, loss):
  model, variables, _ = _model(backbone, loss=loss)
  variables = _wide(variables)
  L = 6 if loss == "bce_all" else 5
  ids = jnp.array([[0, 0, 4, 9, 2, 5][-L:], [1, 2, 3, 4, 5, 6][-L:]])
  batch = {"input_ids": ids, "target": jnp.array([7, 8]), "negative": jnp.array([10, 11]) if loss == "bce"
           else jnp.array([[10, 11, 12, 13, 14], [15, 16, 17, 18, 19]]), "weight": jnp.ones(2)}
  if loss == "ce":
    del batch["negative"]
  rows = lambda users: model.apply(variables, {**batch, "user": jnp.array(users)}, False, method=model.loss)
  a, b = rows([0, 1]), rows([0, 4])
  assert np.isfinite(a).all()
  assert float(a[0]) == float(b[0])  # same user, same row loss
  assert not np.isclose(a[1], b[1], rtol=1e-6, atol=0)  # another user, another row loss
  with pytest.raises(KeyError, match="user"):
    model.apply(variables, batch, False, method=model.loss)


def test_bert4rec_mask_hides_the_whole_grasp_token():
  model, variables, _ = _model("bert4rec")
  variables = _wide(variables)
  ids = np.array([[0, 0, 4, 9, 2], [1, 2, 3, 4, 5]])
  masked = jnp.zeros(ids.shape, bool).at[:, 3].set(True)
  users = jnp.array([3, 6])
  other = ids.copy()
  other[:, 3] = [17, 18]  # other items, hence other user-conditioned tokens, under the masks
  h = [model.apply(variables, jnp.asarray(x), masked, False, user_B=users, method=model.hidden) for x in (ids, other)]
  np.testing.assert_allclose(np.asarray(h[0]), np.asarray(h[1]), atol=1e-6)
  unmasked = [model.apply(variables, jnp.asarray(x), jnp.zeros(ids.shape, bool), False, user_B=users,
                          method=model.hidden) for x in (ids, other)]
  assert not np.allclose(np.asarray(unmasked[0]), np.asarray(unmasked[1]), atol=1e-4)


@pytest.mark.parametrize("budget", [1, 2, 5])
def test_bert4rec_loss_is_each_rows_newest_masked_positions_against_every_user_conditioned_item(budget):
  """The per-row CE equals the explicit computation: the full bidirectional output at each masked
  position, dotted with `i_all(u, j)` built item by item for the row's user, softmax over items."""
  model, variables, _ = _model("bert4rec", mask_prob=0.6, prediction_budget=budget)
  variables = _wide(variables)
  ids = jnp.array([[0, 0, 4, 9, 2], [1, 2, 3, 4, 5], [0, 0, 0, 0, 7]])
  users = jnp.array([2, 5, 0])
  batch = {"input_ids": ids, "target": jnp.zeros(3, jnp.int32), "user": users, "weight": jnp.ones(3)}
  rngs = {"mask": jax.random.key(3)}
  loss = np.asarray(model.apply(variables, batch, False, rngs=rngs, method=model.loss))
  masked = np.asarray(model.apply(variables, ids, rngs=rngs,
                                  method=lambda m, x: mask_positions(m.make_rng("mask"), x, 0.6)))
  assert masked.sum(1).max() >= 2  # some row has more masks than a budget of 1 keeps
  h = np.asarray(model.apply(variables, ids, jnp.asarray(masked), False, user_B=users, method=model.hidden), np.float64)
  every = jnp.tile(jnp.arange(ITEMS + 1)[None], (3, 1))
  e = np.asarray(model.apply(variables, every, users, method=lambda m, i, u: m.items.embed(i, u)), np.float64)
  want = []
  for r in range(3):
    keep = np.flatnonzero(masked[r])[::-1][:budget]
    logits = h[r, keep] @ e[r].T
    logits[:, 0] = -np.inf
    logp = log_softmax(logits, -1)
    want.append(np.mean([-logp[n, np.asarray(ids)[r, j]] for n, j in enumerate(keep)]))
  np.testing.assert_allclose(loss, want, rtol=1e-4)
  moved = {**batch, "user": jnp.array([2, 1, 0])}
  moved = np.asarray(model.apply(variables, moved, False, rngs=rngs, method=model.loss))
  assert moved[0] == loss[0] and moved[2] == loss[2] and not np.isclose(moved[1], loss[1], rtol=1e-6, atol=0)


def test_bert4rec_mlm_bce_scores_masked_positions_against_the_rows_user_conditioned_items():
  model, variables, _ = _model("bert4rec", mask_prob=0.6, prediction_budget=5, loss="mlm_bce")
  variables = _wide(variables)
  ids = jnp.array([[0, 0, 4, 9, 2], [1, 2, 3, 4, 5], [0, 0, 0, 0, 7]])
  users = jnp.array([2, 5, 0])
  batch = {"input_ids": ids, "target": jnp.zeros(3, jnp.int32), "user": users, "weight": jnp.ones(3)}
  rngs = {"mask": jax.random.key(3), "sample": jax.random.key(4)}
  loss = np.asarray(model.apply(variables, batch, False, rngs=rngs, method=model.loss))
  masked = np.asarray(model.apply(variables, ids, rngs=rngs,
                                  method=lambda m, x: mask_positions(m.make_rng("mask"), x, 0.6)))
  order = sorted(((r, j) for r in range(3) for j in range(5)), key=lambda rj: (not masked[rj], -rj[1], rj[0]))
  rows, pos = np.array(order).T
  targets = np.where(masked[rows, pos], np.asarray(ids)[rows, pos], 1)
  neg = np.asarray(model.apply(variables, rngs=rngs, method=lambda m: layers.sample_negatives(
      m.make_rng("sample"), ids[rows], jnp.asarray(targets), ITEMS)))
  h = np.asarray(model.apply(variables, ids, jnp.asarray(masked), False, user_B=users, method=model.hidden), np.float64)
  every = jnp.tile(jnp.arange(ITEMS + 1)[None], (3, 1))
  e = np.asarray(model.apply(variables, every, users, method=lambda m, i, u: m.items.embed(i, u)), np.float64)
  logsig = lambda x: -np.logaddexp(0, -x)
  bce = [-(logsig(h[r, j] @ e[r, t]) + logsig(-h[r, j] @ e[r, n])) for r, j, t, n in zip(rows, pos, targets, neg)]
  on = masked[rows, pos]
  want = [np.mean(np.asarray(bce)[on & (rows == r)]) for r in range(3)]
  np.testing.assert_allclose(loss, want, rtol=1e-4)


@pytest.mark.parametrize("ids", [False, True])
def test_grouped_ce_equals_ce_of_the_full_scores_in_value_and_gradient(ids):
  """`GraspItems.ce` two rows at a time (three rows: one padded group) equals the softmax CE of
  `scores`, and so do the gradients through its recomputed groups."""
  model, variables, _ = _model(grasp_ids=ids)
  variables = _wide(variables)
  o = jax.random.normal(jax.random.key(7), (3, 2, D))
  users, target = jnp.array([1, 6, 3]), jnp.array([[4, 9], [20, 1], [7, 7]])
  row_bytes = 4 * (ITEMS + 1) * D

  def loss(params, grouped):
    v = {**variables, "params": params}
    if grouped:
      return model.apply(v, method=lambda m: m.items.ce(o, users, target, budget_bytes=2 * row_bytes)).sum()
    s = model.apply(v, method=lambda m: m.items.scores(o, users))
    return layers.ce_from_logits(s.reshape(6, -1), target.reshape(-1)).sum()

  (a, ga), (b, gb) = (jax.value_and_grad(loss)(variables["params"], g) for g in (True, False))
  np.testing.assert_allclose(a, b, rtol=1e-5)
  scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(gb))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5 * scale), ga, gb)


def test_bert4rec_reference_loss_with_grasp_is_ce_of_the_next_item_at_the_read_slot():
  model, variables, _ = _model("bert4rec", loss="reference")
  variables = _wide(variables)
  ids, users = jnp.array([[0, 0, 4, 9, 2], [1, 2, 3, 4, 5]]), jnp.array([4, 1])
  batch = {"input_ids": ids, "target": jnp.array([7, 8]), "user": users, "weight": jnp.ones(2)}
  rngs = {"mask": jax.random.key(2)}
  loss = np.asarray(model.apply(variables, batch, False, rngs=rngs, method=model.loss))
  masked, read = model.apply(variables, rngs=rngs, method=lambda m: reference_mask(m.make_rng("mask"), 2, 5, 0.2))
  h = model.apply(variables, ids, masked, False, user_B=users, method=model.hidden)[jnp.arange(2), read]
  scores = np.asarray(model.apply(variables, h, users, method=lambda m, o, u: m.items.scores(o, u)), np.float64)
  scores[:, 0] = -np.inf
  want = -log_softmax(scores, -1)[[0, 1], [7, 8]]
  np.testing.assert_allclose(loss, want, rtol=1e-4)


def test_refusals():
  model, variables, _ = _model()
  with pytest.raises(ValueError, match="no user-independent item table"):
    model.apply(variables, method=model.item_table)
  that_do = "bsarec does not take the GRASP channel; backbones that do: bert4rec, gru4rec, sasrec"
  with pytest.raises(ValueError, match=that_do):
    registry.build("bsarec", ITEMS, grasp_dim=E, grasp_users=USERS)
  with pytest.raises(ValueError, match="separate channels"):
    registry.build("sasrec", ITEMS, grasp_dim=E, grasp_users=USERS, bank_dim=4)
  data = synthetic_dataset(num_users=40, num_items=30, seed=1)[0]
  with pytest.raises(ValueError, match="GRASP tables have 7 users and 20 items, data has 40 and 30"):
    train_and_evaluate(data, "sasrec", "unused", TrainConfig(epochs=1), grasp=_tables())


@pytest.mark.parametrize("backbone", ["gru4rec", "bert4rec"])
def test_grasp_run_trains_ranks_records_its_tables_and_refuses_others_on_resume(tmp_path, backbone):
  data = synthetic_dataset(num_users=120, num_items=60, seed=3)[0]
  t = _tables(data.num_users, data.num_items, seed=4)
  cfg = TrainConfig(epochs=2, batch_size=32, progress=False)
  res = train_and_evaluate(data, backbone, tmp_path / "run", cfg, grasp=t, hidden=16, max_len=10)
  saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
  assert saved["grasp"] == res["grasp"] and len(res["grasp"]) == 16 and res["bank"] is None
  assert res["model_config"]["grasp_dim"] == E and res["model_config"]["grasp_users"] == data.num_users
  assert np.load(tmp_path / "run" / "test_ranks.npy").shape == (data.num_users,)
  groups = saved["test_head_tail"]
  assert groups["head users"]["users"] == int(np.ceil(0.2 * data.num_users))
  assert groups["head items"]["users"] + groups["tail items"]["users"] == data.num_users
  again = train_and_evaluate(data, backbone, tmp_path / "run", cfg, grasp=t, hidden=16, max_len=10)
  assert again["test"] == res["test"]  # a finished run resumes to the same result
  other = _tables(data.num_users, data.num_items, seed=5)
  with pytest.raises(ValueError, match="grasp"):
    train_and_evaluate(data, backbone, tmp_path / "run", cfg, grasp=other, hidden=16, max_len=10)


@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec"])
def test_binary_with_grasp_tables_agrees_on_one_and_four_devices(tiny_data_file, tmp_path, backbone):
  """`--grasp_tables` end to end: batches and evaluation chunks split over 4 devices carry each
  row's user, so losses and metrics equal the 1-device run's (BERT4Rec: its grouped softmax over
  a sharded batch too)."""
  from test_train import BIN, _log, _metrics

  from aser_jax.bank.grasp import save_grasp_tables
  from aser_jax.data.sequences import read_sequences

  data = read_sequences(tiny_data_file)
  tables = tmp_path / "grasp.npz"
  save_grasp_tables(tables, _tables(data.num_users, data.num_items, seed=6))
  for n in (1, 4):
    subprocess.run(BIN + [f"--data={tiny_data_file}", f"--workdir={tmp_path / str(n)}", f"--backbone={backbone}",
                          "--epochs=2", "--hidden=16", "--batch_size=64", "--progress=false",
                          f"--grasp_tables={tables}"],
                   env={**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"},
                   check=True, capture_output=True, text=True)
  a, b = _metrics(tmp_path / "1"), _metrics(tmp_path / "4")
  assert (a["devices"], b["devices"], a["grasp"]) == (1, 4, b["grasp"]) and a["grasp"] is not None
  np.testing.assert_allclose([float(r["loss"]) for r in _log(tmp_path / "1")],
                             [float(r["loss"]) for r in _log(tmp_path / "4")], rtol=1e-5)
  for split in ("valid", "test"):
    for k, v in a[split].items():
      assert b[split][k] == pytest.approx(v, abs=1e-9), (split, k)


@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec"])
def test_evaluator_ranks_with_terms_built_once_equal_ranks_from_the_models_own_scores(backbone):
  from aser_jax.data.sequences import SequenceData
  from aser_jax.eval.ranking import ranks_from_scores
  from aser_jax.train.loop import Evaluator
  from aser_jax.train.sharding import data_mesh

  model, variables, t = _model(backbone)
  rng = np.random.default_rng(4)
  data = SequenceData(np.arange(USERS), tuple(rng.integers(1, ITEMS + 1, n).astype(np.int32) for n in
                                              rng.integers(3, 9, USERS)), ITEMS)
  ev = Evaluator(model, data, 5, data_mesh(), chunk=3, consts={k: v for k, v in variables.items() if k != "params"})
  for which in ("valid", "test"):
    split = ev.splits[which]
    scores = model.apply(variables, split.inputs, split.users, method=model.score)
    expected = np.asarray(ranks_from_scores(scores, split.targets, split.history))
    np.testing.assert_array_equal(ev.ranks(variables["params"], which), expected)
  two = jax.tree.map(lambda x: jnp.stack([x, x]), variables["params"])
  np.testing.assert_array_equal(ev.ranks_seeds(two, "test"), np.stack([ev.ranks(variables["params"], "test")] * 2))
