"""Seeds trained together (one vmapped step) give each seed the run it would have had alone."""

import csv
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

# lr 0.01 and patience 1: on the tiny catalogue seed 0 stops after 5 epochs and seed 1 after 6,
# so the batch of seeds shrinks mid-run
CFG = dict(epochs=12, batch_size=64, patience=1, progress=False, lr=0.01)


def _log(workdir):
  with open(workdir / "log.csv") as f:
    return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
  """Seeds 0 and 1 trained as runs of their own."""
  from aser_jax.data.presets import load_sequences
  from aser_jax.data.sequences import write_sequences
  from aser_jax.data.synthetic import synthetic_dataset
  from aser_jax.train.loop import TrainConfig, train_and_evaluate

  root = tmp_path_factory.mktemp("alone")
  write_sequences(synthetic_dataset(num_users=240, num_items=80, seed=3)[0], root / "tiny.txt")
  data = load_sequences(str(root / "tiny.txt"), None)
  for seed in (0, 1):
    train_and_evaluate(data, "sasrec", root / f"s{seed}", TrainConfig(**CFG, seed=seed), hidden=16)
  return root, data


def _same_run(a, b):
  """Two run folders hold the same run: per-epoch losses, validation metrics, test ranks."""
  la, lb = _log(a), _log(b)
  assert [r["epoch"] for r in la] == [r["epoch"] for r in lb]
  np.testing.assert_allclose([float(r["loss"]) for r in la], [float(r["loss"]) for r in lb], rtol=1e-5)
  for ra, rb in zip(la, lb):
    for k in ra:
      if k.startswith("valid_"):
        assert float(rb[k]) == pytest.approx(float(ra[k]), abs=2e-6), (a, ra["epoch"], k)
  np.testing.assert_array_equal(np.load(a / "test_ranks.npy"), np.load(b / "test_ranks.npy"))
  ma, mb = (json.loads((w / "metrics.json").read_text()) for w in (a, b))
  assert (ma["epochs"], ma["best_epoch"], ma["stopped_by"]) == (mb["epochs"], mb["best_epoch"], mb["stopped_by"])
  assert ma["test"] == pytest.approx(mb["test"], abs=1e-9)


def test_seeds_together_match_runs_of_their_own(alone, tmp_path):
  from aser_jax.train.loop import TrainConfig
  from aser_jax.train.seeds import train_seeds

  root, data = alone
  out = train_seeds(data, "sasrec", [tmp_path / "s0", tmp_path / "s1"], TrainConfig(**CFG), [0, 1], hidden=16)
  assert [m["train_config"]["seed"] for m in out] == [0, 1] and out[0]["seeds_together"] == [0, 1]
  assert [m["epochs"] for m in out] == [5, 6]  # seed 0 left the batch an epoch before seed 1
  for seed in (0, 1):
    _same_run(root / f"s{seed}", tmp_path / f"s{seed}")


def test_a_seed_started_together_resumes_alone(alone, tmp_path):
  """Two epochs of seeds 0 and 1 through the binary on four devices, then seed 1 finished on its
  own in-process: its folder holds the same run as seed 1 trained alone from the start."""
  from aser_jax.train.loop import TrainConfig, train_and_evaluate

  root, data = alone
  cmd = [sys.executable, str(REPO / "experiments" / "train_recommender.py"), f"--data={root / 'tiny.txt'}",
         f"--workdir={tmp_path / 's{seed}'}", "--seeds=0,1", "--epochs=2", "--hidden=16", "--batch_size=64",
         "--patience=1", "--lr=0.01", "--progress=false", "--paper_settings=false"]
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
  assert out.stdout.count('"seed"') == 2
  two = json.loads((tmp_path / "s1" / "metrics.json").read_text())
  assert two["epochs"] == 2 and two["devices"] == 4 and two["stopped_by"] == "epochs"
  train_and_evaluate(data, "sasrec", tmp_path / "s1", TrainConfig(**CFG, seed=1), hidden=16)
  _same_run(root / "s1", tmp_path / "s1")


def test_seeds_need_distinct_seeds_and_folders(tmp_path):
  from aser_jax.data.synthetic import synthetic_dataset
  from aser_jax.train.loop import TrainConfig
  from aser_jax.train.run import run_recommender_seeds
  from aser_jax.train.seeds import train_seeds

  data = synthetic_dataset(num_users=40, num_items=80, seed=3)[0]
  cfg = TrainConfig(**CFG)
  with pytest.raises(ValueError, match="distinct seed"):
    train_seeds(data, "sasrec", [tmp_path / "a", tmp_path / "b"], cfg, [3, 3])
  with pytest.raises(ValueError, match="share a workdir"):
    train_seeds(data, "sasrec", [tmp_path / "a", tmp_path / "a"], cfg, [1, 2])
  with pytest.raises(ValueError, match="must contain"):
    run_recommender_seeds(seeds=[0, 1], workdir=str(tmp_path / "x"), backbone="sasrec", data="synthetic",
                          data_dir=None)
  assert not list(tmp_path.iterdir())  # nothing was written


