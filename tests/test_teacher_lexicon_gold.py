"""Lexicon teacher quality on our hand-labelled real review sentences (issue targets)."""

import json
from pathlib import Path

import pytest

from aser_jax.data.errors import DataError
from aser_jax.teacher.alignment import char_ngram_embed
from aser_jax.teacher.annotations import GOLD_PATH, evaluate, load_gold
from aser_jax.teacher.lexicon import LexiconExtractor

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                reason=f"real data not present at {SHARED_DATA}")


def test_gold_file_holds_pointers_not_text():
  rows = [json.loads(line) for line in GOLD_PATH.read_text().splitlines()]
  assert len(rows) >= 150
  for row in rows:
    assert set(row) == {"id", "split", "pool", "file", "line", "field", "start", "end", "sha1",
                        "labels"}
    for label in row["labels"]:
      assert set(label) == {"attribute", "value", "evidence_start", "evidence_end", "polarity",
                            "negated"}
  assert {r["split"] for r in rows} == {"dev", "heldout"}
  assert sum(not r["labels"] for r in rows) >= 40, "sentences without sensory content included"
  assert sum(l["negated"] for r in rows for l in r["labels"]) >= 5


def _report(name, m):
  pair, (negation, n_pairs) = m["overlap"], m["negation_accuracy"]
  print(f"\n{name}: pair P={pair.precision:.3f} R={pair.recall:.3f} F1={pair.f1:.3f} "
        f"({pair.n_pred} pred, {pair.n_ref} ref); exact P={m['exact'].precision:.3f} "
        f"R={m['exact'].recall:.3f}; facet P={m['facet'].precision:.3f} "
        f"R={m['facet'].recall:.3f}; negation acc {negation:.3f} over {n_pairs} pairs; "
        f"polarity acc {m['polarity_accuracy'][0]:.3f}")


@needs_data
def test_lexicon_meets_quality_targets():
  gold = load_gold(SHARED_DATA)
  extract = LexiconExtractor().extract
  m = evaluate(gold, extract, embed_fn=char_ngram_embed)
  heldout = evaluate([g for g in gold if g.split == "heldout"], extract)
  _report("all", m)
  _report("heldout", heldout)
  pair = m["overlap"]
  assert pair.precision >= 0.85 and pair.recall >= 0.6
  assert m["negation_accuracy"][0] >= 0.9 and m["negation_accuracy"][1] >= 80
  assert m["facet"].precision >= pair.precision
  assert heldout["overlap"].precision >= 0.85 and heldout["negation_accuracy"][0] >= 0.9


@needs_data
def test_gold_pointer_mismatch_is_reported(tmp_path):
  line = GOLD_PATH.read_text().splitlines()[0].replace('"sha1": "', '"sha1": "0')
  bad = tmp_path / "gold.jsonl"
  bad.write_text(line + "\n")
  with pytest.raises(DataError, match=r"gold\.jsonl:1 \[sha1\]"):
    load_gold(SHARED_DATA, bad)


@needs_data
def test_semantic_value_match_with_minilm(minilm):
  """Table-7 semantic matching with the real frozen encoder: looser thresholds find more pairs."""
  from aser_jax.models.encoders import embed_texts

  gold = load_gold(SHARED_DATA)
  m = evaluate(gold, LexiconExtractor().extract, embed_fn=lambda v: embed_texts(v, 64))
  recalls = [m[f"semantic@{t}"].recall for t in ("0.8", "0.7", "0.6")]
  print("\nMiniLM semantic@0.8/0.7/0.6 P:", [round(m[f"semantic@{t}"].precision, 3) for t in ("0.8", "0.7", "0.6")],
        "R:", [round(r, 3) for r in recalls])
  assert recalls[0] <= recalls[1] <= recalls[2]
  assert m["exact"].recall <= recalls[0] + 1e-9  # equal values have cosine 1
  assert m["semantic@0.6"].precision >= 0.85
