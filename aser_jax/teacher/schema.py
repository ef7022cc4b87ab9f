"""The Stage-1 sensory record, its 13-attribute inventory and a repairing validator.

ASER_SPEC §1: a teacher returns a JSON list of records with exactly six fields
(attribute, value, evidence, polarity, negated, confidence). LLM output is often almost
right, so the validator repairs what has an unambiguous fix (code fences, trailing commas,
a bare object instead of a list, numbers sent as strings, out-of-range confidence, attribute
synonyms) and keeps everything else as a rejected entry with its reason: nothing is dropped
silently and invalid output is never fatal.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

ATTRIBUTES = (
    "color", "pattern", "shape", "graphics", "brightness", "glossiness", "transparency",
    "finish", "design", "texture", "scent", "flavor", "sound",
)
FACETS = ("visual", "tactile", "auditory", "olfactory", "gustatory")
POLARITIES = ("positive", "negative", "neutral", "unknown")
FIELDS = ("attribute", "value", "evidence", "polarity", "negated", "confidence")

# ASER_SPEC §1 attribute -> facet map (reading).
ATTRIBUTE_TO_FACET = {
    **{a: "visual" for a in ATTRIBUTES[:9]},
    "texture": "tactile",
    "sound": "auditory",
    "scent": "olfactory",
    "flavor": "gustatory",
}

# Names an LLM commonly uses for an inventory attribute; mapping them is a repair.
_ATTRIBUTE_SYNONYMS = {
    "colour": "color", "colors": "color", "colours": "color", "hue": "color", "shade": "color",
    "patterns": "pattern", "shapes": "shape", "graphic": "graphics", "print": "graphics",
    "bright": "brightness", "gloss": "glossiness", "shine": "glossiness", "shininess": "glossiness",
    "sheen": "glossiness", "transparent": "transparency", "clarity": "transparency",
    "opacity": "transparency", "finishes": "finish", "look": "design", "style": "design",
    "textures": "texture", "feel": "texture", "touch": "texture", "tactile": "texture",
    "consistency": "texture", "smell": "scent", "fragrance": "scent", "odor": "scent",
    "odour": "scent", "aroma": "scent", "scents": "scent", "taste": "flavor",
    "flavour": "flavor", "flavors": "flavor", "flavours": "flavor", "sounds": "sound",
    "noise": "sound", "audio": "sound",
}
_POLARITY_SYNONYMS = {
    "pos": "positive", "+": "positive", "good": "positive", "neg": "negative", "-": "negative",
    "bad": "negative", "neu": "neutral", "mixed": "neutral", "none": "unknown", "null": "unknown",
    "": "unknown", "n/a": "unknown",
}
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0", "none", "null", ""}
_MAX_RAW_CHARS = 400


@dataclasses.dataclass(frozen=True)
class SensoryRecord:
  """One evidence-grounded sensory record (ASER_SPEC §1)."""

  attribute: str
  value: str
  evidence: str
  polarity: str
  negated: bool
  confidence: float

  @property
  def facet(self) -> str:
    return ATTRIBUTE_TO_FACET[self.attribute]

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Rejected:
  """A piece of teacher output that could not be repaired, with the reason."""

  raw: str
  reason: str

  def to_dict(self) -> dict[str, str]:
    return {"raw": self.raw, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Validation:
  """Validator result: accepted records, the repairs applied to each, and rejections."""

  records: tuple[SensoryRecord, ...]
  repairs: tuple[tuple[str, ...], ...]
  rejected: tuple[Rejected, ...]
  output_repairs: tuple[str, ...] = ()

  @property
  def repaired_mask(self) -> tuple[bool, ...]:
    """Per record: was it (or the output it came from) repaired."""
    return tuple(bool(r) or bool(self.output_repairs) for r in self.repairs)


def _short(obj: Any) -> str:
  text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, default=str)
  return text if len(text) <= _MAX_RAW_CHARS else text[:_MAX_RAW_CHARS] + "..."


_FENCE_RE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r",\s*([\]}])")


def parse_json_output(raw: str) -> tuple[Any, list[str]]:
  """Parses LLM text into JSON, repairing fences, trailing commas and surrounding prose.

  Returns (value, repairs). Raises ValueError with the reason when nothing parses.
  """
  repairs: list[str] = []
  text = raw.strip()
  if not text:
    raise ValueError("empty output")
  fenced = _FENCE_RE.match(text)
  if fenced:
    text = fenced.group(1).strip()
    repairs.append("stripped code fence")
  try:
    return json.loads(text), repairs
  except json.JSONDecodeError:
    pass
  no_commas = _TRAILING_COMMA_RE.sub(r"\1", text)
  if no_commas != text:
    try:
      return json.loads(no_commas), repairs + ["removed trailing commas"]
    except json.JSONDecodeError:
      pass
  for open_ch, close_ch in (("[", "]"), ("{", "}")):
    start, end = no_commas.find(open_ch), no_commas.rfind(close_ch)
    if 0 <= start < end:
      try:
        value = json.loads(no_commas[start:end + 1])
      except json.JSONDecodeError:
        continue
      fixes = ["removed trailing commas"] if no_commas != text else []
      return value, repairs + fixes + ["cut prose around JSON"]
  try:
    json.loads(no_commas)
  except json.JSONDecodeError as err:
    raise ValueError(f"unparseable JSON ({err.msg} at char {err.pos})") from None
  raise ValueError("unparseable JSON")


def _parse_bool(value: Any, repairs: list[str]) -> bool:
  if isinstance(value, bool):
    return value
  if isinstance(value, (int, float)) and value in (0, 1):
    repairs.append("negated from number")
    return bool(value)
  if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
    repairs.append("negated from string")
    return value.strip().lower() in _TRUE
  if value is None:
    repairs.append("negated null -> false")
    return False
  raise ValueError(f"negated {value!r} is not a boolean")


def _parse_confidence(value: Any, repairs: list[str]) -> float:
  if isinstance(value, bool):
    raise ValueError(f"confidence {value!r} is a boolean, not a number")
  if isinstance(value, str):
    text = value.strip()
    percent = text.endswith("%")
    try:
      number = float(text.rstrip("%").strip())
    except ValueError:
      raise ValueError(f"confidence {value!r} is not a number") from None
    repairs.append("confidence from string")
    if percent:
      number /= 100.0
  elif isinstance(value, (int, float)):
    number = float(value)
  else:
    raise ValueError(f"confidence {value!r} is not a number")
  if not math.isfinite(number):
    raise ValueError(f"confidence {value!r} is not finite")
  if 1.0 < number <= 100.0:
    repairs.append("confidence rescaled from percent")
    number /= 100.0
  if not 0.0 <= number <= 1.0:
    repairs.append("confidence clipped to [0, 1]")
    number = min(max(number, 0.0), 1.0)
  return number


def _text_field(obj: dict[str, Any], name: str, repairs: list[str]) -> str:
  value = obj.get(name)
  if value is None:
    raise ValueError(f"{name} missing")
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    repairs.append(f"{name} from number")
    value = str(value)
  if not isinstance(value, str):
    raise ValueError(f"{name} {value!r} is not a string")
  cleaned = " ".join(value.split())
  if not cleaned:
    raise ValueError(f"{name} is empty")
  return cleaned


def validate_record(obj: Any) -> tuple[SensoryRecord, tuple[str, ...]]:
  """Validates one record dict. Returns (record, repairs); raises ValueError if unrepairable."""
  if not isinstance(obj, dict):
    raise ValueError(f"record is a {type(obj).__name__}, not an object")
  repairs: list[str] = []
  fields = {}
  for key, value in obj.items():
    norm = str(key).strip().lower()
    if norm != key:
      repairs.append(f"field name {key!r} normalised")
    if norm in FIELDS:
      fields[norm] = value
    else:
      repairs.append(f"dropped extra field {key!r}")
  attribute_raw = _text_field(fields, "attribute", repairs).lower()
  attribute = _ATTRIBUTE_SYNONYMS.get(attribute_raw, attribute_raw)
  if attribute not in ATTRIBUTE_TO_FACET:
    raise ValueError(f"attribute {attribute_raw!r} is not one of the 13 sensory attributes")
  if attribute != attribute_raw:
    repairs.append(f"attribute {attribute_raw!r} -> {attribute!r}")
  value = _text_field(fields, "value", repairs)
  evidence = _text_field(fields, "evidence", repairs)
  polarity_raw = fields.get("polarity")
  if polarity_raw is None:
    repairs.append("polarity missing -> unknown")
    polarity = "unknown"
  else:
    text = str(polarity_raw).strip().lower()
    polarity = text if text in POLARITIES else _POLARITY_SYNONYMS.get(text, "unknown")
    if polarity != polarity_raw:
      repairs.append(f"polarity {polarity_raw!r} -> {polarity!r}")
  if "negated" not in fields:
    repairs.append("negated missing -> false")
    negated = False
  else:
    negated = _parse_bool(fields["negated"], repairs)
  if "confidence" not in fields:
    raise ValueError("confidence missing")
  confidence = _parse_confidence(fields["confidence"], repairs)
  record = SensoryRecord(attribute, value, evidence, polarity, negated, confidence)
  return record, tuple(repairs)


def validate_output(raw: Any) -> Validation:
  """Validates one teacher output: a JSON string, a parsed list, or a single object.

  A wrapper object whose only list value holds the records (e.g. {"records": [...]}) is
  unwrapped; a single record object is wrapped into a list. Each list element is validated
  independently, so one bad record does not sink its neighbours.
  """
  output_repairs: list[str] = []
  if isinstance(raw, (bytes, bytearray)):
    raw = raw.decode("utf-8", errors="replace")
  original = raw
  if isinstance(raw, str):
    try:
      raw, fixes = parse_json_output(raw)
    except ValueError as err:
      return Validation((), (), (Rejected(_short(raw), str(err)),), ())
    output_repairs.extend(fixes)
  if isinstance(raw, dict):
    list_values = [v for v in raw.values() if isinstance(v, list)]
    if len(list_values) == 1 and not set(k.lower() for k in raw) & {"attribute", "value"}:
      raw = list_values[0]
      output_repairs.append("unwrapped records from object")
    else:
      raw = [raw]
      output_repairs.append("single object wrapped in list")
  if not isinstance(raw, list):
    reason = f"output is a {type(raw).__name__}, not a list of records"
    return Validation((), (), (Rejected(_short(original), reason),), tuple(output_repairs))
  records, repairs, rejected = [], [], []
  for item in raw:
    try:
      record, fixes = validate_record(item)
    except ValueError as err:
      rejected.append(Rejected(_short(item), str(err)))
      continue
    records.append(record)
    repairs.append(fixes)
  return Validation(tuple(records), tuple(repairs), tuple(rejected), tuple(output_repairs))


def record_json_schema(max_records: int = 5) -> dict[str, Any]:
  """JSON schema of a teacher output (a list of six-field records) for guided decoding.

  Length caps bound the worst-case output, so a guided model that keeps emitting records
  still closes the JSON within its token budget.
  """
  return {
      "type": "array",
      "items": {
          "type": "object",
          "properties": {
              "attribute": {"type": "string", "enum": list(ATTRIBUTES)},
              "value": {"type": "string", "minLength": 1, "maxLength": 40},
              "evidence": {"type": "string", "minLength": 1, "maxLength": 120},
              "polarity": {"type": "string", "enum": list(POLARITIES)},
              "negated": {"type": "boolean"},
              "confidence": {"type": "number", "minimum": 0, "maximum": 1},
          },
          "required": list(FIELDS),
          "additionalProperties": False,
      },
      "maxItems": max_records,
  }
