"""Student bank build (ASER_SPEC §4): resume after a kill, items with no text or no active facet,
missing items and NaN outputs as errors, a stale build refused, and the audit report."""

import json

import numpy as np
import pytest

from aser_jax.bank.aggregate import aggregate_bank
from aser_jax.bank.build import BankBuildConfig, build_bank
from aser_jax.bank.facets import FACETS
from aser_jax.bank.io import load_bank

F, D = len(FACETS), 4


def fake_predict(texts):
  """Deterministic per-text outputs: facet f is present (P = 0.9) iff the text contains str(f)."""
  n = len(texts)
  P = np.array([[0.9 if str(f) in t else 0.1 for f in range(F)] for t in texts], np.float32).reshape(n, F)
  k = np.array([np.random.default_rng([len(t), sum(map(ord, t))]).normal(size=(F, D)) for t in texts],
               np.float32).reshape(n, F, D)
  conf = np.full((n, F), 0.7, np.float32)
  pol = np.tile(np.array([2.0, 0.0, -1.0], np.float32), (n, F, 1))
  ev = [[f"piece {f}" if str(f) in t else "" for f in range(F)] for t in texts]
  return {"P": P, "k": k, "conf": conf, "pol": pol}, ev


TEXTS = [(1, "item one 0 3"), (2, ""), (3, "nothing here"), (4, "1 2"), (5, "4"), (4, "again 0"), (6, "3 3")]
CFG = BankBuildConfig(shard_items=2)


def test_resume_after_kill_gives_the_same_bank(tmp_path):
  calls = []

  def dies_on_third_shard(texts):
    calls.append(len(texts))
    if len(calls) == 3:
      raise KeyboardInterrupt("killed")
    return fake_predict(texts)

  with pytest.raises(KeyboardInterrupt):
    build_bank(TEXTS, 6, dies_on_third_shard, tmp_path / "run", {"student": "s"}, CFG, progress=False)
  assert sorted(p.name for p in (tmp_path / "run" / "shards").glob("shard-*.npz")) == [
      "shard-00000.npz", "shard-00001.npz"]
  assert not list((tmp_path / "run" / "shards").glob("*.tmp*"))
  calls.clear()
  bank, stats = build_bank(TEXTS, 6, lambda t: (calls.append(len(t)), fake_predict(t))[1], tmp_path / "run",
                           {"student": "s"}, CFG, export=True, progress=False)
  assert calls == [2] and stats["shards_computed"] == 1  # only the missing shard (items 5, 6) ran
  fresh, _ = build_bank(TEXTS, 6, fake_predict, tmp_path / "fresh", {"student": "s"}, CFG, progress=False)
  for name, arr in bank.arrays().items():
    np.testing.assert_array_equal(arr, getattr(fresh, name), err_msg=name)
  loaded, meta = load_bank(tmp_path / "run" / "bank")
  np.testing.assert_array_equal(loaded.K, bank.K)
  assert meta["student"] == "s" and meta["facets"] == list(FACETS)
  with np.load(tmp_path / "run" / "bank.npz") as z:
    np.testing.assert_array_equal(z["A"], bank.A)
    assert list(z["item_ids"]) == list(range(7))


def test_bank_values_follow_the_aggregation_and_empty_items_are_clean(tmp_path):
  bank, stats = build_bank(TEXTS, 6, fake_predict, tmp_path / "b", {}, CFG, progress=False)
  o, _ = fake_predict([t for _, t in TEXTS])
  want = aggregate_bank(np.array([i for i, _ in TEXTS]), 6, o["P"], o["k"], o["conf"], o["pol"], 0.5)
  np.testing.assert_allclose(bank.K, want.K, atol=1e-6)
  # Item 2 (empty text) and item 3 (no facet): inactive, zero K, uniform Π, no NaN.
  for i in (2, 3):
    assert bank.A[i].sum() == 0 and np.all(bank.K[i] == 0) and np.all(bank.N[i] == 0)
    np.testing.assert_allclose(bank.Pi[i], 1 / 3)
  assert bank.A[4].tolist() == [1, 1, 1, 0, 0] and bank.N[4, 0] == 1  # two texts of item 4
  assert bank.A[6].tolist() == [0, 0, 0, 1, 0]
  assert np.isfinite(bank.K).all() and np.all(bank.K[0] == 0)
  assert stats["items_with_active_facet"] == 4 and stats["share_no_active_facet"] == pytest.approx(2 / 6)
  assert stats["head"] == "canonical" and stats["k_mean_pairwise_cos"]["gustatory"] is None  # one active item
  assert stats["k_mean_pairwise_cos"]["visual"] == pytest.approx(float(bank.K[1, 0] @ bank.K[4, 0]), abs=1e-6)


