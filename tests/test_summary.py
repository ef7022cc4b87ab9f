"""Multi-seed summaries of run folders: seed sets, paper gaps, Base vs Sens pairing, bad input."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aser_jax.eval.paper_tables import table6_reference
from aser_jax.eval.summary import load_runs, summarize, write_summary

REPO = Path(__file__).resolve().parents[1]
MODEL = {"hidden": 64, "layers": 2, "bank_dim": 0, "loss": "bce_all"}
TRAIN = {"lr": 1e-3, "epochs": 400, "patience": 30, "seed": 0, "progress": False}


def _write(folder: Path, seed: int, hr10: float, ndcg10: float, data="beauty", bank=None, alpha=None,
           stopped_early=None, **model):
  folder.mkdir(parents=True)
  test = {"HR@5": hr10 / 2, "NDCG@5": ndcg10 / 2, "HR@10": hr10, "NDCG@10": ndcg10, "HR@20": hr10 * 1.5,
          "NDCG@20": ndcg10 * 1.2}
  m = {"data": data, "synthetic": data == "synthetic", "backbone": "sasrec",
       "model_config": {**MODEL, **model, **({"bank_dim": 384} if alpha is not None else {})},
       "train_config": {**TRAIN, "seed": seed, "progress": seed % 2 == 0}, "test": test, "epochs": 100 + seed,
       "sensory_alpha": alpha}
  if stopped_early is not None:
    m["stopped_early"] = stopped_early
  if bank is not None:
    m["bank"] = bank
    m["fusion"] = {"alpha": alpha, "shared_energy": 0.9 + alpha}
  (folder / "metrics.json").write_text(json.dumps(m))


def test_seed_sets_means_sample_std_and_paper_gap(tmp_path):
  for seed, (hr, nd) in enumerate([(0.060, 0.030), (0.062, 0.032), (0.064, 0.034)]):
    _write(tmp_path / f"base_s{seed}", seed, hr, nd)
  _write(tmp_path / "bce_s0", 0, 0.05, 0.025, loss="bce")
  (tmp_path / "running" / "checkpoints").mkdir(parents=True)  # still training
  (tmp_path / "running" / "log.csv").write_text("epoch,step,loss,valid_NDCG@10\n1,10,0.9,0.02\n2,20,0.8,0.031\n"
                                                "3,30,0.7,0.03\n4,40,0.6,0.0")  # a torn last row is skipped
  (tmp_path / "fresh" / "checkpoints").mkdir(parents=True)  # killed before its first epoch
  (tmp_path / "student").mkdir()
  (tmp_path / "student" / "metrics.json").write_text(json.dumps({"kind": "facet"}))  # not a recommender run
  (tmp_path / "table6" / "runs").mkdir(parents=True)
  (tmp_path / "table6" / "runs" / "linked").symlink_to(tmp_path / "base_s0")  # counted once, not twice
  (tmp_path / "loop").symlink_to(tmp_path)  # a cycle
  runs, unfinished = load_runs([tmp_path])
  assert len(runs) == 4 and unfinished == [str(tmp_path / "fresh"), str(tmp_path / "running")]
  assert [r["path"] for r in load_runs([tmp_path / "table6"])[0]] == [str(tmp_path / "table6" / "runs" / "linked")]
  s = summarize(runs)
  (bce,) = [r for r in s["sets"] if r["label"] == "loss=bce"]
  (main,) = [r for r in s["sets"] if r["label"] == "loss=bce_all"]  # progress differs by seed: still pooled
  assert main["seeds"] == [0, 1, 2] and bce["seeds"] == [0]
  assert main["mean"]["HR@10"] == pytest.approx(0.062) and main["std"]["HR@10"] == pytest.approx(0.002)
  assert main["mean"]["NDCG@20"] == pytest.approx(0.032 * 1.2)
  assert math.isnan(bce["std"]["HR@10"])
  assert main["paper"] == {"HR@10": 0.0601, "NDCG@10": 0.0322}
  assert main["gap"]["HR@10"] == pytest.approx(0.062 / 0.0601 - 1) and main["within"]
  assert bce["gap"]["NDCG@10"] == pytest.approx(0.025 / 0.0322 - 1) and not bce["within"]
  assert s["pairs"] == []
  md = write_summary(s, unfinished, tmp_path / "report").read_text()
  assert "0.0620 ± 0.0020" in md and "+3.2% / -0.6%" in md
  assert f"{tmp_path / 'running'} (epoch 3, best NDCG@10 0.0310 at epoch 2)" in md
  assert f"{tmp_path / 'fresh'} (no epoch logged yet)" in md
  strict = json.loads((tmp_path / "report" / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
  assert [r["std"]["HR@10"] for r in strict["sets"] if r["label"] == "loss=bce"] == [None]


def test_runs_predating_a_config_field_pool_at_its_default(tmp_path):
  """A run recorded before a field existed behaved as that field's default (here SASRec's `loss`,
  default "bce", and TrainConfig's `weight_decay`, default 0): it pools with runs that record it."""
  old = {k: v for k, v in MODEL.items() if k != "loss"}
  _write(tmp_path / "old", 0, 0.05, 0.025)
  m = json.loads((tmp_path / "old" / "metrics.json").read_text())
  m["model_config"] = old
  (tmp_path / "old" / "metrics.json").write_text(json.dumps(m))
  _write(tmp_path / "new", 1, 0.06, 0.03, loss="bce")
  m = json.loads((tmp_path / "new" / "metrics.json").read_text())
  m["train_config"]["weight_decay"] = 0.0
  (tmp_path / "new" / "metrics.json").write_text(json.dumps(m))
  _write(tmp_path / "other", 2, 0.07, 0.035, loss="ce")
  sets = summarize(load_runs([tmp_path])[0])["sets"]
  assert sorted((r["label"], tuple(r["seeds"])) for r in sets) == [("loss=bce", (0, 1)), ("loss=ce", (2,))]


