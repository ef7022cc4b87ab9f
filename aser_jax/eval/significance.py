"""Base-vs-Sens comparisons over seeds: relative gain and the paired two-sided t-test (ASER_SPEC §6)."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class Comparison:
  base_mean: float
  sens_mean: float
  gain: float  # relative: (sens - base) / base
  t: float
  p: float  # two-sided; nan with fewer than two seeds or zero variance of the differences

  def mark(self, alpha: float = 0.05) -> str:
    """'*' when Sens differs from Base at level `alpha`."""
    return "*" if np.isfinite(self.p) and self.p < alpha else ""


def paired_comparison(base: list[float], sens: list[float]) -> Comparison:
  """Pairs seed k of Base with seed k of Sens."""
  b, s = np.asarray(base, np.float64), np.asarray(sens, np.float64)
  if b.shape != s.shape or b.size == 0:
    raise ValueError(f"need the same non-zero number of Base and Sens seeds, got {b.size} and {s.size}")
  gain = (s.mean() - b.mean()) / b.mean() if b.mean() else float("nan")
  d = s - b
  if b.size < 2 or np.allclose(d, d[0]):
    t, p = float("nan"), float("nan")
  else:
    t, p = stats.ttest_rel(s, b)
  return Comparison(float(b.mean()), float(s.mean()), float(gain), float(t), float(p))


def tally(gains: list[float], paper_gains: list[float]) -> dict:
  """The paper's table-6 question of a set of Base-vs-Sens pairs: how many gain, by how much on
  average, beside the paper's gains on the pairs it reports (`paper_gains`, possibly fewer)."""
  ours, paper = np.asarray(gains, np.float64), np.asarray(paper_gains, np.float64)
  return {"better": int((ours > 0).sum()), "mean_gain": float(ours.mean()),
          "paper_pairs": int(paper.size), "paper_better": int((paper > 0).sum()),
          "paper_mean_gain": float(paper.mean()) if paper.size else float("nan")}


def group_metrics(ranks: np.ndarray, groups: dict[str, np.ndarray], k: int = 10) -> dict[str, dict[str, float]]:
  """HR@k and NDCG@k of the test users selected by each boolean mask of `groups`."""
  ranks = np.asarray(ranks, np.float64)
  out = {}
  for name, sel in groups.items():
    hit = ranks[sel] <= k
    out[name] = {
        "users": int(sel.sum()),
        f"HR@{k}": float(hit.mean()) if sel.any() else float("nan"),
        f"NDCG@{k}": float(np.where(hit, 1 / np.log2(ranks[sel] + 1), 0).mean()) if sel.any() else float("nan"),
    }
  return out


def cold_start_buckets(ranks: np.ndarray, target_counts: np.ndarray, k: int = 10,
                       edges=((1, 5), (6, 10), (11, 20))) -> dict[str, dict[str, float]]:
  """HR@k and NDCG@k of test users grouped by their target's training frequency."""
  return group_metrics(ranks, {f"{lo}-{hi}": (target_counts >= lo) & (target_counts <= hi) for lo, hi in edges}, k)


def facet_target_split(ranks: np.ndarray, target_active: np.ndarray, k: int = 10) -> dict[str, dict[str, float]]:
  """HR@k and NDCG@k of test users whose target has at least one active facet in the bank, and
  of the rest: a Sens gain that comes from the bank's content shows up in the first group."""
  target_active = np.asarray(target_active, bool)
  return group_metrics(ranks, {"active facet": target_active, "no active facet": ~target_active}, k)


def top_share(counts: np.ndarray, share: float = 0.2) -> np.ndarray:
  """Boolean mask of the `ceil(share · n)` rows with the largest counts (ties to the lower index):
  the Pareto "head" of users or items."""
  counts = np.asarray(counts)
  order = np.lexsort((np.arange(len(counts)), -counts))
  head = np.zeros(len(counts), bool)
  head[order[:int(np.ceil(share * len(counts)))]] = True
  return head


def head_tail_split(ranks: np.ndarray, user_counts: np.ndarray, target_B: np.ndarray, item_counts: np.ndarray,
                    k: int = 10, share: float = 0.2) -> dict[str, dict[str, float]]:
  """HR@k and NDCG@k of head and tail users (the `share` with the longest training histories, the
  rest) and of test users whose target is a head or tail item (the `share` of the catalogue with
  the most training interactions; `item_counts` [I+1], row 0 padding), as GRASP reports them."""
  users = top_share(user_counts, share)
  items = top_share(np.asarray(item_counts)[1:], share)[np.asarray(target_B) - 1]
  return group_metrics(ranks, {"head users": users, "tail users": ~users, "head items": items, "tail items": ~items}, k)
