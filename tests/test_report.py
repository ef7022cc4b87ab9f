import numpy as np
import pytest
from scipy import stats

from aser_jax.eval.paper_tables import table6_reference
from aser_jax.eval.report import cold_start_report, table6
from aser_jax.eval.significance import (cold_start_buckets, facet_target_split, head_tail_split, paired_comparison,
                                       top_share)


def test_paired_t_test_by_hand():
  base, sens = [0.10, 0.12, 0.11], [0.12, 0.13, 0.125]
  c = paired_comparison(base, sens)
  d = np.array(sens) - np.array(base)
  t = d.mean() / (d.std(ddof=1) / np.sqrt(3))
  assert c.t == pytest.approx(t)
  assert c.p == pytest.approx(2 * stats.t.sf(abs(t), df=2))
  assert c.gain == pytest.approx((np.mean(sens) - np.mean(base)) / np.mean(base))


def test_single_seed_has_no_p_value_and_no_mark():
  c = paired_comparison([0.1], [0.2])
  assert np.isnan(c.p) and c.mark() == ""
  with pytest.raises(ValueError):
    paired_comparison([0.1, 0.2], [0.1])


def test_cold_start_buckets_by_hand():
  ranks = np.array([1, 20, 3, 11, 2, 50])
  counts = np.array([1, 5, 7, 10, 15, 30])
  b = cold_start_buckets(ranks, counts)
  assert b["1-5"] == {"users": 2, "HR@10": 0.5, "NDCG@10": pytest.approx(0.5)}
  assert b["6-10"]["users"] == 2 and b["6-10"]["HR@10"] == 0.5
  assert b["11-20"]["NDCG@10"] == pytest.approx(1 / np.log2(3))


def test_head_tail_split_by_hand():
  """Five users, ten items: the head is ceil(20%) of each, ties to the lower index."""
  ranks = np.array([1, 20, 3, 11, 2])
  user_counts = np.array([4, 9, 9, 1, 2])  # users 1 and 2 tie for the top: user 1 is the head
  item_counts = np.array([0, 5, 1, 8, 0, 0, 8, 0, 0, 0, 2])  # row 0 padding; items 3 and 6 lead, ceil(2) = both
  targets = np.array([3, 1, 6, 10, 3])
  assert top_share(user_counts).tolist() == [False, True, False, False, False]
  s = head_tail_split(ranks, user_counts, targets, item_counts)
  assert s["head users"] == {"users": 1, "HR@10": 0.0, "NDCG@10": 0.0}
  assert s["tail users"]["users"] == 4 and s["tail users"]["HR@10"] == 0.75
  assert s["head items"] == {"users": 3, "HR@10": 1.0, "NDCG@10": pytest.approx((1 + 0.5 + 1 / np.log2(3)) / 3)}
  assert s["tail items"] == {"users": 2, "HR@10": 0.0, "NDCG@10": 0.0}


def test_facet_target_split_by_hand():
  ranks = np.array([1, 20, 3, 11, 2])
  split = facet_target_split(ranks, np.array([True, True, False, False, False]))
  assert split["active facet"] == {"users": 2, "HR@10": 0.5, "NDCG@10": pytest.approx(0.5)}
  assert split["no active facet"]["users"] == 3 and split["no active facet"]["HR@10"] == pytest.approx(2 / 3)
  assert split["no active facet"]["NDCG@10"] == pytest.approx((0.5 + 1 / np.log2(3)) / 3)


def test_table6_files(tmp_path):
  runs = {("beauty", "sasrec"): {"base": [{"HR@10": 0.05, "NDCG@10": 0.03}] * 2,
                                 "sens": [{"HR@10": 0.06, "NDCG@10": 0.031, "sensory_alpha": 0.02},
                                          {"HR@10": 0.061, "NDCG@10": 0.033, "sensory_alpha": 0.04}]},
          ("grocery", "sasrec"): {"base": [{"HR@10": 0.07, "NDCG@10": 0.04}]}}
  md = table6(runs, tmp_path).read_text()
  assert "| beauty | sasrec | Sens (n=2) | 0.0605" in md and "+21.0%" in md
  assert "(+6.7%) | 0.030 |" in md  # NDCG gain, then the mean learned α
  assert "| grocery | sasrec | Base (n=1) | 0.0700 | 0.0400 |" in md and md.count("| Sens (") == 1
  assert (tmp_path / "table6.png").stat().st_size > 1000
  assert (tmp_path / "table6.csv").read_text().count("\n") == 4
  b, s = table6_reference("beauty", "sasrec", "base"), table6_reference("beauty", "sasrec", "sens")
  assert (f"HR@10: Sens > Base in 1 of 1 pairs, mean gain +21.0% (the paper on the 1 it reports: 1 better, "
          f"{s['HR@10'] / b['HR@10'] - 1:+.1%})") in md
  assert "NDCG@10: Sens > Base in 1 of 1 pairs, mean gain +6.7%" in md
  runs[("synthetic", "sasrec")] = {"base": [{"HR@10": 0.5, "NDCG@10": 0.3}], "sens": [{"HR@10": 0.4, "NDCG@10": 0.3}]}
  md = table6(runs, tmp_path).read_text()  # no paper row: counted, not compared
  assert "HR@10: Sens > Base in 1 of 2 pairs, mean gain +0.5% (the paper on the 1 it reports" in md
  assert "NDCG@10: Sens > Base in 1 of 2 pairs" in md  # an unchanged metric is no gain


def test_cold_start_report(tmp_path):
  b = {"1-5": {"users": 3, "HR@10": 0.2, "NDCG@10": 0.1}, "6-10": {"users": 4, "HR@10": 0.4, "NDCG@10": 0.3}}
  b2 = {"1-5": {"users": 3, "HR@10": 0.3, "NDCG@10": 0.2}, "6-10": {"users": 4, "HR@10": 0.4, "NDCG@10": 0.5}}
  md = cold_start_report({("beauty", "sasrec"): {"base": [b], "sens": [b, b2]}}, tmp_path).read_text()
  assert "| beauty | sasrec | sens | 1-5 | 3 | 0.1500 |" in md and "| beauty | sasrec | base | 6-10 | 4 | 0.3000 |" in md
  assert (tmp_path / "cold_start.png").stat().st_size > 1000