def test_sens_pairs_with_base_over_shared_seeds_only(tmp_path):
  for seed, (hr, nd) in enumerate([(0.060, 0.030), (0.062, 0.032), (0.064, 0.034)]):
    _write(tmp_path / f"base_s{seed}", seed, hr, nd)
  _write(tmp_path / "sens_s0", 0, 0.064, 0.031, bank="abc", alpha=0.05)
  _write(tmp_path / "sens_s1", 1, 0.068, 0.033, bank="abc", alpha=0.07)
  _write(tmp_path / "other_bank_s0", 0, 0.070, 0.040, bank="def", alpha=0.1)
  s = summarize(load_runs([tmp_path])[0])
  sens = [r for r in s["sets"] if r["variant"] == "sens"]
  assert sorted(r["bank"] for r in sens) == ["abc", "def"]  # two banks never pool
  (abc,) = [r for r in sens if r["bank"] == "abc"]
  assert abc["alpha"] == pytest.approx(0.06) and abc["shared_energy"] == pytest.approx(0.96)
  md = write_summary(s, [], tmp_path / "report").read_text()
  assert "| 0.060 / 0.96 |" in md and "0.0610 → 0.0660 (+8.2%, p=0.126)" in md
  (pair,) = [p for p in s["pairs"] if p["bank"] == "abc"]
  assert pair["seeds"] == [0, 1]
  assert pair["HR@10"]["base_by_seed"] == [0.060, 0.062] and pair["HR@10"]["sens_by_seed"] == [0.064, 0.068]
  png = tmp_path / "report" / "pairs.png"
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  hr = pair["HR@10"]
  assert hr["base"] == pytest.approx(0.061) and hr["sens"] == pytest.approx(0.066)
  assert hr["gain"] == pytest.approx(0.005 / 0.061)
  # differences 0.004 and 0.006: t = 0.005 / (0.001414 / sqrt 2) = 5 on 1 df (a Cauchy law), p = 1 - 2 atan(5) / pi
  assert hr["p"] == pytest.approx(1 - 2 * math.atan(5) / math.pi, rel=1e-6)
  assert hr["paper_gain"] == pytest.approx(0.0664 / 0.0601 - 1)


