"""The training benchmark times the program a run trains (no timing is asserted here)."""

import csv
import json
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("backbone,channel", [("sasrec", None), ("sasrec", "bank"), ("bert4rec", "grasp")])
def test_bench_trains_what_a_run_trains_in_its_first_epoch(tiny_data_file, tmp_path, backbone, channel):
  """By default the bench's compile step plus its timed steps are exactly seed 0's first epoch,
  so its validation metric equals the run's first-epoch row of log.csv, Base, Sens and GRASP
  alike; the vmapped form (two seeds) validates seed 0 and gives the same figure."""
  from test_grasp_model import _tables
  from test_sensory_sasrec import _bank

  from aser_jax import configs
  from aser_jax.data.sequences import read_sequences
  from aser_jax.train.bench import bench_train
  from aser_jax.train.loop import TrainConfig, train_and_evaluate

  data = read_sequences(tiny_data_file)
  bank = _bank(data.num_items) if channel == "bank" else None
  grasp = _tables(data.num_users, data.num_items) if channel == "grasp" else None
  model_kw, train_kw = configs.paper_settings(backbone, data.name)
  model_kw["hidden"] = 16
  run = train_and_evaluate(data, backbone, tmp_path / "run",
                           TrainConfig(**{**train_kw, "epochs": 1, "batch_size": 64, "progress": False}),
                           bank=bank, grasp=grasp, **model_kw)
  with open(tmp_path / "run" / "log.csv") as f:
    first = float(next(csv.DictReader(f))["valid_NDCG@10"])
  for seeds in (1, 2):
    out = bench_train(data, backbone, batch_size=64, eval_repeats=1, bank=bank, grasp=grasp,
                      model_overrides={"hidden": 16}, seeds=seeds)
    assert out["timed_steps"] == out["steps_per_epoch"] - 1 and out["seeds"] == seeds
    assert (out["bank"], out["grasp"]) == (run["bank"], run["grasp"])
    assert (out["bank"] is None) == (channel != "bank") and (out["grasp"] is None) == (channel != "grasp")
    assert out["valid_NDCG@10_after_steps"] == pytest.approx(first, abs=2e-6)
    assert {"seconds_per_step", "seconds_per_validation"} <= set(out)


def test_bench_train_binary_prints_json_for_a_sens_model(tiny_data_file, tmp_path):
  from test_sensory_sasrec import _bank

  from aser_jax.bank.io import export_npz
  from aser_jax.data.sequences import read_sequences

  bank_path = tmp_path / "bank.npz"
  export_npz(bank_path, _bank(read_sequences(tiny_data_file).num_items), {})
  proc = subprocess.run([sys.executable, "experiments/bench_train.py", f"--data={tiny_data_file}", "--steps=2",
                         f"--sensory_bank={bank_path}", "--override=hidden=16", "--batch_size=64"],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout)
  assert out["timed_steps"] == 2 and len(out["bank"]) == 16 and out["train_samples"] > 0
