"""Teacher-vs-reference alignment: the ASER paper's table 7 metrics (ASER_SPEC §1).

Both sides are mappings key -> records (key: an item or a text); a record needs
`attribute` and `value` (SensoryRecord or dict). Values are normalised (lowercase,
collapsed whitespace, trivial punctuation removed). For each metric a prediction counts
as correct when some reference record of the same key matches it, and a reference
counts as found when some prediction of the same key matches it; micro precision is
correct predictions / predictions, micro recall found references / references.

Matchers: exact (attribute and value equal), attribute (attribute equal), semantic value
at cosine thresholds (same attribute, cosine of value embeddings >= threshold, with a
pluggable `embed_fn(list[str]) -> [n, d] array`), facet class (same facet), and a lenient
value overlap (same attribute, values share a content word) used where no encoder is at hand.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from aser_jax.teacher.schema import ATTRIBUTE_TO_FACET

EmbedFn = Callable[[list[str]], np.ndarray]
_PUNCT_RE = re.compile(r"[\"'`.,;:!?()\[\]{}*_]+")
_STOP = {"a", "an", "the", "of", "and", "very", "so", "really", "too", "not", "no", "is",
         "it", "like", "to", "with", "in", "on", "bit", "quite", "more"}


def normalize_value(text: str) -> str:
  """Lowercases, removes trivial punctuation and collapses whitespace."""
  return " ".join(_PUNCT_RE.sub(" ", text.lower()).split())


def _pairs(records: Sequence[Any]) -> list[tuple[str, str]]:
  out = []
  for r in records:
    attribute = r["attribute"] if isinstance(r, Mapping) else r.attribute
    value = r["value"] if isinstance(r, Mapping) else r.value
    out.append((normalize_value(attribute), normalize_value(value)))
  return out


@dataclasses.dataclass(frozen=True)
class PRF:
  """Micro precision, recall and F1 with the counts they come from."""

  precision: float
  recall: float
  f1: float
  correct_pred: int
  n_pred: int
  found_ref: int
  n_ref: int

  @classmethod
  def from_counts(cls, correct_pred: int, n_pred: int, found_ref: int, n_ref: int) -> PRF:
    p = correct_pred / n_pred if n_pred else 0.0
    r = found_ref / n_ref if n_ref else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return cls(p, r, f, correct_pred, n_pred, found_ref, n_ref)


Matcher = Callable[[tuple[str, str], tuple[str, str]], bool]


def _stem(word: str) -> str:
  """A crude suffix stripper so "lathers"/"lather" and "gluey"/"glue" share a stem."""
  for suffix in ("ing", "ed", "es", "ey", "s", "y"):
    if len(word) > len(suffix) + 2 and word.endswith(suffix):
      return word[:-len(suffix)]
  return word


def _content_words(value: str) -> set[str]:
  return {_stem(w) for w in value.replace("-", " ").split() if w not in _STOP}


def exact_match(p: tuple[str, str], r: tuple[str, str]) -> bool:
  return p == r


def attribute_match(p: tuple[str, str], r: tuple[str, str]) -> bool:
  return p[0] == r[0]


def facet_match(p: tuple[str, str], r: tuple[str, str]) -> bool:
  fp, fr = ATTRIBUTE_TO_FACET.get(p[0]), ATTRIBUTE_TO_FACET.get(r[0])
  return fp is not None and fp == fr


def overlap_match(p: tuple[str, str], r: tuple[str, str]) -> bool:
  return p[0] == r[0] and bool(_content_words(p[1]) & _content_words(r[1]) or p[1] == r[1])


def _prf(pred: Mapping[Any, list], ref: Mapping[Any, list], match: Matcher) -> PRF:
  correct = n_pred = found = n_ref = 0
  for key in set(pred) | set(ref):
    ps, rs = pred.get(key, []), ref.get(key, [])
    n_pred += len(ps)
    n_ref += len(rs)
    correct += sum(any(match(p, r) for r in rs) for p in ps)
    found += sum(any(match(p, r) for p in ps) for r in rs)
  return PRF.from_counts(correct, n_pred, found, n_ref)


def semantic_matcher(values: Sequence[str], embed_fn: EmbedFn, threshold: float) -> Matcher:
  """Same attribute and cosine(E(value_p), E(value_r)) >= threshold."""
  uniq = sorted(set(values))
  if not uniq:
    return lambda p, r: False
  emb = np.asarray(embed_fn(uniq), dtype=np.float64)
  if emb.shape[0] != len(uniq):
    raise ValueError(f"embed_fn returned {emb.shape[0]} rows for {len(uniq)} texts")
  emb = emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
  row = {v: i for i, v in enumerate(uniq)}
  cos = emb @ emb.T
  return lambda p, r: p[0] == r[0] and cos[row[p[1]], row[r[1]]] >= threshold - 1e-9


def align(pred: Mapping[Any, Sequence[Any]], ref: Mapping[Any, Sequence[Any]],
          embed_fn: EmbedFn | None = None,
          thresholds: Sequence[float] = (0.8, 0.7, 0.6)) -> dict[str, PRF]:
  """All table-7 metrics between two record sets keyed alike (ASER_SPEC §1).

  Returns {"exact", "attribute", "overlap", "semantic@0.8", ..., "facet"}; the semantic
  entries need embed_fn.
  """
  pp = {k: _pairs(v) for k, v in pred.items()}
  rr = {k: _pairs(v) for k, v in ref.items()}
  out = {"exact": _prf(pp, rr, exact_match), "attribute": _prf(pp, rr, attribute_match)}
  if embed_fn is not None:
    values = [v for pairs in (*pp.values(), *rr.values()) for _, v in pairs]
    for t in thresholds:
      out[f"semantic@{t:g}"] = _prf(pp, rr, semantic_matcher(values, embed_fn, t))
  out["overlap"] = _prf(pp, rr, overlap_match)
  out["facet"] = _prf(pp, rr, facet_match)
  return out


def field_agreement(pred: Mapping[Any, Sequence[Any]], ref: Mapping[Any, Sequence[Any]],
                    field: str, match: Matcher = overlap_match) -> tuple[float, int]:
  """Agreement of `field` (negated, polarity) over reference records matched by `match`.

  Each reference record is paired with its first matching prediction of the same key.
  Returns (accuracy, number of matched pairs); accuracy is 0.0 with no pairs.
  """
  agree = total = 0
  for key, refs in ref.items():
    preds = list(pred.get(key, []))
    for r in refs:
      rp = _pairs([r])[0]
      for p in preds:
        if match(_pairs([p])[0], rp):
          total += 1
          get = lambda x: x[field] if isinstance(x, Mapping) else getattr(x, field)
          agree += get(p) == get(r)
          break
  return (agree / total if total else 0.0), total


def char_ngram_embed(texts: list[str], n: int = 3, dim: int = 2048) -> np.ndarray:
  """A deterministic bag of hashed character n-grams: a stand-in sentence encoder."""
  import zlib
  out = np.zeros((len(texts), dim), dtype=np.float64)
  for i, text in enumerate(texts):
    padded = f" {text} "
    for j in range(max(1, len(padded) - n + 1)):
      out[i, zlib.crc32(padded[j:j + n].encode("utf-8")) % dim] += 1.0
  return out