def test_fusion_settings_label_sens_sets_and_each_pairs_with_the_one_base_set(tmp_path):
  """rho0 / blend / fusion mean nothing without a bank: Base runs are one set whatever their
  recorded values, and every Sens variant pairs with it."""
  _write(tmp_path / "base_s0", 0, 0.060, 0.030, rho0=0.1, blend="convex")
  _write(tmp_path / "base_s1", 1, 0.062, 0.032, rho0=0.5)  # a value no Base run acts on
  _write(tmp_path / "spec_s0", 0, 0.058, 0.029, bank="abc", alpha=0.02, rho0=0.1, blend="convex")
  _write(tmp_path / "small_s0", 0, 0.061, 0.030, bank="abc", alpha=0.001, rho0=0.001, blend="convex")
  _write(tmp_path / "res_s0", 0, 0.063, 0.031, bank="abc", alpha=0.05, rho0=0.1, blend="residual")
  _write(tmp_path / "res_s1", 1, 0.065, 0.033, bank="abc", alpha=0.05, rho0=0.1, blend="residual")
  s = summarize(load_runs([tmp_path])[0])
  labels = sorted((r["variant"], r["label"], tuple(r["seeds"])) for r in s["sets"])
  assert labels == [("base", "", (0, 1)), ("sens", "blend=convex, rho0=0.001", (0,)),
                    ("sens", "blend=convex, rho0=0.1", (0,)), ("sens", "blend=residual, rho0=0.1", (0, 1))]
  pairs = {p["label"]: (p["seeds"], p["HR@10"]["base"], p["HR@10"]["sens"]) for p in s["pairs"]}
  assert pairs == {"blend=convex, rho0=0.001": ([0], 0.060, 0.061), "blend=convex, rho0=0.1": ([0], 0.060, 0.058),
                   "blend=residual, rho0=0.1": ([0, 1], pytest.approx(0.061), pytest.approx(0.064))}


def test_sens_runs_without_a_recorded_bank_are_never_pooled(tmp_path):
  _write(tmp_path / "old_a", 0, 0.06, 0.03, alpha=0.05)
  _write(tmp_path / "old_b", 1, 0.06, 0.03, alpha=0.05)
  sets = summarize(load_runs([tmp_path])[0])["sets"]
  assert sorted(r["bank"] for r in sets) == ["unknown (old_a)", "unknown (old_b)"]


def test_synthetic_and_unknown_domains_get_no_paper_row(tmp_path):
  _write(tmp_path / "syn", 0, 0.2, 0.1, data="synthetic")
  _write(tmp_path / "yelp", 0, 0.03, 0.02, data="yelp")
  sets = summarize(load_runs([tmp_path])[0])["sets"]
  assert {r["domain"] for r in sets} == {"synthetic (SYNTHETIC)", "yelp"}
  assert all("paper" not in r for r in sets)
  assert table6_reference("yelp", "sasrec", "base") is None
  assert table6_reference("grocery", "diff", "sens")["NDCG@10"] == 0.0593


def test_duplicate_seed_and_malformed_files_are_named(tmp_path):
  _write(tmp_path / "a", 0, 0.06, 0.03)
  _write(tmp_path / "b", 0, 0.07, 0.03)
  with pytest.raises(ValueError, match=r"seed\(s\) \[0\].*a, .*b"):
    summarize(load_runs([tmp_path])[0])
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "metrics.json").write_text('{"backbone": "sasrec",\n "data": }')
  with pytest.raises(ValueError, match=r"bad/metrics.json: line 2: not valid JSON"):
    load_runs([bad])
  (bad / "metrics.json").write_text(json.dumps({"backbone": "sasrec", "data": "beauty", "model_config": {},
                                                "train_config": {}, "test": {"HR@10": 0.1}}))
  with pytest.raises(ValueError, match=r"bad/metrics.json: field 'test' lacks HR@5"):
    load_runs([bad])
  with pytest.raises(FileNotFoundError, match="nowhere"):
    load_runs([tmp_path / "nowhere"])


