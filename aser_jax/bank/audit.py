"""Bank audit (paper table 4): facet coverage per domain as a PNG heatmap, the items with the
strongest evidence per facet with the spans the student marked, and the share of items with
no active facet. Reads what `build.build_bank` wrote (`bank/`, `shards/`, `stats.json`).
Given the catalogue's texts, it also runs the lexicon teacher over the very texts the bank saw
and scores the bank's active flags against the teacher's cleaned presence labels: this separates
"the student misses what is there" from "the texts carry little sensory language".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from aser_jax.bank.aggregate import facet_spread
from aser_jax.bank.facets import FACETS
from aser_jax.bank.io import load_bank


def _shards(bank_dir: str | os.PathLike):
  """(item ids, P [X,F], per-text per-facet evidence strings) of each bank-build shard."""
  for path in sorted((Path(bank_dir) / "shards").glob("shard-*.npz")):
    with np.load(path) as z:
      yield z["item"], z["P"], json.loads(str(z["evidence"]))


def strongest_evidence(bank_dir: str | os.PathLike, top: int = 5) -> dict[str, list[dict]]:
  """Per facet, the `top` items whose best text has the highest presence P, with that text's
  evidence spans (the pieces whose token evidence probability is >= θ)."""
  best: dict[str, list[tuple[float, int, str]]] = {f: [] for f in FACETS}
  for item, P, evidence in _shards(bank_dir):
    for f, name in enumerate(FACETS):
      order = np.argsort(-P[:, f], kind="stable")[:top]
      best[name] += [(float(P[x, f]), int(item[x]), evidence[x][f]) for x in order if P[x, f] > 0]
  out = {}
  for name, rows in best.items():
    seen, keep = set(), []
    for p, i, spans in sorted(rows, key=lambda r: (-r[0], r[1])):
      if i not in seen:
        seen.add(i)
        keep.append({"item": i, "presence": round(p, 4), "evidence": spans})
    out[name] = keep[:top]
  return out


def student_evidence_by_item(bank_dir: str | os.PathLike) -> dict[int, dict[str, list[str]]]:
  """Per item and facet, the evidence spans the student marked in the item's texts."""
  out: dict[int, dict[str, list[str]]] = {}
  for items, _, evidence in _shards(bank_dir):
    for item, per_facet in zip(items.tolist(), evidence):
      for name, spans in zip(FACETS, per_facet):
        if spans:
          out.setdefault(int(item), {}).setdefault(name, []).append(f'"{spans}" (student)')
  return out


