import jax.numpy as jnp
import numpy as np
import pytest

from aser_jax.data.splits import EvalSplit
from aser_jax.eval.ranking import evaluate_ranks, make_rank_fn, metrics_from_ranks, ranks_from_scores

NEG = -1.0


def test_ranks_by_hand_with_history_ties_and_padding():
  #            pad   1    2    3    4    5    6
  scores = [[9.0, 0.5, 0.9, 0.5, 0.1, 0.7, 0.5],   # target 3 ties with 1 and 6; 2 is history
            [9.0, NEG, NEG, NEG, NEG, NEG, NEG],   # target 4: all equal, negative scores
            [9.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]   # target 6 is also in the history: still ranked
  target = [3, 4, 6]
  history = [[2, 0, 0], [1, 2, 0], [6, 5, 0]]
  r = np.asarray(ranks_from_scores(jnp.array(scores), jnp.array(target), jnp.array(history)))
  # row 0: greater = {5: 0.7}; other equal = {1, 6} -> 1 + 1 + 2 = 4 (2 is history, 0 is padding)
  # row 1: history 1, 2 masked; other equal = {3, 5, 6} -> 1 + 0 + 3 = 4 (history must be -inf, not 0)
  # row 2: 5 is history; nothing else above 0.6 -> 1
  assert r.tolist() == [4, 4, 1]


def test_metrics_by_hand():
  m = metrics_from_ranks(np.array([1, 3, 6, 11, 30]))
  assert m["HR@5"] == pytest.approx(2 / 5)
  assert m["HR@10"] == pytest.approx(3 / 5)
  assert m["HR@20"] == pytest.approx(4 / 5)
  assert m["NDCG@5"] == pytest.approx((1 + 1 / np.log2(4)) / 5)
  assert m["NDCG@10"] == pytest.approx((1 + 1 / np.log2(4) + 1 / np.log2(7)) / 5)
  assert m["NDCG@20"] == pytest.approx((1 + 0.5 + 1 / np.log2(7) + 1 / np.log2(12)) / 5)


def _random_split(rng, users=37, items=50, L=6, H=9):
  inputs = rng.integers(0, items + 1, (users, L)).astype(np.int32)
  history = rng.integers(0, items + 1, (users, H)).astype(np.int32)
  targets = rng.integers(1, items + 1, users).astype(np.int32)
  return EvalSplit(inputs, targets, history, np.arange(users, dtype=np.int32))


def test_chunk_size_does_not_change_ranks():
  rng = np.random.default_rng(0)
  split = _random_split(rng)
  table = jnp.asarray(rng.normal(size=(51, 8)).round(1), jnp.float32)  # rounding creates ties
  per_user = rng.normal(size=(len(split), 51)).round(1).astype(np.float32)  # e.g. GRASP's user-conditioned items

  def score(params, ids, users):
    return params[ids].sum(1) @ params.T + jnp.asarray(per_user)[users]

  fn = make_rank_fn(score)
  ranks = [evaluate_ranks(fn, table, split, chunk) for chunk in (1, 4, 16, 37, 64)]
  assert all(np.array_equal(ranks[0], r) for r in ranks[1:])
  # and equal to a direct NumPy computation
  s = np.asarray(table)[split.inputs].sum(1) @ np.asarray(table).T + per_user
  for u in range(len(split)):
    row = s[u].copy()
    t = row[split.targets[u]]
    row[split.history[u]] = -np.inf
    row[0] = -np.inf
    row[split.targets[u]] = t
    assert ranks[0][u] == 1 + (row > t).sum() + (row == t).sum() - 1


def test_vmapped_rank_fn_ranks_each_model_as_alone():
  """Several models' params stacked on a leading axis, shared constants: one program gives each
  model's ranks (`[S, users]`), whatever the chunk."""
  rng = np.random.default_rng(1)
  split = _random_split(rng)
  tables = [jnp.asarray(rng.normal(size=(51, 8)).round(1), jnp.float32) for _ in range(3)]
  shift = jnp.asarray(rng.normal(size=(51,)).round(1), jnp.float32)

  def score(v, ids, users):
    return v["params"][ids].sum(1) @ v["params"].T + v["shift"]

  alone = [evaluate_ranks(make_rank_fn(score), {"params": t, "shift": shift}, split, 16) for t in tables]
  stacked = {"params": jnp.stack(tables), "shift": shift}
  for chunk in (5, 16):
    together = evaluate_ranks(make_rank_fn(score, {"params": 0, "shift": None}), stacked, split, chunk)
    assert together.shape == (3, len(split))
    np.testing.assert_array_equal(together, np.stack(alone))
  assert not np.array_equal(alone[0], alone[1])


def test_padding_item_is_never_ranked_even_with_top_score():
  scores = jnp.array([[100.0, 1.0, 2.0]])
  assert int(ranks_from_scores(scores, jnp.array([2]), jnp.zeros((1, 1), jnp.int32))[0]) == 1


def test_duplicate_history_entries_are_removed_once():
  scores = jnp.array([[0.0, 0.9, 0.8, 0.5, 0.1]])
  # item 1 appears three times in the history, 2 twice: each is excluded exactly once
  r = ranks_from_scores(scores, jnp.array([3]), jnp.array([[1, 1, 2, 1, 2, 0]]))
  assert int(r[0]) == 1
