"""Saving and loading the item facet bank: one Orbax checkpoint with its metadata, or an `.npz`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp

from aser_jax.bank.aggregate import Bank
from aser_jax.bank.facets import FACETS


def save_bank(path: str | os.PathLike, bank: Bank, metadata: dict) -> None:
  """Writes the bank arrays and `metadata` (student checkpoint id, encoder, ...) atomically."""
  bank.validate()
  meta = {"facets": list(FACETS), "num_items": bank.num_items, "dim": int(bank.K.shape[-1]), **metadata}
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckpt:
    ckpt.save(Path(path).resolve(), ocp.args.Composite(arrays=ocp.args.StandardSave(bank.arrays()),
                                                       metadata=ocp.args.JsonSave(meta)), force=True)


def load_bank(path: str | os.PathLike) -> tuple[Bank, dict]:
  """Reads a bank written by `save_bank` (or an `.npz` from `export_npz`) and validates it."""
  path = Path(path)
  if path.suffix == ".npz":
    with np.load(path) as z:
      bank = Bank(*(np.asarray(z[k], np.float32) for k in ("K", "C", "Pi", "N", "A")))
      meta = json.loads(str(z["metadata"])) if "metadata" in z else {}
  else:
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckpt:
      out = ckpt.restore(path.resolve(), ocp.args.Composite(arrays=ocp.args.StandardRestore(),
                                                            metadata=ocp.args.JsonRestore()))
    bank = Bank(**{k: np.asarray(v, np.float32) for k, v in out["arrays"].items()})
    meta = dict(out["metadata"])
  if meta.get("facets", list(FACETS)) != list(FACETS):
    raise ValueError(f"{path}: facet order {meta.get('facets')} differs from {list(FACETS)}")
  bank.validate()
  return bank, meta


def export_npz(path: str | os.PathLike, bank: Bank, metadata: dict) -> None:
  """Writes `K, C, Pi, N, A`, `item_ids` and the metadata (JSON) to one `.npz` for other tools."""
  np.savez(path, **bank.arrays(), item_ids=np.arange(bank.num_items + 1),
           metadata=json.dumps({"facets": list(FACETS), **metadata}))