def test_binary_writes_the_report(tmp_path):
  for seed in range(2):
    _write(tmp_path / "runs" / f"s{seed}", seed, 0.06 + seed / 100, 0.03)
  out = subprocess.run([sys.executable, str(REPO / "experiments" / "summarize_runs.py"),
                        f"--runs={tmp_path / 'runs'}", f"--out={tmp_path / 'report'}"],
                       capture_output=True, text=True, check=True, timeout=120)
  assert "| beauty | sasrec | base | - | 0,1 | 0.0650 ± 0.0071 |" in out.stdout
  assert {p.name for p in (tmp_path / "report").iterdir()} == {"summary.md", "summary.csv", "summary.json"}


def test_binary_splits_by_target_with_a_bank(tmp_path):
  _, active = _split_fixture(tmp_path)
  out = subprocess.run([sys.executable, str(REPO / "experiments" / "summarize_runs.py"), f"--runs={tmp_path / 'runs'}",
                        f"--out={tmp_path / 'report'}", f"--bank={tmp_path / 'bank.npz'}"],
                       capture_output=True, text=True, check=True, timeout=120)
  assert f"| no active facet | {(~active).sum():,} | 1.0000 → 1.0000 (+0.0%, p=nan, nan) |" in out.stdout


def _split_fixture(tmp_path):
  """Hand-made ranks on the synthetic catalogue: active-facet targets move from rank 3 / 20 (Base,
  seeds 0 / 1) to rank 1 (Sens); the other users stay at rank 1 in every run."""
  from aser_jax.bank.aggregate import Bank
  from aser_jax.bank.io import export_npz
  from aser_jax.data.presets import load_sequences
  from aser_jax.data.splits import eval_split
  from aser_jax.train.loop import bank_digest

  seqs = load_sequences("synthetic")
  targets = eval_split(seqs, 1, "test").targets
  n_items = seqs.num_items
  a = np.zeros((n_items + 1, 5), np.float32)
  a[np.unique(targets)[::3], 2] = 1  # every third distinct target item has one active facet
  pi = np.full((n_items + 1, 5, 3), 1 / 3, np.float32)
  pi[0] = 0  # padding row
  bank = Bank(np.zeros((n_items + 1, 5, 4), np.float32), a.copy(), pi, a.copy(), a)
  export_npz(tmp_path / "bank.npz", bank, {})
  active = a.any(-1)[targets]
  assert 0 < active.sum() < active.size
  for seed, base_rank in enumerate([3, 20]):
    for variant, rank in (("base", base_rank), ("sens", 1)):
      folder = tmp_path / "runs" / f"{variant}_s{seed}"
      _write(folder, seed, 0.06, 0.03, data="synthetic", **({"bank": bank_digest(bank), "alpha": 0.1}
                                                            if variant == "sens" else {}))
      np.save(folder / "test_ranks.npy", np.where(active, rank, 1).astype(np.int32))
  return bank, active


def test_pairs_split_by_the_test_targets_facets(tmp_path):
  from aser_jax.bank.aggregate import Bank
  from aser_jax.bank.io import export_npz
  from aser_jax.eval.summary import add_target_splits

  bank, active = _split_fixture(tmp_path)
  s = add_target_splits(summarize(load_runs([tmp_path / "runs"])[0]), [tmp_path / "bank.npz"])
  (split,) = s["target_splits"]
  on, off = split["groups"]["active facet"], split["groups"]["no active facet"]
  assert (on["users"], off["users"]) == (active.sum(), (~active).sum())
  nd = on["NDCG@10"]  # Base: 1/log2(4) = 0.5 and 0; Sens: 1 and 1
  assert nd["base"] == pytest.approx(0.25) and nd["sens"] == pytest.approx(1.0) and nd["gain"] == pytest.approx(3.0)
  # differences 0.5 and 1: t = 0.75 / (0.3536 / sqrt 2) = 3 on 1 df, p = 1 - 2 atan(3) / pi
  assert nd["p"] == pytest.approx(1 - 2 * math.atan(3) / math.pi, rel=1e-6)
  assert math.isnan(nd["p_users"])  # every active user gains the same 0.75: no spread to test
  assert on["HR@10"]["base"] == pytest.approx(0.5) and on["HR@10"]["sens"] == pytest.approx(1.0)
  assert off["NDCG@10"]["base"] == off["NDCG@10"]["sens"] == 1.0 and off["NDCG@10"]["gain"] == 0.0
  md = write_summary(s, [], tmp_path / "report").read_text()
  assert f"| 0,1 | active facet | {active.sum():,} | 0.5000 → 1.0000 (+100.0%, p=0.500, nan) |" in md

  (tmp_path / "runs" / "base_s0" / "test_ranks.npy").rename(tmp_path / "ranks0.npy")
  (skipped,) = add_target_splits(summarize(load_runs([tmp_path / "runs"])[0]), [tmp_path / "bank.npz"])["target_splits"]
  assert skipped["groups"] == {} and skipped["skipped"].endswith("base_s0/test_ranks.npy")
  (tmp_path / "ranks0.npy").rename(tmp_path / "runs" / "base_s0" / "test_ranks.npy")
  np.save(tmp_path / "runs" / "sens_s1" / "test_ranks.npy", np.ones(3, np.int32))
  with pytest.raises(ValueError, match=r"sens_s1/test_ranks.npy: 3 ranks for"):
    add_target_splits(summarize(load_runs([tmp_path / "runs"])[0]), [tmp_path / "bank.npz"])
  a = bank.A.copy()
  a[1, 0] = 1
  export_npz(tmp_path / "other.npz", Bank(bank.K, bank.C, bank.Pi, bank.N, a), {})
  with pytest.raises(ValueError, match=r"other.npz: bank digest \w+ matches no Base-vs-Sens pair"):
    add_target_splits(summarize(load_runs([tmp_path / "runs"])[0]), [tmp_path / "other.npz"])


