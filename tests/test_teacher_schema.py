"""Validator and repairs for teacher output (ASER_SPEC §1): every malformed kind we expect."""

import json
import math

import pytest

from aser_jax.teacher.schema import (ATTRIBUTE_TO_FACET, ATTRIBUTES, FACETS, FIELDS, SensoryRecord,
                                     parse_json_output, record_json_schema, validate_output,
                                     validate_record)

GOOD = {"attribute": "scent", "value": "vanilla", "evidence": "smells like vanilla",
        "polarity": "positive", "negated": False, "confidence": 0.9}


def test_inventory_and_facet_map():
  assert len(ATTRIBUTES) == 13 and len(set(ATTRIBUTES)) == 13
  assert set(ATTRIBUTE_TO_FACET) == set(ATTRIBUTES)
  assert set(ATTRIBUTE_TO_FACET.values()) == set(FACETS)
  assert ATTRIBUTE_TO_FACET["texture"] == "tactile" and ATTRIBUTE_TO_FACET["finish"] == "visual"
  assert ATTRIBUTE_TO_FACET["sound"] == "auditory" and ATTRIBUTE_TO_FACET["flavor"] == "gustatory"


def test_valid_output_needs_no_repair():
  v = validate_output(json.dumps([GOOD]))
  assert v.records == (SensoryRecord("scent", "vanilla", "smells like vanilla", "positive", False, 0.9),)
  assert v.repairs == ((),) and v.output_repairs == () and v.rejected == ()
  assert v.records[0].facet == "olfactory"


@pytest.mark.parametrize("raw, repair", [
    ("```json\n" + json.dumps([GOOD]) + "\n```", "stripped code fence"),
    ("```\n" + json.dumps([GOOD]) + "\n```", "stripped code fence"),
    (json.dumps([GOOD])[:-1] + ",]", "removed trailing commas"),
    (json.dumps([GOOD]).replace("0.9}", "0.9,}"), "removed trailing commas"),
    ("Here are the records:\n" + json.dumps([GOOD]) + "\nDone.", "cut prose around JSON"),
    (json.dumps(GOOD), "single object wrapped in list"),
    (json.dumps({"records": [GOOD]}), "unwrapped records from object"),
])
def test_output_level_repairs(raw, repair):
  v = validate_output(raw)
  assert len(v.records) == 1 and v.records[0].value == "vanilla"
  assert repair in v.output_repairs
  assert v.rejected == () and v.repaired_mask == (True,)


@pytest.mark.parametrize("field, raw_value, expected, repair_word", [
    ("confidence", "0.8", 0.8, "confidence from string"),
    ("confidence", "85%", 0.85, "confidence from string"),
    ("confidence", 85, 0.85, "percent"),
    ("confidence", -0.2, 0.0, "clipped"),
    ("confidence", 250, 1.0, "clipped"),
    ("negated", "true", True, "negated from string"),
    ("negated", "no", False, "negated from string"),
    ("negated", 1, True, "negated from number"),
    ("polarity", "Positive", "positive", "polarity"),
    ("polarity", "mixed", "neutral", "polarity"),
    ("polarity", "ecstatic", "unknown", "polarity"),
    ("attribute", "Colour", "color", "attribute"),
    ("attribute", "smell", "scent", "attribute"),
    ("attribute", "taste", "flavor", "attribute"),
])
def test_field_repairs(field, raw_value, expected, repair_word):
  record, repairs = validate_record({**GOOD, field: raw_value})
  assert getattr(record, field) == expected
  assert any(repair_word in r for r in repairs), repairs


def test_missing_optional_fields_and_extras_are_repaired():
  obj = {k: v for k, v in GOOD.items() if k not in ("polarity", "negated")}
  record, repairs = validate_record({**obj, "Facet": "olfactory", " Value ": "vanilla"})
  assert record.polarity == "unknown" and record.negated is False
  assert any("dropped extra field 'Facet'" in r for r in repairs)
  assert any("normalised" in r for r in repairs)


def test_whitespace_in_strings_is_collapsed():
  record, _ = validate_record({**GOOD, "value": "  warm \n vanilla "})
  assert record.value == "warm vanilla"


@pytest.mark.parametrize("bad, reason", [
    ({**GOOD, "attribute": "weight"}, "not one of the 13"),
    ({**GOOD, "value": "   "}, "value is empty"),
    ({k: v for k, v in GOOD.items() if k != "evidence"}, "evidence missing"),
    ({k: v for k, v in GOOD.items() if k != "confidence"}, "confidence missing"),
    ({**GOOD, "confidence": "high"}, "not a number"),
    ({**GOOD, "confidence": True}, "boolean"),
    ({**GOOD, "negated": "maybe"}, "not a boolean"),
    ({**GOOD, "value": ["a"]}, "not a string"),
    ("scent: vanilla", "not an object"),
    (42, "not an object"),
])
def test_unrepairable_records_are_rejected_with_reason(bad, reason):
  v = validate_output([GOOD, bad, GOOD])
  assert len(v.records) == 2, "good neighbours survive"
  assert len(v.rejected) == 1 and reason in v.rejected[0].reason


def test_nan_confidence_is_rejected():
  v = validate_output('[{"attribute": "scent", "value": "v", "evidence": "e", "polarity": '
                      '"neutral", "negated": false, "confidence": NaN}]')
  assert v.records == () and "not finite" in v.rejected[0].reason


@pytest.mark.parametrize("raw, reason", [
    ("", "empty output"),
    ("   \n", "empty output"),
    ("I could not find anything sensory.", "unparseable JSON"),
    ('[{"attribute": "scent", "value": "vanilla"', "unparseable JSON"),
    ('"just a string"', "not a list"),
    ("3.5", "not a list"),
])
def test_unusable_outputs_are_kept_as_rejections(raw, reason):
  v = validate_output(raw)
  assert v.records == ()
  assert len(v.rejected) == 1 and reason in v.rejected[0].reason
  assert v.rejected[0].raw == raw or raw.strip() == "" or raw in v.rejected[0].raw


def test_empty_list_is_valid():
  v = validate_output("[]")
  assert v.records == () and v.rejected == () and v.output_repairs == ()


def test_long_rejected_raw_is_truncated():
  v = validate_output("x" * 5000)
  assert len(v.rejected[0].raw) < 500 and v.rejected[0].raw.endswith("...")


def test_parse_json_output_reports_position():
  with pytest.raises(ValueError, match="at char"):
    parse_json_output("[{]")


def test_schema_enumerates_inventory_and_bounds_output():
  schema = record_json_schema(max_records=5)
  item = schema["items"]
  assert item["properties"]["attribute"]["enum"] == list(ATTRIBUTES)
  assert set(item["required"]) == set(FIELDS) and item["additionalProperties"] is False
  assert schema["maxItems"] == 5
  assert item["properties"]["confidence"]["minimum"] == 0
  assert item["properties"]["confidence"]["maximum"] == 1
  assert math.isfinite(item["properties"]["evidence"]["maxLength"])
