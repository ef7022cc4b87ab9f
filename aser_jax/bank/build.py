"""Item facet bank from the frozen student (ASER_SPEC §4), sharded and resumable over items.

The student reads every text of every item as `[DOM_d] [SRC_title] text`; each shard of items
writes its per-text outputs (P, k, ĉ, π and the evidence spans the student found) to
`shards/shard-NNNNN.npz` atomically, so a killed build resumes at the first missing shard.
The shards are then aggregated (aggregate.aggregate_bank), checked (a missing item or a NaN is
an error) and saved as one Orbax checkpoint with its metadata, optionally also as `.npz`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import jax
import numpy as np

from aser_jax.bank.aggregate import Bank, aggregate_bank, facet_spread
from aser_jax.bank.facets import FACETS
from aser_jax.bank.io import export_npz, save_bank
from aser_jax.data.errors import DataError
from aser_jax.data.io import save_atomic
from aser_jax.supervision.examples import UNK_DOMAIN, content_mask, prefix
from aser_jax.teacher.text import PRESETS

log = logging.getLogger("aser_jax")


# Catalogue -> item-text fields the student reads; the files are the teacher presets' files.
CATALOGUE_FIELDS = {"beauty": ("title", "brand", "categories"), "toys": ("title",), "yelp": ("name", "categories")}


@dataclasses.dataclass(frozen=True)
class BankBuildConfig:
  theta: float = 0.5
  max_len: int = 64
  batch_size: int = 64
  shard_items: int = 2000
  domain: str = ""  # the student's domain token for these texts; "": the catalogue's name if the
  # student was trained on a domain of that name, else [DOM_unk] (a new domain, student frozen)
  source: str = "title"
  head: str = "canonical"  # which student head gives K: "canonical" (k, ASER_SPEC §4) or "example" (e)


HEADS = {"canonical": "k", "example": "e"}


def catalogue_texts(data: str, data_dir: str | os.PathLike) -> tuple[int, list[tuple[int, str]]]:
  """(num_items, [(item id, text)]) of a benchmark catalogue, item ids = sequence ids.

  beauty: title, brand and categories; toys: the title fragment; yelp: name and categories;
  synthetic: the embedded catalogue's title, categories and description.
  Every id 1..num_items must have a row (its text may be empty).
  """
  from aser_jax.data.items import read_item_text
  from aser_jax.data.synthetic import SYNTHETIC_NAME, synthetic_dataset

  if data == SYNTHETIC_NAME:
    seqs, table = synthetic_dataset()
    return seqs.num_items, [(i, table.text(i, ("title", "categories", "description"), sep="\n"))
                            for i in range(1, seqs.num_items + 1)]

  if data not in CATALOGUE_FIELDS:
    raise ValueError(f"unknown catalogue {data!r}; choose one of {sorted(CATALOGUE_FIELDS)}")
  fields = CATALOGUE_FIELDS[data]
  table = read_item_text(Path(data_dir) / PRESETS[data].relpath)
  num_items = max(table.rows)
  missing = sorted(set(range(1, num_items + 1)) - set(table.rows))
  if missing:
    raise DataError(table.path, None, f"{len(missing)} item ids have no row, e.g. {missing[:5]}", "item_id")
  return num_items, [(i, table.text(i, fields, sep="\n")) for i in range(1, num_items + 1)]


def student_domain(requested: str, domains: Sequence[str]) -> str:
  """The student's domain token for a catalogue: `requested` if the student was trained on it,
  else `unk` (a new domain, student frozen)."""
  return requested if requested in domains else UNK_DOMAIN


def make_predict_fn(model, params, tokenizer, student_cfg_domains: Sequence[str], cfg: BankBuildConfig):
  """`fn(texts) -> (outputs, evidence)`: per-text P [N,F], k [N,F,D], conf [N,F], pol [N,F,3] and,
  per text and facet, the text spans whose tokens have evidence probability >= θ. `k` comes
  from the head `cfg.head` names: the canonical head, or the example head as an ablation."""
  if cfg.head not in HEADS:
    raise ValueError(f"bank head must be one of {sorted(HEADS)}, got {cfg.head!r}")
  tok = dataclasses.replace(tokenizer, max_len=cfg.max_len)
  domains = list(student_cfg_domains)
  domain = student_domain(cfg.domain, domains)
  dom_id = domains.index(domain) if domain in domains else len(domains)
  pre = prefix(domain, cfg.source)
  fn = jax.jit(lambda b: model.apply({"params": params}, b, False))

  def predict(texts: Sequence[str]):
    B = cfg.batch_size
    outs, evidence = [], []
    for s in range(0, len(texts), B):
      chunk = list(texts[s:s + B])
      batch = tok([pre + t for t in chunk] + [pre] * (B - len(chunk)), pad_to=cfg.max_len)
      off = batch.offsets_BxTx2
      content = content_mask(off, batch.special_BxT, len(pre))
      o = fn({"input_ids": batch.input_ids_BxT, "attention_mask": batch.attention_mask_BxT,
              "content": content.astype(np.float32), "domain": np.full((B,), dom_id, np.int32)})
      o = {k: np.asarray(o[HEADS[cfg.head] if k == "k" else k])[:len(chunk)] for k in ("P", "k", "conf", "pol", "p")}
      for b, t in enumerate(chunk):
        evidence.append([_evidence(t, off[b] - len(pre), o["p"][b, :, f], o["P"][b, f], cfg.theta)
                         for f in range(len(FACETS))])
      outs.append(o)
    if not outs:
      return {}, []
    return {k: np.concatenate([o[k] for o in outs]) for k in ("P", "k", "conf", "pol")}, evidence

  return predict


def _evidence(text: str, off_Tx2: np.ndarray, p_T: np.ndarray, presence: float, theta: float, top: int = 3) -> str:
  """The spans of tokens with evidence probability >= θ; when a present facet (P >= θ) has none
  (its presence comes from many weak tokens through the noisy-or), its `top` strongest tokens,
  marked `weak:` with their probabilities, so the audit still shows what the student read."""
  spans = _spans(text, off_Tx2, p_T >= theta)
  if spans or presence < theta:
    return spans
  order = [t for t in np.argsort(-p_T, kind="stable")[:top] if p_T[t] > 0 and off_Tx2[t, 0] >= 0]
  return "weak: " + " | ".join(f"{text[off_Tx2[t, 0]:off_Tx2[t, 1]].strip()} ({p_T[t]:.2f})" for t in order)


def _spans(text: str, off_Tx2: np.ndarray, on_T: np.ndarray) -> str:
  """The text pieces covered by runs of consecutive `on` tokens, joined with ' | '."""
  pieces, run = [], None
  for t in range(len(on_T)):
    if on_T[t] and off_Tx2[t, 0] >= 0:
      run = (run[0], off_Tx2[t, 1]) if run else (off_Tx2[t, 0], off_Tx2[t, 1])
    elif run:
      pieces.append(text[run[0]:run[1]].strip())
      run = None
  if run:
    pieces.append(text[run[0]:run[1]].strip())
  return " | ".join(p for p in pieces if p)


def _signature(meta: dict) -> str:
  return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


def build_bank(texts: list[tuple[int, str]], num_items: int, predict: Callable, out: str | os.PathLike,
               metadata: dict, cfg: BankBuildConfig = BankBuildConfig(), export: bool = False,
               progress: bool = True) -> tuple[Bank, dict]:
  """Runs `predict` shard by shard (skipping finished shards), aggregates and saves the bank.

  Writes `out/shards/`, `out/bank` (Orbax), `out/stats.json` and with `export` `out/bank.npz`.
  """
  out = Path(out)
  shard_dir = out / "shards"
  shard_dir.mkdir(parents=True, exist_ok=True)
  config = dataclasses.asdict(cfg)
  if cfg.head == "canonical":
    del config["head"]  # the default: shards of builds from before the option stay resumable
  sig = _signature({"metadata": metadata, "config": config, "num_items": num_items,
                    "texts": hashlib.sha256(json.dumps(texts).encode()).hexdigest()})
  sig_path = shard_dir / "signature.txt"
  if sig_path.exists() and sig_path.read_text() != sig:
    raise ValueError(f"{shard_dir}: shards were written by a different build (student, config or texts); "
                     "use a new --out")
  sig_path.write_text(sig)
  by_shard: dict[int, list[tuple[int, str]]] = {}
  for item, text in texts:
    if not 1 <= item <= num_items:
      raise ValueError(f"text of item {item} is outside 1..{num_items}")
    by_shard.setdefault((item - 1) // cfg.shard_items, []).append((item, text))
  from tqdm import tqdm

  todo = [k for k in sorted(by_shard) if not (shard_dir / f"shard-{k:05d}.npz").exists()]
  bar = tqdm(total=sum(len(by_shard[k]) for k in todo), desc="bank", unit="text", disable=not progress)
  computed, t0, n_texts = 0, time.perf_counter(), 0
  for k in todo:
    path = shard_dir / f"shard-{k:05d}.npz"
    rows = by_shard[k]
    o, ev = predict([t for _, t in rows])
    for name, arr in o.items():
      if not np.isfinite(arr).all():
        bad = rows[int(np.argwhere(~np.isfinite(arr))[0][0])][0]
        raise ValueError(f"student output {name} is not finite for item {bad} (shard {k})")
    save_atomic(path, np.savez, item=np.array([i for i, _ in rows], np.int64), evidence=np.array(json.dumps(ev)), **o)
    computed += 1
    n_texts += len(rows)
    bar.update(len(rows))
  bar.close()
  secs = time.perf_counter() - t0
  parts = []
  for k in sorted(by_shard):
    with np.load(shard_dir / f"shard-{k:05d}.npz") as z:
      parts.append({n: z[n] for n in z.files})
  item = np.concatenate([p["item"] for p in parts]) if parts else np.zeros((0,), np.int64)
  missing = sorted(set(range(1, num_items + 1)) - set(item.tolist()))
  if missing:
    raise ValueError(f"{len(missing)} items have no text in the bank build, e.g. {missing[:5]}")
  cat = {n: np.concatenate([p[n] for p in parts]) for n in ("P", "k", "conf", "pol")}
  bank = aggregate_bank(item, num_items, cat["P"], cat["k"], cat["conf"], cat["pol"], cfg.theta)
  meta = {**metadata, "theta": cfg.theta, "domain_token": cfg.domain, "texts": len(texts), "head": cfg.head}
  save_bank(out / "bank", bank, meta)
  if export:
    export_npz(out / "bank.npz", bank, meta)
  A = bank.A[1:]
  stats = {"items": num_items, "texts": len(texts), "items_with_active_facet": int(A.any(-1).sum()),
           "share_no_active_facet": float(1 - A.any(-1).mean()) if num_items else 0.0,
           "coverage": dict(zip(FACETS, A.mean(0).round(4).tolist())),
           "k_mean_pairwise_cos": facet_spread(bank), "head": cfg.head,
           "shards_computed": computed, "texts_computed": n_texts,
           "texts_per_s": n_texts / secs if n_texts and secs > 0 else None}
  (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
  return bank, stats


def load_student_predictor(student_dir: str | os.PathLike, data: str, cfg: BankBuildConfig = BankBuildConfig()):
  """(predict, cfg, manifest, student config) for reading catalogue `data` with the trained student
  in `student_dir`; `cfg.domain` is resolved to the student's domain token for that catalogue."""
  from aser_jax.train.student_loop import load_student

  model, params, tok, manifest, scfg = load_student(student_dir)
  cfg = dataclasses.replace(cfg, domain=student_domain(cfg.domain or data, manifest["domains"]))
  return make_predict_fn(model, params, tok, manifest["domains"], cfg), cfg, manifest, scfg


def build_student_bank(student_dir: str | os.PathLike, data: str, data_dir: str | os.PathLike | None,
                       out: str | os.PathLike, cfg: BankBuildConfig = BankBuildConfig(),
                       export: bool = True, progress: bool = True) -> tuple[Bank, dict]:
  """The bank of catalogue `data` from the trained student in `student_dir` (ASER_SPEC §4)."""
  predict, cfg, manifest, scfg = load_student_predictor(student_dir, data, cfg)
  num_items, texts = catalogue_texts(data, data_dir)
  meta = {"kind": "student bank (ASER_SPEC §4)", "student": str(Path(student_dir).resolve()),
          "student_kind": scfg.kind, "encoder": scfg.encoder, "data": data,
          "student_domains": list(manifest["domains"])}
  log.info("bank of %s: %d items through the student with [DOM_%s]", data, num_items, cfg.domain)
  return build_bank(texts, num_items, predict, out, meta, cfg, export, progress)
