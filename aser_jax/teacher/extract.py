"""Sharded, resumable Stage-1 extraction (ASER_SPEC §1) with an audit summary.

Texts are cut into fixed-size shards in input order. A shard is written to a temporary
file and renamed into place only when complete, together with its own summary, so a
re-run skips finished shards and a killed run loses at most the shard in flight. Output
lines are `{"item_id", "source", "text", "records": [...], "rejected": [...]}`.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aser_jax.data.io import write_text_atomic
from aser_jax.teacher.backends import Teacher
from aser_jax.teacher.schema import ATTRIBUTE_TO_FACET, Validation
from aser_jax.teacher.text import TextExample

MANIFEST = "manifest.json"
_QUOTED_RE = re.compile(r"'[^']*'|\"[^\"]*\"")
SUMMARY = "summary.json"


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
  """Shard size (texts per file), gzip on/off, and texts per teacher call."""

  shard_size: int = 1000
  compress: bool = True
  batch_size: int = 64


def _norm(text: str) -> str:
  return " ".join(text.replace("’", "'").replace("‘", "'").lower().split())


def is_grounded(evidence: str, text: str) -> bool:
  """Evidence appears in the text after lowercasing and collapsing whitespace (ASER_SPEC §2)."""
  ev = _norm(evidence)
  return bool(ev) and ev in _norm(text)


@dataclasses.dataclass
class Summary:
  """Counts of accepted / repaired / rejected per attribute and facet, and output validity."""

  texts: int = 0
  texts_with_records: int = 0
  outputs_valid: int = 0  # parsed and validated with no repair and no rejection
  outputs_repaired: int = 0  # usable only after a repair
  outputs_with_rejections: int = 0
  accepted: int = 0
  repaired: int = 0
  rejected: int = 0
  grounded: int = 0
  negated: int = 0
  attribute: dict = dataclasses.field(default_factory=dict)  # name -> {accepted, repaired, rejected}
  facet: dict = dataclasses.field(default_factory=dict)
  polarity: dict = dataclasses.field(default_factory=dict)
  reject_reasons: dict = dataclasses.field(default_factory=dict)

  def _bump(self, table: dict, key: str, field: str, n: int = 1) -> None:
    row = table.setdefault(key, {"accepted": 0, "repaired": 0, "rejected": 0})
    row[field] += n

  def add(self, example: TextExample, validation: Validation) -> None:
    self.texts += 1
    self.texts_with_records += bool(validation.records)
    record_repairs = any(validation.repairs) or bool(validation.output_repairs)
    if validation.rejected:
      self.outputs_with_rejections += 1
    elif record_repairs:
      self.outputs_repaired += 1
    else:
      self.outputs_valid += 1
    for record, repaired in zip(validation.records, validation.repaired_mask):
      self.accepted += 1
      self.repaired += repaired
      self.grounded += is_grounded(record.evidence, example.text)
      self.negated += record.negated
      self.polarity[record.polarity] = self.polarity.get(record.polarity, 0) + 1
      for table, key in ((self.attribute, record.attribute), (self.facet, record.facet)):
        self._bump(table, key, "accepted")
        if repaired:
          self._bump(table, key, "repaired")
    for rejected in validation.rejected:
      self.rejected += 1
      reason = _QUOTED_RE.sub("X", rejected.reason.split(" (")[0].split(":")[0])
      self.reject_reasons[reason] = self.reject_reasons.get(reason, 0) + 1
      attribute = _raw_attribute(rejected.raw)
      self._bump(self.attribute, attribute, "rejected")
      self._bump(self.facet, ATTRIBUTE_TO_FACET.get(attribute, "unknown"), "rejected")

  def merge(self, other: Summary) -> None:
    for field in dataclasses.fields(self):
      mine, theirs = getattr(self, field.name), getattr(other, field.name)
      if isinstance(mine, int):
        setattr(self, field.name, mine + theirs)
      elif field.name in ("attribute", "facet"):
        for key, row in theirs.items():
          for col, n in row.items():
            self._bump(mine, key, col, n)
      else:
        for key, n in theirs.items():
          mine[key] = mine.get(key, 0) + n

  def to_dict(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out["valid_share"] = self.outputs_valid / self.texts if self.texts else 0.0
    out["usable_share"] = ((self.outputs_valid + self.outputs_repaired) / self.texts
                           if self.texts else 0.0)
    out["grounded_rate"] = self.grounded / self.accepted if self.accepted else 0.0
    return out

  @classmethod
  def from_dict(cls, obj: dict[str, Any]) -> Summary:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in obj.items() if k in names})


def _raw_attribute(raw: str) -> str:
  try:
    obj = json.loads(raw)
  except (json.JSONDecodeError, TypeError):
    return "unknown"
  if isinstance(obj, dict) and isinstance(obj.get("attribute"), str):
    name = obj["attribute"].strip().lower()
    return name if name in ATTRIBUTE_TO_FACET else "other"
  return "unknown"


def output_row(example: TextExample, validation: Validation) -> dict[str, Any]:
  return {"item_id": example.item_id, "source": example.source, "text": example.text,
          "records": [r.to_dict() for r in validation.records],
          "rejected": [r.to_dict() for r in validation.rejected]}


def shard_name(index: int, compress: bool) -> str:
  return f"shard-{index:05d}.jsonl" + (".gz" if compress else "")


def _check_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
  path = out_dir / MANIFEST
  if path.exists():
    old = json.loads(path.read_text())
    for key in ("n_texts", "shard_size", "compress", "data", "backend"):
      if old.get(key) != manifest.get(key):
        raise ValueError(f"{path}: existing run has {key}={old.get(key)!r}, this run "
                         f"{manifest.get(key)!r}; use a fresh --out to change it")
  else:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(manifest, indent=1))


def run_extraction(examples: Sequence[TextExample], teacher: Teacher, out_dir: str | Path,
                   config: ExtractConfig = ExtractConfig(), data_name: str = "",
                   progress: bool = True) -> Summary:
  """Annotates all examples into shards under out_dir, resuming finished shards.

  Returns the summary over all shards (also written to out_dir/summary.json).
  """
  from tqdm import tqdm

  out_dir = Path(out_dir)
  n = len(examples)
  n_shards = math.ceil(n / config.shard_size) if n else 0
  _check_manifest(out_dir, {"n_texts": n, "shard_size": config.shard_size,
                            "compress": config.compress, "data": data_name,
                            "backend": teacher.name, "n_shards": n_shards})
  total = Summary()
  bar = tqdm(total=n, desc=f"teacher[{teacher.name}]", unit="text", disable=not progress)
  for index in range(n_shards):
    path = out_dir / shard_name(index, config.compress)
    summary_path = path.with_name(path.name + ".summary.json")
    lo, hi = index * config.shard_size, min(n, (index + 1) * config.shard_size)
    if path.exists() and summary_path.exists():
      total.merge(Summary.from_dict(json.loads(summary_path.read_text())))
      bar.update(hi - lo)
      continue
    shard = Summary()
    rows = []
    for start in range(lo, hi, config.batch_size):
      batch = list(examples[start:min(hi, start + config.batch_size)])
      validations = teacher.annotate(batch)
      if len(validations) != len(batch):
        raise RuntimeError(f"teacher {teacher.name} returned {len(validations)} results for "
                           f"{len(batch)} texts")
      for example, validation in zip(batch, validations):
        shard.add(example, validation)
        rows.append(output_row(example, validation))
      bar.update(len(batch))
    write_text_atomic(summary_path, json.dumps(shard.to_dict()))
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))  # .gz: compressed
    total.merge(shard)
  bar.close()
  write_text_atomic(out_dir / SUMMARY, json.dumps(total.to_dict(), indent=1))
  return total


def shard_files(out_dir: str | Path) -> list[Path]:
  """A run's finished output shards, in input order."""
  return [p for p in sorted(Path(out_dir).glob("shard-*.jsonl*")) if not p.name.endswith((".tmp", ".summary.json"))]


