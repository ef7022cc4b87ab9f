import numpy as np

from aser_jax.bank.aggregate import Bank
from aser_jax.eval.runtime import bench_base_vs_sens


def test_runtime_counts_fusion_parameters_exactly():
  n, d_b, D = 30, 8, 16
  A = np.zeros((n + 1, 5), np.float32)
  A[1:, 0] = 1
  bank = Bank(np.ones((n + 1, 5, d_b), np.float32) * A[..., None], A * 0.9, np.full((n + 1, 5, 3), 1 / 3, np.float32) * (np.arange(n + 1) > 0)[:, None, None],
              A.copy(), A)
  res = bench_base_vs_sens("sasrec", n, bank, batch=4, warmup=1, iters=3, hidden=D, max_len=6)
  base, sens = res["base"], res["sens"]
  assert (base["variant"], sens["variant"], base["iters"], sens["iters"]) == ("Base", "Sens", 3, 3)
  # Wp (d_b x D) + bp (D) + five facet offsets (5 x D) + the blend logit
  assert sens["fusion_params"] == d_b * D + D + 5 * D + 1
  assert sens["learned_params"] - base["learned_params"] == sens["fusion_params"]
  assert base["fusion_params"] == 0 and {"ms_per_query", "queries_per_s"} <= set(base) & set(sens)


def test_runtime_of_diff_with_side_information():
  from aser_jax.models.backbones.side import side_from_attributes

  n, d_b, D = 30, 8, 16
  A = np.zeros((n + 1, 5), np.float32)
  A[1:, 1] = 1
  bank = Bank(np.ones((n + 1, 5, d_b), np.float32) * A[..., None], A * 0.5,
              np.full((n + 1, 5, 3), 1 / 3, np.float32) * (np.arange(n + 1) > 0)[:, None, None], A.copy(), A)
  side = side_from_attributes({i: [1 + i % 4, 5 + i % 3] for i in range(1, n + 1)}, n)
  res = bench_base_vs_sens("diff", n, bank, batch=4, warmup=1, iters=2, side=side, hidden=D, max_len=6)
  base, sens = res["base"], res["sens"]
  assert sens["learned_params"] - base["learned_params"] == sens["fusion_params"] == d_b * D + D + 5 * D + 1


def test_runtime_of_grasp_counts_its_parameters_and_times_the_scores_it_serves():
  """GRASP replaces the ID table by two projections and the MLP, and joins the timed rotation."""
  from test_grasp_model import _tables

  n, E, D, users = 30, 12, 16, 9
  tables = _tables(users, n)
  res = bench_base_vs_sens("gru4rec", n, None, batch=4, warmup=1, iters=2, grasp=tables, hidden=D, max_len=6)
  base, grasp = res["base"], res["grasp"]
  assert (grasp["variant"], grasp["iters"], "sens" in res) == ("GRASP", 2, False)
  # user and item projections (E x D each), W1 (4D x D) + b1, W2 (D x D) + b2
  assert grasp["grasp_params"] == 2 * E * D + 4 * D * D + D + D * D + D
  assert grasp["learned_params"] - base["learned_params"] == grasp["grasp_params"] - (n + 1) * D  # no ID table
  assert res["grasp_over_base_latency"] == grasp["ms_per_query"] / base["ms_per_query"]


def test_runtime_times_r2end_beside_base_and_counts_its_parameters():
  import jax
  from tokenizers import Tokenizer, models

  from aser_jax.models.encoders import BertConfig, BertEncoder, Encoder, TextTokenizer
  from aser_jax.models.encoders.bert import init_params

  module = BertEncoder(BertConfig(vocab_size=40, hidden=8, layers=1, heads=2, intermediate=16, max_position=32))
  enc_params = init_params(module, jax.random.key(0))
  tok = TextTokenizer(Tokenizer(models.WordLevel({f"w{i}": i for i in range(40)}, unk_token="w1")), 32, 0)
  enc = Encoder("tiny", module, enc_params, tok)
  res = bench_base_vs_sens("sasrec", 30, None, batch=4, warmup=1, iters=3, r2end=(enc, 12, 6), hidden=16, max_len=6)
  r2 = res["r2end"]
  n_enc = int(sum(x.size for x in jax.tree.leaves(enc_params)))
  assert (r2["variant"], r2["iters"], r2["tokens"], r2["projection_params"]) == ("R2END", 3, 12, 8 * 6 + 6)
  assert r2["learned_params"] == n_enc + 8 * 6 + 6
  assert res["r2end_over_base_latency"] == r2["ms_per_query"] / res["base"]["ms_per_query"]
