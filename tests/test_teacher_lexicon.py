"""The lexicon teacher on sentences written for these tests (not from any corpus)."""

import pytest

from aser_jax.teacher.lexicon import LexiconConfig, LexiconExtractor
from aser_jax.teacher.schema import ATTRIBUTE_TO_FACET, POLARITIES
from aser_jax.teacher.text import synthetic_examples

EX = LexiconExtractor()


def _find(text, attribute, source="review"):
  return [r for r in EX.extract(text, source) if r.attribute == attribute]


@pytest.mark.parametrize("text, attribute, value_word", [
    ("This candle smells like warm vanilla.", "scent", "vanilla"),
    ("The lavender scent is calming.", "scent", "lavender"),
    ("It has a rich chocolatey flavor.", "flavor", "chocolatey"),
    ("Tastes nutty and a bit smoky.", "flavor", "nutty"),
    ("The cream feels silky on my hands.", "texture", "silky"),
    ("Greasy and sticky, I washed it off.", "texture", "greasy"),
    ("My nails look so shiny now.", "glossiness", "shiny"),
    ("A gorgeous matte finish.", "finish", "matte"),
    ("The shade is a soft dusty rose pink.", "color", "pink"),
    ("The bottle has cute polka dots.", "pattern", "polka"),
    ("The motor is surprisingly quiet.", "sound", "quiet"),
    ("The gel is translucent.", "transparency", "translucent"),
    ("My hair is looking light ash blonde.", "color", "light ash blonde"),
    ("The finish looks glossy.", "glossiness", "glossy"),
])
def test_finds_attribute_and_value(text, attribute, value_word):
  hits = _find(text, attribute)
  assert hits, EX.extract(text)
  assert any(value_word in r.value for r in hits)


@pytest.mark.parametrize("text, attribute", [
    ("It is completely odorless.", "scent"),
    ("Unscented, which I wanted.", "scent"),
    ("A fragrance-free formula for sensitive skin.", "scent"),
    ("There is no smell at all.", "scent"),
    ("It doesn't leave a greasy residue.", "texture"),
    ("The tea has no aftertaste.", "flavor"),
])
def test_negation_marks_absence(text, attribute):
  hits = _find(text, attribute)
  assert hits and all(r.negated for r in hits), EX.extract(text)


def test_negated_evaluation_flips_polarity_instead_of_absence():
  (record,) = _find("The scent is not good.", "scent")
  assert record.value == "not good" and not record.negated and record.polarity == "negative"


def test_hedge_is_kept_as_value():
  (record,) = _find("This coffee is not too bitter.", "flavor")
  assert record.value == "not too bitter" and not record.negated and record.polarity == "positive"


@pytest.mark.parametrize("text, attribute, polarity", [
    ("The texture is gritty.", "texture", "negative"),
    ("Silky smooth feel.", "texture", "positive"),
    ("The smell is terrible.", "scent", "negative"),
    ("I love the scent.", "scent", "positive"),
    ("The color is navy blue.", "color", "neutral"),
    ("The scent is too sweet.", "scent", "negative"),
])
def test_polarity(text, attribute, polarity):
  hits = _find(text, attribute)
  assert hits and hits[0].polarity == polarity, EX.extract(text)


@pytest.mark.parametrize("text", [
    "Shipping was fast and the price was fair.",
    "I bought this for my sister's birthday.",
    "It makes me feel good about my purchase.",
    "Look forward to trying other scents from them.",
    "I read the red warning label and the green tea ingredients.",
    "",
    "   ",
])
def test_no_sensory_content(text):
  assert EX.extract(text) == []


def test_colour_words_need_a_cue_in_reviews_but_not_in_titles():
  assert _find("Lipstick, Red, 0.1 oz", "color", source="title")
  assert not _find("The red box arrived late.", "color")
  assert _find("The red color is bold.", "color")
  assert _find("A lovely deep burgundy.", "color")  # a modifier is a cue


def test_evidence_is_an_exact_span_and_fields_are_valid():
  for ex in synthetic_examples():
    for record in EX.extract(ex.text, ex.source):
      assert record.evidence and record.evidence in ex.text
      assert record.attribute in ATTRIBUTE_TO_FACET and record.polarity in POLARITIES
      assert 0.0 <= record.confidence <= 1.0


def test_unicode_text_keeps_exact_offsets():
  text = "Très doux 🌹 — the gel feels silky and smells like fresh rosé 🍷."
  records = EX.extract(text)
  assert {r.attribute for r in records} >= {"texture", "scent"}
  for r in records:
    assert r.evidence in text


def test_confidence_follows_cue_strength():
  config = LexiconConfig(construction=0.95, standalone=0.5)
  ex = LexiconExtractor(config)
  (construction,) = [r for r in ex.extract("The scent is vanilla.") if r.attribute == "scent"]
  (standalone,) = [r for r in ex.extract("So greasy.") if r.attribute == "texture"]
  assert construction.confidence == 0.95 and standalone.confidence == 0.5


def test_duplicates_collapse_to_one_record():
  records = EX.extract("Shiny, shiny, shiny nails.")
  assert [(r.attribute, r.value) for r in records] == [("glossiness", "shiny")]


def test_batch_call_matches_single_calls():
  texts = ["Smells of roses.", "Crunchy and salty.", ""]
  assert EX(texts) == [EX.extract(t) for t in texts]