def teacher_agreement(A_IxF: np.ndarray, texts: list[tuple[int, str]], source: str = "title",
                      extract=None) -> dict[str, dict[str, float]]:
  """Per facet: the teacher's coverage on `texts` [(item id, text)] (cleaned as in ASER_SPEC §2,
  an item is present when any of its texts is), the bank's coverage, and the bank's precision,
  recall and F1 against the teacher. `A_IxF` is the bank's active array without the padding row;
  `extract(text, source)` returns record dicts (default: the lexicon teacher)."""
  from aser_jax.supervision.clean import facet_labels

  if extract is None:
    from aser_jax.teacher.lexicon import LexiconExtractor

    lexicon = LexiconExtractor()
    extract = lambda text, src: [r.to_dict() for r in lexicon.extract(text, src)]
  bank = np.asarray(A_IxF) > 0
  teacher = np.zeros_like(bank)
  for item, text in texts:
    teacher[item - 1] |= np.asarray(facet_labels(extract(text, source), source, text).presence, bool)
  out = {}
  for f, name in enumerate(FACETS):
    tp = float((bank[:, f] & teacher[:, f]).sum())
    p = tp / bank[:, f].sum() if bank[:, f].any() else 0.0
    r = tp / teacher[:, f].sum() if teacher[:, f].any() else 0.0
    out[name] = {"teacher_coverage": float(teacher[:, f].mean()), "bank_coverage": float(bank[:, f].mean()),
                 "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}
  out["any"] = {"teacher_coverage": float(teacher.any(-1).mean()), "bank_coverage": float(bank.any(-1).mean())}
  return out


def coverage_heatmap(coverage: dict[str, dict[str, float]], path: str | os.PathLike) -> Path:
  """Domains x facets heatmap of the share of items with the facet active."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  domains = list(coverage)
  grid = np.array([[coverage[d][f] for f in FACETS] for d in domains]) * 100
  fig, ax = plt.subplots(figsize=(1.4 * len(FACETS) + 1.5, 0.6 * len(domains) + 1.4))
  im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=max(grid.max(), 1e-9), aspect="auto")
  ax.set_xticks(range(len(FACETS)), FACETS)
  ax.set_yticks(range(len(domains)), domains)
  for r in range(len(domains)):
    for c in range(len(FACETS)):
      ax.text(c, r, f"{grid[r, c]:.1f}%", ha="center", va="center",
              color="white" if grid[r, c] < 0.6 * grid.max() else "black", fontsize=9)
  fig.colorbar(im, ax=ax, label="% items with the facet active")
  ax.set_title("Item facet bank coverage")
  fig.tight_layout()
  path = Path(path)
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def audit_banks(bank_dirs: dict[str, str | os.PathLike], out_dir: str | os.PathLike, top: int = 5,
                texts: dict[str, list[tuple[int, str]]] | None = None) -> dict:
  """Writes `audit.md`, `audit.json` and `coverage.png` for banks `{domain: build folder}`;
  `texts` {domain: [(item id, text)]} adds the teacher agreement of those domains' banks."""
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  report = {}
  for domain, d in bank_dirs.items():
    bank, meta = load_bank(Path(d) / "bank")
    A = bank.A[1:] > 0
    report[domain] = {
        "items": int(bank.num_items), "items_with_active_facet": int(A.any(-1).sum()),
        "share_no_active_facet": float(1 - A.any(-1).mean()) if bank.num_items else 0.0,
        "coverage": dict(zip(FACETS, A.mean(0).round(4).tolist())),
        "mean_confidence_active": {f: float(bank.C[1:, k][A[:, k]].mean()) if A[:, k].any() else 0.0
                                   for k, f in enumerate(FACETS)},
        "k_mean_pairwise_cos": facet_spread(bank),
        "strongest": strongest_evidence(d, top), "metadata": meta}
    if texts and domain in texts:
      report[domain]["teacher_agreement"] = teacher_agreement(bank.A[1:], texts[domain])
  (out / "audit.json").write_text(json.dumps(report, indent=2) + "\n")
  coverage_heatmap({d: r["coverage"] for d, r in report.items()}, out / "coverage.png")
  md = ["# Bank audit", "", "| domain | items | >= 1 active facet | no active facet | "
        + " | ".join(FACETS) + " |", "|" + "---|" * (4 + len(FACETS))]
  for d, r in report.items():
    md.append(f"| {d} | {r['items']} | {r['items_with_active_facet']} | {r['share_no_active_facet']:.1%} | "
              + " | ".join(f"{r['coverage'][f]:.1%}" for f in FACETS) + " |")
  md += ["", "Mean cosine between two active items' K vectors (near 1: the facet is one shared direction, "
         "which tells the recommender only *that* an item has the facet):", "",
         "| domain | " + " | ".join(FACETS) + " |", "|" + "---|" * (1 + len(FACETS))]
  for d, r in report.items():
    md.append(f"| {d} | " + " | ".join("-" if r["k_mean_pairwise_cos"][f] is None else f"{r['k_mean_pairwise_cos'][f]:.3f}"
                                       for f in FACETS) + " |")
  md += ["", "![coverage](coverage.png)", ""]
  agreeing = {d: r["teacher_agreement"] for d, r in report.items() if "teacher_agreement" in r}
  if agreeing:
    md += ["## Bank vs lexicon teacher on the same texts", "",
           "| domain | facet | teacher coverage | bank coverage | precision | recall | F1 |", "|---|---|---|---|---|---|---|"]
    for d, agree in agreeing.items():
      for f in FACETS:
        a = agree[f]
        md.append(f"| {d} | {f} | {a['teacher_coverage']:.1%} | {a['bank_coverage']:.1%} | {a['precision']:.2f} | "
                  f"{a['recall']:.2f} | {a['f1']:.2f} |")
      md.append(f"| {d} | any | {agree['any']['teacher_coverage']:.1%} | {agree['any']['bank_coverage']:.1%} | | | |")
    md.append("")
  for d, r in report.items():
    md.append(f"## {d}: strongest evidence per facet")
    for f in FACETS:
      cases = "; ".join(f"item {c['item']} (P={c['presence']:.2f}): {c['evidence'] or '-'}" for c in r["strongest"][f])
      md.append(f"- **{f}**: {cases or 'none'}")
    md.append("")
  (out / "audit.md").write_text("\n".join(md))
  return report
