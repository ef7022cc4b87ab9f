"""Stage-2 supervision: evidence spans -> token masks, labels, targets, balancing, leakage, shards."""

import gzip
import json

import numpy as np
import pytest

from aser_jax.bank.facets import FACETS
from aser_jax.models.encoders import load_tokenizer
from aser_jax.supervision import leakage, store
from aser_jax.supervision.corpus import CorpusConfig, build_corpus, split_by_item
from aser_jax.supervision.examples import (SupervisionConfig, balanced_probabilities, build_examples,
                                           canonical_targets, evidence_spans, special_tokens)

DOMAINS = ("beauty", "food")


def _rec(attribute, value, evidence, conf, polarity="positive"):
  return {"attribute": attribute, "value": value, "evidence": evidence, "polarity": polarity,
          "negated": False, "confidence": conf}


@pytest.fixture(scope="module")
def tokenizer(minilm):
  return load_tokenizer(minilm, 32).with_special_tokens(special_tokens(DOMAINS))


def fake_embed(texts):
  """Deterministic, text-dependent vectors (not normalised, so snorm is exercised)."""
  out = []
  for t in texts:
    rng = np.random.default_rng(sum(map(ord, t)) * 31 + len(t))
    out.append(rng.normal(size=6) * 3.0)
  return np.array(out, np.float32)


def test_evidence_spans_ignore_case_and_whitespace():
  text = "A Matte   Black case; matte black again."
  assert evidence_spans(text, "matte black") == [(2, 15), (22, 33)]
  assert evidence_spans(text, "  ") == []
  assert evidence_spans(text, "glossy") == []


def _rows():
  return [
      {"item_id": "A", "domain": "beauty", "source": "review", "text": "The MATTE black finish smells like vanilla.",
       "records": [_rec("color", "matte black", "matte black", 0.9), _rec("scent", "vanilla", "vanilla", 0.8, "neutral"),
                   _rec("sound", "quiet", "quiet", 0.99)]},
      {"item_id": "A", "domain": "beauty", "source": "title", "text": "Matte black compact, vanilla scented",
       "records": [_rec("scent", "vanilla", "vanilla scented", 0.75)]},
      {"item_id": "B", "domain": "food", "source": "review", "text": "no sensory words here at all",
       "records": []},
  ]


def test_examples_masks_labels_and_targets(tokenizer):
  rows = _rows()
  arr, meta = build_examples(rows, lambda r: r["domain"], DOMAINS, tokenizer, fake_embed,
                             SupervisionConfig(max_len=32))
  N, T, Fn = 3, 32, len(FACETS)
  assert arr["input_ids"].shape == (N, T) and arr["evidence"].shape == (N, T, Fn)
  vis, olf = FACETS.index("visual"), FACETS.index("olfactory")
  # Evidence tokens, read back through the tokenizer's own pieces.
  ids0 = arr["input_ids"][0]
  words = [tokenizer.tokenizer.id_to_token(int(i)) for i in ids0]
  assert [w for w, m in zip(words, arr["evidence"][0, :, vis]) if m] == ["matt", "##e", "black"]
  assert [w for w, m in zip(words, arr["evidence"][0, :, olf]) if m] == ["vanilla"]
  assert arr["evidence"][0, :, FACETS.index("auditory")].sum() == 0  # "quiet" is not in the text
  # Content: the item text's tokens only (no [CLS], [DOM_*], [SRC_*], [SEP], padding).
  assert words[1] == "[DOM_beauty]" and words[2] == "[SRC_review]"
  content_words = [w for w, c in zip(words, arr["content"][0]) if c]
  assert content_words[0] == "the" and content_words[-1] == "." and "[SEP]" not in content_words
  assert arr["content"][0].sum() == arr["attention_mask"][0].sum() - 4
  assert (arr["evidence"] <= arr["content"][..., None]).all()
  np.testing.assert_array_equal(arr["presence"], [[1, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]])
  assert arr["kappa"][0, olf] == pytest.approx(0.8) and arr["polarity"][0, olf] == 2
  assert arr["polarity"][2].tolist() == [-1] * Fn
  assert meta[0]["target_text"][vis] == "color = matte black"
  # Example targets: unit vectors of E_T(target text) on present slots, zeros elsewhere.
  z = fake_embed(["color = matte black"])[0]
  np.testing.assert_allclose(arr["target"][0, vis], z / np.linalg.norm(z), rtol=1e-5)
  assert np.all(arr["target"][2] == 0)
  # Canonical target of item A, olfactory: w = (0.8, 0.75), mass 1.55 >= 0.5.
  zo = fake_embed(["scent = vanilla"])[0]
  zo = zo / np.linalg.norm(zo)
  want = (0.8 + 0.75) * zo
  np.testing.assert_allclose(arr["canonical"][0, olf], want / np.linalg.norm(want), rtol=1e-5)
  np.testing.assert_array_equal(arr["canonical"][0], arr["canonical"][1])
  assert arr["canonical_active"][:, olf].tolist() == [1, 1, 0]
  assert arr["domain"].tolist() == [0, 0, 1] and arr["source"].tolist() == [0, 1, 0]


