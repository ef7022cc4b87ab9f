"""Tables and figures of Base vs Sens results, in the layout of the ASER paper's table 6."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from aser_jax.eval.paper_tables import table6_gain
from aser_jax.eval.significance import paired_comparison, tally

METRICS = ("HR@10", "NDCG@10")


def table6(results: dict, out_dir: str | Path, metrics=METRICS) -> Path:
  """Writes `table6.md`, `table6.csv` and `table6.png` from per-seed test metrics.

  `results[(domain, backbone)] = {"base": [metrics per seed], "sens": [metrics per seed]}`,
  each entry a dict like metrics.json's "test". A pair without Sens runs gets its Base row only.
  A Sens entry may carry "sensory_alpha", the learned blend α; its mean is reported so a reader
  sees how much of the sensory channel the backbone kept. Returns the Markdown path.
  """
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  header = ["domain", "backbone", "variant", *metrics, "learned α"]
  rows, md = [], ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  gains = {}  # (domain, backbone) -> {metric: Sens's relative gain}
  for (domain, backbone), runs in results.items():
    base = {m: [r[m] for r in runs["base"]] for m in metrics}
    md_base = [f"{np.mean(base[m]):.4f}" for m in metrics] + ["-"]
    md.append(f"| {domain} | {backbone} | Base (n={len(runs['base'])}) | " + " | ".join(md_base) + " |")
    rows.append([domain, backbone, "Base", *md_base])
    if runs.get("sens"):
      cells = []
      for m in metrics:
        c = paired_comparison(base[m], [r[m] for r in runs["sens"]])
        cells.append(f"{c.sens_mean:.4f}{c.mark()} ({c.gain:+.1%})")
        gains.setdefault((domain, backbone), {})[m] = c.gain
      alphas = [r["sensory_alpha"] for r in runs["sens"] if r.get("sensory_alpha") is not None]
      cells.append(f"{np.mean(alphas):.3f}" if alphas else "-")
      md.append(f"| {domain} | {backbone} | Sens (n={len(runs['sens'])}) | " + " | ".join(cells) + " |")
      rows.append([domain, backbone, "Sens", *cells])
  md.append("\nMeans over seeds; * = paired two-sided t-test over seeds, p < 0.05; gains relative to Base; "
            "learned α = the sensory blend σ(a) after training (ASER_SPEC §5), initialised at ρ0.")
  if gains:
    md.append("\n" + _tally(gains, metrics))
  (out / "table6.md").write_text("\n".join(md) + "\n")
  with open(out / "table6.csv", "w", newline="") as f:
    csv.writer(f).writerows([header, *rows])
  _bars(results, metrics, out / "table6.png")
  return out / "table6.md"


def _tally(gains: dict, metrics) -> str:
  """The paper's headline question of these pairs: in how many does Sens beat Base, and by how
  much on average; beside it the paper's table-6 gains on the pairs it reports."""
  paper = {pair: table6_gain(*pair) for pair in gains}
  parts = []
  for m in metrics:
    t = tally([g[m] for g in gains.values()], [p[m] for p in paper.values() if p and m in p])
    text = f"{m}: Sens > Base in {t['better']} of {len(gains)} pairs, mean gain {t['mean_gain']:+.1%}"
    if t["paper_pairs"]:
      text += (f" (the paper on the {t['paper_pairs']} it reports: {t['paper_better']} better, "
               f"{t['paper_mean_gain']:+.1%})")
    parts.append(text)
  return "; ".join(parts) + "."


def _bars(results: dict, metrics, path: Path) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  keys = list(results)
  fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
  x = np.arange(len(keys))
  for ax, m in zip(axes[0], metrics):
    base = [np.mean([r[m] for r in results[k]["base"]]) for k in keys]
    sens = [np.mean([r[m] for r in results[k]["sens"]]) if results[k].get("sens") else np.nan for k in keys]
    ax.bar(x - 0.2, base, 0.4, label="Base")
    ax.bar(x + 0.2, sens, 0.4, label="Sens")
    ax.set_xticks(x, [f"{d}\n{b}" for d, b in keys], fontsize=8)
    ax.set_title(m)
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def cold_start_report(buckets: dict, out_dir: str | Path, k: int = 10, name: str = "cold_start",
                      grouping: str = "training count of the test target") -> Path:
  """Writes `<name>.md` and `<name>.png`: NDCG@k per group of test users, Base vs Sens.

  `buckets[(domain, backbone)][variant]` is a list (one per seed) of `cold_start_buckets` (or
  `facet_target_split`, with `grouping` naming it) dicts.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  metric = f"NDCG@{k}"
  md = [f"| domain | backbone | variant | {grouping} | users | {metric} |", "|---|---|---|---|---|---|"]
  fig, axes = plt.subplots(1, max(1, len(buckets)), figsize=(4.5 * max(1, len(buckets)), 3.2), squeeze=False)
  for ax, ((domain, backbone), by_variant) in zip(axes[0], buckets.items()):
    names = None
    for j, (variant, runs) in enumerate(sorted(by_variant.items())):
      if not runs:
        continue
      names = list(runs[0])
      values = [np.array([r[b][metric] for r in runs], np.float64) for b in names]
      means = [float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for v in values]  # empty group: nan
      for b, v in zip(names, means):
        md.append(f"| {domain} | {backbone} | {variant} | {b} | {runs[0][b]['users']} | {v:.4f} |")
      ax.bar(np.arange(len(names)) + (j - 0.5) * 0.4, means, 0.4, label=variant)
    if names:
      ax.set_xticks(np.arange(len(names)), names)
    ax.set_title(f"{domain} {backbone}: {metric}")
    ax.set_xlabel(grouping)
    ax.legend()
  fig.tight_layout()
  fig.savefig(out / f"{name}.png", dpi=120)
  plt.close(fig)
  (out / f"{name}.md").write_text("\n".join(md) + "\n")
  return out / f"{name}.md"
