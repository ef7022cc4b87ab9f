"""The hand-labelled sensory set: pointers into ../shared/data plus our labels.

teacher/data/lexicon_gold.jsonl holds, per sentence, where it lives (file, 1-based line or
CSV row, field, character range), a short SHA-1 of the sentence to detect a changed corpus,
and our labels (attribute, value, evidence as a character range, polarity, negated). The
corpus text itself is never stored in the repository; it is read from the data dir.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aser_jax.data.errors import DataError
from aser_jax.teacher.alignment import align, field_agreement

GOLD_PATH = Path(__file__).resolve().parent / "data" / "lexicon_gold.jsonl"


@dataclasses.dataclass(frozen=True)
class GoldSentence:
  """One labelled sentence, resolved against the corpus."""

  id: str
  split: str  # "dev": seen while building the lexicon; "heldout": labelled and scored after
  pool: str
  text: str
  labels: tuple[dict[str, Any], ...]


def _field_values(path: Path, field: str) -> list[str]:
  if not path.exists():
    raise DataError(path, None, "corpus file not found")
  with io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="") as handle:
    if path.name.endswith(".csv.gz"):
      return [row.get(field) or "" for row in csv.DictReader(handle)]
    return [json.loads(line).get(field) or "" for line in handle]


def load_gold(data_dir: str | Path, path: Path = GOLD_PATH) -> list[GoldSentence]:
  """Resolves every pointer of the gold file; fails naming the gold line on any mismatch."""
  cache: dict[tuple[str, str], list[str]] = {}
  out = []
  with open(path, encoding="utf-8") as handle:
    for line_no, line in enumerate(handle, start=1):
      row = json.loads(line)
      key = (row["file"], row["field"])
      if key not in cache:
        cache[key] = _field_values(Path(data_dir) / row["file"], row["field"])
      values = cache[key]
      if not 1 <= row["line"] <= len(values):
        raise DataError(path, line_no, f"line {row['line']} outside {row['file']}", field="line")
      field_text = values[row["line"] - 1]
      sentence = field_text[row["start"]:row["end"]]
      if hashlib.sha1(sentence.encode("utf-8")).hexdigest()[:12] != row["sha1"]:
        raise DataError(path, line_no, "sentence text does not match its sha1", field="sha1")
      labels = []
      for label in row["labels"]:
        if not row["start"] <= label["evidence_start"] < label["evidence_end"] <= row["end"]:
          raise DataError(path, line_no, "evidence range outside the sentence", field="labels")
        evidence = field_text[label["evidence_start"]:label["evidence_end"]]
        labels.append({k: label[k] for k in ("attribute", "value", "polarity", "negated")}
                      | {"evidence": evidence})
      out.append(GoldSentence(row["id"], row["split"], row["pool"], sentence, tuple(labels)))
  return out


def evaluate(gold: list[GoldSentence], extract: Callable[[str], list],
             embed_fn: Callable | None = None) -> dict[str, Any]:
  """Alignment metrics of an extractor against the gold labels, plus field accuracies."""
  pred = {g.id: extract(g.text) for g in gold}
  ref = {g.id: list(g.labels) for g in gold}
  metrics: dict[str, Any] = dict(align(pred, ref, embed_fn))
  metrics["negation_accuracy"] = field_agreement(pred, ref, "negated")
  metrics["polarity_accuracy"] = field_agreement(pred, ref, "polarity")
  metrics["false_positive_sentences"] = sum(
      bool(pred[g.id]) for g in gold if not g.labels)
  return metrics