def test_missing_item_nan_and_stale_build_are_errors(tmp_path):
  with pytest.raises(ValueError, match="no text in the bank build"):
    build_bank(TEXTS[:3], 6, fake_predict, tmp_path / "a", {}, CFG, progress=False)

  def nan_predict(texts):
    o, ev = fake_predict(texts)
    o["k"][0, 0, 0] = np.nan
    return o, ev

  with pytest.raises(ValueError, match="not finite for item 1"):
    build_bank(TEXTS, 6, nan_predict, tmp_path / "b", {}, CFG, progress=False)
  build_bank(TEXTS, 6, fake_predict, tmp_path / "c", {"student": "one"}, CFG, progress=False)
  with pytest.raises(ValueError, match="different build"):
    build_bank(TEXTS, 6, fake_predict, tmp_path / "c", {"student": "two"}, CFG, progress=False)


def test_audit_report(tmp_path):
  from aser_jax.bank.audit import audit_banks

  build_bank(TEXTS, 6, fake_predict, tmp_path / "b", {}, CFG, progress=False)
  report = audit_banks({"toy": tmp_path / "b"}, tmp_path / "audit", top=2)
  r = report["toy"]
  assert r["items_with_active_facet"] == 4 and r["coverage"]["visual"] == pytest.approx(2 / 6, abs=1e-4)
  top_visual = r["strongest"]["visual"]
  assert [c["item"] for c in top_visual] == [1, 4] and top_visual[0]["evidence"] == "piece 0"
  assert (tmp_path / "audit" / "coverage.png").read_bytes()[:4] == b"\x89PNG"
  assert "| toy | 6 | 4 | 33.3% |" in (tmp_path / "audit" / "audit.md").read_text()
  assert "| toy | - | - | - | - | - |" not in (tmp_path / "audit" / "audit.md").read_text()
  assert r["k_mean_pairwise_cos"]["gustatory"] is None and "| toy | 0." in (tmp_path / "audit" / "audit.md").read_text()
  assert json.loads((tmp_path / "audit" / "audit.json").read_text())["toy"]["items"] == 6
  titles = [(i, "Bright red box" if i == 1 else "Plain box") for i in range(1, 7)]  # the teacher: item 1 visual
  report = audit_banks({"toy": tmp_path / "b"}, tmp_path / "audit2", top=2, texts={"toy": titles})
  agree = report["toy"]["teacher_agreement"]
  assert agree["visual"]["teacher_coverage"] == pytest.approx(1 / 6) and agree["visual"]["recall"] == 1.0
  assert agree["visual"]["precision"] == pytest.approx(0.5)  # the bank has items 1 and 4 visual
  assert "| toy | visual | 16.7% | 33.3% | 0.50 | 1.00 | 0.67 |" in (tmp_path / "audit2" / "audit.md").read_text()


def test_evidence_spans_and_weak_fallback():
  from aser_jax.bank.build import _evidence

  text = "soft pink velvet box"
  off = np.array([[-5, -1], [0, 4], [5, 9], [10, 16], [17, 20], [0, 0]])  # a prefix token, 4 words, padding
  p = np.array([0.0, 0.7, 0.6, 0.1, 0.2, 0.0])
  assert _evidence(text, off, p, 0.9, 0.5) == "soft pink"  # consecutive strong tokens form one span
  p2 = np.array([0.0, 0.3, 0.05, 0.4, 0.1, 0.0])
  assert _evidence(text, off, p2, 0.6, 0.5) == "weak: velvet (0.40) | soft (0.30) | box (0.10)"
  assert _evidence(text, off, p2, 0.2, 0.5) == ""  # an absent facet shows nothing


def test_teacher_agreement_by_hand():
  """Teacher presence from the real lexicon on catalogue titles; bank flags set by hand."""
  from aser_jax.bank.audit import teacher_agreement

  texts = [(1, "OPI Red Shatter Crackle Nail Polish"),  # visual (a title colour at the threshold)
           (2, "Soft Velvet Hair Brush with a fresh lemon scent"),  # olfactory
           (3, "Plain storage box"), (3, "Bright red storage box")]  # two texts: either counts
  A = np.zeros((3, 5))
  A[0, 0] = A[1, 1] = A[2, 3] = 1  # visual right; tactile where the teacher has none; olfactory wrong item
  agree = teacher_agreement(A, texts)
  assert agree["visual"]["teacher_coverage"] == pytest.approx(2 / 3)
  assert agree["visual"]["precision"] == 1.0 and agree["visual"]["recall"] == 0.5
  assert agree["visual"]["f1"] == pytest.approx(2 / 3)
  assert agree["olfactory"] == {"teacher_coverage": pytest.approx(1 / 3), "bank_coverage": pytest.approx(1 / 3),
                                "precision": 0.0, "recall": 0.0, "f1": 0.0}
  assert agree["tactile"]["teacher_coverage"] == 0.0 and agree["tactile"]["bank_coverage"] == pytest.approx(1 / 3)
  assert agree["any"] == {"teacher_coverage": 1.0, "bank_coverage": 1.0}


