import numpy as np

from aser_jax.bank.aggregate import Bank
from aser_jax.bank.channels import vector_bank
from aser_jax.eval.qualitative import evidence_by_item, rank_changes, write_cases


def test_vector_bank_uses_slot_zero_only():
  texts = {1: "red lipstick", 3: "blue soap", 7: "outside the catalogue"}
  bank = vector_bank(texts, 4, lambda ts: np.array([[len(t), 1.0, 0.0] for t in ts]))
  assert bank.A[:, 0].tolist() == [0, 1, 0, 1, 0] and not bank.A[:, 1:].any()
  np.testing.assert_allclose(bank.K[1, 0], np.array([12, 1, 0]) / np.linalg.norm([12, 1, 0]), rtol=1e-6)
  assert bank.C[1, 0] == 1 and bank.N[3, 0] == 1 and not bank.K[2].any()


def _bank(n=5):
  A = np.zeros((n + 1, 5), np.float32)
  A[2, 0] = A[2, 3] = 1
  Pi = np.full((n + 1, 5, 3), 1 / 3, np.float32)
  Pi[0] = 0
  return Bank(np.zeros((n + 1, 5, 2), np.float32), A.copy(), Pi, A.copy(), A)


def test_rank_changes_and_evidence(tmp_path):
  rows = [{"item_id": "2", "source": "review", "text": "A deep red shade that smells of roses.",
           "records": [{"attribute": "color", "value": "deep red", "evidence": "deep red", "polarity": "positive",
                        "negated": False, "confidence": 0.9},
                       {"attribute": "scent", "value": "rose", "evidence": "smells of roses", "polarity": "positive",
                        "negated": False, "confidence": 0.3}]}]
  ev = evidence_by_item(rows)
  assert ev == {2: {"visual": ['color = deep red <- "deep red"']}}  # the low-confidence scent is dropped
  base = np.array([3, 40, 7, 8])
  sens = np.array([4, 9, 30, 8])
  cases = rank_changes(base, sens, np.array([1, 2, 3, 4]), _bank(), ev, k=10)
  assert [(c["user_row"], c["direction"]) for c in cases] == [(1, "into top-10"), (2, "out of top-10")]
  assert cases[0]["active_facets"] == ["visual", "olfactory"]
  assert cases[0]["evidence"]["visual"] == ['color = deep red <- "deep red"']
  md = write_cases(cases, tmp_path / "cases.md").read_text()
  assert "| 1 | 2 | 40 | 9 | into top-10 | visual: color = deep red" in md
