"""Paper settings per (backbone, dataset), applied before any flag a user passes.

SASRec: ASER paper / BACKBONES.md ("Paper settings"): d 64, 2 layers, 2 heads, dropout 0.5, lr 1e-3,
BCE with one negative, trained at every position of each user's sequence (`loss="bce_all"`,
ASER_SPEC §6: "predict the next item at each step"); this objective reproduces the ASER paper's
SASRec Base row on Beauty, the BSARec repository's last-position BCE (`loss="bce"`) falls 14-16%
short. Its epochs are one pass over users (88 steps on Beauty), hence 400 epochs, patience 30.
The synthetic catalogue keeps `bce`: the main job's 20 short epochs would be too few steps.
BSARec: ASER §4.1 (d 64, 2 layers, 2 heads, lr 5e-4) with BSARec's defaults α 0.9, c 3, and its
Beauty values α 0.7, c 5 (BACKBONES.md "BSARec"); ASER's 2 heads replace the reference's 1.
BERT4Rec: ASER §4.1 (d 64, 2 layers, 2 heads, lr 5e-4); ρ 0.2 (BACKBONES.md), dropout 0.1 as in
the BERT4Rec paper; 5 freshly masked copies of each sequence per epoch.
DIFF: the reference's per-dataset fusion, α, λ and c (BACKBONES.md "DIFF"; Beauty and, by default,
others: concat, α 0.3, λ 100, c 5; Toys α 0.5, c 9; Yelp gate, λ 20) at ASER's d 64, 2 layers,
2 heads, lr 5e-4.
GRU4Rec: GRASP's d 64 and lr 1e-3, one GRU layer (BACKBONES.md "GRU4Rec").
"""

from __future__ import annotations

# backbone -> dataset ("*" = any) -> {"model": {...}, "train": {...}}
PAPER: dict[str, dict[str, dict[str, dict]]] = {
    "sasrec": {
        "*": {"model": {"hidden": 64, "layers": 2, "heads": 2, "dropout": 0.5, "attn_dropout": 0.5,
                        "loss": "bce_all"},
              "train": {"lr": 1e-3, "epochs": 400, "patience": 30}},
        "synthetic": {"model": {"loss": "bce"}, "train": {"epochs": 200, "patience": 10}},
    },
    "bsarec": {
        "*": {"model": {"hidden": 64, "layers": 2, "heads": 2, "dropout": 0.5, "attn_dropout": 0.5,
                        "alpha": 0.9, "c": 3},
              "train": {"lr": 5e-4}},
        "beauty": {"model": {"alpha": 0.7, "c": 5}},
    },
    "bert4rec": {
        "*": {"model": {"hidden": 64, "layers": 2, "heads": 2, "dropout": 0.1, "attn_dropout": 0.1,
                        "mask_prob": 0.2, "prediction_budget": 3, "repeats": 5},
              "train": {"lr": 5e-4}},
    },
    "diff": {
        "*": {"model": {"hidden": 64, "layers": 2, "heads": 2, "dropout": 0.5, "attn_dropout": 0.5,
                        "side_fusion": "concat", "alpha": 0.3, "lam": 100.0, "c": 5},
              "train": {"lr": 5e-4}},
        "toys": {"model": {"alpha": 0.5, "c": 9}},
        "yelp": {"model": {"side_fusion": "gate", "alpha": 0.3, "lam": 20.0}},
    },
    "gru4rec": {
        "*": {"model": {"hidden": 64, "layers": 1, "dropout": 0.5}, "train": {"lr": 1e-3}},
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
