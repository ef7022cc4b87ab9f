"""Full-ranking evaluation (ASER_SPEC §6).

Every real item is a candidate; the padding id 0 and the user's history are scored −inf, the
target keeps its score even when it also appears in the history; ties are pessimistic:
`rank = 1 + #{scores > target} + #{other scores == target}`. Users are processed in chunks of a
fixed size (the last chunk padded), so memory is bounded by `chunk x num_items` and a
catalogue of a million items fits; each user's rank depends on that user's row alone, so the
metrics do not depend on the chunk size.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from aser_jax.data.splits import EvalSplit

KS = (5, 10, 20)
ScoreFn = Callable[..., jax.Array]  # (params, input_ids [B, L], users [B]) -> scores [B, I + 1]


def ranks_from_scores(scores_BxN: jax.Array, target_B: jax.Array, history_BxH: jax.Array) -> jax.Array:
  """1-based pessimistic rank of each target among all items but padding and history.

  Counts over the whole row, then removes the padding item and each distinct history item
  (other than the target) from the counts: no masked copy of the score matrix is made.
  """
  b = jnp.arange(scores_BxN.shape[0])
  t_B = scores_BxN[b, target_B]
  greater = jnp.sum(scores_BxN > t_B[:, None], axis=1)
  equal = jnp.sum(scores_BxN == t_B[:, None], axis=1)  # counts the target itself once
  hist = jnp.sort(history_BxH, axis=1)
  first = jnp.concatenate([jnp.ones_like(hist[:, :1], bool), hist[:, 1:] != hist[:, :-1]], axis=1)
  drop = first & (hist > 0) & (hist != target_B[:, None])
  h_scores = jnp.take_along_axis(scores_BxN, hist, axis=1)
  greater -= jnp.sum(drop & (h_scores > t_B[:, None]), axis=1)
  equal -= jnp.sum(drop & (h_scores == t_B[:, None]), axis=1)
  pad = scores_BxN[:, 0]
  greater -= (pad > t_B).astype(greater.dtype)
  equal -= (pad == t_B).astype(equal.dtype)
  return (greater + equal).astype(jnp.int32)


def metrics_from_ranks(ranks: np.ndarray, ks=KS) -> dict[str, float]:
  """HR@K = 1[rank <= K]; NDCG@K = 1/log2(rank + 1) if rank <= K else 0; means over users."""
  ranks = np.asarray(ranks, np.float64)
  out = {}
  for k in ks:
    hit = ranks <= k
    out[f"HR@{k}"] = float(hit.mean())
    out[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).mean())
  return out


def default_chunk(num_items: int, budget_bytes: int = 64 << 20) -> int:
  """Users per chunk so one chunk's float32 score matrix stays within `budget_bytes`."""
  return int(max(8, min(4096, budget_bytes // (4 * (num_items + 1)))))


def make_rank_fn(score_fn: ScoreFn, in_axes=None) -> Callable:
  """Jits `score -> rank` once; the caller passes fixed-shape chunks. With `in_axes` (a prefix
  of the params' tree, e.g. `{"params": 0, "bank": None}`) the function is vmapped over the
  params' leading axis, the chunk shared: one program ranks the chunk for several models
  (`[S, chunk]` ranks)."""

  def rank_chunk(params, input_ids, target, history, users):
    return ranks_from_scores(score_fn(params, input_ids, users), target, history)

  if in_axes is not None:
    rank_chunk = jax.vmap(rank_chunk, in_axes=(in_axes, None, None, None, None))
  return jax.jit(rank_chunk)


def evaluate_ranks(rank_fn, params, split: EvalSplit, chunk: int, progress: bool = False,
                   desc: str = "eval", put=None) -> np.ndarray:
  """Per-user ranks for a whole split (`[..., users]`: a vmapped `rank_fn` keeps its leading
  axes); `put` optionally places each chunk on devices."""
  n = len(split)
  out = None
  starts = range(0, n, chunk)
  if progress:
    from tqdm import tqdm
    starts = tqdm(starts, desc=desc, unit="chunk", leave=False)
  for s in starts:
    e = min(n, s + chunk)
    pad = chunk - (e - s)
    arrays = [split.inputs[s:e], split.targets[s:e], split.history[s:e], split.users[s:e]]
    if pad:
      arrays = [np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for a in arrays]
    if put is not None:
      arrays = put(arrays)
    ranks = np.asarray(rank_fn(params, *arrays))
    if out is None:
      out = np.empty(ranks.shape[:-1] + (n,), np.int32)
    out[..., s:e] = ranks[..., :e - s]
  return out