def test_facet_spread_by_hand():
  from aser_jax.bank.aggregate import Bank, facet_spread

  K = np.zeros((5, F, 2), np.float32)
  A = np.zeros((5, F), np.float32)
  K[1:4, 0] = [[1, 0], [0, 3], [2, 0]]  # cosines 0, 1, 0 between the three pairs
  A[1:4, 0] = 1
  K[4, 1], A[4, 1] = [1, 0], 1  # one active item: no pair
  K[2, 2], A[2, 2] = [0, 1], 1
  K[3, 2], A[3, 2] = [0, -1], 1  # opposite directions
  bank = Bank(K, A * 0.5, np.full((5, F, 3), 1 / 3, np.float32), A.copy(), A)
  spread = facet_spread(bank)
  assert spread["visual"] == pytest.approx(1 / 3) and spread["tactile"] is None
  assert spread["auditory"] == pytest.approx(-1.0) and spread["olfactory"] is None


def test_bank_head_picks_the_student_output_that_becomes_k():
  import jax.numpy as jnp
  from tokenizers import Tokenizer, models, pre_tokenizers

  from aser_jax.bank.build import make_predict_fn
  from aser_jax.models.encoders.tokenization import TextTokenizer

  raw = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "red": 2, "soft": 3}, unk_token="[UNK]"))
  raw.pre_tokenizer = pre_tokenizers.Whitespace()
  tok = TextTokenizer(raw, max_len=8, pad_id=0)

  class Student:  # canonical head: all ones; example head: the text's id sum in every slot
    def apply(self, variables, batch, train):
      B, T = batch["input_ids"].shape
      ids = batch["input_ids"].astype(jnp.float32)
      e = jnp.broadcast_to(ids.sum(1)[:, None, None], (B, F, D))
      return {"P": jnp.full((B, F), 0.9), "k": jnp.ones((B, F, D)), "e": e, "conf": jnp.full((B, F), 0.7),
              "pol": jnp.zeros((B, F, 3)), "p": jnp.zeros((B, T, F))}

  texts = ["red soft", "soft"]
  canon, _ = make_predict_fn(Student(), {}, tok, ["beauty"], BankBuildConfig(batch_size=4))(texts)
  example, _ = make_predict_fn(Student(), {}, tok, ["beauty"], BankBuildConfig(batch_size=4, head="example"))(texts)
  np.testing.assert_array_equal(canon["k"], 1.0)
  row_sums = example["k"][:, 0, 0]  # both rows share the domain/source prefix; "red" (id 2) differs
  assert row_sums[0] - row_sums[1] == 2 and np.all(example["k"] == row_sums[:, None, None])
  np.testing.assert_array_equal(example["P"], canon["P"])
  with pytest.raises(ValueError, match="bank head must be one of"):
    make_predict_fn(Student(), {}, tok, ["beauty"], BankBuildConfig(head="pooled"))


def test_length_probe_tells_content_from_length():
  from aser_jax.bank.probe import length_probe

  texts = ["0 soft", "1", "plain words", "3 and 4 here"]
  content = length_probe(fake_predict, texts)  # presence iff the text names the facet: doubling changes nothing
  for j, f in enumerate(FACETS):
    assert content[f]["active_once"] == content[f]["active_twice"] == sum(str(j) in t for t in texts) / 4
    assert content[f]["flipped"] == 0.0

  def by_length(batch):  # noisy-or of 0.2 per word: presence grows with the word count
    P = np.array([[1 - 0.8 ** len(t.split())] * F for t in batch], np.float32)
    return {"P": P}, []

  length = length_probe(by_length, texts)
  # once: 2, 1, 2, 4 words -> P 0.36, 0.2, 0.36, 0.59; twice: 4, 2, 4, 8 -> 0.59, 0.36, 0.59, 0.83
  for f in FACETS:
    assert length[f]["active_once"] == 0.25 and length[f]["active_twice"] == 0.75
    assert length[f]["flipped"] == 0.5
    assert length[f]["mean_P_twice"] > length[f]["mean_P_once"]
  with pytest.raises(ValueError, match="at least one text"):
    length_probe(fake_predict, [])
