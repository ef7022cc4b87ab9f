"""Table-7 alignment metrics on a hand-computed case (ASER_SPEC §1)."""

import numpy as np
import pytest

from aser_jax.teacher.alignment import (align, char_ngram_embed, field_agreement,
                                        normalize_value, overlap_match)
from aser_jax.teacher.schema import SensoryRecord


def _r(attribute, value, negated=False, polarity="neutral"):
  return {"attribute": attribute, "value": value, "negated": negated, "polarity": polarity}


PRED = {
    "a": [_r("color", "Matte  Black!"), _r("scent", "vanilla")],
    "b": [_r("texture", "silky"), _r("glossiness", "shiny")],
}
REF = {
    "a": [_r("color", "matte black"), _r("scent", "vanilla bean"), _r("sound", "quiet")],
    "b": [_r("texture", "smooth"), _r("color", "red")],
}
# Hand-made embeddings with known cosines: vanilla~vanilla bean 0.8, silky~smooth 0.7.
_VEC = {
    "matte black": [0, 0, 0, 1], "vanilla": [1, 0, 0, 0], "vanilla bean": [0.8, 0.6, 0, 0],
    "silky": [0, 1, 0, 0], "smooth": [0, 0.7, np.sqrt(0.51), 0], "quiet": [0, 0, 1, 0],
    "shiny": [0, 0, 0, -1], "red": [0, 0, 0, 1],
}


def _embed(texts):
  return np.array([_VEC[t] for t in texts], dtype=np.float64)


def test_normalize_value():
  assert normalize_value("  Matte  Black! ") == "matte black"
  assert normalize_value("\"Vanilla\", (warm)") == "vanilla warm"
  assert normalize_value("non-greasy") == "non-greasy"


def test_hand_computed_metrics():
  m = align(PRED, REF, embed_fn=_embed)
  # exact: only matte black matches -> 1 of 4 predictions, 1 of 5 references.
  assert (m["exact"].correct_pred, m["exact"].n_pred) == (1, 4)
  assert (m["exact"].found_ref, m["exact"].n_ref) == (1, 5)
  assert m["exact"].precision == pytest.approx(0.25) and m["exact"].recall == pytest.approx(0.2)
  # attribute: color, scent, texture predicted with a reference of the same attribute; shiny not.
  assert m["attribute"].precision == pytest.approx(3 / 4)
  assert m["attribute"].recall == pytest.approx(3 / 5)  # quiet and red not found
  # semantic at 0.8: vanilla~vanilla bean counts (cos 0.8), silky~smooth (0.7) does not.
  assert m["semantic@0.8"].correct_pred == 2 and m["semantic@0.8"].found_ref == 2
  assert m["semantic@0.7"].correct_pred == 3 and m["semantic@0.7"].found_ref == 3
  assert m["semantic@0.6"].correct_pred == 3
  # facet: shiny (glossiness) matches red (color) as visual; quiet stays unfound.
  assert m["facet"].correct_pred == 4 and m["facet"].found_ref == 4
  f1 = 2 * 0.25 * 0.2 / 0.45
  assert m["exact"].f1 == pytest.approx(f1)


def test_overlap_matcher_needs_same_attribute_and_shared_stem():
  assert overlap_match(("scent", "vanilla"), ("scent", "vanilla bean"))
  assert overlap_match(("texture", "lathers"), ("texture", "rich lather"))
  assert not overlap_match(("flavor", "vanilla"), ("scent", "vanilla"))
  assert not overlap_match(("scent", "very nice"), ("scent", "not great"))


def test_records_and_dicts_mix_and_empty_sides():
  pred = {"x": [SensoryRecord("scent", "Vanilla", "e", "neutral", False, 0.9)], "y": []}
  ref = {"x": [_r("scent", "vanilla")], "z": [_r("color", "red")]}
  m = align(pred, ref)
  assert m["exact"].precision == 1.0 and m["exact"].recall == pytest.approx(0.5)
  assert "semantic@0.8" not in m
  empty = align({}, {})
  assert empty["exact"].f1 == 0.0 and empty["exact"].n_pred == 0


def test_embed_fn_shape_is_checked():
  with pytest.raises(ValueError, match="rows"):
    align(PRED, REF, embed_fn=lambda texts: np.zeros((1, 3)))


def test_field_agreement_over_matched_pairs():
  pred = {"a": [_r("scent", "smell", negated=True), _r("flavor", "sweet", negated=False)]}
  ref = {"a": [_r("scent", "no smell", negated=True), _r("flavor", "sweet", negated=True),
               _r("color", "red")]}
  acc, n = field_agreement(pred, ref, "negated")
  assert n == 2 and acc == pytest.approx(0.5)


def test_char_ngram_embed_is_deterministic_and_similarity_ordered():
  e = char_ngram_embed(["vanilla", "vanilla bean", "gritty"])
  assert np.array_equal(e, char_ngram_embed(["vanilla", "vanilla bean", "gritty"]))
  unit = e / np.linalg.norm(e, axis=1, keepdims=True)
  assert unit[0] @ unit[1] > unit[0] @ unit[2]