def test_user_level_p_matches_scipy_on_varied_ranks(tmp_path):
  """`p_users` is the paired t-test of seed-averaged per-user metrics (reference: scipy on the same arrays)."""
  from scipy import stats

  from aser_jax.eval.summary import _group_comparison

  rng = np.random.default_rng(0)
  base, sens = rng.random((2, 40)), rng.random((2, 40))
  c = _group_comparison(base, sens)
  assert c["p_users"] == pytest.approx(stats.ttest_rel(sens.mean(0), base.mean(0)).pvalue)
  assert c["p"] == pytest.approx(stats.ttest_rel(sens.mean(1), base.mean(1)).pvalue)
  assert c["gain"] == pytest.approx(sens.mean() / base.mean() - 1)


def test_runs_ended_by_the_epoch_cap_are_marked(tmp_path):
  _write(tmp_path / "base_s0", 0, 0.060, 0.030, stopped_early=True)
  _write(tmp_path / "base_s1", 1, 0.062, 0.032, stopped_early=False)  # cut by the cap
  _write(tmp_path / "base_s2", 2, 0.064, 0.034)  # an older record without the counts: not flagged
  older = tmp_path / "base_s3"  # an older record whose counts show the cap ended it (67 of 67, best 66)
  _write(older, 3, 0.066, 0.036)
  m = json.loads((older / "metrics.json").read_text())
  m.update(epochs=67, best_epoch=66, train_config={**m["train_config"], "epochs": 67, "patience": 10})
  (older / "metrics.json").write_text(json.dumps(m))
  patient = tmp_path / "base_s4"  # early stopping and the cap on the same epoch: early stopping
  _write(patient, 4, 0.066, 0.036)
  m = json.loads((patient / "metrics.json").read_text())
  m.update(epochs=400, best_epoch=370)  # at the cap of 400, but 30 epochs (the patience) past its best
  (patient / "metrics.json").write_text(json.dumps(m))
  _write(tmp_path / "sens_s0", 0, 0.061, 0.031, bank="b1", alpha=0.05, stopped_early=False)
  _write(tmp_path / "sens_s1", 1, 0.063, 0.033, bank="b1", alpha=0.05, stopped_early=True)
  shorter = tmp_path / "sens_s2"  # resumed with a lower cap to end it: still the same setting, marked cut
  _write(shorter, 2, 0.065, 0.035, bank="b1", alpha=0.05, stopped_early=False)
  m = json.loads((shorter / "metrics.json").read_text())
  m["train_config"]["epochs"] = 41
  (shorter / "metrics.json").write_text(json.dumps(m))
  s = summarize(load_runs([tmp_path])[0])
  base, base67 = sorted((r for r in s["sets"] if r["variant"] == "base"), key=lambda r: len(r["seeds"]), reverse=True)
  (sens,) = [r for r in s["sets"] if r["variant"] == "sens"]
  assert base["seeds"] == [0, 1, 2, 4] and base["cut"] == [1] and sens["cut"] == [0, 2]
  assert base67["seeds"] == [3] and base67["cut"] == [3] and base67["label"] == "patience=10"
  assert s["pairs"][0]["seeds"] == [0, 1, 2] and s["pairs"][0]["cut"] == [0, 1, 2]
  md = write_summary(s, [], tmp_path / "report").read_text()
  assert "| 0,1*,2,4 |" in md and "| 3* |" in md and "| 0*,1,2* |" in md and "Seed*: the epoch cap ended that run" in md
  _write(tmp_path / "fresh" / "base_s0", 0, 0.06, 0.03, stopped_early=True)  # no cut run: no footnote
  md = write_summary(summarize(load_runs([tmp_path / "fresh"])[0]), [], tmp_path / "r2").read_text()
  assert "Seed*" not in md and "| 0 |" in md


