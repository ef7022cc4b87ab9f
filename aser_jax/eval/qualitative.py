"""Qualitative cases: test users whose target Sens moved into or out of the top K, with evidence.

For each such user: the target's rank under Base and under Sens, and the teacher evidence
spans of the target item's active facets, so a reader can see what the bank knew.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aser_jax.bank.aggregate import Bank
from aser_jax.bank.facets import FACETS
from aser_jax.supervision.clean import ATTRIBUTE_TO_FACET, CleanConfig, keep_reason


def evidence_by_item(rows: list[dict], cfg: CleanConfig = CleanConfig()) -> dict[int, dict[str, list[str]]]:
  """Kept records' evidence spans per item and facet (`attribute = value` <- "evidence")."""
  out: dict[int, dict[str, list[str]]] = {}
  for row in rows:
    for r in row.get("records", []):
      if keep_reason(r, row["source"], row["text"], cfg) is None:
        spans = out.setdefault(int(row["item_id"]), {}).setdefault(ATTRIBUTE_TO_FACET[r["attribute"]], [])
        spans.append(f"{r['attribute']} = {r['value']} <- \"{r['evidence']}\"")
  return out


def rank_changes(base_ranks: np.ndarray, sens_ranks: np.ndarray, targets: np.ndarray, bank: Bank,
                 evidence: dict[int, dict[str, list[str]]], k: int = 10, limit: int = 20) -> list[dict]:
  """Users whose target crossed the top-k boundary, largest rank changes first."""
  moved = np.flatnonzero((base_ranks <= k) != (sens_ranks <= k))
  moved = moved[np.argsort(-np.abs(base_ranks[moved].astype(np.int64) - sens_ranks[moved]))][:limit]
  cases = []
  for u in moved:
    item = int(targets[u])
    active = [f for j, f in enumerate(FACETS) if bank.A[item, j] > 0]
    cases.append({
        "user_row": int(u), "target": item, "base_rank": int(base_ranks[u]), "sens_rank": int(sens_ranks[u]),
        "direction": "into top-%d" % k if sens_ranks[u] <= k else "out of top-%d" % k,
        "active_facets": active,
        "evidence": {f: evidence.get(item, {}).get(f, [])[:3] for f in active},
    })
  return cases


def write_cases(cases: list[dict], path: str | Path) -> Path:
  """Markdown report of the cases (and the same as JSON beside it)."""
  path = Path(path)
  lines = ["| user | target | Base rank | Sens rank | moved | evidence of the target's active facets |",
           "|---|---|---|---|---|---|"]
  for c in cases:
    ev = "; ".join(f"{f}: {' / '.join(spans)}" for f, spans in c["evidence"].items()) or "(no active facet)"
    lines.append(f"| {c['user_row']} | {c['target']} | {c['base_rank']} | {c['sens_rank']} | {c['direction']} | "
                 f"{ev} |")
  path.write_text("\n".join(lines) + "\n")
  path.with_suffix(".json").write_text(json.dumps(cases, indent=2) + "\n")
  return path
