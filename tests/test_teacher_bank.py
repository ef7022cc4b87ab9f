import numpy as np
import pytest

from aser_jax.bank.teacher_bank import teacher_bank
from aser_jax.supervision.clean import CleanConfig, cleaning_table, facet_labels, keep_reason


def _rec(attribute, value, evidence, conf, polarity="positive"):
  return {"attribute": attribute, "value": value, "evidence": evidence, "polarity": polarity,
          "negated": False, "confidence": conf}


TEXT = "This lipstick is a deep matte red and smells faintly of vanilla, very nice overall."


def test_keep_rules_and_thresholds():
  cfg = CleanConfig()
  assert keep_reason(_rec("color", "red", "matte red", 0.6), "review", TEXT, cfg) is None
  assert keep_reason(_rec("color", "red", "matte red", 0.6), "title", TEXT, cfg) == "confidence below threshold"
  assert keep_reason(_rec("color", "red", "", 0.9), "review", TEXT, cfg) == "empty evidence"
  assert keep_reason(_rec("color", "red", "bright red", 0.9), "review", TEXT, cfg) == "evidence not in text"
  assert keep_reason(_rec("flavor", "vanilla", "vanilla", 0.74), "review", TEXT, cfg) == "confidence below threshold"
  assert keep_reason(_rec("sound", "x", "Deep  MATTE red", 0.72), "review", TEXT, cfg) is None  # normalised match
  short = "Red matte lipstick"  # 3 tokens: +0.05
  assert keep_reason(_rec("color", "red", "red", 0.62), "review", short, cfg) == "confidence below threshold"
  assert keep_reason(_rec("color", "red", "red", 0.65), "review", short, cfg) is None
  # a short title adds both margins: 0.60 + 0.05 + 0.05 is 0.7000000000000001 in floats, yet a
  # record at exactly 0.70 reaches the threshold
  assert keep_reason(_rec("color", "red", "red", 0.70), "title", short, cfg) is None
  assert keep_reason(_rec("color", "red", "red", 0.69), "title", short, cfg) == "confidence below threshold"


def test_facet_labels_by_hand():
  recs = [_rec("color", "matte red", "matte red", 0.9), _rec("finish", "matte", "matte", 0.7, "neutral"),
          _rec("design", "sleek", "lipstick", 0.65), _rec("color", "deep", "deep", 0.5),
          _rec("scent", "vanilla", "vanilla", 0.8, "negative")]
  lab = facet_labels(recs, "review", TEXT)
  assert lab.presence == (1, 0, 0, 1, 0)
  assert lab.confidence[0] == pytest.approx((0.9 + 0.7 + 0.65) / 3)
  assert lab.target_text[0] == "color = matte red ; finish = matte ; design = sleek"
  assert lab.polarity[0] == 0 and lab.polarity[3] == 1 and lab.polarity[1] == -1
  assert lab.polarity_mass[0] == pytest.approx((0.9 + 0.65, 0.0, 0.7))


def test_cleaning_table_counts_reasons():
  rows = [{"source": "review", "text": TEXT, "records": [_rec("color", "red", "matte red", 0.9),
                                                         _rec("color", "red", "nowhere", 0.9)]}]
  t = cleaning_table(rows, lambda r: "beauty")
  assert t["beauty"]["raw"] == 2 and t["beauty"]["kept"] == 1 and t["beauty"]["drop_rate"] == 0.5
  assert t["beauty"]["reasons"] == {"evidence not in text": 1}


def _embed(texts):
  """Deterministic stand-in for a sentence encoder: a vector seeded by the text."""
  return np.stack([np.random.default_rng(sum(map(ord, t))).normal(size=6) for t in texts])


def test_teacher_bank_by_hand():
  rows = [
      {"item_id": "1", "source": "review", "text": TEXT, "records": [_rec("color", "matte red", "matte red", 0.9)]},
      {"item_id": "1", "source": "review", "text": TEXT, "records": [_rec("color", "red", "red", 0.7)]},
      {"item_id": "2", "source": "review", "text": TEXT, "records": [_rec("scent", "vanilla", "vanilla", 0.61)]},
      {"item_id": "3", "source": "review", "text": TEXT, "records": [_rec("color", "red", "red", 0.3)]},
      {"item_id": "9", "source": "review", "text": TEXT, "records": []},
  ]
  bank, stats = teacher_bank(rows, 3, _embed, tau_mass=0.5)
  z1, z2 = _embed(["color = matte red"])[0], _embed(["color = red"])[0]
  want = 0.9 * z1 / np.linalg.norm(z1) + 0.7 * z2 / np.linalg.norm(z2)
  np.testing.assert_allclose(bank.K[1, 0], want / np.linalg.norm(want), rtol=1e-5)
  assert bank.A[1].tolist() == [1, 0, 0, 0, 0] and bank.N[1, 0] == 2
  assert bank.C[1, 0] == pytest.approx((0.9 * 0.9 + 0.7 * 0.7) / 1.6, rel=1e-5)
  assert bank.A[2, 3] == 1 and bank.Pi[2, 3].tolist() == [1.0, 0.0, 0.0]
  assert not bank.A[3].any()  # dropped by the threshold
  assert stats["texts_outside_catalogue"] == 1 and stats["items_with_active_facet"] == 2
  assert not bank.A[0].any() and np.isfinite(bank.K).all()
