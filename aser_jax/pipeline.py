"""The main job: teacher -> bank -> Base vs Sens -> table 6, on the synthetic default or on real data.

Stages, each resumable inside `workdir/<domain>` (a finished stage is skipped on re-run):
1. `teacher/`: the teacher (lexicon by default) annotates every item text (sharded JSONL).
2. `bank/`: the canonical-target bank of ASER_SPEC §2 from the kept records, embedded with the
   frozen MiniLM target encoder (the trained student of §3 replaces this step when it lands).
3. `runs/`: each backbone trained and tested per seed, without (Base) and with the bank (Sens).
4. `report/`: table 6 (Markdown, CSV, PNG) with relative gains and paired t-tests.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from aser_jax.data.presets import load_sequences
from aser_jax.data.synthetic import SYNTHETIC_NAME, synthetic_dataset

log = logging.getLogger("aser_jax")


def item_texts(data: str, data_dir: str | None) -> list:
  """Item texts of the recommendation catalogue as teacher inputs (item ids are sequence ids)."""
  from aser_jax.teacher import text as text_lib

  if data == SYNTHETIC_NAME:
    _, table = synthetic_dataset()
    out = []
    for i, row in table.rows.items():
      out.append(text_lib.TextExample(str(i), "title", table.text(i, ("title", "categories"))))
      out.append(text_lib.TextExample(str(i), "description", row["description"]))
    return out
  if data not in text_lib.PRESETS or data_dir is None:
    return []
  rel = Path(text_lib.PRESETS[data].relpath)
  base = Path(data_dir)
  for root in (base, base.parent, base.parent.parent):  # data_dir may be the data root or a domain folder
    if (root / rel).exists():
      return list(text_lib.read_preset(data, root))
  return []


def build_teacher_bank(data: str, data_dir: str | None, workdir: Path, num_items: int, backend: str = "lexicon",
                       progress: bool = True):
  """Stages 1-2; returns the bank path, or None when the catalogue has no item text here."""
  from aser_jax.bank.io import export_npz, load_bank, save_bank
  from aser_jax.bank.teacher_bank import teacher_bank
  from aser_jax.models.encoders import embed_texts
  from aser_jax.teacher.backends import make_teacher
  from aser_jax.teacher.extract import ExtractConfig, read_shards, run_extraction

  bank_dir = workdir / "bank"
  if (bank_dir / "bank.npz").exists():
    load_bank(bank_dir / "bank.npz")  # validates
    return bank_dir / "bank.npz"
  examples = item_texts(data, data_dir)
  if not examples:
    log.info("no item text for %s here: Sens rows are skipped", data)
    return None
  run_extraction(examples, make_teacher(backend), workdir / "teacher", ExtractConfig(), data_name=data,
                 progress=progress)
  rows = read_shards(workdir / "teacher")
  bank, stats = teacher_bank(rows, num_items, embed_texts)
  bank_dir.mkdir(parents=True, exist_ok=True)
  meta = {"kind": "canonical-target bank (ASER_SPEC §2)", "teacher": backend, "encoder": "all-minilm-l6-v2",
          "data": data}
  save_bank(bank_dir / "orbax", bank, meta)
  export_npz(bank_dir / "bank.npz", bank, meta)
  (bank_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
  log.info("bank: %d of %d items have an active facet; coverage %s", stats["items_with_active_facet"],
           num_items, {k: round(v, 3) for k, v in stats["coverage"].items()})
  return bank_dir / "bank.npz"


def base_vs_sens(*, workdir: str | Path, data: str, data_dir: str | None, backbones: list[str], seeds: list[int],
                 train_overrides: dict | None = None, teacher: str = "lexicon", sens: bool = True,
                 sensory_bank: str | None = None) -> tuple[dict, dict]:
  """Base and Sens runs of every backbone and seed on one domain; returns table-6 input and the
  per-run cold-start buckets of the test targets' training counts.

  The bank is `sensory_bank` when given (e.g. a student-built bank), else the teacher bank
  built in `workdir`; a domain without item text gets Base rows only.
  """
  from aser_jax.train.run import run_recommender

  out = Path(workdir)
  seqs = load_sequences(data, data_dir)
  bank_path = sensory_bank
  if sens and bank_path is None:
    bank_path = build_teacher_bank(data, data_dir, out, seqs.num_items, teacher,
                                   (train_overrides or {}).get("progress", True))
  from aser_jax.data.splits import eval_split, train_item_counts
  from aser_jax.eval.significance import cold_start_buckets

  target_counts = train_item_counts(seqs)[eval_split(seqs, 1, "test").targets]
  results, buckets = {}, {}
  for backbone in backbones:
    runs = {"base": [], "sens": []}
    cold = {"base": [], "sens": []}
    for seed in seeds:
      for variant, bank in (("base", None), ("sens", bank_path if sens else None)):
        if variant == "sens" and bank is None:
          continue
        run_dir = out / "runs" / f"{backbone}_{variant}_seed{seed}"
        r = run_recommender(backbone=backbone, data=data, data_dir=data_dir, workdir=str(run_dir),
                            train_overrides={"seed": seed, **(train_overrides or {})},
                            sensory_bank=str(bank) if bank else None)
        runs[variant].append(r["test"])
        cold[variant].append(cold_start_buckets(np.load(run_dir / "test_ranks.npy"), target_counts))
    if runs["sens"] and (out / "teacher").exists():
      _qualitative(out, backbone, seeds[0], bank_path, seqs)
    label = f"{seqs.name} (SYNTHETIC)" if seqs.synthetic else seqs.name
    results[(label, backbone)] = runs
    buckets[(label, backbone)] = cold
  return results, buckets


def _qualitative(out: Path, backbone: str, seed: int, bank_path, seqs) -> Path:
  """Rank-change cases of one seed with the evidence spans of the targets' active facets."""
  from aser_jax.bank.io import load_bank
  from aser_jax.data.splits import eval_split
  from aser_jax.eval.qualitative import evidence_by_item, rank_changes, write_cases
  from aser_jax.teacher.extract import read_shards

  ranks = {v: np.load(out / "runs" / f"{backbone}_{v}_seed{seed}" / "test_ranks.npy") for v in ("base", "sens")}
  cases = rank_changes(ranks["base"], ranks["sens"], eval_split(seqs, 1, "test").targets, load_bank(bank_path)[0],
                       evidence_by_item(read_shards(out / "teacher")))
  return write_cases(cases, out / f"qualitative_{backbone}_seed{seed}.md")


def run_pipeline(*, workdir: str, domains: list[tuple[str, str | None]], **kwargs) -> Path:
  """`base_vs_sens` for every `(data, data_dir)` domain, then one table 6 and the cold-start
  buckets (ASER_SPEC §6); returns the table's Markdown path."""
  from aser_jax.eval.report import cold_start_report, table6

  results, buckets = {}, {}
  for data, data_dir in domains:
    r, b = base_vs_sens(workdir=Path(workdir) / Path(data).name.split(".")[0], data=data, data_dir=data_dir,
                        **kwargs)
    results.update(r)
    buckets.update(b)
  cold_start_report(buckets, Path(workdir) / "report")
  return table6(results, Path(workdir) / "report")