def test_tally_counts_only_pairs_at_the_preset_settings(tmp_path):
  from aser_jax import configs
  model, train = configs.paper_settings("sasrec", "beauty")

  def preset_run(name, seed, hr, nd, **kw):
    _write(tmp_path / name, seed, hr, nd, **kw)
    m = json.loads((tmp_path / name / "metrics.json").read_text())
    m["model_config"] = {**model, "bank_dim": m["model_config"]["bank_dim"]}
    m["train_config"] = {**train, "seed": seed, "epochs": 7}  # the cap is a budget, not a setting
    (tmp_path / name / "metrics.json").write_text(json.dumps(m))

  preset_run("base_s0", 0, 0.060, 0.030)
  preset_run("base_s1", 1, 0.064, 0.034)
  preset_run("sens_s0", 0, 0.058, 0.033, bank="b1", alpha=0.02)
  preset_run("sens_s1", 1, 0.062, 0.035, bank="b1", alpha=0.02, stopped_early=False)  # cut by the cap
  _write(tmp_path / "ce_base_s0", 0, 0.090, 0.050, loss="ce")  # off the preset: paired, not tallied
  _write(tmp_path / "ce_sens_s0", 0, 0.099, 0.060, loss="ce", bank="b1", alpha=0.02)
  s = summarize(load_runs([tmp_path])[0])
  assert sorted((p["label"], p["preset"]) for p in s["pairs"]) == [("loss=bce_all", True), ("loss=ce", False)]
  b, p = table6_reference("beauty", "sasrec", "base"), table6_reference("beauty", "sasrec", "sens")
  t = s["tally"]
  assert t["pairs"] == 1 and t["HR@10"]["better"] == 0 and t["NDCG@10"]["better"] == 1
  assert t["HR@10"]["mean_gain"] == pytest.approx(0.120 / 0.124 - 1)
  assert t["NDCG@10"]["mean_gain"] == pytest.approx(0.068 / 0.064 - 1)
  assert t["NDCG@10"]["paper_mean_gain"] == pytest.approx(p["NDCG@10"] / b["NDCG@10"] - 1)
  md = write_summary(s, [], tmp_path / "report").read_text()
  assert "| beauty | sasrec | b1 | preset, loss=bce_all | 0,1* |" in md and "| b1 | loss=ce | 0 |" in md
  assert "Preset pairs (1): HR@10: Sens > Base in 0 of 1, mean gain -3.2%" in md
  u = t["uncut"]  # the same tally over seed 0 alone
  assert u["pairs"] == 1 and u["HR@10"]["mean_gain"] == pytest.approx(0.058 / 0.060 - 1)
  assert u["NDCG@10"]["mean_gain"] == pytest.approx(0.033 / 0.030 - 1) and u["NDCG@10"]["better"] == 1
  assert "Without the seeds the epoch cap ended (starred): 1 pair: HR@10: Sens > Base in 0 of 1, mean gain -3.3%" in md
  preset_run("toys_base_s0", 0, 0.07, 0.04, data="toys", stopped_early=False)  # a pair with only cut seeds
  preset_run("toys_sens_s0", 0, 0.06, 0.03, data="toys", bank="b2", alpha=0.02)
  t = summarize(load_runs([tmp_path])[0])["tally"]
  assert t["pairs"] == 2 and t["uncut"]["pairs"] == 1 and t["uncut"]["HR@10"]["better"] == 0
  s = summarize(load_runs([tmp_path / "ce_base_s0", tmp_path / "ce_sens_s0"])[0])
  assert s["tally"] is None and len(s["pairs"]) == 1
  assert "No pair ran at the preset settings" in write_summary(s, [], tmp_path / "r2").read_text()


