"""Teacher rows -> per-example facet supervision arrays (ASER_SPEC §2).

Each example is one text with its domain d and source s, fed to the student as
`[DOM_d] [SRC_s] text`. For facet f it carries the evidence mask m[t,f] (tokens inside an
evidence span of a kept record, projected through the tokenizer's character offsets), the
content mask c[t] (item-text tokens only), presence y, confidence κ, polarity class (-1 masks
the loss), the example target z = snorm(E_T(target text), y) and its item's canonical target
c* = snorm(Σ_x w z, A) with w = y κ and A = 1[Σ_x w ≥ τ_mass].
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Callable, Sequence

import numpy as np

from aser_jax.bank.aggregate import snorm
from aser_jax.bank.facets import FACETS
from aser_jax.supervision.clean import ATTRIBUTE_TO_FACET, CleanConfig, facet_labels
from aser_jax.teacher.text import SOURCES

UNK_DOMAIN = "unk"


@dataclasses.dataclass(frozen=True)
class SupervisionConfig:
  max_len: int = 64
  tau_mass: float = 0.5  # canonical-target activation mass (chosen)
  clean: CleanConfig = CleanConfig()


def domain_token(domain: str) -> str:
  return f"[DOM_{domain}]"


def source_token(source: str) -> str:
  return f"[SRC_{source}]"


def special_tokens(domains: Sequence[str]) -> list[str]:
  """The added tokens of ASER_SPEC §3: one per domain, `[DOM_unk]`, one per source."""
  return ([domain_token(d) for d in domains] + [domain_token(UNK_DOMAIN)]
          + [source_token(s) for s in SOURCES])


def prefix(domain: str, source: str) -> str:
  return f"{domain_token(domain)} {source_token(source)} "


def evidence_spans(text: str, evidence: str) -> list[tuple[int, int]]:
  """[start, end) character spans of every case-insensitive occurrence of `evidence` in `text`,
  any whitespace run matching any other (the cleaning step matches on normalised text)."""
  words = evidence.split()
  if not words:
    return []
  pattern = r"\s+".join(re.escape(w) for w in words)
  return [(m.start(), m.end()) for m in re.finditer(pattern, text, re.IGNORECASE)]


def content_mask(offsets_BxTx2: np.ndarray, special_BxT: np.ndarray, start) -> np.ndarray:
  """c[t] (bool): a non-empty, non-special token at or after character `start`, where the item text
  begins after the `[DOM] [SRC]` prefix. Shared by supervision and the bank build, so the student
  reads the same content tokens in training and when it embeds the catalogue."""
  return (~special_BxT) & (offsets_BxTx2[..., 1] > offsets_BxTx2[..., 0]) & (offsets_BxTx2[..., 0] >= start)


def token_masks(text: str, offsets_Tx2: np.ndarray, special_T: np.ndarray, start: int,
                spans_per_facet: Sequence[Sequence[tuple[int, int]]]) -> tuple[np.ndarray, np.ndarray]:
  """Content mask c [T] and evidence mask m [T, F] of one tokenised `prefix + text`.

  `start` is where the item text begins in the tokenised string; spans are offsets into `text`.
  A token is evidence when its span shares a non-space character with an evidence span (with
  metaspace tokenizers a piece's span includes the space before it).
  """
  full_start = offsets_Tx2[:, 0] - start
  full_end = offsets_Tx2[:, 1] - start
  content = content_mask(offsets_Tx2, special_T, start)
  m = np.zeros((len(content), len(spans_per_facet)), np.float32)
  for f, spans in enumerate(spans_per_facet):
    for s, e in spans:
      lo = np.maximum(full_start, s)
      hi = np.minimum(full_end, e)
      for t in np.nonzero(content & (lo < hi))[0]:
        if text[lo[t]:hi[t]].strip():
          m[t, f] = 1.0
  return content.astype(np.float32), m


def encode_texts(tokenizer, domains: Sequence[str], sources: Sequence[str], texts: Sequence[str],
                 spans: Sequence[Sequence[Sequence[tuple[int, int]]]], pad_to: int) -> dict[str, np.ndarray]:
  """Token ids, attention mask, content [N,T] and evidence [N,T,F] masks of `[DOM] [SRC] text`."""
  pres = [prefix(d, s) for d, s in zip(domains, sources)]
  batch = tokenizer([p + t for p, t in zip(pres, texts)], pad_to=pad_to)
  content, evidence = zip(*(token_masks(t, batch.offsets_BxTx2[b], batch.special_BxT[b], len(p), sp)
                            for b, (p, t, sp) in enumerate(zip(pres, texts, spans))))
  return {"input_ids": batch.input_ids_BxT, "attention_mask": batch.attention_mask_BxT,
          "content": np.stack(content), "evidence": np.stack(evidence)}


def build_examples(rows: Sequence[dict], domain_of: Callable[[dict], str], domains: Sequence[str],
                   tokenizer, embed_fn: Callable[[list[str]], np.ndarray],
                   cfg: SupervisionConfig = SupervisionConfig()) -> tuple[dict[str, np.ndarray], list[dict]]:
  """Supervision arrays for teacher `rows` and one metadata dict per example.

  Arrays (N examples, T = cfg.max_len, F facets, D target width): input_ids, attention_mask,
  content [N,T], evidence [N,T,F], domain, source [N], presence, kappa, polarity [N,F],
  target [N,F,D], canonical [N,F,D], canonical_active [N,F].
  """
  F = len(FACETS)
  dom_index = {d: k for k, d in enumerate(domains)}
  labels, spans, doms, srcs = [], [], [], []
  for row in rows:
    d = domain_of(row)
    if d not in dom_index:
      raise ValueError(f"example of item {row.get('item_id')!r}: domain {d!r} not in {list(domains)}")
    lab = facet_labels(row.get("records", []), row["source"], row["text"], cfg.clean)
    per_facet = [[] for _ in FACETS]
    for r in lab.kept:
      per_facet[FACETS.index(ATTRIBUTE_TO_FACET[r["attribute"]])].extend(evidence_spans(row["text"], r["evidence"]))
    labels.append(lab)
    spans.append(per_facet)
    doms.append(d)
    srcs.append(row["source"])
  arrays = encode_texts(tokenizer, doms, srcs, [r["text"] for r in rows], spans, cfg.max_len)
  presence = np.array([lab.presence for lab in labels], np.float32).reshape(-1, F)
  targets = sorted({t for lab in labels for t in lab.target_text if t})
  vec = dict(zip(targets, np.asarray(embed_fn(targets), np.float32))) if targets else {}
  D = next(iter(vec.values())).shape[0] if vec else 1
  raw = np.zeros((len(rows), F, D), np.float32)
  for n, lab in enumerate(labels):
    for f, t in enumerate(lab.target_text):
      if t:
        raw[n, f] = vec[t]
  target = snorm(raw, presence).astype(np.float32)
  kappa = np.array([lab.confidence for lab in labels], np.float32).reshape(-1, F)
  canonical, canonical_active = canonical_targets([(d, str(r["item_id"])) for d, r in zip(doms, rows)],
                                                  presence * kappa, target, cfg.tau_mass)
  arrays.update(
      domain=np.array([dom_index[d] for d in doms], np.int32),
      source=np.array([SOURCES.index(s) for s in srcs], np.int32),
      presence=presence, kappa=kappa,
      polarity=np.array([lab.polarity for lab in labels], np.int32).reshape(-1, F),
      target=target, canonical=canonical, canonical_active=canonical_active)
  meta = [{"item_id": str(r["item_id"]), "domain": d, "source": r["source"], "text": r["text"],
           "target_text": list(lab.target_text)} for r, d, lab in zip(rows, doms, labels)]
  return arrays, meta


def canonical_targets(item_keys: Sequence, w_NxF: np.ndarray, z_NxFxD: np.ndarray,
                      tau_mass: float) -> tuple[np.ndarray, np.ndarray]:
  """Per example, its item's c*[i,f] = snorm(Σ_x w z, A[i,f]) and A[i,f] = 1[Σ_x w ≥ τ_mass]."""
  groups = collections.defaultdict(list)
  for n, key in enumerate(item_keys):
    groups[key].append(n)
  canonical = np.zeros_like(z_NxFxD, np.float32)
  active = np.zeros(w_NxF.shape, np.float32)
  for idx in groups.values():
    w = w_NxF[idx].astype(np.float64)
    a = (w.sum(0) >= tau_mass).astype(np.float64)
    c = snorm((w[..., None] * z_NxFxD[idx]).sum(0), a)
    canonical[idx] = c
    active[idx] = a
  return canonical, active


def balanced_probabilities(domain_N: np.ndarray, source_N: np.ndarray) -> np.ndarray:
  """Sampling probabilities giving each present (domain, source) group the same total mass."""
  keys = np.asarray(domain_N, np.int64) * len(SOURCES) + np.asarray(source_N, np.int64)
  _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
  p = 1.0 / (counts[inverse] * len(counts))
  return p / p.sum()


def balanced_batches(domain_N: np.ndarray, source_N: np.ndarray, batch_size: int,
                     rng: np.random.Generator) -> np.ndarray:
  """One epoch (⌊N / batch⌋ batches, at least one) of indices drawn domain- and source-balanced."""
  n = len(domain_N)
  steps = max(n // batch_size, 1)
  idx = rng.choice(n, size=steps * batch_size, replace=True, p=balanced_probabilities(domain_N, source_N))
  return idx.reshape(steps, batch_size)
