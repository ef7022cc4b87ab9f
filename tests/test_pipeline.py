"""The main job's stages on the synthetic catalogue: teacher -> student -> bank -> Base vs Sens -> table 6."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

from aser_jax.bank.io import load_bank
from aser_jax.pipeline import StudentStage, build_teacher_bank, item_texts, run_pipeline


def test_synthetic_item_texts_cover_every_item():
  texts = item_texts("synthetic", None)
  assert {int(t.item_id) for t in texts} == set(range(1, 301))
  assert {t.source for t in texts} == {"title", "description"}


def test_teacher_bank_on_synthetic_is_valid_and_resumable(tmp_path, minilm):
  path = build_teacher_bank("synthetic", None, tmp_path, 300, progress=False)
  bank, meta = load_bank(path)
  assert meta["teacher"] == "lexicon" and bank.K.shape == (301, 5, 384)
  assert bank.A[1:].any(-1).mean() > 0.9  # every synthetic title names a colour and a finish
  active = bank.A > 0
  np.testing.assert_allclose(np.linalg.norm(bank.K[active], axis=-1), 1.0, rtol=1e-5)
  assert not bank.K[~active].any()
  mtime = path.stat().st_mtime
  assert build_teacher_bank("synthetic", None, tmp_path, 300, progress=False) == path
  assert path.stat().st_mtime == mtime  # a finished stage is not redone


def test_main_job_end_to_end_writes_table6(tmp_path, minilm):
  """teacher -> supervision -> student -> student bank -> Base vs Sens -> table 6."""
  md = run_pipeline(workdir=str(tmp_path), domains=[("synthetic", None)], backbones=["sasrec"], seeds=[0],
                    stage=StudentStage(steps_per_epoch=2),
                    train_overrides={"epochs": 1, "progress": False, "batch_size": 128}).read_text()
  student = json.loads((tmp_path / "student" / "run" / "metrics.json").read_text())
  assert [h["phase"] for h in student["history"]] == ["A", "B", "B"] and student["val"]["examples"] > 0
  manifest = json.loads((tmp_path / "student" / "supervision" / "manifest.json").read_text())
  assert manifest["domains"] == ["synthetic"] and manifest["benchmark_texts_removed"] == 0
  bank, meta = load_bank(tmp_path / "synthetic" / "bank_student" / "bank.npz")
  assert meta["kind"].startswith("student bank") and bank.K.shape == (301, 5, 384)
  assert np.isfinite(bank.K).all() and not (tmp_path / "synthetic" / "teacher").exists()
  assert "| synthetic (SYNTHETIC) | sasrec | Base (n=1) |" in md
  assert "| synthetic (SYNTHETIC) | sasrec | Sens (n=1) |" in md
  assert (tmp_path / "report" / "table6.png").exists() and (tmp_path / "report" / "cold_start.png").exists()
  cold = (tmp_path / "report" / "cold_start.md").read_text()
  assert "| synthetic (SYNTHETIC) | sasrec | sens | 1-5 |" in cold
  facet = (tmp_path / "report" / "facet_targets.md").read_text()
  assert "| synthetic (SYNTHETIC) | sasrec | base | active facet |" in facet
  assert (tmp_path / "report" / "facet_targets.png").exists()
  cases = (tmp_path / "synthetic" / "qualitative_sasrec_seed0.md").read_text()
  assert cases.startswith("| user | target | Base rank | Sens rank |")


def test_channel_ablation_on_synthetic(tmp_path, minilm):
  from aser_jax.ablations import run_ablation

  bank = build_teacher_bank("synthetic", None, tmp_path, 300, progress=False)
  md = run_ablation("channel", workdir=str(tmp_path / "abl"), data="synthetic", data_dir=None, backbone="sasrec",
                    seeds=[0], bank=str(bank), train_overrides={"epochs": 1, "progress": False,
                                                                "batch_size": 128},
                    workers=2).read_text()
  for variant in ("Base", "raw_text", "broad_attribute", "ASER bank"):
    assert f"| {variant} |" in md
  raw, _ = load_bank(tmp_path / "abl" / "channels" / "raw_text.npz")
  assert raw.A[1:, 0].all() and not raw.A[:, 1:].any()


def test_prebuilt_banks_route_per_domain_and_skip_the_student(tmp_path, monkeypatch):
  """`banks` feeds each named domain its own bank; the student is trained only for the others."""
  import aser_jax.pipeline as pipeline

  calls, trained = [], []
  monkeypatch.setattr(pipeline, "train_pipeline_student", lambda *a, **k: trained.append(a) or tmp_path / "student")
  monkeypatch.setattr(pipeline, "base_vs_sens", lambda **k: calls.append(k) or ({}, {}, {}))
  monkeypatch.setattr("aser_jax.eval.report.cold_start_report", lambda *a: None)
  monkeypatch.setattr("aser_jax.eval.report.table6", lambda *a: tmp_path / "t.md")
  domains = [("beauty", "d/beauty"), ("toys", "d/toys")]
  run_pipeline(workdir=str(tmp_path), domains=domains, backbones=["sasrec"], seeds=[0],
               banks={"beauty": "b.npz", "toys": "t.npz"})
  assert not trained
  assert [(c["data"], c["sensory_bank"], c["student_dir"]) for c in calls] == [("beauty", "b.npz", None),
                                                                              ("toys", "t.npz", None)]
  calls.clear()
  run_pipeline(workdir=str(tmp_path), domains=domains, backbones=["sasrec"], seeds=[0], banks={"toys": "t.npz"})
  assert len(trained) == 1
  assert [(c["data"], c.get("sensory_bank"), c["student_dir"]) for c in calls] == [
      ("beauty", None, tmp_path / "student"), ("toys", "t.npz", tmp_path / "student")]


def test_sens_overrides_reach_only_the_sens_runs_and_name_their_folders(tmp_path, monkeypatch, minilm):
  import aser_jax.pipeline as pipeline
  from aser_jax.train.run import fusion_overrides

  bank = build_teacher_bank("synthetic", None, tmp_path, 300, progress=False)
  captured = []

  def fake_run(jobs, workers=1, seeds_together=False):
    captured.extend(jobs)
    raise InterruptedError

  monkeypatch.setattr("aser_jax.train.run.run_recommenders", fake_run)
  overrides = fusion_overrides(["blend=residual", "rho0=0.05"])
  assert overrides == {"blend": "residual", "rho0": 0.05}
  for ov in ({}, overrides):
    with pytest.raises(InterruptedError):
      pipeline.base_vs_sens(workdir=tmp_path, data="synthetic", data_dir=None, backbones=["sasrec"], seeds=[0, 1],
                            sensory_bank=str(bank), sens_overrides=ov)
  plain, tuned = captured[:4], captured[4:]
  assert [j["model_overrides"] for j in tuned] == [{}, overrides, {}, overrides]  # base, sens per seed
  assert [j["workdir"] for j in tuned][::2] == [j["workdir"] for j in plain][::2]  # Base runs are shared
  assert all(a["workdir"] != b["workdir"] for a, b in zip(plain[1::2], tuned[1::2]))  # Sens runs are not
  old_name = hashlib.sha256(str(bank.resolve()).encode()).hexdigest()[:8]  # folders of earlier grids still resume
  assert plain[1]["workdir"] == str(tmp_path / "runs" / f"sasrec_sens-{old_name}_seed0")
  with pytest.raises(ValueError, match="only the fusion's settings"):
    fusion_overrides(["hidden=128"])
  with pytest.raises(ValueError, match="blend must be one of"):  # before any run of the grid starts
    fusion_overrides(["blend=gate"])
  with pytest.raises(ValueError, match="--sens_override 'rho0=big': rho0 takes a number"):
    fusion_overrides(["rho0=big"])


def test_pipeline_teacher_bank_from_replayed_records(tmp_path, minilm):
  """The pipeline's teacher can be records written elsewhere (e.g. by vLLM in its own environment):
  the bank holds facets exactly for the items the replay file covers."""
  from aser_jax.data.presets import load_sequences
  from aser_jax.teacher.backends import LexiconTeacher

  examples = item_texts("synthetic", None)
  annotated = [(ex, v) for ex, v in zip(examples, LexiconTeacher().annotate(examples)) if v.records]
  kept = annotated[:7]
  replay = tmp_path / "records.jsonl"
  replay.write_text("".join(json.dumps({"item_id": ex.item_id, "source": ex.source, "text": ex.text,
                                        "records": [r.to_dict() for r in v.records]}) + "\n" for ex, v in kept))
  n = load_sequences("synthetic").num_items
  path = build_teacher_bank("synthetic", None, tmp_path / "replayed", n, "replay", progress=False,
                            teacher_options={"replay_path": str(replay)})
  active = set(np.flatnonzero(load_bank(path)[0].A.any(-1)).tolist())
  assert active == {int(ex.item_id) for ex, _ in kept} and len(annotated) > len(kept)
  out = subprocess.run([sys.executable, str(REPO / "experiments" / "run_pipeline.py"), f"--workdir={tmp_path}",
                        "--teacher=replay"], capture_output=True, text=True, timeout=120)
  assert out.returncode != 0 and "--teacher=replay needs --teacher_replay" in out.stderr