def test_grasp_runs_form_their_own_sets_by_tables_and_never_pair_as_base(tmp_path):
  for seed in (0, 1):
    _write(tmp_path / f"base_s{seed}", seed, 0.060, 0.030)
    _write(tmp_path / f"sens_s{seed}", seed, 0.061, 0.031, bank="b1", alpha=0.1)
    _write(tmp_path / f"grasp_s{seed}", seed, 0.070, 0.035, grasp_dim=384, grasp_users=100)
    m = json.loads((tmp_path / f"grasp_s{seed}" / "metrics.json").read_text())
    (tmp_path / f"grasp_s{seed}" / "metrics.json").write_text(json.dumps({**m, "grasp": "t1" if seed else "t2"}))
  s = summarize(load_runs([tmp_path])[0])
  grasp = sorted((r["bank"], r["seeds"]) for r in s["sets"] if r["variant"] == "grasp")
  assert grasp == [("t1", [1]), ("t2", [0])]  # other tables, other set
  assert [r["seeds"] for r in s["sets"] if r["variant"] == "base"] == [[0, 1]]
  assert [(p["bank"], p["seeds"]) for p in s["pairs"]] == [("b1", [0, 1])]
  assert all("paper" not in r for r in s["sets"] if r["variant"] == "grasp")  # table 6 is ASER's


def test_r2end_runs_form_sets_by_user_encoder_and_tables_and_pair_with_nothing(tmp_path):
  cfg = {"user_encoder": "distilled", "proj_dim": 512, "tau": 0.07, "seed": 0, "embed_batch": 64, "epochs": 10}
  test = {"HR@5": 0.02, "NDCG@5": 0.01, "HR@10": 0.04, "NDCG@10": 0.02, "HR@20": 0.06, "NDCG@20": 0.03}
  runs = [("d0", {**cfg}, 0.04), ("d1", {**cfg, "seed": 1, "embed_batch": 8}, 0.06),
          ("m0", {**cfg, "user_encoder": "mean_pool"}, 0.03), ("t0", {**cfg, "tau": 0.5}, 0.01),
          ("e0", {**cfg, "epochs": 30}, 0.07)]
  for name, c, hr in runs:
    (tmp_path / name).mkdir()
    (tmp_path / name / "metrics.json").write_text(json.dumps(
        {"channel": "r2end", "data": "beauty", "synthetic": False, "config": c, "tables": {"digest": "t9"},
         "test": {**test, "HR@10": hr}, "epochs": 10}))
  _write(tmp_path / "base_s0", 0, 0.060, 0.030)
  s = summarize(load_runs([tmp_path])[0])
  r2 = {(r["variant"], r["label"]): (r["seeds"], round(r["mean"]["HR@10"], 6)) for r in s["sets"]
        if r["backbone"] == "r2end"}
  assert r2 == {("distilled", "epochs=10, tau=0.07"): ([0, 1], 0.05), ("mean_pool", "epochs=10, tau=0.07"): ([0], 0.03),
                ("distilled", "epochs=10, tau=0.5"): ([0], 0.01), ("distilled", "epochs=30, tau=0.07"): ([0], 0.07)}
  assert all(r["bank"] == "t9" and "paper" not in r for r in s["sets"] if r["backbone"] == "r2end")
  assert s["pairs"] == []
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "metrics.json").write_text(json.dumps({"channel": "r2end", "data": "beauty", "test": test}))
  with pytest.raises(ValueError, match="bad.*'config' missing"):
    load_runs([tmp_path / "bad"])
