"""Prints JSON: Base vs Sens (and GRASP, R2END) serving latency, queries/s and parameter counts (table 13 protocol).

  python experiments/bench_runtime.py --backbones=sasrec,bsarec --num_items=12101 --bank=runs/main/bank/bank.npz

Without --bank a random bank of --bank_dim (384) with 40% active facets stands in: latency does
not depend on the bank's values. Backbones run with the paper settings of --settings (Beauty by
default); DIFF reads --side_file, or a random stand-in attribute field of Beauty's shape.
"""

import json

import numpy as np
from absl import app, flags

from aser_jax import configs, provenance
from aser_jax.bank.aggregate import Bank
from aser_jax.bank.grasp import GraspTables, load_grasp_tables
from aser_jax.bank.io import load_bank
from aser_jax.cli import setup_logging
from aser_jax.eval.runtime import bench_base_vs_sens
from aser_jax.models import registry
from aser_jax.models.backbones.side import load_side, side_from_attributes

FLAGS = flags.FLAGS
flags.DEFINE_list("backbones", ["sasrec"], "Backbones to time.")
flags.DEFINE_integer("num_items", 12101, "Catalogue size when no --bank is given (Beauty: 12,101).")
flags.DEFINE_string("bank", None, "Bank (Orbax folder or .npz) to fuse; its item count sets the catalogue.")
flags.DEFINE_integer("bank_dim", 384, "Width of the stand-in random bank.")
flags.DEFINE_integer("batch", 128, "Queries per batch.")
flags.DEFINE_integer("warmup", 8, "Warm-up iterations.")
flags.DEFINE_integer("iters", 40, "Timed iterations.")
flags.DEFINE_string("settings", "beauty", "Dataset whose paper settings each backbone uses (see aser_jax/configs.py).")
flags.DEFINE_string("side_file", None, "Side information for DIFF (an S3-Rec item2attributes json or an item table).")
flags.DEFINE_string("grasp_tables", None, "Also time GRASP (bert4rec, gru4rec, sasrec) with these tables (grasp.npz of "
                    "build_grasp.py), or 'random' for random tables of Beauty's users and --bank_dim.")
flags.DEFINE_integer("grasp_users", 22363, "Users of the random GRASP tables (Beauty: 22,363).")
flags.DEFINE_string("r2end_encoder", None, "Also time R2END with this student encoder (all-minilm-l6-v2 or a HF "
                    "folder), once, beside the first backbone.")
flags.DEFINE_integer("r2end_tokens", 256, "Tokens of each R2END history text (MiniLM's limit is 256).")
flags.DEFINE_integer("r2end_proj_dim", 512, "R2END projection width (0: none).")


def _random_bank(num_items: int, dim: int) -> Bank:
  rng = np.random.default_rng(0)
  A = (rng.random((num_items + 1, 5)) < 0.4).astype(np.float32)
  A[0] = 0
  K = rng.normal(size=(num_items + 1, 5, dim)).astype(np.float32) * A[..., None]
  C = rng.random((num_items + 1, 5)).astype(np.float32) * A
  N = A.copy()
  Pi = np.full((num_items + 1, 5, 3), 1 / 3, np.float32)
  Pi[0] = 0
  return Bank(K, C, Pi, N, A)


def _side(num_items: int):
  """--side_file, else one random attribute field: 1–6 ids per item out of 637 (Beauty's S3-Rec shape)."""
  if FLAGS.side_file:
    return load_side(FLAGS.side_file, num_items)
  rng = np.random.default_rng(0)
  return side_from_attributes({i: list(rng.choice(637, rng.integers(1, 7), replace=False) + 1)
                               for i in range(1, num_items + 1)}, num_items)


def _grasp(num_items: int):
  """--grasp_tables: the file, random tables of its shape ('random'), or None."""
  if FLAGS.grasp_tables is None:
    return None
  if FLAGS.grasp_tables != "random":
    return load_grasp_tables(FLAGS.grasp_tables)
  rng = np.random.default_rng(0)
  f = lambda n: rng.normal(size=(n, FLAGS.bank_dim)).astype(np.float32)
  I, I_bar = f(num_items + 1), f(num_items + 1)
  I[0] = I_bar[0] = 0  # padding
  return GraspTables(f(FLAGS.grasp_users), f(FLAGS.grasp_users), I, I_bar)


def main(argv):
  del argv
  setup_logging()
  bank = load_bank(FLAGS.bank)[0] if FLAGS.bank else _random_bank(FLAGS.num_items, FLAGS.bank_dim)
  grasp = _grasp(bank.num_items)
  if grasp is not None and grasp.num_items != bank.num_items:
    raise app.UsageError(f"--grasp_tables has {grasp.num_items} items, the bank {bank.num_items}")
  r2end = None
  if FLAGS.r2end_encoder:
    from aser_jax.models.encoders import load_encoder

    r2end = (load_encoder(FLAGS.r2end_encoder), FLAGS.r2end_tokens, FLAGS.r2end_proj_dim)
  out = []
  for n, backbone in enumerate(FLAGS.backbones):
    side = _side(bank.num_items) if registry.needs_side(backbone) else None
    kw = dict(batch=FLAGS.batch, warmup=FLAGS.warmup, iters=FLAGS.iters, side=side,
              grasp=grasp if registry.takes_grasp(backbone) else None, r2end=r2end if n == 0 else None,
              **configs.paper_settings(backbone, FLAGS.settings)[0])
    out.append(bench_base_vs_sens(backbone, bank.num_items, bank, **kw))
  print(json.dumps({"runs": out, "environment": provenance.environment()}, indent=2))


if __name__ == "__main__":
  app.run(main)