def test_canonical_targets_mass_threshold():
  w = np.array([[0.3, 0.0], [0.15, 0.9]], np.float32)
  z = np.array([[[1, 0], [0, 0]], [[0, 1], [0, 2]]], np.float32)
  c, a = canonical_targets(["i", "i"], w, z, tau_mass=0.5)
  assert a[0].tolist() == [0, 1]  # 0.45 < 0.5; 0.9 >= 0.5
  assert np.all(c[:, 0] == 0)
  np.testing.assert_allclose(c[0, 1], [0, 1])


def test_balanced_probabilities_equal_group_mass():
  dom = np.array([0, 0, 0, 0, 1, 1])
  src = np.array([0, 0, 0, 1, 0, 0])
  p = balanced_probabilities(dom, src)
  masses = [p[(dom == d) & (src == s)].sum() for d, s in ((0, 0), (0, 1), (1, 0))]
  np.testing.assert_allclose(masses, [1 / 3] * 3)
  assert p.sum() == pytest.approx(1.0)


def test_leakage_removed_and_check_fails_loudly(tmp_path):
  bench = tmp_path / "amazon2014" / "beauty"
  bench.mkdir(parents=True)
  with gzip.open(bench / "item_id2asin.tsv.gz", "wt") as f:
    f.write("1\tA\n2\tZZZ\n")
  ids = leakage.read_benchmark_ids(tmp_path)
  assert ids == {"A", "ZZZ"}
  kept, removed = leakage.remove_benchmark_items(_rows(), ids)
  assert removed == 2 and [r["item_id"] for r in kept] == ["B"]
  leakage.check_no_leakage(["B"], ids)
  with pytest.raises(leakage.LeakageError, match="1 benchmark items.*'A'"):
    leakage.check_no_leakage(["B", "A"], ids)


def _write_teacher(path, rows):
  path.mkdir(parents=True)
  with gzip.open(path / "shard-00000.jsonl.gz", "wt") as f:
    for r in rows:
      f.write(json.dumps({k: v for k, v in r.items() if k != "domain"}) + "\n")


def test_build_corpus_writes_grain_shards_without_benchmark_items(tmp_path, tokenizer):
  rows = _rows()
  extra = [{"item_id": f"C{i}", "source": "review", "text": f"bright red shade number {i}",
            "records": [_rec("color", "red", "bright red", 0.9)]} for i in range(8)]
  _write_teacher(tmp_path / "t_beauty", [r for r in rows if r["domain"] == "beauty"] + extra)
  _write_teacher(tmp_path / "t_food", [r for r in rows if r["domain"] == "food"])
  data = tmp_path / "data" / "amazon2014" / "toys"
  data.mkdir(parents=True)
  with gzip.open(data / "item_id2asin.tsv.gz", "wt") as f:
    f.write("1\tA\n")
  cfg = CorpusConfig(val_fraction=0.3, supervision=SupervisionConfig(max_len=32))
  man = build_corpus({"beauty": str(tmp_path / "t_beauty"), "food": str(tmp_path / "t_food")}, tmp_path / "sup",
                     tmp_path / "data", cfg, tokenizer=tokenizer, embed_fn=fake_embed)
  assert man["benchmark_texts_removed"] == 2
  assert man["cleaning"]["beauty"]["raw"] == 8 and man["cleaning"]["beauty"]["kept"] == 8
  tr, tr_meta = store.load_split(tmp_path / "sup", "train")
  va, va_meta = store.load_split(tmp_path / "sup", "val")
  assert len(tr_meta) + len(va_meta) == 9
  items = [m["item_id"] for m in tr_meta + va_meta]
  assert "A" not in items
  assert not {m["item_id"] for m in tr_meta} & {m["item_id"] for m in va_meta}
  assert tr["evidence"].shape[1:] == (32, len(FACETS)) and tr["target"].shape[-1] == 6
  assert man["special_token_ids"]["[DOM_unk]"] == tokenizer.token_to_id("[DOM_unk]")
  assert (tmp_path / "sup" / "cleaning_table.md").read_text().count("| beauty | 8 | 8 |") == 1


def test_split_by_item_keeps_items_whole():
  rows = [{"item_id": str(i % 5), "domain": "d", "text": "x"} for i in range(40)]
  tr, va = split_by_item(rows, lambda r: r["domain"], 0.4, 0)
  assert len({r["item_id"] for r in va}) == 2
  assert not {r["item_id"] for r in tr} & {r["item_id"] for r in va}