def read_shards(out_dir: str | Path) -> list[dict[str, Any]]:
  """All output rows of a run, in input order."""
  rows = []
  for path in shard_files(out_dir):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
      rows.extend(json.loads(line) for line in handle if line.strip())
  return rows


def format_summary(summary: Summary) -> str:
  """A human-readable table of the summary."""
  d = summary.to_dict()
  lines = [
      f"texts {d['texts']}  with records {d['texts_with_records']}  outputs valid "
      f"{d['outputs_valid']} ({d['valid_share']:.1%})  repaired {d['outputs_repaired']}  "
      f"with rejections {d['outputs_with_rejections']}",
      f"records accepted {d['accepted']}  repaired {d['repaired']}  rejected {d['rejected']}  "
      f"evidence grounded {d['grounded_rate']:.1%}  negated {d['negated']}",
      f"{'attribute/facet':16s} {'accepted':>9s} {'repaired':>9s} {'rejected':>9s}",
  ]
  for table in ("facet", "attribute"):
    for key in sorted(d[table]):
      row = d[table][key]
      lines.append(f"{table[0]}:{key:14s} {row['accepted']:9d} {row['repaired']:9d} "
                   f"{row['rejected']:9d}")
  if d["reject_reasons"]:
    lines.append("reject reasons: " + ", ".join(
        f"{k} x{v}" for k, v in collections.Counter(d["reject_reasons"]).most_common()))
  return "\n".join(lines)


def default_data_dir() -> Path:
  """../shared/data relative to the repository root."""
  return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def load_texts(data: str, data_dir: str | Path | None, limit: int = 0) -> tuple[str, list[TextExample]]:
  """Texts of a preset; the embedded synthetic corpus for "synthetic" or a missing data dir.

  Returns (name actually used, texts); limit > 0 keeps the first `limit` texts.
  """
  from aser_jax.teacher import text as text_lib

  root = Path(data_dir) if data_dir else default_data_dir()
  if data == "synthetic" or not root.is_dir():
    if data != "synthetic":
      print(f"data dir {root} not found: using the embedded synthetic texts")
    examples = text_lib.synthetic_examples()
    name = "synthetic"
  else:
    examples, name = [], data
    for example in text_lib.read_preset(data, root):
      examples.append(example)
      if limit and len(examples) >= limit:
        break
  return name, examples[:limit] if limit else examples


def extract_corpus(backend: str, data: str, data_dir: str | None, out: str, *, limit: int = 0,
                   shard_size: int = 1000, batch_size: int = 64, compress: bool = True,
                   progress: bool = True, **teacher_options: Any) -> Summary:
  """Loads a corpus, builds the backend and runs the sharded extraction; prints the summary."""
  import time

  from aser_jax.teacher.backends import make_teacher

  name, examples = load_texts(data, data_dir, limit)
  teacher = make_teacher(backend, batch_size=batch_size, **teacher_options)
  start = time.perf_counter()
  summary = run_extraction(examples, teacher, out,
                           ExtractConfig(shard_size=shard_size, compress=compress,
                                         batch_size=batch_size), data_name=name,
                           progress=progress)
  seconds = time.perf_counter() - start
  print(format_summary(summary))
  print(f"{len(examples)} texts from {name} in {seconds:.2f}s "
        f"({len(examples) / max(seconds, 1e-9):.1f} texts/s, including resumed shards)")
  return summary
