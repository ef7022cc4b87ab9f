"""The ablations of ASER_SPEC §6 on one domain and backbone: fusion type, hidden size, channel.

The fusion ablation also runs early fusion with the residual blend `e + α s` (our extension,
`models.fusion`), beside the paper's early and late variants.

Every variant is an ordinary recommender run (same loop, same evaluator) with a different
bank or config; results are means over seeds, written as `ablation_<kind>.md`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aser_jax.bank.channels import vector_bank
from aser_jax.bank.io import export_npz
from aser_jax.data.items import read_item_text
from aser_jax.data.presets import load_sequences
from aser_jax.data.synthetic import SYNTHETIC_NAME, synthetic_dataset
from aser_jax.eval.ranking import KS

KINDS = ("fusion", "hidden", "channel")
# Item tables holding brand/category fields, per preset (relative to the shared data root).
ATTRIBUTE_TABLES = {"beauty": ("amazon2014/beauty/item_text_iclrec_ids.tsv.gz", ("brand", "categories")),
                    "yelp": ("yelp/item_text_letter.jsonl.gz", ("categories",))}


def _item_table(data: str, data_dir: str | None):
  """(table, attribute fields) for the broad-attribute channel, or (None, ()) when there is none."""
  if data == SYNTHETIC_NAME:
    return synthetic_dataset()[1], ("brand", "categories")
  if data not in ATTRIBUTE_TABLES or data_dir is None:
    return None, ()
  rel, fields = ATTRIBUTE_TABLES[data]
  base = Path(data_dir)
  for root in (base, base.parent, base.parent.parent):
    if (root / rel).exists():
      return read_item_text(root / rel), fields
  return None, ()


def channel_banks(workdir: Path, data: str, data_dir: str | None, num_items: int) -> dict[str, Path]:
  """Builds (once) the raw-text and broad-attribute banks with the frozen MiniLM."""
  from aser_jax.models.encoders import embed_texts
  from aser_jax.pipeline import item_texts

  out = {}
  raw = {}
  for ex in item_texts(data, data_dir):
    raw.setdefault(int(ex.item_id), []).append(ex.text)
  table, fields = _item_table(data, data_dir)
  sources = {"raw_text": {i: "\n".join(t) for i, t in raw.items()}}
  if table is not None:
    sources["broad_attribute"] = {int(i): table.text(i, fields, sep=" ; ") for i in table.rows}
  for name, texts in sources.items():
    path = workdir / "channels" / f"{name}.npz"
    if not path.exists():
      path.parent.mkdir(parents=True, exist_ok=True)
      export_npz(path, vector_bank(texts, num_items, embed_texts), {"channel": name, "encoder": "all-minilm-l6-v2"})
    out[name] = path
  return out


def run_ablation(kind: str, *, workdir: str, data: str, data_dir: str | None, backbone: str, seeds: list[int],
                 bank: str, train_overrides: dict | None = None, workers: int = 1) -> Path:
  """Runs the variants of one ablation and writes its table; `bank` is the ASER bank to ablate.
  `workers > 1` trains that many runs at once (`train.run.run_recommenders`)."""
  from aser_jax.train.run import run_recommenders

  if kind not in KINDS:
    raise ValueError(f"ablation must be one of {KINDS}, got {kind!r}")
  out = Path(workdir)
  variants: dict[str, tuple[str | None, dict]] = {}
  if kind == "fusion":
    variants = {"Base": (None, {}), "early": (bank, {"fusion": "early"}), "late": (bank, {"fusion": "late"}),
                "early residual": (bank, {"fusion": "early", "blend": "residual"})}  # extension, not in the paper
  elif kind == "hidden":
    for h in (64, 128, 256):
      variants[f"Base d={h}"] = (None, {"hidden": h})
      variants[f"Sens d={h}"] = (bank, {"hidden": h})
  else:
    seqs = load_sequences(data, data_dir)
    variants = {"Base": (None, {})}
    variants.update({name: (str(p), {}) for name, p in channel_banks(out, data, data_dir, seqs.num_items).items()})
    variants["ASER bank"] = (bank, {})
  cols = [f"{m}@{k}" for k in KS for m in ("HR", "NDCG")]
  lines = [f"| {kind} variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
  grid = [(name, seed) for name in variants for seed in seeds]
  jobs = [dict(backbone=backbone, data=data, data_dir=data_dir, model_overrides=variants[name][1],
               workdir=str(out / kind / f"{name.replace(' ', '_').replace('=', '')}_seed{seed}"),
               train_overrides={"seed": seed, **(train_overrides or {})}, sensory_bank=variants[name][0])
          for name, seed in grid]
  finished = run_recommenders(jobs, workers)
  for name in variants:
    tests = [r["test"] for (n, _), r in zip(grid, finished) if n == name]
    lines.append(f"| {name} | " + " | ".join(f"{np.mean([t[c] for t in tests]):.4f}" for c in cols) + " |")
  lines.append(f"\n{backbone} on {data}; means over seeds {seeds}.")
  path = out / f"ablation_{kind}.md"
  path.write_text("\n".join(lines) + "\n")
  return path
