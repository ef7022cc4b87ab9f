"""The main job: every stage that exists so far, on the embedded synthetic default or on real data.

Today that is the recommender stage: each requested backbone is trained and tested (Base),
and a Markdown table of the test metrics is written. The teacher, student, bank and Sens
stages join this function as they land.
"""

from __future__ import annotations

import json
from pathlib import Path

from aser_jax.eval.ranking import KS
from aser_jax.train.run import run_recommender


def run_pipeline(*, workdir: str, data: str, data_dir: str | None, backbones: list[str], seeds: list[int],
                 train_overrides: dict | None = None) -> Path:
  """Runs Base for every (backbone, seed); returns the path of the Markdown table."""
  out = Path(workdir)
  rows = []
  for backbone in backbones:
    results = [run_recommender(backbone=backbone, data=data, data_dir=data_dir,
                               workdir=str(out / f"{backbone}_seed{seed}"),
                               train_overrides={"seed": seed, **(train_overrides or {})})
               for seed in seeds]
    mean = {k: sum(r["test"][k] for r in results) / len(results) for k in results[0]["test"]}
    rows.append((backbone, results[0]["data"], results[0]["synthetic"], mean))
  cols = [f"{m}@{k}" for k in KS for m in ("HR", "NDCG")]
  lines = ["| backbone | data | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
  for backbone, name, synthetic, mean in rows:
    label = f"{name} (SYNTHETIC)" if synthetic else name
    lines.append(f"| {backbone} Base | {label} | " + " | ".join(f"{mean[c]:.4f}" for c in cols) + " |")
  note = (f"\nMean of seeds {seeds}; full ranking, leave-one-out, pessimistic ties.\n")
  table = out / "table.md"
  table.write_text("\n".join(lines) + "\n" + note)
  (out / "table.json").write_text(json.dumps([{"backbone": b, "data": n, "synthetic": s, "test": m}
                                              for b, n, s, m in rows], indent=2) + "\n")
  return table
