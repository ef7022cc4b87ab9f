"""Multi-seed summaries of run folders: seed sets, paper gaps, Base vs Sens pairing, bad input."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from aser_jax.eval.paper_tables import table6_reference
from aser_jax.eval.summary import load_runs, summarize, write_summary

REPO = Path(__file__).resolve().parents[1]
MODEL = {"hidden": 64, "layers": 2, "bank_dim": 0, "loss": "bce_all"}
TRAIN = {"lr": 1e-3, "epochs": 400, "patience": 30, "seed": 0, "progress": False}


def _write(folder: Path, seed: int, hr10: float, ndcg10: float, data="beauty", bank=None, alpha=None, **model):
  folder.mkdir(parents=True)
  test = {"HR@5": hr10 / 2, "NDCG@5": ndcg10 / 2, "HR@10": hr10, "NDCG@10": ndcg10, "HR@20": hr10 * 1.5,
          "NDCG@20": ndcg10 * 1.2}
  m = {"data": data, "synthetic": data == "synthetic", "backbone": "sasrec",
       "model_config": {**MODEL, **model, **({"bank_dim": 384} if alpha is not None else {})},
       "train_config": {**TRAIN, "seed": seed, "progress": seed % 2 == 0}, "test": test, "epochs": 100 + seed,
       "sensory_alpha": alpha}
  if bank is not None:
    m["bank"] = bank
    m["fusion"] = {"alpha": alpha, "shared_energy": 0.9 + alpha}
  (folder / "metrics.json").write_text(json.dumps(m))


def test_seed_sets_means_sample_std_and_paper_gap(tmp_path):
  for seed, (hr, nd) in enumerate([(0.060, 0.030), (0.062, 0.032), (0.064, 0.034)]):
    _write(tmp_path / f"base_s{seed}", seed, hr, nd)
  _write(tmp_path / "bce_s0", 0, 0.05, 0.025, loss="bce")
  (tmp_path / "running" / "checkpoints").mkdir(parents=True)  # still training
  (tmp_path / "student").mkdir()
  (tmp_path / "student" / "metrics.json").write_text(json.dumps({"kind": "facet"}))  # not a recommender run
  (tmp_path / "table6" / "runs").mkdir(parents=True)
  (tmp_path / "table6" / "runs" / "linked").symlink_to(tmp_path / "base_s0")  # counted once, not twice
  (tmp_path / "loop").symlink_to(tmp_path)  # a cycle
  runs, unfinished = load_runs([tmp_path])
  assert len(runs) == 4 and unfinished == [str(tmp_path / "running")]
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
  assert "0.0620 ± 0.0020" in md and "+3.2% / -0.6%" in md and str(tmp_path / "running") in md
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
  hr = pair["HR@10"]
  assert hr["base"] == pytest.approx(0.061) and hr["sens"] == pytest.approx(0.066)
  assert hr["gain"] == pytest.approx(0.005 / 0.061)
  # differences 0.004 and 0.006: t = 0.005 / (0.001414 / sqrt 2) = 5 on 1 df (a Cauchy law), p = 1 - 2 atan(5) / pi
  assert hr["p"] == pytest.approx(1 - 2 * math.atan(5) / math.pi, rel=1e-6)
  assert hr["paper_gain"] == pytest.approx(0.0664 / 0.0601 - 1)


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
