"""Paper settings per (backbone, dataset), applied before any flag a user passes.

SASRec: ASER paper / BACKBONES.md ("Paper settings"): d 64, 2 layers, 2 heads, dropout 0.5, lr 1e-3,
BCE with one negative, for every dataset.
"""

from __future__ import annotations

# backbone -> dataset ("*" = any) -> {"model": {...}, "train": {...}}
PAPER: dict[str, dict[str, dict[str, dict]]] = {
    "sasrec": {
        "*": {"model": {"hidden": 64, "layers": 2, "heads": 2, "dropout": 0.5, "attn_dropout": 0.5,
                        "loss": "bce"},
              "train": {"lr": 1e-3}},
    },
}


def paper_settings(backbone: str, dataset: str) -> tuple[dict, dict]:
  """Returns `(model_overrides, train_overrides)`; empty when no preset is known."""
  by_data = PAPER.get(backbone, {})
  merged = {"model": {}, "train": {}}
  for key in ("*", dataset):
    for part in ("model", "train"):
      merged[part].update(by_data.get(key, {}).get(part, {}))
  return merged["model"], merged["train"]
