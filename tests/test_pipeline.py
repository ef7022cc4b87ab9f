"""The main job's stages on the synthetic catalogue: teacher -> bank -> Base vs Sens -> table 6."""

import numpy as np

from aser_jax.bank.io import load_bank
from aser_jax.pipeline import build_teacher_bank, item_texts, run_pipeline


def test_synthetic_item_texts_cover_every_item():
  texts = item_texts("synthetic", None)
  assert {int(t.item_id) for t in texts} == set(range(1, 301))
  assert {t.source for t in texts} == {"title", "description"}


def test_teacher_bank_on_synthetic_is_valid_and_resumable(tmp_path):
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


def test_main_job_end_to_end_writes_table6(tmp_path):
  md = run_pipeline(workdir=str(tmp_path), domains=[("synthetic", None)], backbones=["sasrec"], seeds=[0],
                    train_overrides={"epochs": 1, "progress": False, "batch_size": 128}).read_text()
  assert "| synthetic (SYNTHETIC) | sasrec | Base (n=1) |" in md
  assert "| synthetic (SYNTHETIC) | sasrec | Sens (n=1) |" in md
  assert (tmp_path / "report" / "table6.png").exists() and (tmp_path / "report" / "cold_start.png").exists()
  cold = (tmp_path / "report" / "cold_start.md").read_text()
  assert "| synthetic (SYNTHETIC) | sasrec | sens | 1-5 |" in cold
  cases = (tmp_path / "synthetic" / "qualitative_sasrec_seed0.md").read_text()
  assert cases.startswith("| user | target | Base rank | Sens rank |")


def test_channel_ablation_on_synthetic(tmp_path):
  from aser_jax.ablations import run_ablation

  bank = build_teacher_bank("synthetic", None, tmp_path, 300, progress=False)
  md = run_ablation("channel", workdir=str(tmp_path / "abl"), data="synthetic", data_dir=None, backbone="sasrec",
                    seeds=[0], bank=str(bank), train_overrides={"epochs": 1, "progress": False,
                                                                "batch_size": 128}).read_text()
  for variant in ("Base", "raw_text", "broad_attribute", "ASER bank"):
    assert f"| {variant} |" in md
  raw, _ = load_bank(tmp_path / "abl" / "channels" / "raw_text.npz")
  assert raw.A[1:, 0].all() and not raw.A[:, 1:].any()
