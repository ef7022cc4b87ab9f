"""The supervision corpus: teacher shards per domain -> leakage-checked, item-split ArrayRecord shards.

Steps (ASER_SPEC §2): read each domain's teacher rows, drop benchmark items (then check that
none is left), cap each (domain, source) group at `max_per_source` texts, split by item into
train / validation, tokenise with the student's tokenizer, embed target texts with the frozen
target encoder, and write the shards, the cleaning table (paper table 2) and a manifest.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
from pathlib import Path

import numpy as np

from aser_jax.bank.facets import FACETS
from aser_jax.supervision import leakage, store
from aser_jax.supervision.clean import cleaning_table
from aser_jax.supervision.examples import SupervisionConfig, build_examples, special_tokens

log = logging.getLogger("aser_jax")


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
  max_per_source: int = 3000
  val_fraction: float = 0.15
  seed: int = 0
  student_encoder: str = "all-minilm-l6-v2"
  target_encoder: str = "all-minilm-l6-v2"
  supervision: SupervisionConfig = SupervisionConfig()


def split_by_item(rows: list[dict], domain_of, val_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
  """Train / validation rows with no item in both (held-out items, not held-out texts)."""
  keys = sorted({(domain_of(r), str(r["item_id"])) for r in rows})
  rng = np.random.default_rng(seed)
  val = {keys[i] for i in rng.permutation(len(keys))[:int(round(val_fraction * len(keys)))]}
  train = [r for r in rows if (domain_of(r), str(r["item_id"])) not in val]
  return train, [r for r in rows if (domain_of(r), str(r["item_id"])) in val]


def cap_per_source(rows: list[dict], domain_of, cap: int, seed: int) -> list[dict]:
  """At most `cap` randomly chosen texts per (domain, source); empty texts are left out."""
  groups = collections.defaultdict(list)
  for r in rows:
    if r["text"].strip():
      groups[(domain_of(r), r["source"])].append(r)
  rng = np.random.default_rng(seed)
  out = []
  for key in sorted(groups):
    g = groups[key]
    out += [g[i] for i in sorted(rng.permutation(len(g))[:cap])]
  return out


def format_cleaning_table(table: dict[str, dict]) -> str:
  lines = ["| domain | raw | kept | drop rate |", "|---|---|---|---|"]
  for d in sorted(table):
    t = table[d]
    lines.append(f"| {d} | {t['raw']} | {t['kept']} | {t['drop_rate']:.1%} |")
  return "\n".join(lines) + "\n"


def build_corpus(teacher_dirs: dict[str, str], out: str | os.PathLike, data_dir: str | os.PathLike | None,
                 cfg: CorpusConfig = CorpusConfig(), tokenizer=None, embed_fn=None) -> dict:
  """Builds and writes the corpus; returns the manifest. `tokenizer` / `embed_fn` default to the
  student encoder's tokenizer (with the added tokens) and the target encoder."""
  from aser_jax.teacher.extract import read_shards

  rows = []
  for domain, path in teacher_dirs.items():
    rows += [dict(r, domain=domain) for r in read_shards(path)]
  if not rows:
    raise ValueError(f"no teacher rows under {list(teacher_dirs.values())}")
  domain_of = lambda r: r["domain"]  # noqa: E731
  bench = leakage.read_benchmark_ids(data_dir) if data_dir else set()
  rows, removed = leakage.remove_benchmark_items(rows, bench)
  leakage.check_no_leakage((r["item_id"] for r in rows), bench)
  table = cleaning_table(rows, domain_of, cfg.supervision.clean)
  rows = cap_per_source(rows, domain_of, cfg.max_per_source, cfg.seed)
  train, val = split_by_item(rows, domain_of, cfg.val_fraction, cfg.seed)
  domains = sorted(teacher_dirs)
  if tokenizer is None:
    from aser_jax.models.encoders import load_tokenizer

    tokenizer = load_tokenizer(_encoder_dir(cfg.student_encoder), cfg.supervision.max_len)
    tokenizer = tokenizer.with_special_tokens(special_tokens(domains))
  if embed_fn is None:
    from aser_jax.models.encoders import default_embedder

    embed_fn = default_embedder(cfg.target_encoder)
  out = Path(out)
  splits, counts = {}, {}
  for split, part in (("train", train), ("val", val)):
    arrays, meta = build_examples(part, domain_of, domains, tokenizer, embed_fn, cfg.supervision)
    splits[split] = store.write_split(out, split, arrays, meta)
    counts[split] = {d: dict(collections.Counter(m["source"] for m in meta if m["domain"] == d)) for d in domains}
    counts[split]["presence_rate"] = dict(zip(FACETS, arrays["presence"].mean(0).round(4).tolist()))
  manifest = {"domains": domains, "splits": splits, "target_dim": int(arrays["target"].shape[-1]),
              "special_token_ids": {t: tokenizer.token_to_id(t) for t in special_tokens(domains)}, "counts": counts, "benchmark_texts_removed": removed,
              "benchmark_ids": len(bench), "cleaning": table, "config": json.loads(json.dumps(
                  dataclasses.asdict(cfg))), "teacher_dirs": {k: str(v) for k, v in teacher_dirs.items()}}
  store.write_manifest(out, manifest)
  (out / "cleaning_table.md").write_text(format_cleaning_table(table))
  log.info("supervision: %d train / %d val texts, %d benchmark texts removed", len(train), len(val), removed)
  return manifest


def _encoder_dir(name: str):
  from aser_jax.models.encoders import minilm_path
  from aser_jax.models.encoders.loader import MINILM_NAMES

  return minilm_path() if name.lower() in MINILM_NAMES else Path(name)
