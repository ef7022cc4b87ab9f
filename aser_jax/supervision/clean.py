"""Record cleaning and per-text facet labels (ASER_SPEC §2).

A record is kept when its attribute maps to a facet, its evidence is non-empty and occurs in
the normalised source text, and its confidence reaches the facet threshold (0.60 visual,
tactile, olfactory; 0.72 auditory; 0.75 gustatory), raised by `margin_source` for titles and
descriptions and by `margin_short` for inputs under `short_tokens` tokens.
"""

from __future__ import annotations

import collections
import dataclasses
import re

from aser_jax.bank.facets import FACETS, POLARITIES

ATTRIBUTE_TO_FACET = {
    **{a: "visual" for a in ("color", "pattern", "shape", "graphics", "brightness", "glossiness",
                             "transparency", "finish", "design")},
    "texture": "tactile", "sound": "auditory", "scent": "olfactory", "flavor": "gustatory",
}
_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclasses.dataclass(frozen=True)
class CleanConfig:
  thresholds: tuple[tuple[str, float], ...] = (("visual", 0.60), ("tactile", 0.60), ("auditory", 0.72),
                                               ("olfactory", 0.60), ("gustatory", 0.75))
  margin_source: float = 0.05  # titles and descriptions (chosen)
  margin_short: float = 0.05  # inputs under `short_tokens` tokens (chosen)
  short_tokens: int = 8
  max_target_records: int = 3


def normalise(text: str) -> str:
  return " ".join(text.lower().split())


def threshold(facet: str, source: str, text: str, cfg: CleanConfig) -> float:
  t = dict(cfg.thresholds)[facet]
  if source in ("title", "description"):
    t += cfg.margin_source
  if len(_TOKEN_RE.findall(text)) < cfg.short_tokens:
    t += cfg.margin_short
  return round(t, 9)  # 0.60 + 0.05 + 0.05 must equal 0.70, so a record at the threshold is kept


def keep_reason(record: dict, source: str, text: str, cfg: CleanConfig) -> str | None:
  """None when the record is kept, else why it is dropped."""
  facet = ATTRIBUTE_TO_FACET.get(record.get("attribute", ""))
  if facet is None:
    return "attribute has no facet"
  evidence = normalise(record.get("evidence", ""))
  if not evidence:
    return "empty evidence"
  if evidence not in normalise(text):
    return "evidence not in text"
  if float(record.get("confidence", 0.0)) < threshold(facet, source, text, cfg):
    return "confidence below threshold"
  return None


@dataclasses.dataclass(frozen=True)
class FacetLabels:
  """Labels of one text: per facet presence y, confidence κ, polarity class (-1 = masked), target text."""

  presence: tuple[int, ...]
  confidence: tuple[float, ...]
  polarity: tuple[int, ...]
  polarity_mass: tuple[tuple[float, float, float], ...]  # confidence-weighted counts per class
  target_text: tuple[str, ...]
  kept: tuple[dict, ...]


def facet_labels(records: list[dict], source: str, text: str, cfg: CleanConfig = CleanConfig()) -> FacetLabels:
  kept = [r for r in records if keep_reason(r, source, text, cfg) is None]
  by_facet = collections.defaultdict(list)
  for r in kept:
    by_facet[ATTRIBUTE_TO_FACET[r["attribute"]]].append(r)
  presence, conf, pol, mass, target = [], [], [], [], []
  for f in FACETS:
    rs = by_facet.get(f, [])
    presence.append(int(bool(rs)))
    conf.append(sum(float(r["confidence"]) for r in rs) / len(rs) if rs else 0.0)
    m = [sum(float(r["confidence"]) for r in rs if r.get("polarity") == p) for p in POLARITIES]
    mass.append(tuple(m))
    pol.append(max(range(3), key=lambda k: m[k]) if sum(m) > 0 else -1)
    top = sorted(rs, key=lambda r: -float(r["confidence"]))[:cfg.max_target_records]
    target.append(" ; ".join(f"{r['attribute']} = {r['value']}" for r in top))
  return FacetLabels(tuple(presence), tuple(conf), tuple(pol), tuple(mass), tuple(target), tuple(kept))


def cleaning_table(rows: list[dict], domain_of, cfg: CleanConfig = CleanConfig()) -> dict[str, dict]:
  """Per-domain raw / kept / drop-rate counts and drop reasons (the paper's table 2)."""
  table = collections.defaultdict(lambda: {"raw": 0, "kept": 0, "reasons": collections.Counter()})
  for row in rows:
    t = table[domain_of(row)]
    for r in row.get("records", []):
      t["raw"] += 1
      reason = keep_reason(r, row["source"], row["text"], cfg)
      if reason is None:
        t["kept"] += 1
      else:
        t["reasons"][reason] += 1
  return {d: {"raw": v["raw"], "kept": v["kept"], "drop_rate": 1 - v["kept"] / v["raw"] if v["raw"] else 0.0,
              "reasons": dict(v["reasons"])} for d, v in table.items()}