def test_seeds_together_with_a_bank_match_a_run_of_its_own(tiny_data_file, tmp_path):
  """Sens: the frozen bank is one constant shared by the seeds, not split along their axis."""
  from test_sensory_sasrec import _bank

  from aser_jax.data.sequences import read_sequences
  from aser_jax.train.loop import TrainConfig, train_and_evaluate
  from aser_jax.train.seeds import train_seeds

  data = read_sequences(tiny_data_file)
  bank = _bank(data.num_items)
  cfg = TrainConfig(epochs=2, batch_size=64, progress=False)
  together = train_seeds(data, "sasrec", [tmp_path / "t0", tmp_path / "t1"], cfg, [0, 1], bank=bank, hidden=16)
  alone = train_and_evaluate(data, "sasrec", tmp_path / "a1", dataclasses.replace(cfg, seed=1),
                             bank=bank, hidden=16)
  assert together[1]["bank"] == alone["bank"] and together[0]["sensory_alpha"] != together[1]["sensory_alpha"]
  assert together[1]["sensory_alpha"] == pytest.approx(alone["sensory_alpha"], rel=1e-5)
  _same_run(tmp_path / "a1", tmp_path / "t1")


def test_seeds_together_with_grasp_tables_match_a_run_of_its_own(tiny_data_file, tmp_path):
  """GRASP: the tables are shared constants and each seed's batches carry their own users."""
  from test_grasp_model import _tables

  from aser_jax.data.sequences import read_sequences
  from aser_jax.train.loop import TrainConfig, train_and_evaluate
  from aser_jax.train.seeds import train_seeds

  data = read_sequences(tiny_data_file)
  tables = _tables(data.num_users, data.num_items, seed=2)
  cfg = TrainConfig(epochs=2, batch_size=64, progress=False)
  together = train_seeds(data, "gru4rec", [tmp_path / "t0", tmp_path / "t1"], cfg, [0, 1], grasp=tables, hidden=16)
  alone = train_and_evaluate(data, "gru4rec", tmp_path / "a1", dataclasses.replace(cfg, seed=1), grasp=tables,
                             hidden=16)
  assert together[1]["grasp"] == alone["grasp"] is not None
  _same_run(tmp_path / "a1", tmp_path / "t1")


def test_jobs_that_differ_only_in_their_seed_are_grouped():
  from aser_jax.train.run import _group_seeds

  def job(backbone, seed, bank=None):
    return dict(backbone=backbone, data="beauty", data_dir="d", sensory_bank=bank,
                workdir=f"out/runs/{backbone}_{'sens-0a1b' if bank else 'base'}_seed{seed}",
                train_overrides={"seed": seed, "progress": False})

  jobs = [job("sasrec", 0), job("sasrec", 0, "b.npz"), job("sasrec", 10), job("sasrec", 10, "b.npz"),
          job("bsarec", 1), job("sasrec", 1)]
  units, order = _group_seeds(jobs)
  assert order == [[0, 2, 5], [1, 3], [4]]
  assert [u["seeds"] for u in units] == [[0, 10, 1], [0, 10], [1]]
  assert units[0]["workdir"] == "out/runs/sasrec_base_seed{seed}" and units[0]["train_overrides"] == {"progress": False}
  assert units[1]["workdir"] == "out/runs/sasrec_sens-0a1b_seed{seed}" and units[1]["sensory_bank"] == "b.npz"
  assert units[0]["workdir_list"] == [jobs[0]["workdir"], jobs[2]["workdir"], jobs[5]["workdir"]]
  dims = [{**job("sasrec", s), "workdir": f"out/h_seed{s}_dim128"} for s in (1, 2)]  # seed digits in a number
  (unit,), _ = _group_seeds(dims)
  assert unit["workdir"] == "out/h_seed{seed}_dim128" and unit["seeds"] == [1, 2]
  digests = [{**job("sasrec", s), "workdir": f"out/sens-1a2b_seed{s}"} for s in (1, 2)]  # seeds' digits in a digest
  (unit,), _ = _group_seeds(digests)
  assert unit["workdir"] == "out/sens-1a2b_seed{seed}"
  with pytest.raises(ValueError, match="sets no seed"):
    _group_seeds([{**jobs[0], "train_overrides": {}}])
  with pytest.raises(ValueError, match="does not name its seed"):
    _group_seeds([{**jobs[0], "workdir": "out/run"}])


def test_run_recommenders_gives_seeds_together_the_results_in_job_order(tiny_data_file, tmp_path):
  from aser_jax.train.run import run_recommenders

  jobs = [dict(backbone="sasrec", data=str(tiny_data_file), data_dir=None, workdir=str(tmp_path / f"s{seed}"),
               use_paper_settings=False, model_overrides={"hidden": 16},
               train_overrides={"seed": seed, "epochs": 1, "batch_size": 64, "progress": False})
          for seed in (1, 0)]
  out = run_recommenders(jobs, seeds_together=True)
  assert [m["train_config"]["seed"] for m in out] == [1, 0] and out[0]["seeds_together"] == [1, 0]
  for seed in (0, 1):
    assert json.loads((tmp_path / f"s{seed}" / "metrics.json").read_text())["train_config"]["seed"] == seed
