"""End-to-end training: metrics.json, resume after SIGKILL, and 1 vs 4 devices agreeing."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO

BIN = [sys.executable, str(REPO / "experiments" / "train_recommender.py")]
ARGS = ["--hidden=16", "--batch_size=64", "--patience=100", "--progress=false", "--seed=7"]


def _run(data, workdir, epochs, env=None, check=True, extra=()):
  cmd = BIN + [f"--data={data}", f"--workdir={workdir}", f"--epochs={epochs}"] + ARGS + list(extra)  # extra wins
  return subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=check)


def _metrics(workdir):
  return json.loads((workdir / "metrics.json").read_text())


def _log(workdir):
  with open(workdir / "log.csv") as f:
    return list(csv.DictReader(f))


def test_training_learns_and_writes_outputs(tiny_data_file, tmp_path):
  wd = tmp_path / "run"
  out = _run(tiny_data_file, wd, epochs=6)
  m = _metrics(wd)
  assert set(m["test"]) == {f"{a}@{k}" for a in ("HR", "NDCG") for k in (5, 10, 20)}
  assert m["epochs"] == 6 and "seconds_per_epoch" in m and m["synthetic"] is False
  assert m["stopped_early"] is False and m["stopped_by"] == "epochs"  # the cap of 6 (patience 100)
  log = _log(wd)
  assert [int(r["epoch"]) for r in log] == [1, 2, 3, 4, 5, 6]
  seconds = [float(r["seconds"]) for r in log]
  assert m["seconds_per_epoch"] == pytest.approx(np.mean(seconds), abs=2e-3)
  assert m["seconds_per_epoch_median"] == pytest.approx(np.median(seconds), abs=2e-3)
  assert float(log[-1]["loss"]) < float(log[0]["loss"])
  # 80 items, 10 of them excluded as history on average: a random ranking gives HR@10 about 1/7
  assert m["test"]["HR@10"] > 0.3, m["test"]
  assert (wd / "best_params").is_dir() and np.load(wd / "test_ranks.npy").shape == (240,)
  assert '"test"' in out.stdout


def test_kill_and_resume_gives_the_same_result(tiny_data_file, tmp_path):
  straight = tmp_path / "straight"
  _run(tiny_data_file, straight, epochs=4)

  resumed = tmp_path / "resumed"
  cmd = BIN + [f"--data={tiny_data_file}", f"--workdir={resumed}", "--epochs=4"] + ARGS
  proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 900  # a hang guard only: a busy machine may be slow
  while not (resumed / "checkpoints" / "2").exists():
    assert proc.poll() is None, "run ended before it could be killed"
    if time.time() > deadline:
      proc.kill()
      pytest.fail("no checkpoint 2 after 900 s: the run hung")
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (resumed / "metrics.json").exists()
  _run(tiny_data_file, resumed, epochs=4)
  a, b = _metrics(straight), _metrics(resumed)
  assert a["test"] == b["test"] and a["valid"] == b["valid"] and a["best_epoch"] == b["best_epoch"]
  assert [r["loss"] for r in _log(straight)] == [r["loss"] for r in _log(resumed)]


def test_one_and_four_devices_agree(tiny_data_file, tmp_path):
  one, four = tmp_path / "one", tmp_path / "four"
  _run(tiny_data_file, one, epochs=2, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=1"})
  _run(tiny_data_file, four, epochs=2, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
  a, b = _metrics(one), _metrics(four)
  assert (a["devices"], b["devices"]) == (1, 4)
  np.testing.assert_allclose([float(r["loss"]) for r in _log(one)], [float(r["loss"]) for r in _log(four)],
                             rtol=1e-5)
  for split in ("valid", "test"):
    for k, v in a[split].items():
      assert b[split][k] == pytest.approx(v, abs=1e-9), (split, k)


def test_a_lower_cap_on_resume_tests_the_best_epoch_so_far_without_training(tiny_data_file, tmp_path):
  wd = tmp_path / "run"
  _run(tiny_data_file, wd, epochs=2)
  first = _metrics(wd)
  (wd / "metrics.json").unlink()  # as if a time limit had stopped it after its second epoch
  _run(tiny_data_file, wd, epochs=1)
  again = _metrics(wd)
  assert again["epochs"] == 2 and again["stopped_early"] is False and len(_log(wd)) == 2
  assert again["test"] == first["test"] and again["best_epoch"] == first["best_epoch"]


def test_max_minutes_stops_after_an_epoch_and_the_same_command_continues(tiny_data_file, tmp_path):
  wd = tmp_path / "run"
  _run(tiny_data_file, wd, epochs=3, extra=["--max_minutes=0.0001"])
  m = _metrics(wd)
  assert m["epochs"] == 1 and m["stopped_by"] == "max_minutes" and m["stopped_early"] is False
  assert m["train_config"]["max_minutes"] == 0.0001
  _run(tiny_data_file, wd, epochs=3)  # no budget now: it resumes and runs to the cap
  m = _metrics(wd)
  assert m["epochs"] == 3 and m["stopped_by"] == "epochs" and [int(r["epoch"]) for r in _log(wd)] == [1, 2, 3]


def test_patience_ends_a_run_and_says_so(tiny_data_file, tmp_path):
  wd = tmp_path / "run"
  _run(tiny_data_file, wd, epochs=60, extra=["--patience=1"])
  m = _metrics(wd)
  assert m["stopped_early"] is True and m["stopped_by"] == "patience" and m["epochs"] < 60
  assert m["epochs"] - m["best_epoch"] == 1  # one epoch without a better validation score
  valid = [float(r["valid_NDCG@10"]) for r in _log(wd)]
  assert max(valid) == valid[m["best_epoch"] - 1] and valid[-1] <= valid[-2]


def test_bad_backbone_and_bad_data_fail_clearly(tiny_data_file, tmp_path):
  bad = tmp_path / "bad.txt"
  bad.write_text("1 1 2 3\n2 5 oops 7\n")
  out = _run(bad, tmp_path / "w", epochs=1, check=False)
  assert out.returncode != 0 and "bad.txt:2 [item 2]: expected an integer id, got 'oops'" in out.stderr
  out = _run(tiny_data_file, tmp_path / "w2", epochs=1, check=False, extra=["--backbone=nope"])
  assert out.returncode != 0 and "unknown backbone 'nope'" in out.stderr and "sasrec" in out.stderr
  assert not (tmp_path / "w2" / "checkpoints").exists()  # refused before anything was written


def test_resume_refuses_other_settings_but_allows_more_epochs(tiny_data_file, tmp_path):
  wd = tmp_path / "run"
  _run(tiny_data_file, wd, epochs=1)
  (wd / "metrics.json").unlink()  # as if the run were still going
  clash = _run(tiny_data_file, wd, epochs=2, check=False, extra=["--lr=0.01"])
  assert clash.returncode != 0
  assert "train.lr: 0.001 -> 0.01" in clash.stderr and "new --workdir" in clash.stderr
  loss_clash = _run(tiny_data_file, wd, epochs=2, check=False, extra=["--override=loss=ce"])
  assert loss_clash.returncode != 0 and "model.loss: 'bce_all' -> 'ce'" in loss_clash.stderr
  _run(tiny_data_file, wd, epochs=2)
  assert [int(r["epoch"]) for r in _log(wd)] == [1, 2] and _metrics(wd)["epochs"] == 2


def test_resume_accepts_a_fingerprint_from_before_a_setting_existed():
  from aser_jax.train.loop import check_resume
  current = {"backbone": "bsarec", "model": {"dropout": 0.5, "blend": "convex"}, "train": {"lr": 5e-4}}
  older = {"backbone": "bsarec", "model": {"dropout": 0.5}, "train": {"lr": 5e-4}}  # written before `blend`
  check_resume(older, current, "ckpt")  # convex is what the older version did
  with pytest.raises(ValueError, match=r"model\.blend: None -> 'residual'"):
    check_resume(older, {**current, "model": {"dropout": 0.5, "blend": "residual"}}, "ckpt")
  with pytest.raises(ValueError, match=r"model\.blend: 'residual' -> 'convex'"):
    check_resume({**older, "model": {"dropout": 0.5, "blend": "residual"}}, current, "ckpt")
  with pytest.raises(ValueError, match=r"model\.dropout: None -> 0\.5"):  # only listed settings pass
    check_resume({**older, "model": {"blend": "convex"}}, current, "ckpt")
  bert = {"backbone": "bert4rec", "model": {"dropout": 0.2, "loss": "mlm"}}  # BERT4Rec's loss came later
  check_resume({**bert, "model": {"dropout": 0.2}}, bert, "ckpt")
  with pytest.raises(ValueError, match=r"model\.loss: None -> 'mlm'"):  # for BERT4Rec only
    check_resume({**bert, "backbone": "sasrec", "model": {"dropout": 0.2}}, {**bert, "backbone": "sasrec"}, "ckpt")


def test_log_csv_gets_its_header_back_after_an_early_kill(tmp_path):
  from aser_jax.train.loop import _resume_log
  header = ["epoch", "step", "loss"]
  path = tmp_path / "log.csv"
  assert _resume_log(path, 0, header) == header  # a fresh run
  path.write_text("")  # a run killed before its first epoch flushed nothing
  assert _resume_log(path, 0, header) == header
  with open(path, "a", newline="") as f:
    csv.writer(f).writerows([[1, 10, "0.5"], [2, 20, "0.4"], [3, 30, "0.3"]])
  assert _resume_log(path, 2, header) == header  # epoch 3 was logged after the last checkpoint
  assert [r["epoch"] for r in _log(tmp_path)] == ["1", "2"]
  path.write_text("1,10,0.5\n2,20,0.4\n")  # headerless, as older versions could leave it
  assert _resume_log(path, 2, header) == header
  assert [(r["epoch"], r["loss"]) for r in _log(tmp_path)] == [("1", "0.5"), ("2", "0.4")]
  path.write_text("epoch,step,loss,sensory_alpha\n1,10,0.5,0.1\n")
  assert _resume_log(path, 1, header) == ["epoch", "step", "loss", "sensory_alpha"]  # keeps its columns
  assert path.read_text().splitlines() == ["epoch,step,loss,sensory_alpha", "1,10,0.5,0.1"]
  cases = [("epoch,step,loss\r\n1,10,0.5\r\n2,20,0.", ["1"]),  # killed while writing epoch 2's row
           ("epo", [])]  # killed while writing the header
  for text, before in cases:
    path.write_text(text)
    assert _resume_log(path, 1, header) == header
    with open(path, "a", newline="") as f:
      csv.writer(f).writerow([2, 20, "0.4"])
    assert [r["epoch"] for r in _log(tmp_path)] == [*before, "2"]


def test_overrides_take_the_field_types_and_name_a_bad_value():
  from aser_jax.models import registry
  from aser_jax.train.run import parse_overrides
  cls = registry.config_class("diff")
  got = parse_overrides(["freeze_attributes=True", "lam=0.5", "c=3", "side_fusion=gate", "rho0=0.2"], cls)
  assert got == {"freeze_attributes": True, "lam": 0.5, "c": 3, "side_fusion": "gate", "rho0": 0.2}
  assert type(got["lam"]) is float and type(got["c"]) is int
  assert parse_overrides(["freeze_attributes=no"], cls) == {"freeze_attributes": False}
  for pair, msg in [("freeze_attributes=maybe", "freeze_attributes takes true or false"),
                    ("c=1.5", "c takes an integer, got '1.5'"), ("lam=abc", "lam takes a number, got 'abc'"),
                    ("lam", "expected key=value"), ("colour=red", "expected key=value")]:
    with pytest.raises(ValueError, match=re.escape(f"--override {pair!r}") + ".*" + re.escape(msg)):
      parse_overrides([pair], cls)
